"""The PCA-vs-autoencoder page's engine: error against latent size, the same images through each model,
principal angles between a linear autoencoder's subspace and PCA's.

    PCA        x̂ = μ + W Wᵀ (x − μ),  W (784, k) the top-k principal directions of the train split
    linear AE  x̂ = W₂(W₁x + b₁) + b₂: under MSE its optimum spans PCA's subspace (Baldi & Hornik 1989),
               though its k axes need not be orthogonal nor ordered by variance
    AE         x̂ = g(f(x)) with non-linear f, g

The two subspaces are compared through their principal angles: with Q_A, Q_B orthonormal bases,
cos θᵢ = σᵢ(Q_Aᵀ Q_B) (Björck & Golub 1973; scipy.linalg.subspace_angles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

from engine.data import Dataset
from engine.eval.metrics import reconstruct_all
from engine.models import models as registered
from engine.models.base import IMAGE_PIXELS
from engine.models.pca import PCA, PCAConfig
from engine.runs import ACTIVE, RunError, finite, is_plain

PCA_LATENT_DIMS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)  # the closed-form curve: cheap, so dense
SWEEP_LATENT_DIMS = (2, 4, 8, 16, 32, 64)  # where the sweep trains a linear and a non-linear AE
# The sweep's two models and their training settings (the job manager runs two at a time: a core each).
# Step budgets, not seconds: a busy machine then gives the same points, later. Measured on mnist-5k (2-core
# CPU, one thread each): a linear AE, one-cycle to 2e-2, reaches PCA's error in 1,500 steps (1.000× at k = 16,
# ~3 s). The dense AE, one-cycle to 3e-3, is at 0.58× PCA at k = 16 after 1,500 steps, but at k = 64 PCA's
# error is already small and 1,500 steps only match it (1.08×): it gets 4,000 steps there (0.80×, ~30 s).
SWEEP_NAME = "sweep"  # the runs' name prefix: "sweep: ae, k = 16"
SWEEP_TRAIN = {"linear_ae": {"steps": 1500, "threads": 1, "lr": 2e-2, "schedule": "one_cycle"},
               "ae": {"steps": 1500, "threads": 1, "lr": 3e-3, "schedule": "one_cycle"}}
SWEEP_MORE_STEPS = {("ae", 64): 4000}


def sweep_train(model: str, latent_dim: int) -> dict:
    """The training settings of the sweep's run of `model` at `latent_dim`."""
    train = dict(SWEEP_TRAIN[model])
    train["steps"] = SWEEP_MORE_STEPS.get((model, latent_dim), train["steps"])
    return train


def sweep_run_name(model: str, latent_dim: int) -> str:
    return f"{SWEEP_NAME}: {model}, k = {latent_dim}"


def curve_models() -> list[str]:
    """Models whose plain runs give points on the chart: trained autoencoders that need no label."""
    return registered(encodes=True, closed_form=False, conditional=False, variational=False)


def linear_models() -> list[str]:
    """Trained models with a linear decoder: the ones principal angles can compare with PCA."""
    return registered(linear=True, closed_form=False)


# ---------------------------------------------------------------------------------------------
# PCA against autoencoders: reconstruction error against latent size


def fit_pca(dataset: Dataset, latent_dim: int) -> PCA:
    """The PCA model with `latent_dim` directions, fitted on the train split (closed form)."""
    most = min(len(dataset.x_train), IMAGE_PIXELS)
    if not 1 <= latent_dim <= most:
        raise ValueError(f"PCA with latent_dim={latent_dim} needs 1 ≤ latent_dim ≤ {most} "
                         f"(the number of pixels and of training images)")
    return PCA(PCAConfig(latent_dim=latent_dim)).fit(dataset.x_train.cpu()).eval()


@torch.inference_mode()
def pca_curve(dataset: Dataset, latent_dims: Iterable[int] = PCA_LATENT_DIMS,
              pca: PCA | None = None) -> dict[int, float]:
    """Test MSE of PCA at each latent size k, fitted on the train split: k → MSE.

    One fit at the largest k (or `pca`, fitted with at least that many) serves every k: the top k
    directions of a fit are its first k. x̂ is clipped to [0, 1] like the PCA model's own output.
    Sizes beyond what the data allows (min(train images, 784)) are left out.
    """
    most = min(len(dataset.x_train), IMAGE_PIXELS)  # PCA has at most this many directions
    dims = sorted({int(k) for k in latent_dims if int(k) <= most})
    if not dims or dims[0] < 1:
        raise ValueError(f"latent sizes must lie between 1 and {most} for {dataset.name}, not {sorted(latent_dims)}")
    if pca is None or pca.config.latent_dim < dims[-1]:
        pca = fit_pca(dataset, dims[-1])
    x = dataset.x_test.flatten(1).cpu()  # (N, 784)
    centred = x - pca.mean
    out = {}
    for k in dims:
        w = pca.components[:k]  # (k, 784), orthonormal rows
        x_hat = (centred @ w.T @ w + pca.mean).clamp(0.0, 1.0)  # μ + W Wᵀ(x − μ)
        out[k] = float((x_hat - x).pow(2).mean(1).mean())
    return out


