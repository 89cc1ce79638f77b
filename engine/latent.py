"""The latent space of a trained run: load it, encode, decode, move around in z.

What the pages share: a run's model loaded once (`load_run`), the codes of a split, decoding a code,
the directions codes vary most along (the explorer's sliders for large latents), interpolation
(linear and spherical), the nearest training codes and a kNN vote on the class, and the
reconstruction error of an image placed against the test set's errors (the anomaly score).

Everything here is plain torch/numpy/scikit-learn and runs on the CPU in eval mode: a page asks
for one image at a time, and a small model answers in a millisecond or two there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from engine.data import Dataset
from engine.metrics import encode_all, per_image_mse, reconstruct_all
from engine.runs import Run, RunError

# ---------------------------------------------------------------------------------------------
# a run's model, loaded


@dataclass
class LoadedRun:
    """A run's model at one checkpoint, on the CPU in eval mode, with what pages need to know."""

    run_id: str
    step: int  # the checkpoint's training step
    model: torch.nn.Module
    config: dict  # the run's config.json
    header: dict = field(repr=False)  # the checkpoint's JSON header
    path: str = ""  # the run directory
    token: tuple = ()  # identifies the checkpoint file, e.g. (step, mtime): a key for caches of derived results

    @property
    def model_name(self) -> str:
        return self.config["model"]

    @property
    def dataset(self) -> str:
        return self.config["dataset"]

    @property
    def latent_dim(self) -> int:
        return int(self.model.config.latent_dim)

    @property
    def conditional(self) -> bool:
        return bool(getattr(self.model, "conditional", False))

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 10))

    @property
    def kind(self) -> str:
        return getattr(self.model, "kind", "reconstruction")

    @property
    def train_classes(self) -> list[int] | None:
        """The classes the run trained on when it was restricted to some (one-class anomaly runs)."""
        return self.config.get("train", {}).get("classes")

    @property
    def label(self) -> str:
        return f"{self.run_id} ({self.model_name}, latent {self.latent_dim}, step {self.step:,})"


def load_run(run: Run, step: int | None = None, kind: str = "reconstruction") -> LoadedRun:
    """The run's model at `step` (default: the newest checkpoint that loads) on the CPU, in eval mode.

    Raises RunError with what to do when the run has no usable checkpoint or its model is not of `kind`.
    """
    config = run.config
    model, header = run.load_model(step=step, device="cpu")
    model.eval()
    if getattr(model, "kind", "reconstruction") != kind:
        wanted = "an autoencoder" if kind == "reconstruction" else "a GAN"
        raise RunError(f"run {run.id} is a {config['model']} ({model.kind}); pick {wanted} run")
    return LoadedRun(run.id, int(header["step"]), model, config, header, str(run.path), (int(header["step"]),))


def checkpoint_steps(run: Run) -> list[int]:
    return [s for s, _ in run.checkpoints()]


# ---------------------------------------------------------------------------------------------
# images ↔ codes


def as_batch(x) -> torch.Tensor:
    """An image (28, 28), (1, 28, 28) or a batch (B, 1, 28, 28), numpy or torch → float32 (B, 1, 28, 28)."""
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
    if t.ndim == 2:
        t = t[None, None]
    elif t.ndim == 3:
        t = t[None]
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected 28×28 images, got shape {tuple(t.shape)}")
    return t


def labels_for(loaded: LoadedRun, y, n: int) -> torch.Tensor | None:
    """Labels for a conditional model (an int, a list or a tensor), None for others."""
    if not loaded.conditional:
        return None
    if y is None:
        raise ValueError(f"{loaded.model_name} is conditioned on the class: give the label y")
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1)
    return t.expand(n) if t.numel() == 1 else t


@torch.inference_mode()
def encode(loaded: LoadedRun, x, y=None) -> np.ndarray:
    """Codes z (B, latent_dim) of images x (a VAE gives its mean μ)."""
    x = as_batch(x)
    return loaded.model.encode(x, labels_for(loaded, y, len(x))).numpy()


@torch.inference_mode()
def decode(loaded: LoadedRun, z, y=None) -> np.ndarray:
    """Images (B, 28, 28) in [0, 1] decoded from codes z (B, latent_dim) or one code (latent_dim,)."""
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
    if z.ndim == 1:
        z = z[None]
    return loaded.model.decode(z, labels_for(loaded, y, len(z)))[:, 0].numpy()


@torch.inference_mode()
def reconstruct(loaded: LoadedRun, x, y=None) -> np.ndarray:
    """x̂ (B, 28, 28) in [0, 1] of images x."""
    x = as_batch(x)
    return loaded.model(x, labels_for(loaded, y, len(x)))[:, 0].numpy()


