"""A first visit in a real browser: a fresh server, a fresh browser, how long until a page shows its content.

    python bench/bench_first_visit.py [--trials 3] [--root OTHER_CHECKOUT]

Each trial starts `streamlit run app.py` on an empty runs folder and opens, in a new Chromium context,
Home (until its title and its "No runs yet" message are drawn) and then, on another fresh server, a
deep link to the Draw page (until it says no model is trained yet). The reference is the plain reference page
(bench/reference_app.py) on a fresh server, measured in the same trial: what Streamlit itself costs
a first visit. Reported: the median and spread of each, the ratio of medians to the reference, and
every request to a host other than 127.0.0.1 (there should be none). `--root` measures another
checkout (an older commit, say) in the same run, its pages and imports from there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server  # beside this script

# (name, script, path to open, text that says the content is drawn)
VISITS = [("reference", "bench/reference_app.py", "/", "Reference"),
          ("home", "app.py", "/", "No runs yet"),
          ("draw deep link", "app.py", "/draw", "No autoencoder trained")]


def visit(browser, url: str, text: str, outside: list[str]) -> float:
    """Seconds from navigation to `text` on the page, in a fresh context (no cache, no cookies)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                  "blob:")) else None)
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_text(text).first.wait_for(timeout=120_000)
    seconds = time.perf_counter() - t0
    context.close()
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--root", type=Path, help="another checkout to measure (default: this one)")
    args = ap.parse_args()
    root = (args.root or ROOT).resolve()
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {name: [] for name, *_ in VISITS}
    outside: list[str] = []
    env = {"PYTHONPATH": str(root)} if args.root else {}  # the other checkout's engine and ui, not ours
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for trial in range(args.trials):
            for name, script, path, text in VISITS:
                runs = Path(tmp) / f"runs-{trial}-{name.replace(' ', '-')}"
                runs.mkdir()
                log = Path(tmp) / f"{runs.name}.log"
                where = ROOT if script.startswith("bench/") else root
                with streamlit_server(script, log, env={**env, "LATENT_LAB_RUNS": str(runs)}, root=where) as url:
                    times[name].append(visit(browser, url + path, text, outside))
                print(f"trial {trial + 1}: {name} {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
        browser.close()
    ref = statistics.median(times["reference"])
    print(f"{'visit':16s} {'median s':>9s} {'min–max s':>12s} {'÷ reference':>12s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:16s} {med:9.2f} {min(ts):5.2f}–{max(ts):5.2f} {med / ref:12.2f}")
    print(f"requests to other hosts: {sorted(set(outside)) or 'none'}")
    print(json.dumps({"bench": "first_visit", "root": str(root), "trials": args.trials, "cpus": os.cpu_count(),
                      "machine": platform.machine(), "median_s": {k: statistics.median(v) for k, v in times.items()},
                      "all_s": times, "outside_requests": sorted(set(outside))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
