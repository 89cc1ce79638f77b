"""Training speed: the engine's loop against a plain PyTorch DataLoader loop, measured in one run.

    python bench/bench_train.py [--model conv_ae] [--epochs 3] [--repeats 7] [--threads 1] [--device auto]

Both train the same registered model (same config, seed, batch size, Adam) on mnist-5k's train
split. The reference is the textbook loop: DataLoader(TensorDataset, shuffle=True), .to(device)
per batch, forward, MSE, backward, torch.optim.Adam's step with its defaults. The engine is
`train_run` on a real run directory, with its logging (test scores on every line), snapshots and
checkpoints on. Wall time per epoch is compared as engine ÷ reference (below 1: the engine is faster).
What the engine does that the reference does not is its own (engine.train): the data as one tensor, the fused
Adam, channels_last, bfloat16 convolutions on a CPU that has them natively (LATENT_LAB_CPU_BF16=0 measures
without), and with one thread and a spare core, the lines' test scores on a second thread (its CPU time is
counted in the engine's).

Both are timed warm: the reference after one warm-up epoch, the engine between its first and last
metrics lines (its clock from the first step, cold start included, is reported beside it as
`engine_whole_s_per_epoch`). The two alternate, each repeat gives one paired ratio, and the median
and range of those ratios are printed, so that one noisy moment on a shared machine cannot decide it.
The same is done with this process's CPU time (`cpu_ratio_…`), which other work on the machine does not
inflate by taking the cores away (it still shares caches): with one thread, the ratio of the work done.
On a CPU shared with other work, one thread (the default) measures the loops; with more threads than
idle cores, OpenMP's waiting threads make every step's time a lottery for both loops alike.
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


def epoch_seconds(one_epoch, device: torch.device, epochs: int) -> tuple[float, float]:
    """Wall and CPU seconds per call of one_epoch(), after one warm-up call (allocator, kernels); CUDA
    synchronised."""
    one_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        one_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / epochs, (time.process_time() - c) / epochs


def engine_epoch_seconds(model_name, model_config, dataset_name, device, batch_size, epochs, seed,
                         threads) -> tuple[float, float, float]:
    """Wall seconds per epoch between the first and last metrics lines, the whole run's (cold start included),
    and CPU seconds per epoch between those lines."""
    with tempfile.TemporaryDirectory() as d:
        config = make_run_config(model_name, dataset_name, model_config,
                                 {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                                  "device": str(device), "threads": threads})
        run = Run.create(d, config)
        cpu = []  # this process's CPU time at each metrics line: robust to other work taking the cores

        def on_log(record):
            if "train/loss" in record:
                cpu.append((record["epoch"], time.process_time()))

        train_run(run, on_log=on_log)
        lines = [r for r in run.metrics() if "train/loss" in r]  # the loop's clock, before the final eval
        first, last = lines[0], lines[-1]
        steady = (last["elapsed"] - first["elapsed"]) / (last["epoch"] - first["epoch"])
        steady_cpu = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
        return steady, last["elapsed"] / epochs, steady_cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="conv_ae")
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batch-size", type=int, help="default: the model's own (conv_ae: 64)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for both loops (0: all cores)")
    args = p.parse_args()

    from engine.models import get_model_class
    from engine.runs import TrainConfig

    args.batch_size = args.batch_size or get_model_class(args.model).train_defaults.get(
        "batch_size", TrainConfig.batch_size)
    device = resolve_device(args.device)
    threads = set_cpu_threads(args.threads or None)
    dataset = load_dataset(args.data)
    model_config = {"latent_dim": args.latent_dim}
    ref, eng, whole, ref_cpu, eng_cpu = [], [], [], [], []
    for i in range(args.repeats):
        def reference(i=i):
            wall, cpu = reference_epoch_seconds(args.model, model_config, dataset, device, args.batch_size,
                                                args.epochs, seed=i)
            ref.append(wall)
            ref_cpu.append(cpu)

        def engine(i=i):
            steady, cold, cpu = engine_epoch_seconds(args.model, model_config, args.data, device, args.batch_size,
                                                     args.epochs, seed=i, threads=threads)
            eng.append(steady)
            whole.append(cold)
            eng_cpu.append(cpu)

        for fn in ((reference, engine) if i % 2 == 0 else (engine, reference)):  # neither always goes first
            fn()
        print(f"repeat {i + 1}: reference {ref[-1]:.3f} s/epoch, engine {eng[-1]:.3f} s/epoch "
              f"(whole run {whole[-1]:.3f}): ratio {eng[-1] / ref[-1]:.3f}; CPU s/epoch {ref_cpu[-1]:.3f} vs "
              f"{eng_cpu[-1]:.3f}: ratio {eng_cpu[-1] / ref_cpu[-1]:.3f}", file=sys.stderr)
    r, e = statistics.median(ref), statistics.median(eng)
    ratios = sorted(a / b for a, b in zip(eng, ref))
    whole_ratios = sorted(a / b for a, b in zip(whole, ref))
    cpu_ratios = sorted(a / b for a, b in zip(eng_cpu, ref_cpu))
    print(json.dumps({
        "benchmark": "train_epoch", "model": args.model, "dataset": args.data, "batch_size": args.batch_size,
        "epochs": args.epochs, "repeats": args.repeats, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": threads, "torch": torch.__version__,
        "reference_s_per_epoch": round(r, 4), "engine_s_per_epoch": round(e, 4),
        "engine_whole_s_per_epoch": round(statistics.median(whole), 4),
        "ratio_engine_over_reference": round(statistics.median(ratios), 3),
        "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
        "ratio_whole_run": round(statistics.median(whole_ratios), 3),
        "ratio_whole_run_range": [round(whole_ratios[0], 3), round(whole_ratios[-1], 3)],
        "cpu_ratio_engine_over_reference": round(statistics.median(cpu_ratios), 3),
        "cpu_ratio_range": [round(cpu_ratios[0], 3), round(cpu_ratios[-1], 3)],
        "images_per_s_engine": round(len(dataset.x_train) / e, 1),
    }))


if __name__ == "__main__":
    main()
