"""Issue 15's bar, measured (a benchmark, not a test): every model trains through train_run into a run folder, as
the CLI and the pages do, on a time budget, so the numbers say what a visitor gets on this machine.

1. lstm_ae on bundled classification sets: test MSE ÷ PCA's at the same latent size (goal ≤ 0.5), and the
   latent 1-NN / 5-NN accuracy against the raw series' 1-NN (Euclidean) accuracy.
2. Sequential MNIST: lstm_ae (28 rows of 28 pixels) against conv_ae (the image model) on the same mnist-5k digits,
   equal latent size and equal training time; both MSEs are per pixel, in [0, 1] units.
3. The bundled anomaly series: the autoencoder's window errors against the matrix profile (stumpy), same windows,
   both scored as AUROC over time steps and by the UCR top-1 window.

    .venv/bin/python bench/bench_sequences.py                # about 10 minutes on 2 busy cores
    .venv/bin/python bench/bench_sequences.py --seconds 60 --seeds 3 --parts classification
                                                             # each training's budget (default 60); the
                                                             # classification sets' ratios over 3 seeds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.lab import ts_anomaly  # noqa: E402
from engine.models import data_settings  # noqa: E402
from engine.runs import Run, make_run_config  # noqa: E402
from engine.train import train_run  # noqa: E402


def train(runs_dir: Path, model: str, dataset: str, latent: int, seconds: float, seed: int = 0,
          **options) -> tuple[Run, dict]:
    model_config = {**data_settings(model, dataset), "latent_dim": latent, **options.pop("model_options", {})}
    train_cfg = {"seconds": seconds, "threads": 1, "schedule": "one_cycle", "seed": seed, **options}
    run = Run.create(runs_dir, make_run_config(model, dataset, model_config, train_cfg))
    t = time.perf_counter()
    final = train_run(run)
    final["wall_s"] = round(time.perf_counter() - t, 1)
    final["steps"] = run.status().step
    return run, final


def rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def mnist_comparison(runs: Path, seconds: float, out: dict) -> None:
    _, lstm = train(runs, "lstm_ae", "seq-mnist", 16, seconds, model_options={"hidden": 128}, batch_size=64)
    _, conv = train(runs, "conv_ae", "mnist-5k", 16, seconds, batch_size=64, lr=2e-3)
    keys = ("mse", "pca_mse", "mse_vs_pca", "knn_accuracy", "steps")
    out["seq-mnist vs mnist-5k, latent 16, equal time"] = {
        "lstm_ae": rounded({k: lstm[k] for k in keys}), "conv_ae": rounded({k: conv[k] for k in keys}),
        "lstm_mse_over_conv_mse": round(lstm["mse"] / conv["mse"], 3)}
    print(json.dumps(out["seq-mnist vs mnist-5k, latent 16, equal time"]), file=sys.stderr, flush=True)


def anomalies(runs: Path, series: str, seconds: float, out: dict) -> None:
    run, final = train(runs, "lstm_ae", series, 8, seconds)
    model, _ = run.load_model()
    t = time.perf_counter()
    result = ts_anomaly.analyse(model.eval(), series)
    row = {d: {"auroc_over_steps": round(result[d]["auroc"], 4), "ucr_top1_hit": result[d]["hit"],
               "top_window": result[d]["top_window"]} for d in ts_anomaly.DETECTORS}
    row.update(labelled=result["regions"], scoring_s=round(time.perf_counter() - t, 1), ae_steps=final["steps"])
    out[f"anomalies in {series}"] = row
    print(json.dumps({series: row}), file=sys.stderr, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="each training's time budget (default 60)")
    p.add_argument("--sets", default="gunpoint:2,japanese-vowels:1,italy-power:1",
                   help="classification sets as NAME:LATENT, comma-separated (default gunpoint:2,"
                        "japanese-vowels:1,italy-power:1: the code size where a 2-D or 1-D code is what PCA "
                        "must beat)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per classification set (median reported)")
    p.add_argument("--parts", default="classification,mnist,anomalies",
                   help="which measurements, comma-separated (default all three)")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    out: dict = {"seconds_per_training": args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        if "classification" in parts:
            for entry in args.sets.split(","):
                name, _, latent = entry.partition(":")
                finals = [train(runs, "lstm_ae", name, int(latent or 2), args.seconds, seed=s)[1]
                          for s in range(args.seeds)]
                for f in finals:
                    print(json.dumps({name: rounded(f)}), file=sys.stderr, flush=True)
                ratios = sorted(f["mse_vs_pca"] for f in finals)
                out[f"lstm_ae on {name} (latent {latent or 2})"] = {
                    "mse_vs_pca_median": round(statistics.median(ratios), 3),
                    "mse_vs_pca_range": [round(ratios[0], 3), round(ratios[-1], 3)],
                    "runs": [rounded(f) for f in finals]}
        if "mnist" in parts:
            mnist_comparison(runs, args.seconds, out)
        if "anomalies" in parts:
            for series in ts_anomaly.series_datasets():
                anomalies(runs, series, args.seconds, out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
