"""A GAN on 2-D points, small enough to watch it learn: the playground of GAN Lab (Kahng et al., 2018).

The game is exactly the image GANs' game (the loss functions come from engine.models.gan); only
the data changed: x is a point of the plane, drawn from a ring of Gaussians, a mixture, a spiral
or points the user placed. Because x has two coordinates, everything can be drawn at once:

    real points x ~ p_data               generated points G(z) for a fixed batch of z
    the decision surface D(x) on a grid  the push −∂ℓ_G/∂G(z) on each generated point

and a step takes a couple of milliseconds on one CPU thread, so a page can animate training live.

    model = Toy2DGAN(Toy2DConfig(distribution="ring", loss="minimax"))
    model.step(100)                    # 100 × (d_steps D updates, then one G update)
    model.step(1, which="d")           # slow motion: one discriminator update only
    view = model.view()                # numpy arrays to draw
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import nn

from engine.data.points2d import (DISTRIBUTIONS, LIM, MAX_POINTS, MIN_POINTS, RealData, energy_distance, modes_covered,
                                  points_from_text, points_to_text, validate_points)
from engine.models.base import mlp
from engine.models.gan_losses import discriminator_loss, generator_loss, gradient_penalty  # the image GANs

__all__ = ["DISTRIBUTIONS", "LIM", "LOSSES", "MAX_POINTS", "MIN_POINTS", "RealData", "Toy2DConfig", "Toy2DGAN",
           "Toy2DView", "default_d_steps", "energy_distance", "modes_covered", "points_from_text", "points_to_text",
           "real_data", "sync_model", "validate_points"]

LOSSES = ("non_saturating", "minimax", "wasserstein")
WHICH = ("both", "d", "g")
GRID = 60  # the decision surface is evaluated on GRID × GRID points
N_VIEW = 300  # generated points drawn (a fixed z batch: the same z every frame, so points move smoothly)
N_REAL_VIEW = 500  # real points drawn (fixed too)
N_QUALITY = 1000  # real points the quality numbers compare against
MAX_HISTORY = 2000  # history entries kept; beyond that every other one is dropped (the curve stays whole)


# ---------------------------------------------------------------------------------------------
# config


@dataclass
class Toy2DConfig:
    distribution: str = "ring"  # real data: ring (8 Gaussians), gaussians (a mixture of 3), spiral, or points
    loss: str = "non_saturating"  # generator loss: non_saturating, minimax, or wasserstein (critic + gradient penalty)
    hidden: int = 64  # width of every hidden layer of G and D
    layers: int = 2  # hidden layers of G (z → 2) and of D (2 → 1)
    z_dim: int = 2  # size of the noise z ~ N(0, I) the generator turns into a point
    lr_g: float = 1e-3  # the generator's Adam learning rate
    lr_d: float = 1e-3  # the discriminator's (critic's) Adam learning rate
    d_steps: int | None = None  # discriminator updates per generator update; None: 1, or 5 for wasserstein
    batch_size: int = 128  # real points (and as many fakes) per update
    gp_weight: float = 0.1  # λ of the penalty λ·(‖∇f(x̃)‖ − 1)² (wasserstein; 0.1 as WGAN-GP's toy experiments)
    seed: int = 0  # the initial weights, the batches and the fixed z batch all follow from it
    points: tuple[tuple[float, float], ...] = ()  # the user's points (distribution="points"), within [−LIM, LIM]²
    jitter: float = 0.05  # σ of the Gaussian blur around each user point, so D cannot memorise exact positions

    def validate(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}, not {self.distribution!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        for name in ("hidden", "layers", "z_dim", "d_steps", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            check_lr(name, getattr(self, name))
        if not (self.gp_weight >= 0 and self.jitter >= 0):
            raise ValueError(f"gp_weight and jitter must be ≥ 0, not {self.gp_weight} and {self.jitter}")
        if self.distribution == "points":
            validate_points(self.points)


def default_d_steps(loss: str) -> int:
    """Discriminator updates per generator update: 5 for a Wasserstein critic (Gulrajani et al.), else 1."""
    return 5 if loss == "wasserstein" else 1


def check_lr(name: str, lr: float) -> float:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"{name} must be a learning rate in (0, 1], not {lr!r}")
    return float(lr)


# ---------------------------------------------------------------------------------------------


def real_data(config: Toy2DConfig) -> RealData:
    points = validate_points(config.points) if config.distribution == "points" else None
    return RealData(config.distribution, points, config.jitter)


# ---------------------------------------------------------------------------------------------
# the model


@dataclass
class Toy2DView:
    """Everything a page draws, as numpy arrays (the plane is [−LIM, LIM]²)."""

    real: np.ndarray  # (N_REAL_VIEW, 2) real points (a fixed sample)
    fake: np.ndarray  # (N_VIEW, 2) G(z) for the fixed z batch
    push: np.ndarray  # (N_VIEW, 2) −∂ℓ_G/∂G(z): where the generator's loss pushes each fake point
    grid: np.ndarray  # (GRID,) coordinates of the surface's columns (x) and rows (y)
    surface: np.ndarray  # (GRID, GRID) D(x) = σ(logit) (or the critic's f(x)) at (grid[col], grid[row])
    surface_kind: str  # "probability" (D(x) in [0, 1]) or "critic" (f(x), any real number)
    d_real: float  # mean D(x) (or f(x)) over the real points drawn
    d_fake: float  # mean D(G(z)) (or f(G(z))) over the generated points drawn
    history: dict[str, np.ndarray]  # step, d_loss, g_loss, d_real, d_fake, d_grad_norm, g_grad_norm: (T,) each
    steps: int  # training steps done (a "both" step, a D-only or a G-only step count one each)
    d_updates: int
    g_updates: int
    energy: float  # energy distance between N_QUALITY real points and the fixed fake batch (lower is better)
    modes: int | None  # modes covered (ring, gaussians); None for spiral and points
    n_modes: int | None
    near_modes: float | None  # fraction of fake points within MODE_RADIUS of some mode


LOG_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm")


def _grad_norm(module: nn.Module) -> float:
    norms = [p.grad.norm() for p in module.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _adam(params, lr: float, loss: str) -> torch.optim.Adam:
    # β₁ = 0.5 as DCGAN prescribes; WGAN-GP's (0.5, 0.9) keeps the critic's steps responsive.
    # foreach: one batched update for all the small tensors (PyTorch enables it on GPUs only by default).
    return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9) if loss == "wasserstein" else (0.5, 0.999), foreach=True)


class Toy2DGAN:
    """Tiny MLPs G: z (B, z_dim) → x (B, 2) and D: x (B, 2) → logits (B,), two Adam optimisers, a log.

    Deterministic for a given config (seed included): weights, batches and the fixed z batch all
    come from torch.Generators seeded from config.seed, never from the global RNG.
    """

    def __init__(self, config: Toy2DConfig | None = None):
        config = replace(config) if config is not None else Toy2DConfig()  # a copy: setters change it
        config.validate()
        if config.d_steps is None:
            config.d_steps = default_d_steps(config.loss)
        self.config = config
        self.data = real_data(config)
        with torch.random.fork_rng(devices=[]):  # PyTorch's initialisers use the global RNG: seed it, restore it
            torch.manual_seed(config.seed)
            hidden = [config.hidden] * config.layers
            self.G = mlp((config.z_dim, *hidden, 2), "leaky_relu")  # no last activation: G(z) may land anywhere
            self.D = mlp((2, *hidden, 1), "leaky_relu")  # a logit (or a critic score f(x)): no sigmoid here
        self.opt_g = _adam(self.G.parameters(), config.lr_g, config.loss)
        self.opt_d = _adam(self.D.parameters(), config.lr_d, config.loss)
        self.rng = torch.Generator().manual_seed(config.seed + 1)  # training batches
        fixed = torch.Generator().manual_seed(config.seed + 2)
        self.z_view = torch.randn(N_VIEW, config.z_dim, generator=fixed)  # (N_VIEW, z_dim), fixed for the animation
        self._resample_real(fixed)
        axis = torch.linspace(-LIM, LIM, GRID)
        gy, gx = torch.meshgrid(axis, axis, indexing="ij")
        self.grid = axis
        self.grid_points = torch.stack([gx.flatten(), gy.flatten()], 1)  # (GRID², 2), row-major in y
        self.steps = self.d_updates = self.g_updates = 0
        self.last = dict.fromkeys(LOG_KEYS, math.nan)
        self.history: dict[str, list[float]] = {k: [] for k in ("step", *LOG_KEYS)}
        self._thin = 1  # record every _thin-th step once the history has been halved

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def wasserstein(self) -> bool:
        return self.config.loss == "wasserstein"

    def _resample_real(self, generator: torch.Generator) -> None:
        self.real_view = self.data.sample(N_REAL_VIEW, generator).numpy()  # (N_REAL_VIEW, 2)
        self.real_quality = self.data.sample(N_QUALITY, generator).numpy()  # (N_QUALITY, 2)
        q = torch.as_tensor(self.real_quality, dtype=torch.float64)
        self.real_spread = float(torch.cdist(q, q).mean())  # E‖X − X'‖ of the energy distance, once

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x).squeeze(1)  # (B,)

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.z_dim, generator=self.rng)

    # -- live settings (the running model keeps its weights) ---------------------------------------

    def set_lrs(self, lr_g: float | None = None, lr_d: float | None = None) -> None:
        """New learning rates for the next updates; Adam's moment estimates are kept."""
        for name, lr, opt in (("lr_g", lr_g, self.opt_g), ("lr_d", lr_d, self.opt_d)):
            if lr is None:
                continue
            lr = check_lr(name, lr)
            setattr(self.config, name, lr)
            for group in opt.param_groups:
                group["lr"] = lr

    def set_d_steps(self, d_steps: int) -> None:
        if int(d_steps) < 1:
            raise ValueError(f"d_steps must be at least 1, not {d_steps}")
        self.config.d_steps = int(d_steps)

    def set_loss(self, loss: str) -> None:
        """Switch between the two generator losses of the same game (non_saturating ↔ minimax) while running.

        Switching to or from wasserstein changes what D is (a classifier or a critic): start a new model.
        """
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if (loss == "wasserstein") != self.wasserstein:
            raise ValueError(f"cannot switch from {self.config.loss} to {loss} while running: D would change "
                             "meaning (classifier vs critic); make a new Toy2DGAN")
        self.config.loss = loss

    def set_points(self, points) -> None:
        """New user points (distribution="points"): the real data changes, the nets keep learning."""
        if self.config.distribution != "points":
            raise ValueError(f"set_points needs distribution='points', not {self.config.distribution!r}")
        p = validate_points(points)
        self.config.points = tuple(map(tuple, p.tolist()))
        self.data = RealData("points", p, self.config.jitter)
        self._resample_real(torch.Generator().manual_seed(self.config.seed + 3))

    # -- training ----------------------------------------------------------------------------------

    def _d_update(self) -> None:
        n = self.config.batch_size
        real = self.data.sample(n, self.rng)  # (B, 2)
        with torch.no_grad():
            fake = self.G(self.noise(n))  # (B, 2); no gradient into G while D learns
        real_logits, fake_logits = self.critic(real), self.critic(fake)
        loss = discriminator_loss(real_logits, fake_logits, "wasserstein" if self.wasserstein else "gan")
        if self.wasserstein and self.config.gp_weight > 0:
            loss = loss + self.config.gp_weight * gradient_penalty(self.critic, real, fake, self.rng)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.last["d_grad_norm"] = _grad_norm(self.D)
        self.opt_d.step()
        score = (lambda t: t) if self.wasserstein else torch.sigmoid  # D(x) = σ(logit); a critic's f(x) as is
        with torch.no_grad():
            self.last.update(d_loss=loss.item(), d_real=float(score(real_logits).mean()),
                             d_fake=float(score(fake_logits).mean()))
        self.d_updates += 1

    def _g_update(self) -> None:
        fake_logits = self.critic(self.G(self.noise(self.config.batch_size)))
        loss = generator_loss(fake_logits, self.config.loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.last["g_grad_norm"] = _grad_norm(self.G)
        self.opt_g.step()
        self.last["g_loss"] = loss.item()
        self.g_updates += 1

    def step(self, n: int = 1, which: str = "both") -> dict[str, float]:
        """n training steps; returns the latest logs (d_loss, g_loss, d_real, d_fake, grad norms).

        which="both": d_steps discriminator updates, then one generator update (the usual loop);
        "d": one discriminator update only; "g": one generator update only (slow motion).
        """
        if which not in WHICH:
            raise ValueError(f"which must be one of {', '.join(WHICH)}, not {which!r}")
        for _ in range(int(n)):
            if which in ("both", "d"):
                for _ in range(self.config.d_steps if which == "both" else 1):
                    self._d_update()
            if which in ("both", "g"):
                self._g_update()
            self.steps += 1
            self._record()
        return self.logs()

    def logs(self) -> dict[str, float]:
        return {"step": self.steps, **self.last}

    def _record(self) -> None:
        if self.steps % self._thin:
            return
        self.history["step"].append(self.steps)
        for k in LOG_KEYS:
            self.history[k].append(self.last[k])
        if len(self.history["step"]) > MAX_HISTORY:  # keep the whole curve at half the resolution
            self._thin *= 2
            for k, values in self.history.items():
                self.history[k] = [v for s, v in zip(self.history["step"], values) if s % self._thin == 0]

    # -- what a page draws -------------------------------------------------------------------------

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """−∂ℓ_G/∂x for each point x (B, 2), ℓ_G the generator's loss of that one point.

        The generator can only move its points along these arrows (through its weights). For the
        non-saturating loss it is (1 − D(x))·∇logit; for the minimax loss D(x)·∇logit, which
        vanishes where D confidently rejects the point (D(x) ≈ 0).
        """
        x = x.detach().requires_grad_(True)
        loss = generator_loss(self.critic(x), self.config.loss) * len(x)  # the sum of per-point losses
        (grad,) = torch.autograd.grad(loss, x)
        return -grad  # (B, 2)

    def view(self) -> Toy2DView:
        score = (lambda t: t) if self.wasserstein else torch.sigmoid
        with torch.no_grad():
            fake = self.G(self.z_view)  # (N_VIEW, 2)
            surface = score(self.critic(self.grid_points))  # (GRID²,)
            d_real = float(score(self.critic(torch.as_tensor(self.real_view))).mean())
            d_fake = float(score(self.critic(fake)).mean())
        fake_np = fake.numpy()
        mixture = self.data.modes()
        covered, near = modes_covered(fake_np, mixture) if mixture is not None else (None, None)
        return Toy2DView(
            real=self.real_view, fake=fake_np, push=self.push(fake).numpy(), grid=self.grid.numpy(),
            surface=surface.view(GRID, GRID).numpy(), surface_kind="critic" if self.wasserstein else "probability",
            d_real=d_real, d_fake=d_fake,
            # float32: half the bytes sent to the browser
            history={k: np.asarray(v, dtype=np.float32) for k, v in self.history.items()},
            steps=self.steps, d_updates=self.d_updates, g_updates=self.g_updates,
            energy=energy_distance(self.real_quality, fake_np, self.real_spread), modes=covered,
            n_modes=None if mixture is None else len(mixture[0]), near_modes=near)

    def state(self) -> Toy2DView:
        """The same as view(): what the model looks like now."""
        return self.view()


# ---------------------------------------------------------------------------------------------
# a running model that follows the controls


LIVE_FIELDS = ("loss", "lr_g", "lr_d", "d_steps", "points")  # what a running model can change without restarting


def sync_model(model: Toy2DGAN | None, config: Toy2DConfig) -> Toy2DGAN:
    """`model` with config's live settings applied, or a new model when anything else changed.

    Live: the learning rates, d_steps, the generator loss within one game (non_saturating ↔
    minimax) and the user's points. A new distribution, a switch to or from wasserstein, another
    size or seed: a fresh model. Raises ValueError for a bad config (e.g. too few points).
    """
    config.validate()
    if model is not None:
        old = {f.name: getattr(model.config, f.name) for f in fields(Toy2DConfig) if f.name not in LIVE_FIELDS}
        new = {f.name: getattr(config, f.name) for f in fields(Toy2DConfig) if f.name not in LIVE_FIELDS}
        if old == new and (config.loss == "wasserstein") == model.wasserstein:
            model.set_loss(config.loss)
            model.set_lrs(config.lr_g, config.lr_d)
            model.set_d_steps(config.d_steps or default_d_steps(config.loss))
            if config.distribution == "points" and tuple(map(tuple, validate_points(config.points).tolist())) \
                    != model.config.points:
                model.set_points(config.points)
            return model
    return Toy2DGAN(config)

