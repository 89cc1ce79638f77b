"""The Latent explorer's engine: directions to move a code along, paths, arithmetic, samples, the manifold.

    z = z₀ + Σᵢ cᵢ σᵢ uᵢ     slider positions cᵢ (in standard deviations σᵢ) along directions uᵢ
    z_a − z_b + z_c           latent arithmetic
    an n × n grid of 2-D codes, decoded (the manifold of a 2-D latent)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.eval.codes import decode, interpolate, labels_for
from engine.models import is_model
from engine.models.pca import principal_components
from engine.runs.loaded import LoadedRun

MAX_SLIDERS = 8  # the explorer's sliders: every latent axis up to this latent_dim, else this many directions
LIMIT = 3.0  # a slider's range: ± this many standard deviations of the codes along its direction
STEP = 0.1  # a slider's step, in standard deviations
TICKS = round(LIMIT / STEP)  # a slider's positions are the ticks −TICKS … TICKS, position = tick · STEP


def to_ticks(coords) -> list[int]:
    """Slider positions in σ → whole ticks within ±TICKS (the nearest position a slider has)."""
    return [max(-TICKS, min(TICKS, round(float(c) / STEP))) for c in coords]


def from_ticks(ticks) -> list[float]:
    """Ticks → slider positions in σ, rounded to the step's decimals (0.5, not 0.5000000001)."""
    return [round(t * STEP, 1) for t in ticks]


def fills_every_panel(config: dict) -> float:
    """How much of the explorer a run's model fills (its preference when the page opens): 2 for a model with a
    prior and a 2-number code (samples from N(0, I) and the manifold grid), 1 for either, 0 for neither."""
    latent = (config.get("model_config") or {}).get("latent_dim")
    return float(is_model(config.get("model"), prior=True)) + float(latent == 2)


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
    z = np.asarray(z, dtype=np.float64)
    pc = principal_components(z, min(k or z.shape[1], z.shape[1], len(z)))
    return Directions(pc.mean, pc.components, np.sqrt(np.maximum(pc.variance, 1e-12)), pc.explained_ratio)


def axis_directions(z: np.ndarray) -> Directions:
    """The latent axes themselves (one slider per dimension), scaled by the codes' spread."""
    z = np.asarray(z, dtype=np.float64)
    var = z.var(0)
    return Directions(z.mean(0), np.eye(z.shape[1]), np.sqrt(np.maximum(var, 1e-12)), var / max(var.sum(), 1e-12))



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


def slider_strip(loaded: LoadedRun, directions: Directions, z0, coords, i: int, y=None) -> np.ndarray:
    """What slider i shows at each of its positions: images (2·TICKS + 1, H, W) decoded from
    move(directions, z0, coords) with coords[i] set to tick · STEP for every tick −TICKS … TICKS, the other
    sliders where `coords` has them. One batched decoder pass, so that the page can hand the browser the
    whole strip and a slider answers there, at once, for as long as only that slider moves.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.shape != directions.std.shape or not 0 <= i < len(coords):
        raise ValueError(f"expected {len(directions.std)} slider positions and a slider index below that")
    grid = np.repeat(coords[None], 2 * TICKS + 1, axis=0)
    grid[:, i] = np.arange(-TICKS, TICKS + 1) * STEP
    return decode(loaded, np.stack([move(directions, z0, row) for row in grid]), y)


def arithmetic(za, zb, zc) -> np.ndarray:
    """z = z_a − z_b + z_c: '? is to c as a is to b' in latent space (an analogy by vector offsets)."""
    return np.asarray(za, dtype=np.float64) - np.asarray(zb, dtype=np.float64) + np.asarray(zc, dtype=np.float64)


def interpolation_images(loaded: LoadedRun, z0, z1, steps: int = 10, method: str = "linear", y=None) -> np.ndarray:
    """Images (steps, 28, 28) decoded along the path from z0 to z1 (see `interpolate`)."""
    return decode(loaded, interpolate(z0, z1, steps, method), y)


def sample_images(loaded: LoadedRun, n: int, seed: int = 0, y=None) -> np.ndarray:
    """n images (n, 28, 28) from the model's sampler with a seeded generator (the same seed, the same grid).

    A VAE draws z ~ N(0, I), its prior (capabilities.prior); other autoencoders draw from a Gaussian
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
    prior = loaded.capabilities.prior
    return decode(loaded, manifold_codes(n, None if prior else z, prior=prior), y)

