"""UI latency in a real browser: a latent slider → the decoded image, a drawn stroke → the reconstruction.

    python bench/bench_ui_latency.py [--moves 40] [--strokes 12] [--runs-dir DIR] [--train-seconds 8]

Trains a conv_ae (latent_dim 32) once into the runs folder (reused on later runs), serves app.py and
the plain reference page bench/reference_app.py (the same widgets, no model) with `streamlit run`,
and drives Debian's Chromium with Playwright:

- slider: a key press (ArrowRight/ArrowLeft) on the Latent explorer's first slider, until the decoded
  image's `src` changes (and until that new image has loaded). The explorer's sliders are its own
  component (ui/latent_sliders.py), which shows the decoder's images for the focused slider's
  positions in the browser; the reference is Streamlit's own st.slider, answered by a rerun;
- stroke: the mouse-up that ends a stroke on the Draw page's canvas, until the reconstruction x̂
  changes (and has loaded); the page shows its results as one HTML block (ui/charts/draw.py), the
  reference as an st.image captioned x̂. The first time (src changed) is like for like; "loaded" is
  not quite: the Draw page's x̂ is an inline data: URI, the reference's a media URL fetched after;
- the reference: the same two round trips on reference_app.py, measured in the same run,
  interleaved in blocks with the real pages so that load from other processes hits both alike.

Times are taken inside the page with performance.now(): a capture listener on `window` stamps the
key press or pointer-up, a MutationObserver stamps the image's new `src`. Reported: median and p95
per measure and the ratio of medians to the reference; a table, then one JSON line. Nothing is
asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server  # beside this script

from engine.lab.ts_anomaly import MP_WARMUP_ENV
from ui.resources import UMAP_WARMUP_ENV

RUN_ID = "bench-conv-ae"
BLOCK = 5  # measurements per block before switching between the real page and the reference

# Installed once per page: stamps t0 at the key press / pointer-up (capture phase on window sees
# events from every element, shadow roots included), and ts at the first websocket message the page
# sends after it (the move or the drawing on its way to the server; the socket's send is looked up on
# its prototype at each call, so the page's open socket is counted too).
INSTALL = """() => {
    window.__bench = {t0: null, t1: null, t2: null, ts: null};
    const mark = () => { window.__bench.t0 = performance.now(); window.__bench.ts = null; };
    window.addEventListener('keydown', mark, true);
    window.addEventListener('pointerup', mark, true);
    const send = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
        const b = window.__bench;
        if (b.t0 !== null && b.ts === null) b.ts = performance.now();
        return send.call(this, data);
    };
}"""

# Finds the watched image: a CSS selector, or (caption given) the image whose caption is that text.
FIND = """(sel, caption) => {
    if (!caption) return document.querySelector(sel);
    for (const img of document.querySelectorAll('[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img')) {
        const box = img.closest('[data-testid="stImage"]') || img.parentElement;
        const cap = box && box.querySelector('[data-testid="stImageCaption"]');
        if (cap && cap.textContent.trim() === caption) return img;
    }
    return null;
}"""

# Armed before each action: watches the image and stamps t1 when its src changes, t2 when it has loaded.
ARM = f"""([sel, caption]) => {{
    const find = {FIND};
    const b = window.__bench;
    b.t0 = null; b.t1 = null; b.t2 = null; b.ts = null;
    const img0 = find(sel, caption);
    const old = img0 ? img0.src : null;
    const check = () => {{
        const img = find(sel, caption);
        if (!img || img.src === old || b.t1 !== null) return;
        b.t1 = performance.now();
        obs.disconnect();
        const loaded = () => {{ if (b.t2 === null) b.t2 = performance.now(); }};
        if (img.complete && img.naturalWidth > 0) loaded(); else img.addEventListener('load', loaded, {{once: true}});
    }};
    const obs = new MutationObserver(check);
    obs.observe(document.body, {{subtree: true, childList: true, attributes: true, attributeFilter: ['src']}});
    return old;
}}"""

DONE = "() => window.__bench.t0 !== null && window.__bench.t1 !== null && window.__bench.t2 !== null"
RESULT = """() => { const b = window.__bench;
    return [b.t1 - b.t0, b.t2 - b.t0, b.ts === null ? null : b.ts - b.t0]; }"""


# -- set-up ----------------------------------------------------------------------------------------


def ensure_run(runs_dir: Path, seconds: float) -> None:
    """The conv_ae run the pages load: trained here once, reused while it is there and finished."""
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    path = runs_dir / RUN_ID
    if path.exists():
        try:
            if Run(path).status().state == "done" and Run(path).checkpoints():
                print(f"reusing {path}", file=sys.stderr)
                return
        except Exception:
            pass
        import shutil

        shutil.rmtree(path)
    print(f"training {RUN_ID} (conv_ae, latent_dim 32, {seconds:g} s) in {runs_dir}", file=sys.stderr)
    run = Run.create(runs_dir, make_run_config("conv_ae", "mnist-5k", {"latent_dim": 32}, {"seconds": seconds}),
                     run_id=RUN_ID)
    train_run(run)
    if run.status().state != "done":
        raise SystemExit(f"training failed: {run.status()}")


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="hidden", timeout=timeout_ms)


def open_page(context, url: str, ready: str, timeout_ms: int = 120_000):
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    page.wait_for_selector(ready, timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError(f"{url} shows an exception: {page.locator('[data-testid=stException]').first.inner_text()}")
    page.evaluate(INSTALL)
    return page


# -- one measurement -------------------------------------------------------------------------------


def measure(page, watch: tuple[str, str | None], action) -> tuple[float, float, float | None] | None:
    """(ms until the watched image's src changed, ms until it had loaded, ms until the page sent the move to
    the server), all from the stamped event; None when the image did not change within 30 s (a miss)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.evaluate(ARM, list(watch))
    action()
    try:
        page.wait_for_function(DONE, timeout=30_000, polling="raf")
    except PlaywrightTimeout:
        wait_idle(page)
        return None
    src_ms, load_ms, sent_ms = page.evaluate(RESULT)
    wait_idle(page)
    page.wait_for_timeout(150)  # let the last messages settle before the next move
    return src_ms, load_ms, sent_ms


