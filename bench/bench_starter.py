"""Time to a useful model: conv_ae (latent 32) on mnist-5k after a wall-clock budget, against PCA(32).

    python bench/bench_starter.py [--budgets 5,15] [--seeds 1,2,3] [--threads 1] [--set key=value …]

Each (budget, seed) trains a fresh run with the model's own training defaults (conv_ae's train_defaults;
--set overrides them, e.g. --set lr=0.002 --set schedule=constant for what a run got before) under a
`seconds` budget, and reads its test MSE. PCA with 32 components is fitted on the same train split in the
same process, and each run's test MSE ÷ PCA's is printed: the median and range over the seeds per budget
(issue 11's bar: ≤ 0.5 at 5 s and at 15 s). Steps reached are printed too: a time budget trains less on
a busy machine, so the steps say how busy it was.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from engine.data import load_dataset
from engine.device import set_cpu_threads
from engine.eval.metrics import pca_mse
from engine.runs import Run, make_run_config
from engine.train import train_run


def parse_set(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def one(seconds: float, seed: int, threads: int, overrides: dict, latent_dim: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        train = {"seconds": seconds, "seed": seed, "threads": threads, **overrides}
        run = Run.create(d, make_run_config("conv_ae", "mnist-5k", {"latent_dim": latent_dim}, train))
        metrics = train_run(run)
        status = run.status()
        return {"mse": metrics["mse"], "steps": status.step, "train": run.config["train"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", default="5,15", help="seconds, comma-separated")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (0: every core)")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--set", action="append", default=[], help="a training setting over the model's defaults")
    args = p.parse_args()
    set_cpu_threads(args.threads or None)
    overrides = parse_set(args.set)
    dataset = load_dataset("mnist-5k")
    pca = pca_mse(dataset, args.latent_dim)
    out = {"benchmark": "starter_time_to_quality", "model": "conv_ae", "latent_dim": args.latent_dim,
           "dataset": "mnist-5k", "threads": args.threads, "cpus": len(os.sched_getaffinity(0)),
           "pca_mse": round(pca, 5), "overrides": overrides, "budgets": {}}
    for budget in (float(b) for b in args.budgets.split(",")):
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            r = one(budget, seed, args.threads, overrides, args.latent_dim)
            rows.append(r)
            print(f"{budget:g} s, seed {seed}: test MSE {r['mse']:.5f}, ÷ PCA {r['mse'] / pca:.3f}, "
                  f"{r['steps']} steps", file=sys.stderr)
        ratios = sorted(r["mse"] / pca for r in rows)
        out["budgets"][f"{budget:g}"] = {
            "ratio_median": round(statistics.median(ratios), 3), "ratio_range": [round(ratios[0], 3),
                                                                                  round(ratios[-1], 3)],
            "steps": [r["steps"] for r in rows]}
        out["train"] = {k: v for k, v in rows[0]["train"].items() if k in ("batch_size", "lr", "schedule")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
