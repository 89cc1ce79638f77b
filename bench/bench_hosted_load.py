"""A hosted link under a room's load, in real browsers: page-ready and slider times, errors, memory, training pace.

    python bench/bench_hosted_load.py [--sessions 5,10,20] [--seconds 120]

One `streamlit run app.py` in hosted mode (LATENT_LAB_MODE=hosted) on 127.0.0.1, over a runs folder holding a
finished conv_ae and a PCA run trained by the operator (the CLI: every visitor sees them read-only), and two
conv_ae trainings kept busy beside it by a job manager (two slots, as the app runs them). N headless Chromium
contexts (Playwright, Debian's chromium), each a visitor with a workspace of its own (its private link, made
on its first visit), then cycle Home → Train → Draw → Latent explorer → Latent map for `--seconds`: a page is
ready when Streamlit's script state is back to idle with the page's title drawn; on the explorer each visitor
moves a latent slider (a key press) and waits for the server to have taken the move (the link's `?z=` changes:
the decoded image itself changes in the browser at once, from the strip the page handed it, ui/latent_sliders.py).

Reported per N: page-ready p50/p95, slider p50/p95, time-outs, exceptions the pages showed and console errors
(goal 0), the server's peak RSS (its process group), the trainings' pace against their pace just before with no
visitors, and the CPU seconds Chromium itself burned (it shares the 2 cores with the server, so its share is
said rather than silently counted against the server). bench/bench_load.py measures the same server with
protocol-level clients, whose own CPU is small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _server import CHROMIUM, ROOT, streamlit_server  # beside this script
from bench_load import cpu_seconds, pace, percentile, result_row, rss_mb, server_pid, training_steps, wait_until_idle
from bench_load import new_stats as load_stats

PAGES = [("", "Latent Lab"), ("train", "Train"), ("draw", "Draw"), ("explorer", "Latent explorer"),
         ("latent_map", "Latent map")]
PAGE_TIMEOUT_MS = 30_000
DWELL_S = (2.0, 4.0)
SLIDER_MOVES = 3
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
IDLE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.dataset.testConnectionState === 'CONNECTED' && app.dataset.testScriptState === 'notRunning';
}"""


def chromium_cpu_s() -> float:
    """CPU seconds (user + system) of every Chromium process now alive."""
    total = 0.0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if b"chrom" not in (p / "cmdline").read_bytes()[:200]:
                continue
            total += cpu_seconds(int(p.name))
        except (OSError, IndexError, ValueError):
            continue
    return total


async def ready(page, title: str) -> None:
    await page.wait_for_function(IDLE_JS, polling=50, timeout=PAGE_TIMEOUT_MS)
    await page.locator("h1").filter(has_text=title).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    await page.wait_for_function(IDLE_JS, polling=50, timeout=PAGE_TIMEOUT_MS)


async def visitor(browser, url: str, until: float, stats: dict, delay: float) -> None:
    await asyncio.sleep(delay)  # arrivals spread over the first seconds, as a room opens a link
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda e: stats["console_errors"].append(str(e)[:200]))
    page.on("console", lambda m: stats["console_errors"].append(m.text[:200]) if m.type == "error" else None)
    key, first = None, True
    try:
        i = random.randrange(len(PAGES))
        while time.monotonic() < until:
            path, title = PAGES[i % len(PAGES)]
            i += 1
            t0 = time.monotonic()
            try:
                if first:  # the link the room was given; then the sidebar's links, as people move around
                    await page.goto(f"{url}/{path}")
                    first = False
                else:
                    await page.locator(f'[data-testid="stSidebarNav"] a[href="{url}/{path}"]').first.click()
                await ready(page, title)
            except Exception as e:  # a time-out: counted, and the visitor goes on
                stats["page_timeouts"] += 1
                stats["errors"].append(f"{path or 'home'}: {type(e).__name__}")
                continue
            took = time.monotonic() - t0
            stats["page"].append(took)
            stats["by_page"].setdefault(path or "home", []).append(took)
            if key is None and "ws=" in page.url:
                key = page.url.split("ws=", 1)[1].split("&", 1)[0]  # the private link the app gave this visitor
            elif key is not None and f"ws={key}" not in page.url:
                stats["errors"].append(f"{path or 'home'}: the workspace key left the address bar")
            shown = await page.locator('[data-testid="stException"]').count()
            if shown:
                stats["exceptions"] += shown
                text = await page.locator('[data-testid="stException"]').first.inner_text()
                stats["exception_texts"].add(text[:160])
            if path == "explorer":
                await move_slider(page, stats)
            await asyncio.sleep(random.uniform(*DWELL_S))
    finally:
        await context.close()


async def move_slider(page, stats: dict) -> None:
    # the first latent slider's range input (ui/latent_sliders.py), which keyboard presses move
    handle = page.locator('.st-key-explorer_pad [data-slider="0"] input[type="range"]').first
    try:
        await handle.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
    except Exception:
        stats["errors"].append("explorer: no slider")
        return
    for _ in range(SLIDER_MOVES):
        before = await page.evaluate("() => location.search")
        t0 = time.monotonic()
        await handle.focus()
        await page.keyboard.press(random.choice(["ArrowRight", "ArrowLeft"]))
        try:  # the server's answer writes the new position into the link
            await page.wait_for_function(f"() => location.search !== {json.dumps(before)}", polling=20,
                                         timeout=PAGE_TIMEOUT_MS)
        except Exception:
            stats["slider_timeouts"] += 1
            continue
        stats["slider"].append(time.monotonic() - t0)
        await asyncio.sleep(0.5)