def sweep_rows(runs: Iterable, dataset: str, models: Iterable[str] | None = None) -> list[dict]:
    """One row per plain run of `models` on `dataset`, newest first (the order `runs` comes in).

    Each row: run (id), model, latent_dim, state, mse (the final test MSE when done, else None),
    sweep (whether the sweep started it), steps (its step budget, if any) and step (steps done).
    Unreadable runs are skipped.
    """
    models = tuple(curve_models() if models is None else models)
    rows = []
    for run in runs:
        try:
            config = run.config
            status = run.status()
        except (RunError, OSError, ValueError):
            continue
        if config.get("model") not in models or config.get("dataset") != dataset or not is_plain(config):
            continue
        latent = config.get("model_config", {}).get("latent_dim")
        mse = status.final_metrics.get("mse")
        name = config.get("name") if isinstance(config.get("name"), str) else ""
        steps = config.get("train", {}).get("steps")
        rows.append({"run": run.id, "model": config["model"], "latent_dim": latent if isinstance(latent, int) else None,
                     "state": status.state, "mse": float(mse) if status.state == "done" and finite(mse) else None,
                     "sweep": name.startswith(f"{SWEEP_NAME}:"), "steps": steps if isinstance(steps, int) else None,
                     "step": status.step})
    return [r for r in rows if r["latent_dim"] is not None]


def missing_sweep(rows: list[dict], latent_dims: Iterable[int] = SWEEP_LATENT_DIMS,
                  models: Iterable[str] = tuple(SWEEP_TRAIN)) -> list[tuple[str, int]]:
    """(model, latent_dim) pairs of the sweep with no run that is done or on its way."""
    have = {(r["model"], r["latent_dim"]) for r in rows if r["state"] == "done" or r["state"] in ACTIVE}
    return [(m, int(k)) for m in models for k in latent_dims if (m, int(k)) not in have]


def behind_pca(points: dict[str, list[tuple[int, float, str]]], pca: dict[int, float]) -> list[tuple[str, int, float]]:
    """(model, latent size, its error as a multiple of PCA's) wherever a non-linear model's best point is not
    better than PCA at the same size: the places a chart needs a word on why. (A linear AE can at best
    match PCA: that is its lesson, not a shortfall.)"""
    linear = set(linear_models())
    return [(model, k, mse / pca[k]) for model, pts in points.items() if model not in linear
            for k, mse, _ in pts if k in pca and pca[k] > 0 and mse >= pca[k]]


def curve_points(rows: list[dict]) -> dict[str, list[tuple[int, float, str]]]:
    """model → [(latent_dim, test MSE, run id)] sorted by latent_dim: the best done run per size
    (what the model reaches at that size; a quick extra run does not hide a longer one)."""
    best: dict[str, dict[int, tuple[int, float, str]]] = {}
    for r in rows:
        if r["mse"] is None:
            continue
        held = best.setdefault(r["model"], {}).get(r["latent_dim"])
        if held is None or r["mse"] < held[1]:
            best[r["model"]][r["latent_dim"]] = (r["latent_dim"], r["mse"], r["run"])
    return {m: sorted(points.values()) for m, points in best.items()}


def reconstructions(models: Mapping[str, torch.nn.Module], x: torch.Tensor) -> dict[str, tuple[np.ndarray, float]]:
    """The same images x (B, 1, 28, 28) through each model: name → (x̂ (B, 28, 28), their mean MSE)."""
    x = x.float().cpu()
    out = {}
    for name, model in models.items():
        x_hat = reconstruct_all(model, x, batch_size=500).float().cpu()
        out[name] = (x_hat[:, 0].numpy(), float((x_hat - x).pow(2).mean()))
    return out



# ---------------------------------------------------------------------------------------------
# subspaces: principal angles


def basis(model) -> np.ndarray:
    """The columns (784, k) that span what a linear model (PCA, a linear AE) can output."""
    if not model.capabilities.linear:
        raise ValueError(f"{type(model).__name__} has no linear decoder; principal angles need a linear "
                         f"autoencoder or PCA ({', '.join(registered(linear=True))})")
    return model.decoder_basis().detach().cpu().double().numpy()


def random_basis(k: int, dim: int = IMAGE_PIXELS, seed: int = 0) -> np.ndarray:
    """k random Gaussian directions (dim, k): the chance level for principal angles."""
    return np.random.default_rng(seed).standard_normal((dim, k))


def principal_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Principal angles (radians, smallest first) between the column spaces of a (n, p) and b (n, q).

    cos θᵢ = σᵢ(Q_Aᵀ Q_B) for orthonormal bases Q_A, Q_B: 0 for a shared direction, π/2 for an
    orthogonal one. min(p, q) angles (fewer when a basis is rank-deficient).
    """
    from scipy.linalg import subspace_angles

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bases must be (n, p) and (n, q) with the same n, got {a.shape} and {b.shape}")
    return np.sort(subspace_angles(a, b))  # scipy returns them largest first


def axis_overlap(basis: np.ndarray) -> float:
    """Mean |cos| between distinct columns of a basis (n, k): 0 for orthogonal axes like PCA's."""
    b = np.asarray(basis, dtype=np.float64)
    if b.shape[1] < 2:
        return 0.0
    unit = b / np.maximum(np.linalg.norm(b, axis=0, keepdims=True), 1e-12)
    gram = np.abs(unit.T @ unit)  # (k, k)
    k = gram.shape[0]
    return float((gram.sum() - np.trace(gram)) / (k * (k - 1)))
