"""Many visitors on one server: page-ready and slider times while two trainings run, as N grows.

    python bench/bench_load.py [--sessions 5,10,20] [--seconds 120] [--root OTHER_CHECKOUT]
                               [--trainers jobs|cli] [--py-spy FILE]

One `streamlit run app.py` on 127.0.0.1 over a runs folder holding a finished conv_ae and a PCA run;
two more conv_ae trainings (one thread each) run beside it for the whole benchmark, started the way the
app starts them: by a job manager (`engine.runs.jobs.JobManager`, two slots, so each worker gets one
core's thread, its own session and the worker priority the job manager gives). `--trainers cli` starts
them as plain `python -m engine train` children of this script instead (what this benchmark did before
2026-12-01: they then shared one scheduling group, the load generator's, and were not the app's
workers). N visitor sessions then cycle Home → Train → Draw → Latent explorer → Latent map for
`--seconds`, each staying a few seconds on a page and, on the explorer, moving a latent slider.
`--py-spy FILE` records the server with py-spy during the last N's load (raw, for a flame graph).

The visitors speak Streamlit's own protocol (the websocket at /_stcore/stream, BackMsg/ForwardMsg
protobufs, as the browser's frontend does): each page is a `rerun_script` for that page and is ready
at its `script_finished`; the fragments' timers the server asks for (`auto_rerun`) are honoured as a
browser honours them; a slider move is a rerun carrying the slider's new value. So the server does
the work thirty browsers would make it do, while the load generator itself stays light: its own CPU
seconds are reported beside the wall time, so they are not silently counted against the server.

Reported per N: page-ready p50/p95, slider p50/p95, page time-outs (30 s), exceptions the pages
showed, the server's peak RSS, and the trainings' pace (steps/s) against their pace with no visitors,
measured just before, once the server is idle. One untimed visitor comes first: it starts the server's
UMAP warm-up (~30 s of numba), which the idle wait then waits out before any measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _server import ROOT, streamlit_server  # beside this script
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from websockets.asyncio.client import connect

PAGES = ["", "train", "draw", "explorer", "latent_map"]  # url paths; "" is Home
PAGE_TIMEOUT_S = 30.0
DWELL_S = (2.0, 4.0)  # how long a visitor stays on a page, drawn uniformly
SLIDER_MOVES = 3  # latent slider moves per explorer visit


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Visitor:
    """One browser tab's worth of Streamlit protocol: a websocket, its page, its fragments' timers."""

    def __init__(self, url: str, stats: dict):
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.origin = url
        self.stats = stats
        self.finished = asyncio.Event()
        self.exceptions = 0
        self.sliders: tuple[str, list[int]] | None = None  # the explorer's sliders: widget id, positions (ticks)
        self.timers: dict[str, float] = {}  # fragment id → interval (s)
        self.page = ""

    async def send_rerun(self, ws, page: str, fragment_id: str = "", widgets: list[WidgetState] | None = None):
        state = ClientState(query_string="", page_name=page, fragment_id=fragment_id,
                            widget_states=WidgetStates(widgets=widgets or []))
        await ws.send(BackMsg(rerun_script=state).SerializeToString())

    def read(self, data: bytes) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "script_finished":
            self.finished.set()
        elif kind == "auto_rerun":
            self.timers[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self.timers.pop(fid, None)
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            which = element.WhichOneof("type")
            if which == "exception":
                self.exceptions += 1
                self.stats["exception_texts"].add(f"{self.page or 'home'}: {element.exception.type}: "
                                                  f"{element.exception.message[:200]}")
            elif (which == "bidi_component" and self.page == "explorer"
                  and element.bidi_component.component_name == "latent_lab.latent_sliders"):
                k = len(json.loads(element.bidi_component.json)["labels"])  # ui/latent_sliders.py
                if self.sliders is None or len(self.sliders[1]) != k:
                    self.sliders = (element.bidi_component.id, [0] * k)

    async def run_page(self, ws, page: str) -> float | None:
        """Seconds until the page's script finished, or None after PAGE_TIMEOUT_S."""
        self.page, self.timers = page, {}
        self.finished.clear()
        t0 = time.perf_counter()
        await self.send_rerun(ws, page)
        try:
            await asyncio.wait_for(self.finished.wait(), PAGE_TIMEOUT_S)
        except TimeoutError:
            return None
        return time.perf_counter() - t0

    async def dwell(self, ws, seconds: float) -> None:
        """Stay on the page: rerun each timed fragment when its interval comes round, as the frontend does."""
        end, due = time.monotonic() + seconds, {}
        while (now := time.monotonic()) < end:
            for fid, interval in list(self.timers.items()):
                if now >= due.setdefault(fid, now + interval):
                    due[fid] = now + interval
                    await self.send_rerun(ws, self.page, fragment_id=fid)
            await asyncio.sleep(0.1)

    async def move_sliders(self, ws) -> None:
        for _ in range(SLIDER_MOVES):
            if self.sliders is None:
                return
            # what the sliders' component sends when one of them is moved and let go (ui/latent_sliders.js)
            wid, ticks = self.sliders
            i = random.randrange(len(ticks))
            ticks[i] = random.randint(-25, 25)
            widgets = [WidgetState(id=wid, json_value=json.dumps({"pos": {"ticks": ticks, "active": i}}))]
            self.finished.clear()
            t0 = time.perf_counter()
            await self.send_rerun(ws, self.page, widgets=widgets)
            try:
                await asyncio.wait_for(self.finished.wait(), PAGE_TIMEOUT_S)
                self.stats["slider"].append(time.perf_counter() - t0)
            except TimeoutError:
                self.stats["slider_timeouts"] += 1
            await asyncio.sleep(random.uniform(0.3, 0.8))

    async def visit(self, until: float) -> None:
        async with connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin, max_size=None,
                           open_timeout=PAGE_TIMEOUT_S, ping_interval=None) as ws:
            reader = asyncio.create_task(self.reader(ws))
            try:
                pages = PAGES[random.randrange(len(PAGES)):] + PAGES  # visitors start at different pages
                i = 0
                while time.monotonic() < until:
                    page = pages[i % len(pages)]
                    i += 1
                    took = await self.run_page(ws, page)
                    if took is None:
                        self.stats["page_timeouts"] += 1
                        continue
                    self.stats["page"].append(took)
                    if page == "explorer":
                        await self.move_sliders(ws)
                    await self.dwell(ws, random.uniform(*DWELL_S))
            finally:
                reader.cancel()
                self.stats["exceptions"] += self.exceptions

    async def reader(self, ws) -> None:
        async for data in ws:
            self.read(data)


