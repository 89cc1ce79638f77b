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

from engine.models.base import mlp
from engine.models.gan import discriminator_loss, generator_loss, gradient_penalty

LIM = 2.0  # every point lives in the square [−LIM, LIM]²: the plot range, and where user points are clipped
DISTRIBUTIONS = ("ring", "gaussians", "spiral", "points")
LOSSES = ("non_saturating", "minimax", "wasserstein")
WHICH = ("both", "d", "g")
MIN_POINTS = 5  # fewer user points than this are not a distribution worth learning
MAX_POINTS = 500
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
# the real distributions


def validate_points(points) -> np.ndarray:
    """The user's points as a float array (N, 2), clipped to [−LIM, LIM]²; ValueError saying what is wrong."""
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("points must be a list of (x, y) pairs of numbers") from None
    if p.size == 0:
        p = p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must be a list of (x, y) pairs, not an array of shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("every point needs finite x and y (no NaN or infinity)")
    if len(p) < MIN_POINTS:
        raise ValueError(f"place at least {MIN_POINTS} points (there {'is' if len(p) == 1 else 'are'} {len(p)})")
    if len(p) > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points, not {len(p)}")
    return np.clip(p, -LIM, LIM)


def _mixture(centres, covs, weights):
    centres = torch.tensor(centres, dtype=torch.float32)  # (K, 2)
    chol = torch.linalg.cholesky(torch.tensor(np.asarray(covs), dtype=torch.float32))  # (K, 2, 2)
    weights = torch.tensor(weights, dtype=torch.float32)
    return centres, chol, weights / weights.sum()


_RING = _mixture([(1.5 * math.cos(2 * math.pi * k / 8), 1.5 * math.sin(2 * math.pi * k / 8)) for k in range(8)],
                 [np.eye(2) * 0.08 ** 2] * 8, [1.0] * 8)
_GAUSSIANS = _mixture([(-0.9, -0.7), (1.0, -0.5), (0.1, 1.0)],
                      [[[0.09, 0.0], [0.0, 0.09]], [[0.03, 0.0], [0.0, 0.2]], [[0.2, 0.1], [0.1, 0.1]]],
                      [0.4, 0.3, 0.3])
MODE_RADIUS = 3.0  # a generated point belongs to a mode when within 3 standard deviations of its centre


@dataclass
class RealData:
    """Where the real points come from: sample(n, generator) → (n, 2) float32."""

    name: str
    points: np.ndarray | None = None  # (N, 2): the user's points (name="points")
    jitter: float = 0.05

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if self.name in ("ring", "gaussians"):
            centres, chol, weights = _RING if self.name == "ring" else _GAUSSIANS
            k = torch.multinomial(weights, n, replacement=True, generator=generator)  # (n,)
            eps = torch.randn(n, 2, 1, generator=generator)
            return centres[k] + (chol[k] @ eps).squeeze(-1)  # x = μ_k + L_k ε, Σ_k = L_k L_kᵀ
        if self.name == "spiral":
            t = torch.rand(n, generator=generator)
            r = 0.25 + 1.45 * t  # an Archimedean spiral: the radius grows with the angle
            angle = 3.5 * math.pi * t
            x = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1)
            return x + 0.04 * torch.randn(n, 2, generator=generator)
        p = torch.as_tensor(self.points, dtype=torch.float32)  # (N, 2)
        i = torch.randint(len(p), (n,), generator=generator)
        return p[i] + self.jitter * torch.randn(n, 2, generator=generator)

    def modes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(centres (K, 2), Cholesky factors (K, 2, 2), weights (K,)) of a mixture; None otherwise."""
        if self.name not in ("ring", "gaussians"):
            return None
        return tuple(t.numpy() for t in (_RING if self.name == "ring" else _GAUSSIANS))


def real_data(config: Toy2DConfig) -> RealData:
    points = validate_points(config.points) if config.distribution == "points" else None
    return RealData(config.distribution, points, config.jitter)


# ---------------------------------------------------------------------------------------------
# quality: how far the generated points are from the real ones


def energy_distance(a, b, within_a: float | None = None) -> float:
    """The energy distance 2·E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ between point sets a (N, 2) and b (M, 2).

    Zero exactly when the two distributions are equal (Székely & Rizzo, 2013); this is the plain
    (V-statistic) estimate, so two samples of the same distribution give a small positive number.
    within_a: E‖X − X'‖ when already known (a fixed real sample), which saves the N × N term.
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if within_a is None:
        within_a = float(torch.cdist(a, a).mean())
    return float(2 * torch.cdist(a, b).mean() - within_a - torch.cdist(b, b).mean())