def split_tensors(dataset: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)


def split_codes(loaded: LoadedRun, dataset: Dataset, split: str = "test") -> np.ndarray:
    """Codes z (N, latent_dim) of every image of a split."""
    x, y = split_tensors(dataset, split)
    return encode_all(loaded.model, x, y if loaded.conditional else None).cpu().numpy()


def split_errors(loaded: LoadedRun, dataset: Dataset, split: str = "test") -> np.ndarray:
    """Per-image reconstruction MSE (N,) over a split: the anomaly scores of those images."""
    x, y = split_tensors(dataset, split)
    x_hat = reconstruct_all(loaded.model, x, y if loaded.conditional else None)
    return per_image_mse(x_hat.cpu(), x.cpu()).numpy()


# ---------------------------------------------------------------------------------------------
# moving in z


@dataclass
class Directions:
    """The principal directions of a set of codes: where a slider along each moves the most."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d), orthonormal rows, most varying first
    std: np.ndarray  # (k,) the codes' standard deviation along each component
    explained: np.ndarray  # (k,) fraction of the codes' variance along each component

    def to_code(self, coords) -> np.ndarray:
        """z = mean + Σ coords_i · std_i · component_i: slider positions in standard deviations → a code."""
        return self.mean + (np.asarray(coords, dtype=np.float64) * self.std) @ self.components

    def to_coords(self, z) -> np.ndarray:
        """The inverse for codes in the span: positions along each component, in standard deviations."""
        return ((np.asarray(z, dtype=np.float64) - self.mean) @ self.components.T) / self.std


def principal_directions(z: np.ndarray, k: int | None = None) -> Directions:
    """PCA of codes z (N, d), keeping k ≤ d components (all by default)."""
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    k = min(k or z.shape[1], z.shape[1], len(z))
    pca = PCA(n_components=k, svd_solver="full").fit(z)
    std = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
    return Directions(pca.mean_, pca.components_, std, pca.explained_variance_ratio_)


def axis_directions(z: np.ndarray) -> Directions:
    """The latent axes themselves (one slider per dimension), scaled by the codes' spread."""
    z = np.asarray(z, dtype=np.float64)
    var = z.var(0)
    return Directions(z.mean(0), np.eye(z.shape[1]), np.sqrt(np.maximum(var, 1e-12)), var / max(var.sum(), 1e-12))


def interpolate(z0, z1, steps: int = 10, method: str = "linear") -> np.ndarray:
    """Codes (steps, d) from z0 to z1, both ends included.

    linear:  z(t) = (1 − t)·z0 + t·z1
    slerp:   z(t) = sin((1 − t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1, Ω the angle between z0 and z1
             (stays at the norm typical of Gaussian codes, where the linear path cuts inside; White 2016)
    """
    z0, z1 = np.asarray(z0, dtype=np.float64), np.asarray(z1, dtype=np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "slerp":
        raise ValueError(f"method must be 'linear' or 'slerp', not {method!r}")
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 < 1e-12 or n1 < 1e-12:
        return (1 - t) * z0 + t * z1
    omega = np.arccos(np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0))
    if omega < 1e-6:  # (anti-)parallel ends: the arc is the line
        return (1 - t) * z0 + t * z1
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


def manifold_codes(n: int, z: np.ndarray | None = None, prior: bool = False, span: float = 0.95) -> np.ndarray:
    """An n×n grid of 2-D codes (n², 2), row by row, top row = highest z₂.

    For a VAE (prior=True) the grid sits at the Gaussian quantiles of N(0, 1) (Kingma & Welling 2014,
    fig. 4); for other models it spans the central `span` of the codes z (N, 2).
    """
    from scipy.stats import norm

    q = np.linspace((1 - span) / 2, 1 - (1 - span) / 2, n)
    if prior or z is None:
        axes = [norm.ppf(q), norm.ppf(q)]
    else:
        z = np.asarray(z)
        if z.shape[1] != 2:
            raise ValueError(f"a manifold grid needs a 2-D latent, this one has {z.shape[1]} dimensions")
        axes = [np.quantile(z[:, 0], q), np.quantile(z[:, 1], q)]
    z1, z2 = np.meshgrid(axes[0], axes[1][::-1])
    return np.stack([z1.ravel(), z2.ravel()], 1)


# ---------------------------------------------------------------------------------------------
# codes as features


