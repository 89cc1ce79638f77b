"""The reconstruction family's trainer: autoencoders (and PCA, fitted in closed form)."""

from __future__ import annotations

import copy

import torch

from engine.data import Dataset
from engine.data.images import grid_png
from engine.eval.metrics import encode_all, evaluate
from engine.eval.roc import run_auroc
from engine.runs import load_optimizer_state
from engine.runs.config import TrainConfig
from engine.train.trainer import (Trainer, adam, autocast_dtype, fixed_test_batch, memory_format, positive, set_lr,
                                  to_memory_format)


class ReconstructionTrainer(Trainer):
    """Adam on the model's own loss_step; snapshots of the fixed test batch's reconstructions."""

    def __init__(self, model, dataset: Dataset, cfg: TrainConfig, device: torch.device, runs_dir=None):
        self.model, self.cfg, self.device = model, cfg, device
        self.layout = memory_format(model, device)
        self.autocast = autocast_dtype(model, device)  # the step's precision: None is float32
        to_memory_format(model, self.layout)
        self.x_train = dataset.x_train.to(device).contiguous(memory_format=self.layout)  # (N, 1, 28, 28), once
        self.y_train = dataset.y_train.to(device)
        self.x_test = dataset.x_test.to(device).contiguous(memory_format=self.layout)
        self.y_test = dataset.y_test.to(device)
        self.dataset = dataset
        fixed = fixed_test_batch(dataset).to(device)
        self.snap_x, self.snap_y = self.x_test[fixed], self.y_test[fixed]
        self.eval_x = self.x_test[: cfg.eval_batch]
        self.eval_y = self.y_test[: cfg.eval_batch]
        self.optimizer = (adam(model.parameters(), device, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                               weight_decay=cfg.weight_decay)
                          if not model.capabilities.closed_form else None)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.noise_gen = torch.Generator(device=gen_device).manual_seed(cfg.seed + 1)
        self.sample_seed = cfg.seed + 2  # seed of the fixed z for VAE sample grids
        model.start_from_data(self.x_train.mean(0))  # a resumed run loads its checkpoint over this afterwards

    @property
    def optimizers(self) -> dict:
        return {"adam": self.optimizer} if self.optimizer else {}

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def fit_closed_form(self) -> dict:
        self.model.fit(self.x_train, seed=self.cfg.seed)
        return {}

    def train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.model.loss_step(self.x_train[idx], self.y_train[idx], generator=self.noise_gen)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        return out.logs

    def quick_eval(self) -> dict[str, float]:
        return self._quick_eval(self.model)

    def quick_eval_later(self):
        # A copy of this step's weights (conv_ae: 0.1 ms), scored while the original trains on: the scores are
        # those quick_eval gives now, to the last bit.
        frozen = copy.deepcopy(self.model)
        return lambda: self._quick_eval(frozen)

    @torch.inference_mode()
    def _quick_eval(self, model) -> dict[str, float]:
        model.eval()
        gen = torch.Generator(device=self.noise_gen.device).manual_seed(0)
        logs = model.loss_step(self.eval_x, self.eval_y, generator=gen).logs
        model.train()
        return {f"test/{k}": float(v) for k, v in logs.items()}

    @torch.inference_mode()
    def snapshots(self) -> dict[str, bytes]:
        self.model.eval()
        out = {"recon": grid_png(self.model(self.snap_x, self.snap_y), ncol=8)}
        if self.model.capabilities.prior:  # samples from the prior are worth a grid at every snapshot
            gen = torch.Generator().manual_seed(self.sample_seed)
            out["samples"] = grid_png(self.model.sample(64, generator=gen), ncol=8)
        self.model.train()
        return out

    def inputs_png(self) -> bytes:
        return grid_png(self.snap_x, ncol=8)

    @torch.inference_mode()
    def finish(self) -> None:
        """Fit the code distribution that sample() draws from (plain AEs), on the train split."""
        self.model.eval()
        self.z_train = encode_all(self.model, self.x_train, self.y_train)
        self.model.fit_latent_stats(self.z_train)

    def evaluate(self) -> dict[str, float]:
        # the train codes of finish() serve the kNN score too (the same model and images)
        metrics = evaluate(self.model, self.dataset, device=self.device, z_train=getattr(self, "z_train", None))
        if self.cfg.classes:
            # A one-class run: its test split is whole (only the train split was filtered), so the
            # reconstruction error ranks normal against anomalous test images. A kNN classifier fitted
            # on codes of the normal classes alone never predicts the others: its accuracy would mislead.
            metrics.update(run_auroc(self.model, self.dataset, self.cfg.classes))
            metrics.pop("knn_accuracy", None)
        return metrics

    def load_state(self, header: dict, tensors: dict) -> None:
        state = load_optimizer_state(header, tensors, "adam")
        if self.optimizer and state:
            self.optimizer.load_state_dict(state)

    def apply_control(self, control: dict) -> dict:
        """Apply settings changed while training (control.json): the learning rate."""
        if self.optimizer and positive(control.get("lr")):
            set_lr(self.optimizer, control["lr"])
            return {"lr": control["lr"]}
        return {}