def result_row(n: int, wall: float, stats: dict, rss: list[float], quiet_pace: float, loaded_pace: float) -> dict:
    """One N's numbers, as this bench and bench_hosted_load.py report them."""
    return {"sessions": n, "seconds": round(wall, 1),
            "page_p50_s": percentile(stats["page"], 0.5), "page_p95_s": percentile(stats["page"], 0.95),
            "pages": len(stats["page"]), "page_timeouts": stats["page_timeouts"],
            "slider_p50_s": percentile(stats["slider"], 0.5), "slider_p95_s": percentile(stats["slider"], 0.95),
            "slider_moves": len(stats["slider"]), "slider_timeouts": stats["slider_timeouts"],
            "exceptions": stats["exceptions"], "exception_texts": sorted(stats["exception_texts"])[:5],
            "server_rss_peak_mb": round(max(rss or [0]), 0),
            "training_pace_quiet": round(quiet_pace, 2), "training_pace_loaded": round(loaded_pace, 2),
            "training_pace_kept": round(loaded_pace / quiet_pace, 3) if quiet_pace else None}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server's process group), in MB."""
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pid and int(p.name) != pid:  # fields[2]: the process group
                continue
            for line in (p / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def server_pid(port_url: str) -> int | None:
    port = port_url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int | None, share: float = 0.1, window_s: float = 2.0, limit_s: float = 120.0) -> float:
    """Wait until the server uses under `share` of a core over `window_s` (its start-up work is over); returns the
    seconds waited. The quiet pace is then measured beside an idle server (2026-12-02, before this wait: 101 and
    178 steps/s in two runs of the same checkout)."""
    t0 = time.monotonic()
    while pid and time.monotonic() - t0 < limit_s:
        try:
            before = cpu_seconds(pid)
            time.sleep(window_s)
            if (cpu_seconds(pid) - before) / window_s < share:
                break
        except (OSError, IndexError, ValueError):
            break
    return time.monotonic() - t0


def new_stats() -> dict:
    return {"page": [], "slider": [], "page_timeouts": 0, "slider_timeouts": 0, "exceptions": 0, "errors": [],
            "exception_texts": set()}


def training_steps(run_dirs: list[Path]) -> list[int]:
    steps = []
    for d in run_dirs:
        try:
            steps.append(int(json.loads((d / "status.json").read_text()).get("step", 0)))
        except (OSError, ValueError):
            steps.append(0)
    return steps


def pace(run_dirs: list[Path], seconds: float) -> float:
    before = training_steps(run_dirs)
    time.sleep(seconds)
    return sum(b - a for a, b in zip(before, training_steps(run_dirs))) / seconds


async def load(url: str, n: int, seconds: float, stats: dict) -> None:
    until = time.monotonic() + seconds
    visitors = [Visitor(url, stats) for _ in range(n)]

    async def one(v: Visitor, delay: float):
        await asyncio.sleep(delay)  # arrivals spread over the first seconds, as a room opens a link
        try:
            await v.visit(until)
        except (OSError, TimeoutError) as e:
            stats["errors"].append(f"{type(e).__name__}: {e}")

    await asyncio.gather(*(one(v, i * 3.0 / n) for i, v in enumerate(visitors)))


async def watch_rss(pid: int | None, until: float, rss: list[float]) -> None:
    while time.monotonic() < until:
        rss.append(rss_mb(pid) if pid else 0.0)
        await asyncio.sleep(2.0)


