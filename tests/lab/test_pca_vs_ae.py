"""The PCA-vs-autoencoder page's engine (engine/lab/pca_vs_ae.py): the one PCA's curve, principal angles, the sweep."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.eval.metrics import pca_mse
from engine.lab import pca_vs_ae
from engine.models import build_model


# -- PCA against autoencoders ------------------------------------------------------------------------


def test_pca_curve_falls_with_k_and_matches_the_pca_baseline(mnist):
    dims = (2, 4, 8, 16, 32)
    curve = pca_vs_ae.pca_curve(mnist, dims)
    assert list(curve) == list(dims)
    values = [curve[k] for k in dims]
    assert all(b < a for a, b in zip(values, values[1:])), values
    assert curve[8] == pytest.approx(pca_mse(mnist, 8), rel=1e-5)  # one fit at k=32, truncated


def test_truncated_pca_is_the_pca_fitted_with_fewer_directions(mnist, pca8):
    small = pca8.truncate(3)
    direct = pca_vs_ae.fit_pca(mnist, 3)
    x = mnist.x_test[:50]
    # directions agree up to sign: compare projections, which do not depend on it
    torch.testing.assert_close(small(x), direct(x), atol=1e-4, rtol=0)
    assert pca_vs_ae.pca_curve(mnist, (3,), pca=pca8)[3] == pytest.approx(float((direct(mnist.x_test) - mnist.x_test)
                                                                                .pow(2).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="cannot keep"):
        pca8.truncate(9)


def _orthonormal(n, k, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q


def test_principal_angles_of_known_subspaces():
    a = np.random.default_rng(1).standard_normal((50, 5))
    np.testing.assert_allclose(pca_vs_ae.principal_angles(a, a), 0, atol=1e-7)
    rotation = _orthonormal(5, 5, seed=2)  # a random rotation of the basis inside the same span
    np.testing.assert_allclose(pca_vs_ae.principal_angles(a, a @ rotation), 0, atol=1e-7)
    mixing = np.random.default_rng(3).standard_normal((5, 5))  # any invertible mix spans the same space
    np.testing.assert_allclose(pca_vs_ae.principal_angles(a, a @ mixing), 0, atol=1e-6)
    q = _orthonormal(50, 10, seed=4)
    np.testing.assert_allclose(pca_vs_ae.principal_angles(q[:, :5], q[:, 5:]), np.pi / 2, atol=1e-7)
    # e1 shared, e2 tilted by t towards e3: angles 0 and t
    t = 0.3
    e = np.eye(50)
    b = np.stack([e[0], math.cos(t) * e[1] + math.sin(t) * e[2]], 1)
    np.testing.assert_allclose(pca_vs_ae.principal_angles(e[:, :2], b), [0, t], atol=1e-7)


def test_principal_angles_follow_the_singular_value_formula():
    a, b = np.random.default_rng(5).standard_normal((2, 40, 6))
    qa, qb = np.linalg.qr(a)[0], np.linalg.qr(b)[0]
    cos = np.linalg.svd(qa.T @ qb, compute_uv=False)  # cos θᵢ = σᵢ(Q_Aᵀ Q_B), largest first
    np.testing.assert_allclose(np.cos(pca_vs_ae.principal_angles(a, b)), cos, atol=1e-7)
    with pytest.raises(ValueError, match="same n"):
        pca_vs_ae.principal_angles(a, b[:30])


def test_axis_overlap_and_bases(pca8):
    basis = pca_vs_ae.basis(pca8)
    assert basis.shape == (784, 8)
    assert pca_vs_ae.axis_overlap(basis) < 1e-5  # PCA's axes are orthogonal
    twin = np.concatenate([basis[:, :1], basis[:, :1]], 1)
    assert pca_vs_ae.axis_overlap(twin) == pytest.approx(1.0)
    linear = build_model("linear_ae", latent_dim=6)
    w = pca_vs_ae.basis(linear)
    assert w.shape == (784, 6)
    np.testing.assert_array_equal(w, linear.decoder.weight.detach().double().numpy())
    with pytest.raises(ValueError, match="linear_ae"):
        pca_vs_ae.basis(build_model("ae", latent_dim=6))
    # chance level: a random 8-d subspace of R^784 hardly meets PCA's
    assert np.cos(pca_vs_ae.principal_angles(basis, pca_vs_ae.random_basis(8))).max() < 0.5


@torch.no_grad()
def test_the_linear_autoencoder_optimum_spans_the_pca_subspace(mnist, pca8):
    """Baldi & Hornik (1989): W₂ = U_k A, W₁ = A⁻¹U_kᵀ (any invertible A) reconstructs exactly like PCA,
    so its decoder spans PCA's subspace with angles 0, yet its axes (A's mix) are not orthogonal."""
    k, pca = 8, pca8
    u = torch.as_tensor(pca_vs_ae.basis(pca), dtype=torch.float32)  # (784, k)
    mix = torch.randn(k, k, generator=torch.Generator().manual_seed(0)) + 2 * torch.eye(k)  # invertible
    model = build_model("linear_ae", latent_dim=k)
    model.decoder.weight.copy_(u @ mix)  # W₂ (784, k)
    model.encoder.weight.copy_(torch.linalg.inv(mix) @ u.T)  # W₁ (k, 784)
    model.encoder.bias.copy_(-model.encoder.weight @ pca.mean)  # z = W₁(x − μ)
    model.decoder.bias.copy_(pca.mean)  # x̂ = μ + W₂z
    x = mnist.x_test[:200]
    mse = lambda m: float((m(x) - x).pow(2).mean())
    assert mse(model) == pytest.approx(mse(pca), rel=1e-4)
    angles = pca_vs_ae.principal_angles(pca_vs_ae.basis(model), pca_vs_ae.basis(pca))
    np.testing.assert_allclose(angles, 0, atol=1e-3)
    assert pca_vs_ae.axis_overlap(pca_vs_ae.basis(model)) > 0.05  # … but not with PCA's orthogonal axes
    # tilt the decoder out of the subspace: worse reconstruction, angles > 0
    model.decoder.weight.add_(0.05 * torch.randn(784, k, generator=torch.Generator().manual_seed(1)))
    assert mse(model) > mse(pca)
    assert pca_vs_ae.principal_angles(pca_vs_ae.basis(model), pca_vs_ae.basis(pca)).max() > 0.1


# -- the sweep's bookkeeping -----------------------------------------------------------------------


def _fake_run(runs_dir, run_id, model, latent_dim, state="done", mse=0.02, dataset="mnist-5k", **extra):
    from engine.runs import Run, make_run_config

    model_config = {"latent_dim": latent_dim, **extra.get("model_config", {})}
    run = Run.create(runs_dir, make_run_config(model, dataset, model_config, extra.get("train", {})), run_id=run_id)
    run.set_status(state=state, **({"final_metrics": {"mse": mse}} if state == "done" else {}))
    return run


def test_sweep_rows_missing_and_points(tmp_path):
    runs = [  # newest first, as list_runs gives them
        _fake_run(tmp_path, "lin-8-new", "linear_ae", 8, mse=0.09),
        _fake_run(tmp_path, "lin-8-old", "linear_ae", 8, mse=0.03),
        _fake_run(tmp_path, "ae-4", "ae", 4, mse=0.04),
        _fake_run(tmp_path, "ae-8-running", "ae", 8, state="running"),
        _fake_run(tmp_path, "ae-16-failed", "ae", 16, state="failed"),
        _fake_run(tmp_path, "conv-32", "conv_ae", 32, mse=0.01),
        _fake_run(tmp_path, "noisy-ae", "ae", 2, model_config={"noise": "gaussian", "noise_level": 0.3}),
        _fake_run(tmp_path, "one-class", "ae", 2, train={"classes": [0]}),
        _fake_run(tmp_path, "fashion", "ae", 2, dataset="fashion-mnist"),
        _fake_run(tmp_path, "a-vae", "vae", 2),
    ]
    rows = pca_vs_ae.sweep_rows(runs, "mnist-5k")
    assert [r["run"] for r in rows] == ["lin-8-new", "lin-8-old", "ae-4", "ae-8-running", "ae-16-failed", "conv-32"]
    assert rows[3]["mse"] is None and rows[0]["mse"] == 0.09
    missing = pca_vs_ae.missing_sweep(rows, (4, 8, 16), ("linear_ae", "ae"))
    # linear: only 8 exists; ae: 4 done, 8 on its way, 16 failed (so missing again)
    assert missing == [("linear_ae", 4), ("linear_ae", 16), ("ae", 16)]
    points = pca_vs_ae.curve_points(rows)
    assert points == {"linear_ae": [(8, 0.03, "lin-8-old")], "ae": [(4, 0.04, "ae-4")],  # the best per size
                      "conv_ae": [(32, 0.01, "conv-32")]}


def test_pca_curve_leaves_out_sizes_the_data_cannot_have(mnist):
    from engine.data import Dataset

    tiny = Dataset("tiny", mnist.x_train[:10], mnist.y_train[:10], mnist.x_test[:20], mnist.y_test[:20],
                   mnist.classes)
    assert list(pca_vs_ae.pca_curve(tiny, (2, 4, 8, 16, 32))) == [2, 4, 8]  # at most 10 directions from 10 images
    with pytest.raises(ValueError, match="between 1 and 10"):
        pca_vs_ae.pca_curve(tiny, (16, 32))




def test_behind_pca_names_the_non_linear_points_that_do_not_beat_pca():
    """Issue 10: at k = 64 the dense AE was worse than PCA with no word on why: the page says so where it is."""
    points = {"ae": [(16, 0.02, "a16"), (64, 0.012, "a64")], "linear_ae": [(16, 0.0405, "l16")]}
    pca = {16: 0.04, 64: 0.01}
    assert pca_vs_ae.behind_pca(points, pca) == [("ae", 64, pytest.approx(1.2))]  # the linear AE at PCA is its lesson
    assert pca_vs_ae.behind_pca({"ae": [(32, 0.01, "x")]}, pca) == []  # no PCA point at that size: nothing to say