def modes_covered(points, modes) -> tuple[int, float]:
    """(modes with a fair share of points, fraction of points near some mode) for a Gaussian mixture.

    A point belongs to the mode whose Mahalanobis distance is smallest, if that is below MODE_RADIUS;
    a mode counts as covered when it got at least a quarter of its share (weight × N) of the points.
    Mode collapse shows as few modes covered; blurry samples as a small fraction near modes.
    """
    centres, chol, weights = modes
    p = np.asarray(points, dtype=np.float64)
    diff = p[:, None, :] - centres[None]  # (N, K, 2)
    white = np.linalg.solve(chol[None], diff[..., None])[..., 0]  # L⁻¹(x − μ): (N, K, 2)
    dist = np.linalg.norm(white, axis=-1)  # Mahalanobis distances (N, K)
    nearest = dist.argmin(1)
    near = dist[np.arange(len(p)), nearest] < MODE_RADIUS
    counts = np.bincount(nearest[near], minlength=len(centres))
    covered = int((counts >= 0.25 * weights * len(p)).sum())
    return covered, float(near.mean()) if len(p) else 0.0


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
        self.last = {k: math.nan for k in LOG_KEYS}
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
            history={k: np.asarray(v, dtype=np.float32) for k, v in self.history.items()},  # float32: half the bytes sent
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


# ---------------------------------------------------------------------------------------------
# small helpers for drawing


def arrow_segments(points: np.ndarray, vectors: np.ndarray, scale: float,
                   max_length: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Line segments from each point p to p + scale·v (at most max_length long), as x and y arrays.

    (N, 2), (N, 2) → two (3N,) arrays, NaN between segments, that one plotly line trace draws as
    N separate segments.
    """
    step = scale * np.asarray(vectors, dtype=np.float64)
    length = np.linalg.norm(step, axis=1, keepdims=True)
    step = step * np.minimum(1.0, max_length / np.maximum(length, 1e-12))
    ends = points + step
    xs = np.stack([points[:, 0], ends[:, 0], np.full(len(points), np.nan)], 1).ravel()
    ys = np.stack([points[:, 1], ends[:, 1], np.full(len(points), np.nan)], 1).ravel()
    return xs, ys


def canvas_points(json_data: dict | None, size: int) -> list[tuple[float, float]]:
    """The centres of the circles a drawing canvas (size × size pixels, Fabric.js JSON) holds, in plot units.

    The canvas spans [−LIM, LIM]² with y pointing up (pixels count down). Objects of other kinds
    are ignored; no validation here (validate_points does that).
    """
    out = []
    for obj in (json_data or {}).get("objects", []) or []:
        if str(obj.get("type", "")).lower() != "circle":
            continue
        try:
            r = float(obj.get("radius", 0))
            w = 2 * r * float(obj.get("scaleX", 1)) + float(obj.get("strokeWidth", 0))  # the bounding box
            h = 2 * r * float(obj.get("scaleY", 1)) + float(obj.get("strokeWidth", 0))
            cx = float(obj["left"]) + {"left": w / 2, "right": -w / 2}.get(obj.get("originX", "left"), 0.0)
            cy = float(obj["top"]) + {"top": h / 2, "bottom": -h / 2}.get(obj.get("originY", "top"), 0.0)
        except (KeyError, TypeError, ValueError):
            continue
        out.append((cx / size * 2 * LIM - LIM, LIM - cy / size * 2 * LIM))
    return out


def canvas_background(size: int) -> np.ndarray:
    """A light (size, size, 3) uint8 picture of the plane [−LIM, LIM]²: grid lines every 0.5, darker axes."""
    img = np.full((size, size, 3), 250, np.uint8)
    for k in np.arange(-LIM, LIM + 1e-9, 0.5):
        px = int(round((k + LIM) / (2 * LIM) * (size - 1)))
        shade = 150 if abs(k) < 1e-9 else (205 if float(k).is_integer() else 230)
        img[:, px] = np.minimum(img[:, px], shade)
        img[size - 1 - px, :] = np.minimum(img[size - 1 - px, :], shade)
    return img


def points_to_text(points) -> str:
    """Points as a compact string for a link: "x,y;x,y;…" with two decimals."""
    return ";".join(f"{x:.2f},{y:.2f}" for x, y in np.asarray(points, dtype=np.float64))


def points_from_text(text: str) -> np.ndarray:
    """The inverse of points_to_text, validated (ValueError with the reason)."""
    try:
        pairs = [tuple(float(v) for v in item.split(",")) for item in text.split(";") if item.strip()]
    except ValueError:
        raise ValueError("points must look like 'x,y;x,y;…'") from None
    if any(len(p) != 2 for p in pairs):
        raise ValueError("points must look like 'x,y;x,y;…'")
    return validate_points(pairs)
