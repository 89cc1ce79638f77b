"""Eight short jobs through the local backend and through the ray backend, on this machine, in one run.

    python bench/bench_backends.py [--jobs 8] [--seconds 3] [--repeats 2] [--cpus 1 --nodes 2]

The ray side is a real cluster started here (tests/raycluster.py: a head and --nodes − 1 more nodes of --cpus
CPUs each, in a network namespace of this process, which needs root); the local side runs as many workers at
once as the cluster holds jobs, so both have the same concurrency. Each job is `ae` (latent 4) on mnist-5k with
a --seconds time budget. Per backend it prints, over all jobs of all repeats:

    latency   submission → the job's first training step seen in status.json (median, min–max)
    wall      the first submission → the last job done, per repeat (median, min–max)
    per_job   a job's wall time from its start to its end (median): what the workshop estimate in the README uses

and the ratios ray ÷ local. Needs requirements-ray.txt. Prints JSON lines; no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.runs.jobs import JobManager  # noqa: E402
from tests.raycluster import RayCluster, enter_network_namespace, only_loopback  # noqa: E402


def one_batch(backend: str, jobs: int, seconds: float, slots: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        jm = JobManager(Path(tmp) / "runs", max_concurrent=slots, poll_interval=0.05, backend=backend)
        try:
            t0 = time.time()
            submitted, runs = {}, []
            for _ in range(jobs):
                run = jm.submit("ae", "mnist-5k", {"latent_dim": 4, "hidden": [64]},
                                {"seconds": seconds, "log_every_s": 0.25, "eval_batch": 200})
                submitted[run.id] = time.time()
                runs.append(run)
            first_step: dict[str, float] = {}
            while True:
                states = {}
                for run in runs:
                    st = run.status()
                    states[run.id] = st.state
                    if run.id not in first_step and st.step > 0:
                        first_step[run.id] = time.time()
                if all(s not in ("queued", "running") for s in states.values()):
                    break
                time.sleep(0.05)
            t1 = time.time()
            bad = {rid: s for rid, s in states.items() if s != "done"}
            if bad:
                raise RuntimeError(f"{backend}: jobs did not finish: {bad}")
            latency = [first_step[r.id] - submitted[r.id] for r in runs if r.id in first_step]
            per_job = [r.status().finished_at - r.status().started_at for r in runs]
            return {"wall": t1 - t0, "latency": latency, "per_job": per_job}
        finally:
            jm.shutdown(cancel=True)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0, help="each job's training budget")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cpus", type=int, default=1, help="CPUs of each Ray node")
    p.add_argument("--nodes", type=int, default=2, help="Ray nodes (the head included)")
    args = p.parse_args()
    if not only_loopback():
        why = enter_network_namespace()
        if why:
            sys.exit(f"bench_backends: {why}; Ray listens on every interface, so this bench runs in a private network")
    t = time.time()
    cluster = RayCluster(cpus=args.cpus, workers=args.nodes - 1).start()
    print(json.dumps({"cluster_start_s": round(time.time() - t, 1), "address": cluster.address}), flush=True)
    os.environ["RAY_ADDRESS"] = cluster.address
    try:
        slots = JobManager(tempfile.mkdtemp(), poll_interval=None, backend="ray").slots()
        results = {"local": [], "ray": []}
        for _ in range(args.repeats):  # alternated, so a busier minute falls on both
            for backend in ("local", "ray"):
                results[backend].append(one_batch(backend, args.jobs, args.seconds, slots))
        rows = {}
        for backend, batches in results.items():
            rows[backend] = {
                "backend": backend, "jobs": args.jobs, "at_once": slots, "seconds_budget": args.seconds,
                "latency_s": spread([v for b in batches for v in b["latency"]]),
                "wall_s": spread([b["wall"] for b in batches]),
                "per_job_s": spread([v for b in batches for v in b["per_job"]])}
            print(json.dumps(rows[backend]), flush=True)
        print(json.dumps({
            "ratio_latency_ray_over_local": round(rows["ray"]["latency_s"]["median"]
                                                  / rows["local"]["latency_s"]["median"], 2),
            "ratio_wall_ray_over_local": round(rows["ray"]["wall_s"]["median"] / rows["local"]["wall_s"]["median"],
                                               2)}), flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