def new_stats() -> dict:
    return {**load_stats(), "console_errors": [], "by_page": {}}


async def room(url: str, n: int, seconds: float, stats: dict, pid: int | None, rss: list[float]) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        until = time.monotonic() + seconds

        async def watch():
            while time.monotonic() < until:
                rss.append(rss_mb(pid) if pid else 0.0)
                await asyncio.sleep(2.0)

        cpu0 = chromium_cpu_s()
        try:
            await asyncio.gather(watch(), *(visitor(browser, url, until, stats, i * 5.0 / n) for i in range(n)))
        finally:
            stats["chromium_cpu_s"] = chromium_cpu_s() - cpu0  # before its processes go
            await browser.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="5,10,20", help="comma-separated N (default 5,10,20)")
    ap.add_argument("--seconds", type=float, default=120.0, help="load per N (default 120)")
    args = ap.parse_args()
    py = [sys.executable, "-m", "engine"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        env = {"LATENT_LAB_RUNS": str(runs), "LATENT_LAB_MODE": "hosted"}
        penv = {**os.environ, **env}
        for cmd in (["train", "conv_ae", "--steps", "300", "--id", "starter", "--quiet"],
                    ["train", "pca", "--latent-dim", "32", "--id", "pca", "--quiet"]):
            subprocess.run(py + cmd, cwd=ROOT, env=penv, check=True, stdout=subprocess.DEVNULL)
        holder = ("import sys, time\n"
                  "from engine.runs.jobs import JobManager\n"
                  "jm = JobManager(sys.argv[1], max_concurrent=2)\n"
                  "for i in range(2):\n"
                  "    jm.submit('conv_ae', train={'steps': 10000000}, run_id=f'busy-{i}')\n"
                  "print('started', flush=True)\n"
                  "time.sleep(1e9)\n")
        trainer = subprocess.Popen([sys.executable, "-c", holder, str(runs)], cwd=ROOT, env=penv,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        trainer.stdout.readline()
        busy = [runs / f"busy-{i}" for i in range(2)]
        try:
            with streamlit_server("app.py", Path(tmp) / "server.log", env=env) as url:
                pid = server_pid(url)
                time.sleep(10)  # the trainings past their start-up
                # one visitor first, untimed: the first session starts the server's UMAP warm-up (~30 s of numba),
                # which wait_until_idle then waits out, so it does not fall inside a measured window
                asyncio.run(room(url, 1, 10.0, new_stats(), None, []))
                for n in [int(s) for s in args.sessions.split(",")]:
                    waited = wait_until_idle(pid)
                    quiet_pace = pace(busy, 10.0)
                    stats = new_stats()
                    rss, steps0, t0 = [], training_steps(busy), time.monotonic()
                    asyncio.run(room(url, n, args.seconds, stats, pid, rss))
                    wall = time.monotonic() - t0
                    loaded_pace = sum(b - a for a, b in zip(steps0, training_steps(busy))) / wall
                    row = {**result_row(n, wall, stats, rss, quiet_pace, loaded_pace),
                           "console_errors": len(stats["console_errors"]),
                           "console_error_texts": sorted(set(stats["console_errors"]))[:5],
                           "errors": stats["errors"][:5], "chromium_cpu_s": round(stats.get("chromium_cpu_s", 0.0), 1),
                           "server_idle_wait_s": round(waited, 1),
                           "page_p50_p95_s": {k: [round(percentile(v, 0.5), 2), round(percentile(v, 0.95), 2), len(v)]
                                              for k, v in sorted(stats["by_page"].items())}}
                    results.append(row)
                    print(f"N={n}: page p50 {row['page_p50_s'] or 0:.2f} s p95 {row['page_p95_s'] or 0:.2f} s "
                          f"({row['pages']} pages, {row['page_timeouts']} time-outs); slider p50 "
                          f"{row['slider_p50_s'] or 0:.2f} p95 {row['slider_p95_s'] or 0:.2f} s "
                          f"({row['slider_moves']} moves, {row['slider_timeouts']} time-outs); {row['exceptions']} "
                          f"exceptions, {row['console_errors']} console errors; "
                          f"RSS {row['server_rss_peak_mb']:.0f} MB; "
                          f"trainings kept {row['training_pace_kept'] or 0:.0%} of their pace; Chromium CPU "
                          f"{row['chromium_cpu_s']} s of {row['seconds']} s", file=sys.stderr, flush=True)
        finally:
            trainer.kill()
            trainer.wait()
            for d in busy:  # the workers run in sessions of their own: stop them by their pids
                try:
                    os.kill(int(json.loads((d / "status.json").read_text())["pid"]), 9)
                except (OSError, ValueError, KeyError, TypeError):
                    pass
    print(json.dumps({"bench": "hosted_load", "cpus": os.cpu_count(), "machine": platform.machine(),
                      "date": time.strftime("%Y-%m-%d"), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
