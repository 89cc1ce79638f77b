"""Scores of a trained reconstruction model on the test split.

    mse    mean over images of ‖x − x̂‖² / 784
    psnr   mean over images of 10·log₁₀(1 / mse_image)  (dB; pixel range 1)
    bce    mean over images of −Σ [x log x̂ + (1 − x) log(1 − x̂)]  (nats per image)
    elbo, kl   for VAEs: a one-sample estimate of the ELBO and its KL term (nats per image)
    pca_mse    the MSE of PCA with the same latent size, fitted on the same train split
    knn_accuracy   a 5-nearest-neighbour classifier on the codes z (train → test): how well the
                   latent space tags new samples

Every run's worker ends here, so the scores are computed with torch alone (torchmetrics' PSNR and
scikit-learn's kNN cost ~3 s of imports per process, more than the scores themselves), and PCA's baseline,
the same for every run of a dataset and latent size, is kept on disk in the data folder.
"""

from __future__ import annotations

import functools
import json
import logging
import threading

import torch
import torch.nn.functional as F

from engine.data import Dataset, data_dir, load_dataset
from engine.models.pca import PCA, PCAConfig

log = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0  # a perfect reconstruction has infinite PSNR; JSON cannot hold infinity


def _batched(fn, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    outs = []
    for i in range(0, len(x), batch_size):
        outs.append(fn(x[i:i + batch_size], None if y is None else y[i:i + batch_size]))
    return torch.cat(outs)


def _on_model_device(model, t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None:
        return None
    device = next(iter(model.buffers())).device
    return t.to(device)


def conditioning(model, y: torch.Tensor | None) -> torch.Tensor | None:
    """The labels a model needs beside its images: y for a conditional model, None for every other."""
    return y if model.capabilities.conditional else None


@torch.inference_mode()
def encode_all(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Codes z (N, latent_dim) of images x (N, 1, 28, 28), in eval mode."""
    model.eval()
    return _batched(model.encode, _on_model_device(model, x), _on_model_device(model, y), batch_size)


@torch.inference_mode()
def reconstruct_all(model, x: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 1024):
    """Reconstructions x̂ (N, 1, 28, 28) in [0, 1], in eval mode."""
    model.eval()
    return _batched(lambda a, b: model(a, b), _on_model_device(model, x), _on_model_device(model, y),
                    batch_size)


def per_image_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (x_hat - x).pow(2).flatten(1).mean(1)  # (N,)


def per_image_psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """10·log₁₀(1 / mse) per image (pixel range 1), as torchmetrics' peak_signal_noise_ratio(data_range=1,
    reduction="none", dim=(1, 2, 3)) computes it (equal to 4e-6 dB on noisy images), capped at PSNR_CAP_DB."""
    psnr = -10.0 * torch.log10(per_image_mse(x_hat, x))
    return psnr.nan_to_num(posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB)  # (N,)


def per_image_bce(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    x_hat = x_hat.clamp(1e-6, 1 - 1e-6)  # PCA and linear models can reach exactly 0 or 1
    return F.binary_cross_entropy(x_hat, x, reduction="none").flatten(1).sum(1)  # (N,) nats


BASELINES_FILE = "pca_baselines.json"  # in the data folder: {key: test MSE}, key = dataset, sizes, k, seed, content
_baselines_lock = threading.Lock()


def _fingerprint(dataset: Dataset) -> str:
    """A cheap summary of the data's content (sums over both splits): a rebuilt or replaced copy gets a new key."""
    parts = [f"{float(t.double().sum()):.10g}/{float(t.double().square().sum()):.10g}"
             for t in (dataset.x_train, dataset.x_test)]
    return ",".join(parts)


def _read_baselines(path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


@functools.lru_cache(maxsize=16)
def _pca_mse_cached(dataset_name: str, n_train: int, latent_dim: int, seed: int) -> float:
    """pca_mse of a registered dataset, from the data folder's baselines file when an earlier process stored
    it (each run's worker is a new process: fitting PCA again costs more than the rest of the evaluation)."""
    from engine.runs.files import atomic_write_json

    dataset = load_dataset(dataset_name)
    sizes = f"{len(dataset.x_train)}|{len(dataset.x_test)}"
    key = f"{dataset_name}|{sizes}|k={latent_dim}|seed={seed}|{_fingerprint(dataset)}"
    path = data_dir() / BASELINES_FILE
    value = _read_baselines(path).get(key)
    if isinstance(value, float):
        return value
    value = pca_mse(dataset, latent_dim, seed)
    with _baselines_lock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {**_read_baselines(path), key: value})
        except OSError as e:  # a read-only data folder: computed again next time, nothing else changes
            log.warning("could not store the PCA baseline in %s (%s)", path, e)
    return value


def pca_mse(dataset: Dataset, latent_dim: int, seed: int = 0) -> float:
    """Test MSE of PCA with `latent_dim` components fitted on the train split."""
    pca = PCA(PCAConfig(latent_dim=latent_dim)).fit(dataset.x_train, seed=seed)
    return per_image_mse(reconstruct_all(pca, dataset.x_test), dataset.x_test).mean().item()


def pca_baseline_mse(dataset: Dataset, latent_dim: int, seed: int = 0) -> float:
    """pca_mse, memoised per dataset name and size for the registered datasets."""
    # user data (the name does not pin the content) or a train split restricted to some classes
    if ":" in dataset.name or dataset.x_train is not load_dataset(dataset.name).x_train:
        return pca_mse(dataset, latent_dim, seed)
    return _pca_mse_cached(dataset.name, len(dataset.x_train), latent_dim, seed)


def knn_accuracy(z_train: torch.Tensor, y_train: torch.Tensor, z_test: torch.Tensor, y_test: torch.Tensor,
                 k: int = 5) -> float:
    """Accuracy of scikit-learn's KNeighborsClassifier(n_neighbors=k) (Euclidean, uniform votes, a tie of votes
    going to the smallest label) fitted on (z_train, y_train), on the test codes; torch alone, test rows in chunks.
    Codes at exactly equal distances (a collapsed code) may pick other neighbours than scikit-learn, whose own
    choice there depends on its search algorithm; on real codes the two agree (conv_ae codes of mnist-5k at
    latent sizes 2, 3, 8 and 32: the same accuracy to the last digit)."""
    z_train, z_test = z_train.detach().cpu().double(), z_test.detach().cpu().double()
    y_train, y_test = y_train.detach().cpu().long(), y_test.detach().cpu().long()
    k = min(k, len(z_train))
    n_classes = int(y_train.max()) + 1
    chunk = max(1, (1 << 24) // max(len(z_train), 1))  # ≤ 128 MB of float64 distances at a time
    correct = 0
    for i in range(0, len(z_test), chunk):
        d = torch.cdist(z_test[i:i + chunk], z_train, compute_mode="donot_use_mm_for_euclid_dist")  # (b, N)
        votes = y_train[d.topk(k, dim=1, largest=False).indices]  # (b, k)
        counts = F.one_hot(votes, n_classes).sum(1)  # (b, classes)
        correct += int((counts.argmax(1) == y_test[i:i + chunk]).sum())  # argmax: the first (smallest) of ties
    return correct / max(len(z_test), 1)


@torch.inference_mode()
def vae_terms(model, x: torch.Tensor, y: torch.Tensor | None, batch_size: int = 1000, seed: int = 0) -> dict:
    """Mean ELBO and KL over x (nats per image), one reparameterised sample each, seeded."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    x, y = _on_model_device(model, x), _on_model_device(model, y)
    tot = {"elbo": 0.0, "kl": 0.0}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        logs = model.loss_step(xb, None if y is None else y[i:i + batch_size], generator=gen).logs
        for k in tot:
            tot[k] += float(logs[k]) * len(xb)
    return {k: v / len(x) for k, v in tot.items()}


def evaluate(model, dataset: Dataset, device: torch.device | str | None = None, knn_k: int = 5,
             baseline: bool = True, z_train: torch.Tensor | None = None) -> dict[str, float]:
    """Every score of the module docstring that applies to `model`, as plain floats (z_train: the train split's
    codes when the caller has them already)."""
    if device is not None:
        model = model.to(device)
    labelled = bool((dataset.y_train >= 0).all()) and bool((dataset.y_test >= 0).all())
    y_test = conditioning(model, dataset.y_test)
    x_hat = reconstruct_all(model, dataset.x_test, y_test).cpu()
    x = dataset.x_test
    out = {
        "mse": per_image_mse(x_hat, x).mean().item(),
        "psnr": per_image_psnr(x_hat, x).mean().item(),
        "bce": per_image_bce(x_hat, x).mean().item(),
    }
    if model.capabilities.variational:
        out.update(vae_terms(model, x, y_test))
    if baseline:
        out["pca_mse"] = pca_baseline_mse(dataset, model.config.latent_dim)
        out["mse_vs_pca"] = out["mse"] / out["pca_mse"]
    if labelled and len(dataset.classes) > 1:
        if z_train is None:
            z_train = encode_all(model, dataset.x_train, conditioning(model, dataset.y_train))
        z_test = encode_all(model, x, y_test)
        out["knn_accuracy"] = knn_accuracy(z_train, dataset.y_train, z_test, dataset.y_test, knn_k)
    return out