def nearest(z_ref: np.ndarray, z_query, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances), each (B, k): the k reference codes nearest (Euclidean) to each query code."""
    from sklearn.neighbors import NearestNeighbors

    z_query = np.atleast_2d(np.asarray(z_query))
    nn = NearestNeighbors(n_neighbors=min(k, len(z_ref))).fit(z_ref)
    dist, idx = nn.kneighbors(z_query)
    return idx, dist


def class_votes(y_ref: np.ndarray, neighbour_idx: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, num_classes) fraction of each query's neighbours in each class: the kNN class prediction."""
    y = np.asarray(y_ref)[neighbour_idx]  # (B, k)
    return np.stack([(y == c).mean(1) for c in range(num_classes)], 1)


def percentile_of(value: float, reference: np.ndarray) -> float:
    """The percentage of `reference` values below `value` (where an anomaly score sits in a distribution)."""
    reference = np.asarray(reference)
    return float(100.0 * (reference < value).mean()) if len(reference) else float("nan")


# ---------------------------------------------------------------------------------------------
# explorer

MAX_SLIDERS = 8  # the explorer's sliders: every latent axis up to this latent_dim, else this many directions


def slider_directions(z: np.ndarray, max_sliders: int = MAX_SLIDERS) -> Directions:
    """The directions the explorer's sliders move along, for codes z (N, d).

    d ≤ max_sliders: the latent axes themselves (one slider per dimension of z);
    larger latents: the max_sliders principal directions of the codes, most varying first,
    since a slider per axis of a 32-d code would be 32 sliders that each change little.
    """
    z = np.asarray(z)
    return axis_directions(z) if z.shape[1] <= max_sliders else principal_directions(z, max_sliders)


def move(directions: Directions, z0, coords) -> np.ndarray:
    """z = z₀ + Σᵢ cᵢ σᵢ uᵢ: a start code z₀ (d,) moved by slider positions c (k,) in standard deviations.

    Unlike Directions.to_code, the start need not be the mean: a test image's code keeps the part of
    it outside the k directions, so with every slider at 0 the explorer shows that image's x̂.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape != directions.std.shape:
        raise ValueError(f"expected {len(directions.std)} slider positions, got {coords.shape}")
    return np.asarray(z0, dtype=np.float64) + (coords * directions.std) @ directions.components  # (d,)


def arithmetic(za, zb, zc) -> np.ndarray:
    """z = z_a − z_b + z_c: '? is to c as a is to b' in latent space (an analogy by vector offsets)."""
    return np.asarray(za, dtype=np.float64) - np.asarray(zb, dtype=np.float64) + np.asarray(zc, dtype=np.float64)


def interpolation_images(loaded: LoadedRun, z0, z1, steps: int = 10, method: str = "linear", y=None) -> np.ndarray:
    """Images (steps, 28, 28) decoded along the path from z0 to z1 (see `interpolate`)."""
    return decode(loaded, interpolate(z0, z1, steps, method), y)


def sample_images(loaded: LoadedRun, n: int, seed: int = 0, y=None) -> np.ndarray:
    """n images (n, 28, 28) from the model's sampler with a seeded generator (the same seed, the same grid).

    A VAE draws z ~ N(0, I), its prior (`model.prior_samples`); other autoencoders draw from a Gaussian
    fitted to their training codes, N(mean, diag(std²)), which is a fit after the fact, not a prior.
    A conditional model cycles through the classes unless y is given.
    """
    generator = torch.Generator().manual_seed(int(seed))
    labels = labels_for(loaded, y, n) if y is not None else None
    with torch.inference_mode():
        return loaded.model.sample(n, labels, generator=generator)[:, 0].numpy()


def manifold_images(loaded: LoadedRun, n: int = 15, z: np.ndarray | None = None, y=None) -> np.ndarray:
    """Images (n², 28, 28) decoded on the n×n grid of `manifold_codes`, row by row (2-D latents only).

    A VAE's grid sits at Gaussian quantiles of its prior; other models' grids span their codes z (N, 2).
    """
    if loaded.latent_dim != 2:
        raise ValueError(f"a manifold grid needs latent_dim 2, run {loaded.run_id} has {loaded.latent_dim}")
    prior = bool(getattr(loaded.model, "prior_samples", False))
    return decode(loaded, manifold_codes(n, None if prior else z, prior=prior), y)


def grid_png(x, ncol: int, scale: int = 1, pad: int = 2) -> bytes:
    """Images (B, 28, 28) in [0, 1] tiled `ncol` to a row → PNG bytes (a sample grid, a manifold)."""
    from engine.images import grid, png_bytes

    t = torch.as_tensor(np.asarray(x), dtype=torch.float32)[:, None]  # (B, 1, 28, 28)
    return png_bytes(grid(t, ncol=ncol, pad=pad, scale=scale))
