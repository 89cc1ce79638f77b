"""GAN training speed: the engine's adversarial loop against a plain PyTorch GAN loop, in one run.

    python bench/bench_gan.py [--model dcgan] [--epochs 2] [--repeats 3] [--device auto] [--judge]

Both train the same registered GAN (same config, seed, batch size, two Adams with β1 0.5) on
mnist-5k's train split. The reference is the textbook loop: DataLoader(TensorDataset, shuffle=True),
.to(device) per batch, a discriminator step on real and fake images with BCE, then a generator step
with the non-saturating loss. The engine is `train_run` on a real run directory with its logging,
snapshots of the fixed z, checkpoints and gradient norms on (and, with --judge, the judge's scores
every 5 s). Wall time per epoch is compared as engine ÷ reference (below 1: the engine is faster).
Runs alternate and medians are reported, to damp machine noise.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile

import torch
import torch.nn.functional as F
from bench_train import epoch_seconds  # beside this script
from torch.utils.data import DataLoader, TensorDataset

from engine.data import load_dataset
from engine.device import resolve_device, set_cpu_threads
from engine.models import build_model, get_model_class
from engine.runs import Run, make_run_config
from engine.train import train_run


def reference_epoch_seconds(name, dataset, device, batch_size, epochs, seed, lr) -> float:
    torch.manual_seed(seed)
    model = build_model(name).to(device).train()
    G, D = model.generator, model.discriminator
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    loader = DataLoader(TensorDataset(dataset.x_train), batch_size=batch_size, shuffle=True, drop_last=True)
    latent = model.config.latent_dim

    def one_epoch():
        for (xb,) in loader:
            real = xb.to(device, non_blocking=True) * 2 - 1
            n = len(real)
            fake = G(torch.randn(n, latent, device=device))
            d_real, d_fake = D(real), D(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                      + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            out = D(G(torch.randn(n, latent, device=device)))
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

    return epoch_seconds(one_epoch, device, epochs)


def engine_epoch_seconds(name, dataset_name, device, batch_size, epochs, seed, threads, judge, runs_dir) -> float:
    config = make_run_config(name, dataset_name, {}, {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                                                      "device": str(device), "threads": threads, "judge": judge})
    run = Run.create(runs_dir, config)
    train_run(run)
    last = [r for r in run.metrics() if "train/d_loss" in r][-1]  # the loop's clock, before the final eval
    return last["elapsed"] / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dcgan", choices=["gan", "dcgan"], help="an unconditional BCE GAN")
    p.add_argument("--data", default="mnist-5k")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for both loops (0: all cores)")
    p.add_argument("--judge", action="store_true", help="let the engine score samples with the judge every 5 s")
    args = p.parse_args()

    defaults = get_model_class(args.model).train_defaults
    batch_size, lr = defaults.get("batch_size", 64), defaults.get("lr", 2e-4)
    device = resolve_device(args.device)
    threads = set_cpu_threads(args.threads or None)
    dataset = load_dataset(args.data)
    ref, eng = [], []
    with tempfile.TemporaryDirectory() as runs_dir:
        if args.judge:  # trained once, before the clocks start
            from engine.eval.judge import load_judge

            load_judge(args.data, runs_dir)
        for i in range(args.repeats):
            ref.append(reference_epoch_seconds(args.model, dataset, device, batch_size, args.epochs, i, lr))
            eng.append(engine_epoch_seconds(args.model, args.data, device, batch_size, args.epochs, i, threads,
                                            args.judge, runs_dir))
            print(f"repeat {i + 1}: reference {ref[-1]:.3f} s/epoch, engine {eng[-1]:.3f} s/epoch", file=sys.stderr)
    r, e = statistics.median(ref), statistics.median(eng)
    print(json.dumps({
        "benchmark": "gan_train_epoch", "model": args.model, "dataset": args.data, "batch_size": batch_size,
        "epochs": args.epochs, "repeats": args.repeats, "judge": args.judge, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": threads, "torch": torch.__version__,
        "reference_s_per_epoch": round(r, 4), "engine_s_per_epoch": round(e, 4),
        "ratio_engine_over_reference": round(e / r, 3),
        "steps_per_s_engine": round(len(dataset.x_train) / batch_size / e, 1),
    }))


if __name__ == "__main__":
    main()
