"""The class board's live refresh: a drawing sent → on the presenter's Latent map, in a real browser.

    python bench/bench_classboard.py [--sends 10] [--method pca] [--runs-dir DIR]

Trains a conv_ae (latent_dim 32, 8 s) once into the runs folder (reused later), serves app.py with
`streamlit run`, opens the Latent map in Debian's Chromium and then, one at a time, puts a drawing on
the class board from this process (engine.lab.classboard.ClassBoard.send, what the Draw page's button
calls) and waits until the page's map holds one more ◆ (its "the class" trace). The page looks for new
drawings every second and redraws once per change, so the time is that wait plus one page run and
plotly's redraw. Reported: each time, the median, min and max; a table line, then one JSON line.
Nothing is asserted: this is a measurement, not a test (tests/browser/test_classboard.py is the test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _server import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # beside this script

RUN_ID = "bench-conv-ae"
ON_MAP = """() => {
    for (const gd of document.querySelectorAll('.js-plotly-plot')) {
        const t = (gd.data || []).find(t => t.name === 'the class');
        if (t && gd.getClientRects().length) return t.text.length;
    }
    return 0;
}"""


def ensure_run(runs_dir: Path) -> None:
    """The conv_ae the map shows: trained here once, reused while it is there and finished."""
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    path = runs_dir / RUN_ID
    if path.exists() and Run(path).status().state == "done":
        return
    run = Run.create(runs_dir, make_run_config("conv_ae", "mnist-5k", {"latent_dim": 32}, {"seconds": 8}),
                     run_id=RUN_ID)
    train_run(run)
    if run.status().state != "done":
        raise SystemExit(f"training failed: {run.status()}")


def drawing(k: int) -> np.ndarray:
    """A vertical bar, one column further right each time (every drawing a different one)."""
    x = np.zeros((28, 28), np.float32)
    x[6:22, 4 + k % 20:8 + k % 20] = 1.0
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=10)
    parser.add_argument("--method", default="pca", choices=("pca", "umap", "tsne"))
    parser.add_argument("--runs-dir", type=Path, default=None)
    args = parser.parse_args()
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="bench-classboard-")) / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    ensure_run(runs_dir)

    from playwright.sync_api import sync_playwright

    from engine.lab.classboard import ClassBoard
    from engine.runs.workspace import Actor

    board = ClassBoard(runs_dir)
    board.clear(Actor.server())
    env = {"LATENT_LAB_RUNS": str(runs_dir), "LATENT_LAB_UMAP_WARMUP": "1" if args.method == "umap" else "0"}
    times = []
    with streamlit_server("app.py", runs_dir.parent / "streamlit.log", env) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(240_000)
        page.goto(url)
        page.wait_for_selector('[data-testid="stApp"] h1')
        page.goto(f"{url}/latent_map?run={RUN_ID}&method={args.method}")
        page.wait_for_selector('[data-testid="stApp"] .js-plotly-plot')
        page.wait_for_timeout(3000)  # the page has settled (a UMAP map: see --method; it first shows PCA)
        for k in range(args.sends):
            start = time.monotonic()
            board.send(drawing(k), f"n{k}", RUN_ID, "mnist-5k", Actor.local())
            page.wait_for_function(f"n => ({ON_MAP})() >= n", arg=k + 1, polling=20, timeout=120_000)
            times.append(time.monotonic() - start)
            page.wait_for_timeout(1500 + 137 * k % 500)  # sends fall anywhere in the page's 1-second cycle
        browser.close()
    board.clear(Actor.server())
    result = {"bench": "classboard", "method": args.method, "sends": len(times),
              "seconds": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
              "min_s": round(min(times), 3), "max_s": round(max(times), 3)}
    print(f"send → on the map ({args.method}): median {result['median_s']:.2f} s "
          f"({result['min_s']:.2f}–{result['max_s']:.2f}, {len(times)} sends)", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
