"""The Latent explorer's engine (engine/lab/explorer.py): directions to move along, the manifold grid."""

from __future__ import annotations

import numpy as np
import pytest

from engine.lab.explorer import axis_directions, manifold_codes, principal_directions


def test_principal_directions_match_an_svd_reference():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 5)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.1]) @ np.linalg.qr(rng.normal(size=(5, 5)))[0]
    d = principal_directions(z, k=3)
    centred = z - z.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(3):
        assert abs(d.components[i] @ vt[i]) == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(d.std, s[:3] / np.sqrt(len(z) - 1), rtol=1e-8)
    assert d.explained[0] > d.explained[1] > d.explained[2]
    np.testing.assert_allclose(d.to_code(np.zeros(3)), z.mean(0))
    coords = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(d.to_coords(d.to_code(coords)), coords, atol=1e-10)


def test_axis_directions_scale_each_axis_by_its_spread():
    z = np.random.default_rng(1).normal(size=(1000, 3)) * [1.0, 2.0, 4.0]
    d = axis_directions(z)
    code = d.to_code([0, 0, 1])
    assert code[2] - z.mean(0)[2] == pytest.approx(z[:, 2].std(), rel=1e-6)
    np.testing.assert_allclose(code[:2], z.mean(0)[:2])


def test_manifold_codes_follow_the_prior_quantiles():
    grid = manifold_codes(5, prior=True)
    assert grid.shape == (25, 2)
    assert grid[0, 1] > 0 > grid[-1, 1]  # top row = highest z2
    assert grid[0, 0] < 0 < grid[4, 0]
    assert grid[12] == pytest.approx([0.0, 0.0], abs=1e-12)  # the centre of N(0, 1)
    z = np.random.default_rng(0).uniform(10, 20, size=(400, 2))
    inside = manifold_codes(4, z)
    assert (inside >= 10).all() and (inside <= 20).all()
    with pytest.raises(ValueError, match="2-D"):
        manifold_codes(3, np.zeros((10, 3)))
