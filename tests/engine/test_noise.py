"""Corruptions: seeded, in range, and with the statistics their names promise."""

import pytest
import torch

from engine.data.noise import KINDS, corrupt

GRAY = torch.full((64, 1, 28, 28), 0.5)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "none"])
def test_seeded_in_range_and_input_untouched(kind):
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    before = x.clone()
    a = corrupt(x, kind, 0.3, seed=1)
    b = corrupt(x, kind, 0.3, generator=torch.Generator().manual_seed(1))
    c = corrupt(x, kind, 0.3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(x, before)
    assert torch.equal(corrupt(x, kind, 0.0, seed=1), x)


def test_gaussian_has_the_requested_sigma():
    noisy = corrupt(GRAY, "gaussian", 0.1, seed=0)  # σ small enough that clipping is rare
    assert (noisy - GRAY).std().item() == pytest.approx(0.1, rel=0.03)
    assert (noisy - GRAY).mean().item() == pytest.approx(0.0, abs=0.005)


def test_salt_and_pepper_flips_p_half_white_half_black():
    noisy = corrupt(GRAY, "salt_pepper", 0.2, seed=0)
    white, black = (noisy == 1).float().mean().item(), (noisy == 0).float().mean().item()
    assert white + black == pytest.approx(0.2, abs=0.01)
    assert white == pytest.approx(black, abs=0.01)


def test_masking_zeroes_a_fraction_p():
    noisy = corrupt(GRAY, "masking", 0.3, seed=0)
    assert (noisy == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(noisy[noisy != 0], GRAY[noisy != 0])


def test_block_occludes_one_square_per_image():
    ones = torch.ones(32, 1, 28, 28)
    noisy = corrupt(ones, "block", 0.25, seed=0)  # side ⌈0.25·28⌉ = 7
    zeros = (noisy == 0).flatten(1).sum(1)
    assert (zeros == 49).all()
    corners = {tuple((noisy[i, 0] == 0).nonzero()[0].tolist()) for i in range(32)}
    assert len(corners) > 10  # the square moves from image to image
    assert (corrupt(ones, "block", 1.0, seed=0) == 0).all()


def test_mixed_gives_each_image_one_kind_at_a_level_within_its_range():
    """The Noise lab's denoiser trains on "mixed" (issue 10): every kind appears, each at its own range."""
    ones = torch.ones(400, 1, 28, 28)
    noisy = corrupt(ones, "mixed", 1.0, seed=0)
    black = (noisy == 0).flatten(1).sum(1)
    grey = ((noisy > 0) & (noisy < 1)).flatten(1).any(1)  # only gaussian noise leaves values in between
    side = black.float().sqrt()
    square = torch.tensor([bool(((noisy[i, 0] == 0).nonzero().amax(0) - (noisy[i, 0] == 0).nonzero().amin(0)
                                 + 1).prod() == black[i]) if black[i] else False for i in range(400)])
    assert grey.sum() > 60  # about a quarter of the images: gaussian
    assert (square & (black > 4)).sum() > 60  # occluding squares (block), no bigger than 0.6 · 28 ≈ 17 px a side
    assert side[square & (black > 4)].max() <= 17
    assert black.max() <= 0.9 * 784 * 1.1  # masking stops at p = 0.9 (with sampling slack)
    assert torch.equal(noisy, corrupt(ones, "mixed", 1.0, seed=0))
    assert not torch.equal(noisy, corrupt(ones, "mixed", 1.0, seed=1))
    gentle = corrupt(ones, "mixed", 0.1, seed=0)
    assert (gentle == 0).flatten(1).sum(1).max() <= 0.09 * 784 * 1.5  # level 0.1: a tenth of each range at most


@pytest.mark.parametrize("kind, level, match", [("pink", 0.1, "unknown noise"), ("gaussian", -1, "≥ 0"),
                                                ("masking", 1.5, "between 0 and 1"), ("mixed", 2, "between 0 and 1"),
                                                ("gaussian", float("nan"), "finite")])
def test_bad_arguments_raise(kind, level, match):
    with pytest.raises(ValueError, match=match):
        corrupt(GRAY, kind, level)
