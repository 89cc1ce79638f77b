"""The Noise lab's engine (engine/lab/noise_lab.py): corruption, PSNR, the slots' run filters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.data.noise import corrupt
from engine.eval.metrics import per_image_psnr
from engine.lab import noise_lab
from engine.runs import is_denoising, is_plain


def identity(x):
    return x


# -- PSNR and the Noise lab ------------------------------------------------------------------------


def test_psnr_matches_torchmetrics():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 28, 28, generator=g)
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert noise_lab.psnr(x_hat.numpy(), x.numpy()) == pytest.approx(per_image_psnr(x_hat, x).item(), abs=1e-4)
    assert noise_lab.psnr(x.numpy(), x.numpy()) == math.inf


def test_denoise_scores_against_the_clean_image(mnist):
    x = mnist.x_test[3, 0]
    out = noise_lab.denoise({"identity": identity, "blank": lambda t: torch.zeros_like(t), "missing": None},
                          x, "gaussian", 0.3, seed=7)
    expected_noisy = corrupt(x[None, None], "gaussian", 0.3, seed=7)[0, 0].numpy()
    np.testing.assert_array_equal(out.x_noisy, expected_noisy)  # the same seeded corruption as training's
    np.testing.assert_array_equal(out.x, x.numpy())
    assert set(out.outputs) == {"identity", "blank"}  # None: skipped
    assert out.psnr["identity"] == pytest.approx(out.noisy_psnr)
    assert out.psnr["blank"] == pytest.approx(10 * math.log10(1 / float((x ** 2).mean())))
    assert noise_lab.denoise({"identity": identity}, x, "masking", 0.0).noisy_psnr == math.inf
    again = noise_lab.denoise({}, x, "gaussian", 0.3, seed=8)
    assert not np.array_equal(again.x_noisy, out.x_noisy)  # another seed, another corruption


@pytest.mark.parametrize("kind", noise_lab.NOISE_KINDS)
def test_psnr_table_identity_is_the_noisy_input_and_falls_with_level(mnist, kind):
    x = mnist.x_test[torch.as_tensor(noise_lab.chart_indices(len(mnist.x_test), 200))]
    levels = noise_lab.noise_levels(kind)
    assert len(levels) == noise_lab.CHART_LEVELS and levels[0] > 0 and levels[-1] == noise_lab.LEVEL_MAX[kind]
    table = noise_lab.psnr_table({"identity": identity, "blank": lambda t: torch.zeros_like(t)}, x, kind, levels)
    np.testing.assert_allclose(table["identity"], table[noise_lab.NOISY], rtol=1e-12)
    # an output that ignores its input scores the same at every level: PSNR(x, 0)
    np.testing.assert_allclose(table["blank"], noise_lab.psnr(np.zeros_like(x.numpy()), x.numpy()), rtol=1e-9)
    assert np.all(np.diff(table[noise_lab.NOISY]) < 0), table[noise_lab.NOISY]  # more noise, lower PSNR
    # the noisy input's PSNR at the first level, computed here from the definition
    noisy = corrupt(x, kind, float(levels[0]), seed=0)
    mse = float((noisy - x).pow(2).mean())
    assert table[noise_lab.NOISY][0] == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)


def test_a_denoiser_beats_the_noisy_input_in_the_table(mnist, pca8):
    """PCA (a projection onto the digits' subspace) removes most Gaussian noise: higher PSNR than x̃."""
    x = mnist.x_test[:100]
    table = noise_lab.psnr_table({"pca": pca8}, x, "gaussian", [0.5])
    assert table["pca"][0] > table[noise_lab.NOISY][0] + 3


def test_chart_indices_are_fixed_and_distinct():
    a, b = noise_lab.chart_indices(1000), noise_lab.chart_indices(1000)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 200 and a.max() < 1000
    assert len(noise_lab.chart_indices(50)) == 50
    with pytest.raises(ValueError, match="unknown noise"):
        noise_lab.noise_levels("fog")


def test_which_runs_each_slot_takes():
    assert "cvae" not in noise_lab.unconditional_models() and {"ae", "denoising_ae", "pca"} <= set(
        noise_lab.unconditional_models())
    assert is_denoising({"model": "denoising_ae", "model_config": {"noise": "gaussian"}})  # its config's default
    assert is_denoising({"model": "conv_ae", "model_config": {"noise": "masking"}})
    assert not is_denoising({"model": "conv_ae", "model_config": {"noise": "none"}})
    assert is_plain({"model": "ae", "model_config": {"noise": "none"}, "train": {}})
    assert not is_plain({"model": "ae", "model_config": {}, "train": {"classes": [0]}})
