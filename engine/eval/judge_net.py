"""The judge's network and its training recipe: a small CNN classifier of the real labelled images.

    conv 3×3 → pool → conv 3×3 → pool → dense F (the features the FID-style distance compares) → dense K

Trained once per dataset (engine.eval.judge stores it like a run): Adam with a one-cycle learning
rate over a fixed number of epochs, each image shifted by up to ±2 pixels, one metrics line per epoch.
A fixed recipe run inside another run's preparation, so it needs none of the training loop's budget,
snapshots, control, cancel or resume (engine.train.loop).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.runs import Run

JUDGE_MODEL = "judge"  # the "model" field of a judge's config.json and checkpoint header
BATCH = 512  # images per forward pass at inference


@dataclass
class JudgeConfig:
    num_classes: int = 10  # K: outputs of the classifier
    width: int = 16  # channels of the first convolution (the second has twice as many)
    feature_dim: int = 128  # F: size of the penultimate layer, the features the FID compares


class JudgeNet(nn.Module):
    """conv 3×3 → pool → conv 3×3 → pool → dense F → dense K. About 207 k weights."""

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = config = config or JudgeConfig()
        w = config.width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Flatten(), nn.Linear(2 * w * 7 * 7, config.feature_dim), nn.ReLU(),  # (B, F)
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, 28, 28) in [0, 1] → penultimate features (B, F)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K) logits


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own whole-pixel offset in [−max_shift, max_shift]², zeros shifted in.

    One gather over the padded images (much faster than indexing per image): output pixel (r, c)
    of image b reads padded pixel (r + dy_b, c + dx_b).
    """
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    size = w + 2 * max_shift
    padded = F.pad(x, (max_shift,) * 4).reshape(b, -1)  # (B, (h + 2s) · (w + 2s))
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(x.device)
    base = (torch.arange(h, device=x.device)[:, None] * size + torch.arange(w, device=x.device)).reshape(1, -1)
    return padded.gather(1, base + (dy * size + dx)[:, None]).view(b, 1, h, w)



# ---------------------------------------------------------------------------------------------
# training


def fit(run: Run, dataset, net_config: JudgeConfig, train: dict, device: torch.device, on_log) -> None:
    """Adam with a one-cycle learning rate, random ±2 px shifts; one metrics line per epoch."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(train["threads"])
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG stays untouched
            torch.manual_seed(train["seed"])
            net = JudgeNet(net_config).to(device)
        gen = torch.Generator().manual_seed(train["seed"])  # batch order and shifts
        x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
        x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)
        n, bs, epochs = len(x_train), train["batch_size"], train["epochs"]
        steps_per_epoch = math.ceil(n / bs)
        opt = torch.optim.Adam(net.parameters(), lr=train["lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train["lr"], total_steps=epochs * steps_per_epoch)
        run.set_status(state="running", pid=os.getpid())
        step, accuracy = 0, 0.0
        for epoch in range(1, epochs + 1):
            net.train()
            total = 0.0
            for idx in torch.randperm(n, generator=gen).to(device).split(bs):
                x = random_shift(x_train[idx], train["max_shift"], gen)
                loss = F.cross_entropy(net(x), y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(idx)
                step += 1
            accuracy = accuracy_of(net, x_test, y_test)
            rec = {"step": step, "epoch": epoch, "train/loss": total / n, "test/accuracy": accuracy,
                   "elapsed": round(time.perf_counter() - t0, 3)}
            run.log(rec)
            run.set_status(state="running", step=step, epoch=epoch, progress=epoch / epochs, last_metrics=rec)
            if on_log is not None:
                on_log(rec)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    header = {"model": JUDGE_MODEL, "model_config": asdict(net_config), "kind": "judge",
              "dataset": run.config["dataset"], "classes": dataset.classes, "test_accuracy": accuracy,
              "seed": train["seed"], "epochs": epochs}
    run.save_checkpoint(net, step, header)
    run.set_status(state="done", step=step, epoch=epochs, progress=1.0, pid=None,
                   final_metrics={"test_accuracy": accuracy, "seconds": round(seconds, 2)})


@torch.inference_mode()
def accuracy_of(net: JudgeNet, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    right = sum(int((net(x[i:i + BATCH]).argmax(1) == y[i:i + BATCH]).sum()) for i in range(0, len(x), BATCH))
    return right / len(x)
