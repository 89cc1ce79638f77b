"""Training speed: the engine's loop against a plain PyTorch DataLoader loop, measured in one run.

    python bench/bench_train.py [--model conv_ae] [--epochs 3] [--repeats 3] [--device auto]

Both train the same registered model (same config, seed, batch size, Adam) on mnist-5k's train
split. The reference is the textbook loop: DataLoader(TensorDataset, shuffle=True), .to(device)
per batch, forward, MSE, backward, step. The engine is `train_run` on a real run directory, with
its logging, snapshots and checkpoints on. Wall time per epoch is compared as engine ÷ reference
(below 1: the engine is faster). Runs alternate, and medians are reported, to damp machine noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from engine.data import load_dataset
from engine.device import resolve_device, set_cpu_threads
from engine.models import build_model
from engine.runs import Run, make_run_config
from engine.train import train_run


def reference_epoch_seconds(model_name, model_config, dataset, device, batch_size, epochs, seed) -> float:
    torch.manual_seed(seed)
    model = build_model(model_name, model_config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(dataset.x_train, dataset.y_train), batch_size=batch_size, shuffle=True)

    def one_epoch():
        for xb, _ in loader:
            xb = xb.to(device, non_blocking=True)
            loss = F.mse_loss(model(xb), xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch_seconds(one_epoch, device, epochs)


def epoch_seconds(one_epoch, device: torch.device, epochs: int) -> float:
    """Seconds per call of one_epoch(), after one warm-up call (allocator, kernels); CUDA synchronised."""
    one_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(epochs):
        one_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / epochs


def engine_epoch_seconds(model_name, model_config, dataset_name, device, batch_size, epochs, seed, threads) -> float:
    with tempfile.TemporaryDirectory() as d:
        config = make_run_config(model_name, dataset_name, model_config,
                                 {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                                  "device": str(device), "threads": threads})
        run = Run.create(d, config)
        train_run(run)
        last = [r for r in run.metrics() if "train/loss" in r][-1]  # the loop's clock, before final eval
        return last["elapsed"] / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="conv_ae")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, help="default: the model's own (conv_ae: 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both loops (0: all cores)")
    args = p.parse_args()

    from engine.models import get_model_class
    from engine.runs import TrainConfig

    args.batch_size = args.batch_size or get_model_class(args.model).train_defaults.get(
        "batch_size", TrainConfig.batch_size)
    device = resolve_device(args.device)
    threads = set_cpu_threads(args.threads or None)
    dataset = load_dataset(args.data)
    model_config = {"latent_dim": args.latent_dim}
    ref, eng = [], []
    for i in range(args.repeats):
        ref.append(reference_epoch_seconds(args.model, model_config, dataset, device, args.batch_size,
                                           args.epochs, seed=i))
        eng.append(engine_epoch_seconds(args.model, model_config, args.data, device, args.batch_size,
                                        args.epochs, seed=i, threads=threads))
        print(f"repeat {i + 1}: reference {ref[-1]:.3f} s/epoch, engine {eng[-1]:.3f} s/epoch",
              file=sys.stderr)
    r, e = statistics.median(ref), statistics.median(eng)
    print(json.dumps({
        "benchmark": "train_epoch", "model": args.model, "dataset": args.data, "batch_size": args.batch_size,
        "epochs": args.epochs, "repeats": args.repeats, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": threads, "torch": torch.__version__,
        "reference_s_per_epoch": round(r, 4), "engine_s_per_epoch": round(e, 4),
        "ratio_engine_over_reference": round(e / r, 3),
        "images_per_s_engine": round(len(dataset.x_train) / e, 1),
    }))


if __name__ == "__main__":
    main()
