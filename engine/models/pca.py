"""PCA: the one implementation, and the non-neural baseline behind the autoencoders' interface.

    z = Wᵀ(x − m),  x̂ = W z + m,  W (D, k) the top-k principal directions of the data

`principal_components(x, k)` is the only PCA in Latent Lab: the PCA model fits images with it, the
PCA-vs-autoencoder curve truncates one fit, the latent map projects codes onto two components,
and the explorer's sliders move along the codes' components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.base import IMAGE_PIXELS, IMAGE_SHAPE, Capabilities, ModelConfig, ReconstructionModel, StepOutput
from engine.models.settings import setting

FORMULA = r"\min_{W^\top W = I} \lVert X - X W W^\top \rVert_F^2 \quad \text{(closed form: no training loop)}"


@dataclass(frozen=True)
class Components:
    """k principal directions of N points in D dimensions (float64, numpy)."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D), orthonormal rows, largest variance first
    variance: np.ndarray  # (k,) the variance along each, with the unbiased 1/(N − 1)
    explained_ratio: np.ndarray  # (k,) each one's share of the total variance

    def project(self, x) -> np.ndarray:
        """Coordinates (M, k) of points x (M, D) along the components: Wᵀ(x − m)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T

    def truncate(self, k: int) -> Components:
        """The first k components: the same as a fit with k (the top-k of a fit are nested)."""
        if not 1 <= k <= len(self.components):
            raise ValueError(f"cannot keep {k} of {len(self.components)} principal components")
        return Components(self.mean, self.components[:k], self.variance[:k], self.explained_ratio[:k])


def principal_components(x, k: int) -> Components:
    """The top-k principal directions of points x (N, D), numpy or torch.

    With more points than dimensions the eigenvectors of the D × D covariance Xᶜᵀ Xᶜ / (N − 1)
    (exact, and much cheaper than an SVD of the N × D data for images); otherwise the SVD of the
    centred data. Signs are fixed so that each direction's largest weight is positive: two fits of
    the same data agree exactly, and a map drawn from them does not flip.
    """
    x = (x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"PCA needs points of shape (N, D), got {x.shape}")
    n, d = x.shape
    if not 1 <= k <= min(n, d):
        raise ValueError(f"PCA with {k} components needs 1 ≤ k ≤ {min(n, d)} (the number of points and of "
                         f"dimensions, {n} and {d})")
    mean = x.mean(0)
    centred = x - mean
    if n > d:
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / max(n - 1, 1))  # ascending
        order = np.argsort(eigenvalues)[::-1]
        total = float(np.clip(eigenvalues, 0, None).sum())
        variance, components = np.clip(eigenvalues[order], 0, None), eigenvectors[:, order].T
    else:
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        variance, components = s ** 2 / max(n - 1, 1), vt
        total = float(variance.sum())
    components = components[:k]
    signs = np.where(components[np.arange(k), np.abs(components).argmax(1)] < 0, -1.0, 1.0)
    return Components(mean, components * signs[:, None], variance[:k],
                      variance[:k] / total if total > 0 else np.zeros(k))


# ---------------------------------------------------------------------------------------------
# the model


@dataclass
class PCAConfig(ModelConfig):
    latent_dim: int = setting(32, "number of principal components kept (the code z), at most the 784 pixels",
                              label="Latent size", low=1, high=IMAGE_PIXELS)


class PCA(ReconstructionModel):
    label = "PCA"
    config_cls = PCAConfig
    capabilities = Capabilities(encodes=True, generates=True, linear=True, closed_form=True)
    formula = FORMULA
    description = "PCA baseline: the best linear k-dimensional reconstruction, in closed form."

    def __init__(self, config: PCAConfig):
        super().__init__(config)
        self.register_buffer("mean", torch.zeros(IMAGE_PIXELS))
        self.register_buffer("components", torch.zeros(config.latent_dim, IMAGE_PIXELS))  # rows: directions
        self.register_buffer("explained_variance_ratio", torch.zeros(config.latent_dim))

    @torch.no_grad()  # not inference_mode: the buffers must stay usable outside it
    def fit(self, x: torch.Tensor, seed: int = 0) -> PCA:
        """Fit on images x (N, 1, 28, 28), in closed form (seed is unused: PCA is deterministic)."""
        k = self.config.latent_dim
        if k > min(len(x), IMAGE_PIXELS):
            raise ValueError(f"PCA with latent_dim={k} needs at least {k} training images, got {len(x)}")
        return self.set_components(principal_components(x.flatten(1), k), x)

    @torch.no_grad()
    def set_components(self, pc: Components, x: torch.Tensor | None = None) -> PCA:
        """Use already computed components (e.g. the first k of a larger fit); x: the images to fit sample() on."""
        dev = self.mean.device
        self.mean.copy_(torch.from_numpy(pc.mean.astype(np.float32)).to(dev))
        self.components.copy_(torch.from_numpy(pc.components.astype(np.float32)).to(dev))
        self.explained_variance_ratio.copy_(torch.from_numpy(pc.explained_ratio.astype(np.float32)).to(dev))
        if x is not None:
            self.fit_latent_stats(self.encode(x.to(dev)))
        return self

    @torch.no_grad()
    def truncate(self, k: int) -> PCA:
        """A PCA with this one's first k directions: the same as fitting k (a fit's top k are its first k)."""
        if not 1 <= k <= self.config.latent_dim:
            raise ValueError(f"cannot keep {k} of a PCA with {self.config.latent_dim} directions")
        out = PCA(PCAConfig(latent_dim=k)).to(self.mean.device)
        out.mean.copy_(self.mean)
        out.components.copy_(self.components[:k])
        out.explained_variance_ratio.copy_(self.explained_variance_ratio[:k])
        out.fit_latent_stats_from(self)
        return out.eval()

    @torch.no_grad()
    def fit_latent_stats_from(self, larger: PCA) -> None:
        """The code spread of the first k directions is that of the larger fit's first k coordinates."""
        k = self.config.latent_dim
        self.latent_mean.copy_(larger.latent_mean[:k])
        self.latent_std.copy_(larger.latent_std[:k])

    def encode(self, x, y=None):
        return (x.flatten(1) - self.mean) @ self.components.T  # (B, k)

    def decode_logits(self, z, y=None):
        return (z @ self.components + self.mean).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28), unclipped

    def to_image(self, logits):
        return logits.clamp(0.0, 1.0)

    def decoder_basis(self) -> torch.Tensor:
        """W (784, k): x̂ lies in the span of PCA's directions (plus the mean)."""
        return self.components.T

    def loss_step(self, x, y=None, generator=None) -> StepOutput:
        z = self.encode(x)
        x_hat = self.decode(z)
        loss = F.mse_loss(x_hat, x)
        return StepOutput(loss=loss, x_hat=x_hat, z=z, logs={"loss": loss.detach(), "mse": loss.detach()})
