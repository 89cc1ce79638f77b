"""The sequence family's trainer: rnn_ae, lstm_ae, gru_ae, conv1d_ae, seq_vae on series (T, C).

It follows the reconstruction trainer's hooks (engine.train.trainer) and writes the same run folder. Its
snapshots are two things at each snapshot step:

    snapshots/recon_STEP.png         the fixed test series (grey) and their reconstructions, as small plots
                                     (what the run panel and the gallery show, as for images)
    snapshots/series_STEP.json       the numbers themselves, {"step", "x_hat": (n, T, C)}; with
    snapshots/series_inputs.json     {"indices", "x": (n, T, C), "y"}, so a page can replay them
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.eval.sequences import evaluate_sequences
from engine.runs import Run, atomic_write_bytes, load_optimizer_state
from engine.runs.config import TrainConfig
from engine.train.trainer import Trainer, fixed_test_batch, positive, set_lr

SNAP_SERIES = 8  # fixed test series per snapshot
MAX_SERIES_SNAPSHOTS = 200  # JSON snapshots a run keeps; older ones thin (every other goes) beyond that
SERIES_RE = re.compile(r"series_(\d{8})\.json$")


def series_png(x: np.ndarray, x_hat: np.ndarray | None = None, ncol: int = 4, size=(160, 80)) -> bytes:
    """Small line plots of series x (n, T, C) (first channel, grey) and x̂ (orange), one panel each, as PNG."""
    n = len(x)
    rows = -(-n // ncol)
    w, h = size
    img = Image.new("RGB", (ncol * w, rows * h), "white")
    draw = ImageDraw.Draw(img)
    for k in range(n):
        ox, oy = (k % ncol) * w, (k // ncol) * h
        curves = [x[k, :, 0]] + ([x_hat[k, :, 0]] if x_hat is not None else [])
        lo, hi = min(float(c.min()) for c in curves), max(float(c.max()) for c in curves)
        span = hi - lo if hi > lo else 1.0
        draw.rectangle([ox + 1, oy + 1, ox + w - 2, oy + h - 2], outline=(220, 220, 220))
        for c, colour in zip(curves, ((120, 120, 120), (230, 110, 20))):
            t = np.linspace(ox + 4, ox + w - 5, len(c))
            v = oy + h - 5 - (c - lo) / span * (h - 10)
            draw.line(list(zip(t.tolist(), v.tolist())), fill=colour, width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def series_snapshots(run: Run) -> list[tuple[int, object]]:
    """[(step, path)] of a run's series_STEP.json snapshots, oldest first."""
    try:
        found = list((run.path / "snapshots").glob("series_*.json"))
    except OSError:
        return []
    out = [(int(m.group(1)), p) for p in found if (m := SERIES_RE.search(p.name)) and not p.is_symlink()]
    return sorted(out, key=lambda sp: sp[0])


class SequenceTrainer(Trainer):
    """Adam on the model's loss_step over (B, T, C) batches; replayable series snapshots."""

    def __init__(self, model, dataset, cfg: TrainConfig, device: torch.device, runs_dir=None):
        if getattr(dataset, "kind", "image") != "sequence":
            raise ValueError(f"{model.registry_name if hasattr(model, 'registry_name') else 'this model'} reads "
                             f"series; {dataset.name} holds images: choose a sequence dataset such as gunpoint")
        model.check_input(dataset.x_train[:1])  # a model built for other T or C says so here
        self.model, self.cfg, self.device, self.dataset = model, cfg, device, dataset
        self.x_train, self.y_train = dataset.x_train.to(device), dataset.y_train.to(device)
        self.x_test, self.y_test = dataset.x_test.to(device), dataset.y_test.to(device)
        self.snap_idx = fixed_test_batch(dataset, SNAP_SERIES)
        self.snap_x = self.x_test[self.snap_idx.to(device)]
        self.eval_x = self.x_test[: cfg.eval_batch]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                          weight_decay=cfg.weight_decay)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.noise_gen = torch.Generator(device=gen_device).manual_seed(cfg.seed + 1)
        self.run: Run | None = None
        self.step = 0  # counted here: snapshots() is not told the step
        model.start_from_data(self.x_train.mean(0))  # a resumed run loads its checkpoint over this afterwards

    @property
    def optimizers(self) -> dict:
        return {"adam": self.optimizer}

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def prepare(self, run: Run) -> None:
        self.run = run
        path = run.path / "snapshots" / "series_inputs.json"
        if not path.exists():
            record = {"indices": self.snap_idx.tolist(), "x": _rounded(self.snap_x),
                      "y": self.y_test[self.snap_idx.to(self.device)].tolist(), "classes": self.dataset.classes}
            atomic_write_bytes(path, json.dumps(record).encode())

    def train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model.loss_step(self.x_train[idx], generator=self.noise_gen)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        self.step += 1
        return out.logs

    @torch.inference_mode()
    def quick_eval(self) -> dict[str, float]:
        self.model.eval()
        logs = self.model.loss_step(self.eval_x, generator=torch.Generator(device=self.noise_gen.device)
                                    .manual_seed(0)).logs
        self.model.train()
        return {f"test/{k}": float(v) for k, v in logs.items()}

    @torch.inference_mode()
    def snapshots(self) -> dict[str, bytes]:
        self.model.eval()
        x_hat = self.model(self.snap_x)
        self.model.train()
        if self.run is not None:
            folder = self.run.path / "snapshots"
            atomic_write_bytes(folder / f"series_{self.step:08d}.json",
                               json.dumps({"step": self.step, "x_hat": _rounded(x_hat)}).encode())
            self._thin()
        return {"recon": series_png(self.snap_x.cpu().numpy(), x_hat.cpu().numpy())}

    def _thin(self) -> None:
        shots = series_snapshots(self.run)
        if len(shots) > MAX_SERIES_SNAPSHOTS:
            for _, path in shots[1:-1:2]:  # every other one, keeping the first and the newest
                path.unlink(missing_ok=True)

    def inputs_png(self) -> bytes:
        return series_png(self.snap_x.cpu().numpy())

    @torch.inference_mode()
    def finish(self) -> None:
        """Fit the Gaussian that sample() draws codes from, on the train split's codes."""
        from engine.eval.sequences import encode_series

        self.model.fit_latent_stats(encode_series(self.model, self.x_train).to(self.device))

    def evaluate(self) -> dict[str, float]:
        return evaluate_sequences(self.model, self.dataset, device=self.device)

    def load_state(self, header: dict, tensors: dict) -> None:
        state = load_optimizer_state(header, tensors, "adam")
        if state:
            self.optimizer.load_state_dict(state)
        self.step = int(header.get("step", 0))

    def apply_control(self, control: dict) -> dict:
        if positive(control.get("lr")):
            set_lr(self.optimizer, control["lr"])
            return {"lr": control["lr"]}
        return {}


def _rounded(x: torch.Tensor) -> list:
    return np.round(x.detach().cpu().numpy().astype(np.float64), 4).tolist()
