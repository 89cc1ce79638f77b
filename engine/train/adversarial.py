"""The adversarial family's trainer: a generator and a discriminator (critic), two optimizers, the judge."""

from __future__ import annotations

import time

import torch

from engine.data import Dataset
from engine.data.images import grid_png
from engine.eval.judge import DEFAULT_EPOCHS as JUDGE_EPOCHS
from engine.eval.judge import evaluate_generator, load_judge
from engine.models import build_model
from engine.runs import Run, load_optimizer_state
from engine.runs.config import TrainConfig
from engine.train.trainer import Clock, Trainer, adam, positive, set_lr

GAN_GRID = 64  # samples in the fixed-z grid of an unconditional GAN (8 × 8)
CGAN_ROWS = 10  # rows of a conditional GAN's grid: one column per class, one row per fixed z


def fixed_noise(model, n: int, seed: int) -> torch.Tensor:
    """n codes z ~ N(0, I) that depend only on the seed: every snapshot shows the same z."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.config.latent_dim, generator=gen).to(model.device)


class AdversarialTrainer(Trainer):
    """Two Adams (generator, discriminator); snapshots of samples from a fixed z; judge scores.

    One step is one discriminator (critic) update on a real batch; every n_critic-th step the
    generator is updated too, on as many fresh samples.
    """

    def __init__(self, model, dataset: Dataset, cfg: TrainConfig, device: torch.device, runs_dir=None):
        self.model, self.cfg, self.device, self.dataset = model, cfg, device, dataset
        self.runs_dir = runs_dir
        self.x_train = dataset.x_train.to(device)
        self.y_train = dataset.y_train.to(device)
        self.x_test = dataset.x_test.to(device)[: cfg.eval_batch]
        self.y_test = dataset.y_test.to(device)[: cfg.eval_batch]
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = adam(model.generator.parameters(), device, lr=cfg.lr, betas=betas)
        self.opt_d = adam(model.discriminator.parameters(), device, lr=cfg.lr_d or cfg.lr, betas=betas,
                          weight_decay=cfg.weight_decay)
        gen_device = device if device.type == "cuda" else torch.device("cpu")
        self.gen = torch.Generator(device=gen_device).manual_seed(cfg.seed + 1)
        k = model.num_classes
        conditional = model.capabilities.conditional
        if conditional:  # columns are classes, rows are fixed codes
            self.grid_ncol = k
            z = fixed_noise(model, CGAN_ROWS, cfg.seed + 2)
            self.fixed_z = z.repeat_interleave(k, 0)  # (rows·K, latent_dim): row r shares one z
            self.fixed_y = torch.arange(k, device=device).repeat(CGAN_ROWS)
        else:
            self.grid_ncol = 8
            self.fixed_z, self.fixed_y = fixed_noise(model, GAN_GRID, cfg.seed + 2), None
        # the judge scores the same codes each time, so its curve shows the generator, not sampling noise
        self.judge_z = fixed_noise(model, cfg.judge_samples, cfg.seed + 3)
        self.judge_y = (torch.arange(cfg.judge_samples, device=device) % k) if conditional else None
        self.d_updates = 0
        self.last_g: dict[str, torch.Tensor] = {}
        self._judge = None
        self.judge_error: str | None = None  # why there are no judge scores (unlabelled data, a damaged judge…)
        self._judge_clock = Clock(cfg.judge_every_s, time.perf_counter())

    @property
    def optimizers(self) -> dict:
        return {"g": self.opt_g, "d": self.opt_d}

    @property
    def num_train(self) -> int:
        return len(self.x_train)

    def _labels(self, idx: torch.Tensor) -> torch.Tensor | None:
        return self.y_train[idx] if self.model.capabilities.conditional else None

    def d_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """One discriminator (critic) update on the real batch x[idx] and as many fakes."""
        model = self.model
        out = model.d_loss_step(self.x_train[idx], self._labels(idx), generator=self.gen)
        self.opt_d.zero_grad(set_to_none=True)
        out.loss.backward()
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.discriminator.parameters() if p.grad is not None])
        self.opt_d.step()
        model.after_d_step()
        self.d_updates += 1
        return {**out.logs, "grad_norm_d": norm.detach()}

    def g_step(self, n: int) -> dict[str, torch.Tensor]:
        """One generator update on n fresh samples; the discriminator's weights stay as they are."""
        model = self.model
        model.discriminator.requires_grad_(False)
        try:
            out = model.g_loss_step(n, None, generator=self.gen)
            self.opt_g.zero_grad(set_to_none=True)
            out.loss.backward()
        finally:
            model.discriminator.requires_grad_(True)
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.generator.parameters() if p.grad is not None])
        self.opt_g.step()
        self.last_g = {**out.logs, "grad_norm_g": norm.detach()}
        return self.last_g

    def train_step(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        logs = self.d_step(idx)
        if self.d_updates % self.model.n_critic == 0:
            self.g_step(len(idx))
        return {**logs, **self.last_g}  # between generator updates the last one's numbers carry over

    @torch.inference_mode()
    def quick_eval(self) -> dict[str, float]:
        """The discriminator on held-out real images (does it memorise the train split?) and the learning rates."""
        self.model.eval()
        logits = self.model.critic(self.x_test, self.y_test if self.model.capabilities.conditional else None)
        self.model.train()
        return {f"test/{self.model.output_keys[0]}": float(self.model.d_output(logits).mean()),
                "lr_g": self.opt_g.param_groups[0]["lr"], "lr_d": self.opt_d.param_groups[0]["lr"]}

    @torch.inference_mode()
    def snapshots(self) -> dict[str, bytes]:
        self.model.eval()
        x = self.model.generate(self.fixed_z, self.fixed_y)
        self.model.train()
        return {"samples": grid_png(x, ncol=self.grid_ncol)}

    def inputs_png(self) -> bytes:
        """Real training images beside the samples, for comparison."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        idx = torch.randperm(len(self.x_train), generator=gen)[: len(self.fixed_z)].to(self.device)
        return grid_png(self.x_train[idx], ncol=self.grid_ncol)

    def judge(self, on_log=None):
        """The dataset's judge classifier (trained once per dataset, then loaded); None when unusable."""
        if self._judge is None and self.cfg.judge:
            try:
                self._judge = load_judge(self.dataset.name, self.runs_dir, device=self.device, on_log=on_log) or False
                if not self._judge:
                    self.judge_error = "this dataset has no class labels, so there is no judge classifier"
            except Exception as e:  # a judge is a bonus: training goes on without its scores, and says why
                self._judge = False
                self.judge_error = f"the judge classifier could not be loaded: {e}"
        return self._judge or None

    def prepare(self, run: Run) -> None:
        if not self.cfg.judge:
            return
        run.set_status(state="running", phase="loading the judge classifier that scores the samples")

        def judge_progress(rec: dict) -> None:  # only called while the judge trains (the first GAN on a dataset)
            run.set_status(state="running", phase=(
                f"training the judge classifier that scores the samples, once per dataset: epoch {rec['epoch']} "
                f"of {JUDGE_EPOCHS}, test accuracy {rec['test/accuracy']:.1%}. The GAN's budget starts after it"))

        self.judge(on_log=judge_progress)
        run.set_status(state="running", phase="training", judge_error=self.judge_error)

    def status_notes(self) -> dict:
        return {"judge_error": self.judge_error} if self.judge_error else {}

    @torch.inference_mode()
    def periodic_metrics(self, force: bool = False) -> dict:
        """Judge scores of samples from the fixed judge codes, every judge_every_s (or now when forced)."""
        if not (force or self._judge_clock.due(time.perf_counter())):
            return {}
        judge = self.judge()
        if judge is None:
            return {}
        self.model.eval()
        x = torch.cat([self.model.generate(z, None if self.judge_y is None else self.judge_y[i:i + 250])
                       for i, z in zip(range(0, len(self.judge_z), 250), self.judge_z.split(250))])
        self.model.train()
        scores = judge.score(x, self.judge_y)
        return {f"judge/{k}": v for k, v in scores.items()}

    def finish(self) -> None:
        pass

    def evaluate(self) -> dict[str, float]:
        """The judge's scores of 2,000 samples, and the same for the untrained generator (same seed)."""
        if not self.cfg.judge or self.judge() is None:
            return {}
        try:
            out = evaluate_generator(self.model, self.dataset.name, self.runs_dir, n=2000, seed=self.cfg.seed,
                                     device=self.device)
            torch.manual_seed(self.cfg.seed)  # the generator as it was before its first step
            untrained = build_model(self.model.registry_name, self.model.config).to(self.device)
            before = evaluate_generator(untrained, self.dataset.name, self.runs_dir, n=2000, seed=self.cfg.seed,
                                        device=self.device)
        except ValueError as e:  # e.g. a conditional model with other classes than the judge knows
            self.judge_error = f"the judge could not score this generator: {e}"
            return {}
        if "fid" in out and "fid" in before:
            out["fid_untrained"] = before["fid"]
            out["fid_ratio"] = out["fid"] / max(before["fid"], 1e-12)
        return {k: v for k, v in out.items() if not isinstance(v, list) or k == "class_hist"}

    def load_state(self, header: dict, tensors: dict) -> None:
        for name, opt in self.optimizers.items():
            state = load_optimizer_state(header, tensors, name)
            if state:
                opt.load_state_dict(state)
        self.d_updates = int(header.get("step", 0))

    def apply_control(self, control: dict) -> dict:
        """Learning rates changed while training: lr (the generator's) and lr_d (the discriminator's)."""
        applied = {}
        if positive(control.get("lr")):
            set_lr(self.opt_g, control["lr"])
            applied["lr"] = control["lr"]
        if positive(control.get("lr_d")):
            set_lr(self.opt_d, control["lr_d"])
            applied["lr_d"] = control["lr_d"]
        return applied

