"""Browser-test fixtures: a real `streamlit run` server and Debian's Chromium driven by Playwright.

Chromium comes from CHROMIUM_PATH or /usr/bin/chromium (`make test` installs Debian's package);
Playwright never downloads a browser here. Without one, these tests are skipped, except under
CI, where a missing browser is a set-up bug and fails them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_S = 60
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI; `make test` installs Chromium)")
    pytest.skip(reason)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def _stop_workers(runs_dir: Path) -> None:
    """Workers run in sessions of their own, so stopping the server's group leaves them: stop them too."""
    from engine.runs import list_runs, process_alive

    for run in list_runs(runs_dir):
        status = run.status()
        if status.state == "running" and process_alive(status.pid, status.pid_start):
            try:
                os.kill(status.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's whole process group, SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server(NamedTuple):
    url: str
    runs_dir: Path
    log: Path


# Runs the lab_server starts with, trained once per session (~30 s on 2 cores): id → (model, model
# config, training settings). Pages find them by id (`?run=ID`).
LAB_RUNS = {
    "conv-ae": ("conv_ae", {"latent_dim": 32}, {"epochs": 4, "checkpoint_every_s": 0.5}),
    "dense-ae": ("ae", {"latent_dim": 32}, {"epochs": 4}),
    "denoising-ae": ("denoising_ae", {"latent_dim": 32}, {"epochs": 4, "lr": 3e-3}),
    "vae-2d": ("vae", {"latent_dim": 2}, {"epochs": 4}),
    "linear-ae": ("linear_ae", {"latent_dim": 16}, {"epochs": 4, "lr": 1e-2}),
    "pca-16": ("pca", {"latent_dim": 16}, {}),
    "anomaly-0": ("conv_ae", {"latent_dim": 16}, {"epochs": 8, "classes": [0]}),
}


def new_runs(server) -> list:
    """Runs in a server's folder besides the lab's: those a test started from a page."""
    from engine.runs import list_runs

    return [r for r in list_runs(server.runs_dir) if r.id not in LAB_RUNS]


def started_run(page, server, timeout_s: float = 60, before: set[str] = frozenset()):
    """The one run a page has just submitted (besides the runs in `before`), once its folder exists (the job
    manager writes it)."""
    deadline = time.monotonic() + timeout_s

    def fresh():
        return [r for r in new_runs(server) if r.id not in before]

    while not fresh() and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    (run,) = fresh()
    return run


def _start_server(base: Path, runs_dir: Path, env: dict | None = None) -> tuple[subprocess.Popen, str, Path]:
    log_path = base / "streamlit.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LATENT_LAB_RUNS": str(runs_dir), "PYTHONUNBUFFERED": "1", "LATENT_LAB_UMAP_WARMUP": "1",
           **(env or {})}
    env.pop("LATENT_LAB_DEMO_SCALE", None)  # the demos as a visitor gets them: issue 10's bars are about those
    # As `make run` starts it: the file watcher on (.streamlit/config.toml says what it leaves out)
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, url, log_path


def _serve(base: Path, runs_dir: Path, env: dict | None = None):
    """A server on `runs_dir` (with `env` on top of this process's environment, e.g. hosted mode) until the end."""
    proc, url, log_path = _start_server(base, runs_dir, env)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before it was healthy:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit was not healthy after {STARTUP_TIMEOUT_S} s:\n{_tail(log_path)}")
            time.sleep(0.3)
        yield Server(url, runs_dir, log_path)
    finally:
        _stop_server(proc)
        _stop_workers(runs_dir)
    # the whole suite's use of this server left its log clean of the file watcher's overflows
    overflows = [line for line in log_path.read_text(errors="replace").splitlines() if "overflow" in line.lower()]
    assert not overflows, f"{len(overflows)} file-watcher overflow lines in {log_path}, e.g. {overflows[0]}"


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Server:
    """`streamlit run app.py` on a free port, with an empty runs folder."""
    base = tmp_path_factory.mktemp("browser")
    runs_dir = base / "runs"
    runs_dir.mkdir()
    yield from _serve(base, runs_dir)


@pytest.fixture(scope="session")
def lab_runs(tmp_path_factory) -> Path:
    """A runs folder holding the finished LAB_RUNS (trained in this process, one thread)."""
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    runs_dir = tmp_path_factory.mktemp("lab") / "runs"
    runs_dir.mkdir()
    for run_id, (model, model_config, train) in LAB_RUNS.items():
        run = Run.create(runs_dir, make_run_config(model, "mnist-5k", model_config, train), run_id=run_id)
        train_run(run)
        assert run.status().state == "done", run.status()
    return runs_dir


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, lab_runs) -> Server:
    """A second server whose runs folder starts with the finished LAB_RUNS, for the pages that need models."""
    yield from _serve(tmp_path_factory.mktemp("lab-server"), lab_runs)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (CHROMIUM_PATH or Debian's /usr/bin/chromium) under Playwright."""
    path = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        _unavailable(f"no Chromium at {path}: install Debian's chromium (make test does) or set CHROMIUM_PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -r requirements-dev.txt")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item, so a page fixture can tell that its test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _save_failure(page, name: str) -> None:
    """test-results/NAME.png and NAME.html: what the page showed when its test failed."""
    out = ROOT / "test-results"
    out.mkdir(exist_ok=True)
    try:
        page.screenshot(path=str(out / f"{name}.png"), full_page=True, timeout=10_000)
        (out / f"{name}.html").write_text(page.content())
    except Exception as e:
        print(f"could not save the failed page {name}: {e}")
    else:
        print(f"the failed page: {out / name}.png and .html")


# shown(selector): the matching elements a user sees. Streamlit keeps a keyed element that moved during a run
# mounted but hidden (display: none, data-retained) beside its new copy, so querySelectorAll can find both.
SHOWN_JS = "window.shown = sel => [...document.querySelectorAll(sel)].filter(e => e.getClientRects().length > 0);"


def outside(url: str) -> bool:
    """A request to anywhere but the app's own server (127.0.0.1) or the page itself (data:, blob:)."""
    scheme, _, rest = url.partition(":")
    if scheme in ("data", "blob", "about"):
        return False
    host = urllib.parse.urlsplit(url).hostname
    return host not in ("127.0.0.1", "localhost")


def _new_page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(SHOWN_JS)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.console_errors = []
    page.outside_requests = []
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    context.on("request", lambda r: page.outside_requests.append(r.url) if outside(r.url) else None)
    try:
        yield page
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            _save_failure(page, request.node.name)
    finally:
        context.close()
    # nothing a page loads may come from another host: offline it fails, and on a hosted link it tells a third
    # party who is looking at what
    assert not page.outside_requests, f"requests to other hosts: {sorted(set(page.outside_requests))[:5]}"


@pytest.fixture
def page(browser, app_server, request):
    """A fresh browser page (1280×900) on app_server; console errors are collected in page.console_errors.
    When its test fails, the page is saved to test-results/ (a screenshot and the DOM)."""
    yield from _new_page(browser, request)


@pytest.fixture
def lab_page(browser, lab_server, request):
    """A fresh browser page (1280×900) for lab_server (the server with trained LAB_RUNS)."""
    yield from _new_page(browser, request)
