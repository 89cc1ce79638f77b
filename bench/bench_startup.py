"""Start-up: how much of `python -m engine train …` is not training, measured in one run.

    python bench/bench_startup.py [--steps 100] [--repeats 5] [--root OTHER_CHECKOUT]

Runs the CLI as a user (or a job's worker) does, a fresh process each time, and splits its wall time:

    before    process start → the run marked running (imports, argument parsing, the run folder)
    training  the loop's own clock (the final metrics line's `elapsed`)
    after     the rest: data, model and optimizer set-up, the final evaluation, process exit

`overhead` = wall − training, the number issue 11 asks about. With --root, the same command runs in
another checkout too (e.g. the commit before a change), alternating with this one, with the same Python.
Medians and ranges over the repeats; the first repeat of each checkout may be the one that fills a
cache (the PCA baseline), so the range shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(root: Path, steps: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "engine", "train", "conv_ae", "--latent-dim", "32", "--steps", str(steps),
               "--quiet", "--runs-dir", runs, "--set", f"threads={threads}"]
        env = {**os.environ, "PYTHONPATH": str(root)}
        start = time.time()
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        run = Path(result["path"])
        status = json.loads((run / "status.json").read_text())
        lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]
        training = lines[-1]["elapsed"]
        before = status["started_at"] - start
        return {"wall": wall, "training": training, "before": before, "after": wall - before - training,
                "overhead": wall - training}


def summary(rows: list[dict]) -> dict:
    out = {}
    for key in ("wall", "training", "before", "after", "overhead"):
        vals = sorted(r[key] for r in rows)
        out[key] = {"median": round(statistics.median(vals), 2), "range": [round(vals[0], 2), round(vals[-1], 2)]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", type=Path, help="another checkout to measure beside this one")
    args = p.parse_args()
    roots = {"this": ROOT, **({"other": args.root.resolve()} if args.root else {})}
    rows: dict[str, list[dict]] = {name: [] for name in roots}
    for i in range(args.repeats):
        order = list(roots) if i % 2 == 0 else list(roots)[::-1]
        for name in order:
            rows[name].append(one(roots[name], args.steps, args.threads))
            r = rows[name][-1]
            print(f"repeat {i + 1} {name}: wall {r['wall']:.2f} s, training {r['training']:.2f}, before "
                  f"{r['before']:.2f}, after {r['after']:.2f}", file=sys.stderr)
    out = {"benchmark": "cli_startup", "command": f"python -m engine train conv_ae --latent-dim 32 --steps "
                                                  f"{args.steps} --quiet", "repeats": args.repeats,
           "threads": args.threads, "cpus": len(os.sched_getaffinity(0))}
    for name, root in roots.items():
        out[name] = {"root": str(root), **summary(rows[name])}
    if args.root:
        ratios = sorted(a["overhead"] / b["overhead"] for a, b in zip(rows["this"], rows["other"]))
        out["overhead_ratio_this_over_other"] = {"median": round(statistics.median(ratios), 3),
                                                 "range": [round(ratios[0], 3), round(ratios[-1], 3)]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