async def load_and_watch(url: str, n: int, seconds: float, stats: dict, pid: int | None, rss: list[float]) -> None:
    await asyncio.gather(load(url, n, seconds, stats), watch_rss(pid, time.monotonic() + seconds, rss))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="5,10,20", help="comma-separated N (default 5,10,20)")
    ap.add_argument("--seconds", type=float, default=120.0, help="load per N (default 120)")
    ap.add_argument("--root", type=Path, help="another checkout to serve (default: this one)")
    ap.add_argument("--trainers", choices=("jobs", "cli"), default="jobs",
                    help="start the two trainings with a job manager, as the app does (default), or the CLI")
    ap.add_argument("--py-spy", type=Path, help="record the server with py-spy during the last N's load")
    args = ap.parse_args()
    root = (args.root or ROOT).resolve()
    env = {"PYTHONPATH": str(root)} if args.root else {}
    py = [sys.executable, "-m", "engine"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        penv = {**os.environ, **env, "LATENT_LAB_RUNS": str(runs)}
        for cmd in (["train", "conv_ae", "--steps", "300", "--id", "starter", "--quiet"],
                    ["train", "pca", "--latent-dim", "32", "--id", "pca", "--quiet"]):
            subprocess.run(py + cmd, cwd=root, env=penv, check=True, stdout=subprocess.DEVNULL)
        if args.trainers == "cli":
            trainers = [subprocess.Popen(py + ["train", "conv_ae", "--steps", "10000000", "--set", "threads=1",
                                               "--id", f"busy-{i}", "--quiet"], cwd=root, env=penv,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
        else:  # the served checkout's own job manager, in a child process that holds it (as the server holds one)
            holder = ("import sys, time\n"
                      "from engine.runs.jobs import JobManager\n"
                      "jm = JobManager(sys.argv[1], max_concurrent=2)\n"
                      "for i in range(2):\n"
                      "    jm.submit('conv_ae', train={'steps': 10000000}, run_id=f'busy-{i}')\n"
                      "print('started', flush=True)\n"
                      "time.sleep(1e9)\n")
            trainers = [subprocess.Popen([sys.executable, "-c", holder, str(runs)], cwd=root, env=penv,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)]
            trainers[0].stdout.readline()
        busy = [runs / f"busy-{i}" for i in range(2)]
        try:
            with streamlit_server("app.py", Path(tmp) / "server.log", env={**env, "LATENT_LAB_RUNS": str(runs)},
                                  root=root) as url:
                pid = server_pid(url)
                time.sleep(10)  # the trainings past their start-up
                # one visitor first, untimed: the first session starts the server's UMAP warm-up (~30 s of numba),
                # which wait_until_idle below then waits out, so it does not fall inside a measured window
                asyncio.run(load(url, 1, 8.0, new_stats()))
                sessions = [int(s) for s in args.sessions.split(",")]
                for n in sessions:
                    waited = wait_until_idle(pid)
                    quiet_pace = pace(busy, 10.0)
                    spy = None
                    if args.py_spy and n == sessions[-1] and pid:
                        spy_cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "-d",
                                   str(int(args.seconds)), "-r", "20", "-f", "raw", "-o", str(args.py_spy)]
                        spy = subprocess.Popen(spy_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    stats = new_stats()
                    rss, steps0, cpu0, t0 = [], training_steps(busy), time.process_time(), time.monotonic()
                    asyncio.run(load_and_watch(url, n, args.seconds, stats, pid, rss))
                    wall = time.monotonic() - t0
                    if spy:
                        spy.wait(timeout=60)
                    loaded_pace = sum(b - a for a, b in zip(steps0, training_steps(busy))) / wall
                    row = {**result_row(n, wall, stats, rss, quiet_pace, loaded_pace),
                           "connection_errors": stats["errors"][:3], "server_idle_wait_s": round(waited, 1),
                           "generator_cpu_s": round(time.process_time() - cpu0, 1)}
                    results.append(row)
                    print(f"N={n}: page p50 {row['page_p50_s']:.2f} s p95 {row['page_p95_s']:.2f} s "
                          f"({row['pages']} pages, {row['page_timeouts']} time-outs); slider p50 "
                          f"{row['slider_p50_s'] or 0:.2f} p95 {row['slider_p95_s'] or 0:.2f} s; "
                          f"{row['exceptions']} exceptions; RSS {row['server_rss_peak_mb']:.0f} MB; trainings kept "
                          f"{row['training_pace_kept']:.0%} of their pace; generator CPU {row['generator_cpu_s']} s "
                          f"of {row['seconds']} s", file=sys.stderr, flush=True)
        finally:
            if args.trainers == "jobs":  # the workers run in sessions of their own: stop them by their pids
                for d in busy:
                    try:
                        os.kill(int(json.loads((d / "status.json").read_text())["pid"]), signal.SIGKILL)
                    except (OSError, ValueError, KeyError, TypeError):
                        pass
            for p in trainers:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if args.trainers == "jobs" else p.kill()
                except OSError:
                    pass
                p.wait()
    print(json.dumps({"bench": "load", "root": str(root), "cpus": os.cpu_count(), "machine": platform.machine(),
                      "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
