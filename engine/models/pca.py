"""PCA as the non-neural baseline, behind the autoencoders' encode/decode interface.

    z = Wᵀ(x − m),  x̂ = W z + m,  W (784, k) the top-k principal directions of the train split.

Fitted in closed form by scikit-learn; the directions live in buffers so a fitted PCA saves and
loads like any other model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.base import IMAGE_PIXELS, IMAGE_SHAPE, ModelConfig, ReconstructionModel, StepOutput


@dataclass
class PCAConfig(ModelConfig):
    def validate(self) -> None:
        if not 1 <= self.latent_dim <= IMAGE_PIXELS:
            raise ValueError(f"latent_dim must be between 1 and {IMAGE_PIXELS} for PCA, not {self.latent_dim}")


class PCA(ReconstructionModel):
    config_cls = PCAConfig
    trainable = False
    description = "PCA baseline: the best linear k-dimensional reconstruction, in closed form."

    def __init__(self, config: PCAConfig):
        super().__init__(config)
        self.register_buffer("mean", torch.zeros(IMAGE_PIXELS))
        self.register_buffer("components", torch.zeros(config.latent_dim, IMAGE_PIXELS))  # rows: directions
        self.register_buffer("explained_variance_ratio", torch.zeros(config.latent_dim))

    def fit(self, x: torch.Tensor, seed: int = 0) -> "PCA":
        """Fit on images x (N, 1, 28, 28) with scikit-learn."""
        from sklearn.decomposition import PCA as SkPCA

        k = self.config.latent_dim
        data = x.flatten(1).cpu().double().numpy()
        if k > min(data.shape):
            raise ValueError(f"PCA with latent_dim={k} needs at least {k} training images, got {data.shape[0]}")
        # With many more images than pixels, the eigen-decomposition of the 784×784 covariance is
        # exact and several times faster than an SVD of the whole data matrix.
        solver = "covariance_eigh" if data.shape[0] > 2 * data.shape[1] else "full"
        pca = SkPCA(n_components=k, svd_solver=solver, random_state=seed).fit(data)
        dev = self.mean.device
        self.mean.copy_(torch.from_numpy(pca.mean_.astype(np.float32)).to(dev))
        self.components.copy_(torch.from_numpy(pca.components_.astype(np.float32)).to(dev))
        self.explained_variance_ratio.copy_(torch.from_numpy(pca.explained_variance_ratio_.astype(np.float32)))
        with torch.no_grad():
            self.fit_latent_stats(self.encode(x.to(dev)))
        return self

    def encode(self, x, y=None):
        return (x.flatten(1) - self.mean) @ self.components.T  # (B, k)

    def decode_logits(self, z, y=None):
        return (z @ self.components + self.mean).view(-1, *IMAGE_SHAPE)  # (B, 1, 28, 28), unclipped

    def to_image(self, logits):
        return logits.clamp(0.0, 1.0)

    def loss_step(self, x, y=None, generator=None) -> StepOutput:
        z = self.encode(x)
        x_hat = self.decode(z)
        loss = F.mse_loss(x_hat, x)
        return StepOutput(loss=loss, x_hat=x_hat, z=z, logs={"loss": loss.detach(), "mse": loss.detach()})