class SliderMover:
    """Key presses on a slider thumb, walking 0 → +2.5 → −2.5 → … so every press gives a new image."""

    def __init__(self, page, thumb: str):
        self.page, self.thumb = page, page.locator(thumb)
        self.position, self.direction = 0, 1
        self.thumb.focus()

    def __call__(self) -> None:
        if abs(self.position + self.direction) > 25:
            self.direction = -self.direction
        self.position += self.direction
        self.thumb.press("ArrowRight" if self.direction > 0 else "ArrowLeft")


class StrokeDrawer:
    """Short strokes, each in a cell of a 5×5 grid over the canvas not inked before, so every stroke changes
    the image (long strokes soon run over ink already there and change nothing); the measure starts at
    the mouse-up."""

    CELLS = 5

    def __init__(self, page):
        self.page, self.count = page, 0
        canvas = page.locator("canvas").last  # fabric.js stacks an upper canvas that takes the events
        canvas.wait_for(state="visible")
        canvas.scroll_into_view_if_needed()
        self.box = canvas.bounding_box()

    def __call__(self) -> None:
        b, i = self.box, self.count
        self.count += 1
        if self.count > self.CELLS ** 2:
            raise RuntimeError(f"at most {self.CELLS ** 2} strokes per canvas")
        row, col = divmod(i * 7 % self.CELLS ** 2, self.CELLS)  # 7 is coprime with 25: every cell once
        w, h = b["width"] / self.CELLS, b["height"] / self.CELLS
        x0, y0 = b["x"] + w * (col + 0.25), b["y"] + h * (row + 0.3)
        mouse = self.page.mouse
        mouse.move(x0, y0)
        mouse.down()
        for t in range(1, 9):  # a short wavy stroke inside the cell
            mouse.move(x0 + w * 0.5 * t / 8, y0 + h * 0.4 * math.sin(t / 2.5 + i))
        mouse.up()


def interleaved(pairs, n: int) -> dict[str, list[tuple[float, float] | None]]:
    """Run n measurements for each (name, page, watch, action), alternating blocks of BLOCK between them."""
    out: dict[str, list] = {name: [] for name, *_ in pairs}
    while any(len(v) < n for v in out.values()):
        for name, page, watch, action in pairs:
            for _ in range(min(BLOCK, n - len(out[name]))):
                out[name].append(measure(page, watch, action))
    return out


def summary(samples: list[tuple[float, float] | None]) -> dict:
    done = [s for s in samples if s is not None]
    if not done:
        return {"n": 0, "misses": len(samples)}
    src = [s for s, _, _ in done]
    load = [t for _, t, _ in done]
    sent = [u for _, _, u in done if u is not None]

    def p95(v):
        return statistics.quantiles(v, n=20, method="inclusive")[18] if len(v) >= 2 else v[0]

    return {"n": len(src), "misses": len(samples) - len(src), "median_ms": statistics.median(src), "p95_ms": p95(src),
            "loaded_median_ms": statistics.median(load), "loaded_p95_ms": p95(load),
            "sent_median_ms": statistics.median(sent) if sent else None}


