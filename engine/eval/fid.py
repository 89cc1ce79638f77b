"""Scores of generated images that need no classifier of their own: given features and class
probabilities (the judge's, engine.eval.judge), how far two image sets are apart and how varied one is.

    Fréchet distance  ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½)       (Heusel et al. 2017's FID, on other features)
    inception score   exp E_x KL(p(y|x) ‖ p(y))                   (Salimans et al. 2016)
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

FID_EPS = 1e-6  # added to the covariances' diagonals when their product's square root is ill-posed


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½): the Fréchet (2-Wasserstein²) distance of two Gaussians.

    (Σ1Σ2)^½ has real eigenvalues (Σ1Σ2 is similar to the PSD Σ1^½Σ2Σ1^½), so imaginary parts of
    scipy's result are round-off and are dropped. When Σ1Σ2 is singular (fewer images than
    features, dead features) its square root is ill-posed: ε·I is added to both covariances.
    """
    from scipy.linalg import LinAlgWarning, sqrtm

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"frechet_distance needs two means of shape (d,) and two (d, d) covariances, got "
                         f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}")

    def root(a, b):
        with warnings.catch_warnings():
            warnings.simplefilter("error", LinAlgWarning)
            try:
                r = sqrtm(a @ b)
            except LinAlgWarning:  # singular: the result may be inaccurate
                return None
        return r if np.isfinite(r).all() else None

    covmean = root(cov1, cov2)
    if covmean is None:
        offset = FID_EPS * np.eye(d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LinAlgWarning)
            covmean = sqrtm((cov1 + offset) @ (cov2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean)
    return max(float(fd), 0.0)  # round-off can give −1e-12 for identical Gaussians


def inception_score(probs) -> float:
    """exp E_x KL(p(y|x) ‖ p(y)) with p(y) = E_x p(y|x) (Salimans et al. 2016). probs: (N, K).

    1 when every image gets the same prediction; K when each is one class for sure and the
    classes are equally used.
    """
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"inception_score needs probabilities of shape (N, K), got {tuple(p.shape)}")
    p_y = p.mean(0, keepdim=True)  # (1, K)
    kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, p_y)).sum(1)  # (N,), 0·log 0 = 0
    return float(kl.mean().exp())


def gaussian(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    f = features.double().cpu().numpy()  # (N, F)
    return f.mean(0), np.cov(f, rowvar=False)  # (F,), (F, F)


def check_images(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"the judge takes images of shape (N, 1, 28, 28), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"the judge takes float images in [0, 1], got {x.dtype}")
    if len(x) and not bool(torch.isfinite(x).all()):
        raise ValueError("the images hold NaN or infinite pixels; the generator diverged")
    if len(x) and (float(x.min()) < -1e-4 or float(x.max()) > 1 + 1e-4):
        raise ValueError(f"the judge takes pixels in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]; "
                         "map tanh outputs with (x + 1) / 2")
    return x
