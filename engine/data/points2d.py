"""2-D point distributions, the data of the GAN playground: a ring of Gaussians, a mixture, a spiral, or
points the user placed, all inside the square [−LIM, LIM]²; and how close two point sets are.

    energy distance   2·E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖   (0 exactly when the distributions match)
    modes covered     mixture components that got a fair share of the points (fewer: mode collapse)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

LIM = 2.0  # every point lives in the square [−LIM, LIM]²: the plot range, and where user points are clipped
DISTRIBUTIONS = ("ring", "gaussians", "spiral", "points")
MIN_POINTS = 5  # fewer user points than this are not a distribution worth learning
MAX_POINTS = 500


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
# the user's points in a link


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