# -- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=40, help="slider moves per page (at least 30 recommended)")
    parser.add_argument("--strokes", type=int, default=12, help="strokes per canvas (at least 10 recommended)")
    parser.add_argument("--warmup", type=int, default=3, help="moves/strokes per page done first and not counted")
    parser.add_argument("--runs-dir", type=Path, default=Path(tempfile.gettempdir()) / "latent-lab-bench" / "runs",
                        help="runs folder for the app (the bench run is trained here once and reused)")
    parser.add_argument("--train-seconds", type=float, default=8.0, help="training budget of the bench run")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="OMP_NUM_THREADS for both servers (torch's intra-op threads); default: as the app ships")
    args = parser.parse_args()
    if args.strokes + args.warmup > StrokeDrawer.CELLS ** 2:
        parser.error(f"--strokes + --warmup must be at most {StrokeDrawer.CELLS ** 2} (one grid cell per stroke)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        raise SystemExit(f"no Chromium at {CHROMIUM}: install Debian's chromium or set CHROMIUM_PATH")
    from playwright.sync_api import sync_playwright

    args.runs_dir.mkdir(parents=True, exist_ok=True)
    ensure_run(args.runs_dir, args.train_seconds)
    logs = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    # The steady state: no UMAP or matrix-profile compilation (one-offs of ~30 s and 15–100 s of numba when a
    # server starts) competing with the pages for the CPU and the GIL while they are timed.
    env = {"LATENT_LAB_RUNS": str(args.runs_dir), UMAP_WARMUP_ENV: "0", MP_WARMUP_ENV: "0"}
    if args.torch_threads:
        env["OMP_NUM_THREADS"] = str(args.torch_threads)
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    with streamlit_server("app.py", logs / "app.log", env) as app_url, \
            streamlit_server("bench/reference_app.py", logs / "reference.log", env) as ref_url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)

        def context():
            return browser.new_context(viewport={"width": 1280, "height": 900})

        # (a) slider: the explorer against the reference slider
        ref = open_page(context(), ref_url, ".st-key-ref_slider input[type=range]")
        exp = open_page(context(), f"{app_url}/explorer?run={RUN_ID}", ".st-key-explorer_pad img.ll-decoded[src]")
        sliders = [("reference slider", ref, (".st-key-ref_image img", None),
                    SliderMover(ref, ".st-key-ref_slider input[type=range]")),
                   ("explorer slider", exp, (".st-key-explorer_pad img.ll-decoded", None),
                    SliderMover(exp, '.st-key-explorer_pad [data-slider="0"] input[type=range]'))]
        interleaved(sliders, args.warmup)
        for name, samples in interleaved(sliders, args.moves).items():
            results[name] = summary(samples)

        # (b) stroke: the Draw page against the reference canvas
        draw_source = ROOT / "pages" / "draw.py"
        if "canvas(" not in (draw_source.read_text() if draw_source.exists() else ""):
            skipped["draw stroke"] = "pages/draw.py has no canvas yet"
        else:
            try:
                draw = open_page(context(), f"{app_url}/draw?run={RUN_ID}", "canvas")
            except Exception as e:
                skipped["draw stroke"] = f"the Draw page did not open: {str(e).splitlines()[0]}"
            else:
                # the reference shows its result as an image captioned x̂; the Draw page's reconstruction is the
                # first model's x̂ in its results block (ui/charts/draw.py)
                strokes = [("reference stroke", ref, ("", "x̂"), StrokeDrawer(ref)),
                           ("draw stroke", draw, (".st-key-draw_results img.ll-xhat", None), StrokeDrawer(draw))]
                try:
                    interleaved(strokes, args.warmup)
                    for name, samples in interleaved(strokes, args.strokes).items():
                        results[name] = summary(samples)
                except Exception as e:
                    skipped["draw stroke"] = f"failed: {str(e).splitlines()[0]}"
        browser.close()

    for name, row in results.items():
        base = results.get("reference stroke" if "stroke" in name else "reference slider")
        row["ratio"] = row["median_ms"] / base["median_ms"] if base and base["n"] and row["n"] else None
    threads = f"OMP_NUM_THREADS={args.torch_threads}" if args.torch_threads else "default torch threads"
    print(f"\nUI latency, {platform.node()}, {os.cpu_count()} CPUs, {threads}; other processes may share the CPU: "
          "compare ratios")
    print(f"{'measure':<18} {'n':>4} {'misses':>6} {'median ms':>10} {'p95 ms':>8} {'loaded median':>14}"
          f" {'loaded p95':>11} {'sent median':>12} {'ratio':>6}")
    for name, row in results.items():
        if not row["n"]:
            print(f"{name:<18} {0:>4} {row['misses']:>6}  no image change within 30 s")
            continue
        ratio = f"{row['ratio']:>6.2f}" if row["ratio"] is not None else f"{'–':>6}"
        sent = f"{row['sent_median_ms']:>12.1f}" if row["sent_median_ms"] is not None else f"{'–':>12}"
        print(f"{name:<18} {row['n']:>4} {row['misses']:>6} {row['median_ms']:>10.1f} {row['p95_ms']:>8.1f}"
              f" {row['loaded_median_ms']:>14.1f} {row['loaded_p95_ms']:>11.1f} {sent} {ratio}")
    for name, why in skipped.items():
        print(f"{name:<18} skipped: {why}")
    print("ratio: median ÷ the reference's median (slider: reference slider; stroke: reference stroke). "
          "loaded: until the new image has loaded, not only until its src changed. sent: until the page sent the "
          "move to the server (the canvas waits 200 ms after a stroke; the explorer's sliders send after they "
          "have answered).")
    print(json.dumps({"bench": "ui_latency", "results": results, "skipped": skipped, "cpus": os.cpu_count(),
                      "torch_threads": args.torch_threads,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%S")}))


if __name__ == "__main__":
    main()
