"""Evaluation scores against their definitions and against scikit-learn."""

from __future__ import annotations

import math

import pytest
import torch

from engine.data import load_dataset
from engine.eval.metrics import evaluate, knn_accuracy, pca_baseline_mse, per_image_bce, per_image_psnr
from engine.models import build_model
from engine.models.pca import PCA, PCAConfig


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist-5k")


def test_psnr_and_bce_follow_their_formulas():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=g).round()
    x_hat = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0.01, 0.99)
    mse = (x_hat - x).pow(2).flatten(1).mean(1)
    assert torch.allclose(per_image_psnr(x_hat, x), 10 * torch.log10(1 / mse), atol=1e-4)
    bce = -(x * x_hat.log() + (1 - x) * (1 - x_hat).log()).flatten(1).sum(1)
    assert torch.allclose(per_image_bce(x_hat, x), bce, rtol=1e-4)
    assert per_image_psnr(x, x).max() == 100.0  # a perfect reconstruction is capped, not infinite


def test_pca_model_matches_the_pca_baseline_and_scikit_learn(mnist):
    from sklearn.decomposition import PCA as SkPCA

    pca = PCA(PCAConfig(latent_dim=16)).fit(mnist.x_train)
    scores = evaluate(pca, mnist)
    assert scores["mse"] == pytest.approx(scores["pca_mse"]) and scores["mse_vs_pca"] == pytest.approx(1)
    sk = SkPCA(16).fit(mnist.x_train.flatten(1).numpy())
    x_test = mnist.x_test.flatten(1).numpy()
    recon = sk.inverse_transform(sk.transform(x_test)).clip(0, 1)
    assert scores["mse"] == pytest.approx(((recon - x_test) ** 2).mean(), rel=1e-3)
    assert pca_baseline_mse(mnist, 16) == pytest.approx(scores["mse"])
    assert pca_baseline_mse(mnist, 32) < pca_baseline_mse(mnist, 16)  # more components, less error
    assert 0.5 < scores["knn_accuracy"] <= 1


def test_knn_accuracy_is_scikit_learns():
    g = torch.Generator().manual_seed(0)
    z_train, z_test = torch.randn(200, 3, generator=g), torch.randn(50, 3, generator=g)
    y_train, y_test = (z_train[:, 0] > 0).long(), (z_test[:, 0] > 0).long()
    assert knn_accuracy(z_train, y_train, z_test, y_test) > 0.85  # the label is readable from z
    shuffled = y_train[torch.randperm(200, generator=g)]
    assert knn_accuracy(z_train, shuffled, z_test, y_test) < 0.75


def test_vae_scores_include_elbo_and_kl(mnist):
    torch.manual_seed(0)
    vae = build_model("vae", latent_dim=4, hidden=(32,))
    scores = evaluate(vae, mnist, baseline=False)
    assert scores["elbo"] < 0 and scores["kl"] >= 0 and math.isfinite(scores["elbo"])
    assert -scores["elbo"] >= scores["kl"]
    assert "pca_mse" not in scores
