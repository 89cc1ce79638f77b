"""The lecture's own dense autoencoder, in Latent Lab and in the course's Keras code, side by side in one run.

    python bench/bench_lecture.py [--seeds 5] [--epochs 10] [--keras-python PATH]

The course trains 784 → Dense(64, relu) → Dense(784, sigmoid) with `compile(optimizer='adam',
loss='mse')` and `fit(epochs=10, batch_size=256, shuffle=True)`. Latent Lab's version is the
registered `ae` with hidden=(), latent_dim 64, latent_activation relu, loss mse, the same epochs,
batch and learning rate. Both train on mnist-5k's train split and are scored by their mean squared
error on its test split (the same 1,000 images); each seed is one training on each side. Reported:
the median and the range of each over the seeds, and Latent Lab ÷ Keras (below 1: Latent Lab's
model is better).

Keras is not a dependency of Latent Lab. Give an interpreter that has it (Keras 3 runs on the torch
backend, so no TensorFlow is needed), e.g.

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install keras==3.15.1 torch==2.13.0
    python bench/bench_lecture.py --keras-python /tmp/keras/bin/python

Without one, only Latent Lab's side is measured. `--variant torch` also trains Latent Lab's model
with PyTorch's own layer initialisation (what Latent Lab did before), `--variant glorot` with
Keras's (Glorot-uniform weights, zero biases) but no data-mean output bias: what each change is worth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from engine.data import load_dataset
from engine.runs import Run, make_run_config
from engine.train import train_run

EPOCHS, BATCH = 10, 256
LECTURE_AE = {"hidden": [], "latent_dim": 64, "latent_activation": "relu", "loss": "mse"}

# the course's code, run by the other interpreter: data from the npz this script writes
KERAS_SCRIPT = """
import json, os, sys
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np, keras, torch
torch.set_num_threads(int(sys.argv[4]))
data = np.load(sys.argv[1])
x_train, x_test = data["x_train"], data["x_test"]
for seed in range(int(sys.argv[2])):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(784,))
    code = keras.layers.Dense(64, activation="relu")(inp)
    out = keras.layers.Dense(784, activation="sigmoid")(code)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x_train, x_train, epochs=int(sys.argv[3]), batch_size=256, shuffle=True, verbose=0)
    pred = model.predict(x_test, verbose=0)
    print(json.dumps({"seed": seed, "test_mse": float(((pred - x_test) ** 2).mean())}), flush=True)
"""


def latent_lab(seed: int, epochs: int, threads: int, extra: dict | None = None) -> float:
    config = make_run_config("ae", "mnist-5k", {**LECTURE_AE, **(extra or {})},
                             {"epochs": epochs, "batch_size": BATCH, "lr": 1e-3, "seed": seed, "threads": threads})
    with tempfile.TemporaryDirectory() as runs:
        return float(train_run(Run.create(runs, config))["mse"])


def keras(python: str, seeds: int, epochs: int, threads: int) -> list[float]:
    data = load_dataset("mnist-5k")
    with tempfile.TemporaryDirectory() as tmp:
        npz, script = Path(tmp) / "mnist5k.npz", Path(tmp) / "course.py"
        np.savez(npz, x_train=data.x_train.flatten(1).numpy(), x_test=data.x_test.flatten(1).numpy())
        script.write_text(KERAS_SCRIPT)
        out = subprocess.run([python, str(script), str(npz), str(seeds), str(epochs), str(threads)],
                             capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""})
    return [json.loads(line)["test_mse"] for line in out.stdout.splitlines() if line.startswith("{")]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides (default 1)")
    ap.add_argument("--keras-python", help="an interpreter with keras (3.x) and torch installed")
    ap.add_argument("--variant", choices=["torch", "glorot"], action="append", default=[],
                    help="also train Latent Lab's model with this other init (repeatable)")
    args = ap.parse_args()

    result = {"bench": "lecture", "epochs": args.epochs, "batch_size": BATCH, "seeds": args.seeds,
              "threads": args.threads, "cpus": os.cpu_count(), "machine": platform.machine()}
    ours = [latent_lab(seed, args.epochs, args.threads) for seed in range(args.seeds)]
    result["latent_lab"] = summary(ours)
    print(f"Latent Lab: test MSE median {result['latent_lab']['median']:.5f} "
          f"({min(ours):.5f}–{max(ours):.5f}) over {args.seeds} seeds")
    for init in args.variant:
        other = [latent_lab(seed, args.epochs, args.threads, {"init": init}) for seed in range(args.seeds)]
        result[f"latent_lab_init_{init}"] = summary(other)
        print(f"Latent Lab with init={init}: median {statistics.median(other):.5f} ({min(other):.5f}–{max(other):.5f})")
    if args.keras_python:
        theirs = keras(args.keras_python, args.seeds, args.epochs, args.threads)
        result["keras"] = summary(theirs)
        result["ratio"] = result["latent_lab"]["median"] / result["keras"]["median"]
        print(f"the course's Keras code: median {result['keras']['median']:.5f} ({min(theirs):.5f}–"
              f"{max(theirs):.5f}); Latent Lab ÷ Keras = {result['ratio']:.3f}")
    else:
        print("no --keras-python given: the course's side was not measured", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
