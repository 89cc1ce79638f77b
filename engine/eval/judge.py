"""The judge: a small classifier that scores generated images, and the FID-style metrics it gives.

A GAN has no reconstruction error to report, so its images are judged by a CNN trained on the
real labelled data (MNIST's "Inception network", as in Salimans et al. 2016 and Heusel et al. 2017):

    fid               Fréchet distance between Gaussians fitted to the judge's penultimate features
                      of the generated images and of the real test split (lower is better; 0 = same)
    inception_score   exp E_x KL(p(y|x) ‖ p(y)): high when each image is clearly one class and the
                      classes are used evenly (1 … K)
    class_hist        the share of images the judge assigns to each class; classes_covered counts
                      the classes with at least COVERED_SHARE of them, mode_collapse lists the ones
                      far below their fair share 1/K
    class_agreement   conditional GANs: how often the judge sees the class the generator was asked for
    nn_distance       mean L2 pixel distance to the nearest train image; far below nn_distance_real
                      (the same for real test images) means the generator copies its training data

A judge is stored like a run, under the runs folder, one per dataset:

    RUNS/.judges/<dataset>/   config.json, status.json (final_metrics.test_accuracy), metrics.jsonl
                              (one line per epoch), checkpoints/step_*.safetensors

`list_runs` skips it: RUNS/.judges itself holds no config.json. The first caller trains it (about
ten seconds on two CPU cores for mnist-5k); a file lock makes a second process wait for that judge
instead of training its own.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import threading
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from engine.data import load_dataset
from engine.device import resolve_device
from engine.eval.fid import check_images, frechet_distance, gaussian, inception_score
from engine.eval.judge_net import BATCH, JUDGE_MODEL, JudgeConfig, JudgeNet, fit
from engine.runs import Run, RunError, default_runs_dir, file_lock, model_state, read_checkpoint

__all__ = ["COVERED_SHARE", "JUDGE_DIRNAME", "JudgeConfig", "JudgeNet", "Judge", "clear_cache", "evaluate_generator",
           "frechet_distance", "inception_score", "judge_path", "load_judge", "train_judge"]

JUDGE_DIRNAME = ".judges"
COVERED_SHARE = 0.04  # a class counts as covered when ≥ 4 % of the images are judged to be of it
MODE_COLLAPSE_SHARE = 0.4  # a class is (nearly) dropped when its share is below 0.4 × its fair 1/K
DEFAULT_EPOCHS = 8
NN_SAMPLES = 1000  # images used for the nearest-train means: the cost grows with n × train size
# Measured on mnist-5k, 2 cores shared with other busy processes: one thread trains this net in
# 11–23 s, two threads took 35 s (their workers spin waiting for each other). Small batches of a
# small net gain little from intra-op threads anyway.
TRAIN_THREADS = 1


# ---------------------------------------------------------------------------------------------
# the judge


class Judge:
    """A trained JudgeNet for one dataset, with the real data's reference statistics (cached)."""

    def __init__(self, dataset: str, classes: list[str], test_accuracy: float, net: JudgeNet,
                 device: torch.device, path: Path | None = None):
        self.dataset = dataset
        self.classes = list(classes)
        self.test_accuracy = float(test_accuracy)
        self.net = net.to(device).eval()
        self.device = device
        self.path = path
        self._lock = threading.Lock()  # the caches below fill once, even with several threads
        self._real_gaussian: tuple[np.ndarray, np.ndarray] | None = None
        self._nn_distance_real: float | None = None
        self._train_flat: torch.Tensor | None = None

    def __repr__(self) -> str:
        return f"Judge({self.dataset!r}, classes={len(self.classes)}, test_accuracy={self.test_accuracy:.4f})"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _data(self):
        return load_dataset(self.dataset)

    @torch.inference_mode()
    def _batched(self, fn, x: torch.Tensor) -> torch.Tensor:
        x = check_images(x)
        self.net.eval()
        outs = [fn(x[i:i + BATCH].to(self.device, torch.float32)).float().cpu() for i in range(0, len(x), BATCH)]
        return torch.cat(outs) if outs else torch.empty(0)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        """p(y|x): (N, K) softmax of the judge, on the CPU."""
        return self._batched(lambda b: self.net(b).softmax(1), x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, F), on the CPU."""
        return self._batched(self.net.features, x)

    @torch.inference_mode()
    def nearest_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance (N,), index (N,)): the L2 pixel distance to, and index of, the nearest train image.

        cdist's matrix-product form (‖a‖² + ‖b‖² − 2a·b) finds the neighbour fast; the distance to
        it is then computed directly, so an image of the train split is at exactly 0.
        """
        x = check_images(x)
        with self._lock:
            if self._train_flat is None:
                self._train_flat = self._data().x_train.flatten(1).to(self.device)  # (M, 784)
        train = self._train_flat
        dists, idxs = [], []
        for i in range(0, len(x), BATCH):
            xb = x[i:i + BATCH].flatten(1).to(self.device, torch.float32)  # (B, 784)
            idx = torch.cdist(xb, train).argmin(1)  # (B,)
            dists.append((xb - train[idx]).norm(dim=1).cpu())
            idxs.append(idx.cpu())
        if not dists:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        return torch.cat(dists), torch.cat(idxs)

    def realgaussian(self) -> tuple[np.ndarray, np.ndarray]:
        """(μ, Σ) of the judge's features of the real test split (cached)."""
        with self._lock:
            if self._real_gaussian is None:
                self._real_gaussian = gaussian(self.features(self._data().x_test))
            return self._real_gaussian

    def nn_distance_real(self) -> float:
        """Mean nearest-train distance of (up to NN_SAMPLES) real test images: the reference (cached)."""
        with self._lock:
            cached = self._nn_distance_real
        if cached is None:
            cached = float(self.nearest_train(self._data().x_test[:NN_SAMPLES])[0].mean())
            with self._lock:
                self._nn_distance_real = cached
        return cached

    def score(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict:
        """Every judge metric of generated images x (N, 1, 28, 28) in [0, 1] (see the module docstring).

        y: the classes a conditional generator was asked for, (N,); adds class_agreement.
        nn_distance uses the first NN_SAMPLES images (its cost grows with N × the train split's size).
        """
        x = check_images(x)
        n, k = len(x), self.num_classes
        if n < 2:
            raise ValueError(f"the judge needs at least 2 images to fit a Gaussian, got {n}")
        if y is not None:
            y = torch.as_tensor(y).long().cpu()
            if y.shape != (n,) or bool((y < 0).any()) or bool((y >= k).any()):
                raise ValueError(f"y must hold one class in 0…{k - 1} per image ({n},), got shape {tuple(y.shape)}")
        features = self.features(x)  # (N, F)
        with torch.inference_mode():
            probs = self.net.head(features.to(self.device)).softmax(1).cpu()  # (N, K): one pass for both
        mu, cov = gaussian(features)
        mu_real, cov_real = self.realgaussian()
        hist = torch.bincount(probs.argmax(1), minlength=k).double() / n  # (K,)
        out = {
            "fid": frechet_distance(mu, cov, mu_real, cov_real),
            "inception_score": inception_score(probs),
            "class_hist": hist.tolist(),
            "classes_covered": int((hist >= COVERED_SHARE).sum()),
            "min_class_share": float(hist.min()),
            "mode_collapse": [int(c) for c in torch.nonzero(hist < MODE_COLLAPSE_SHARE / k).flatten()],
        }
        if y is not None:
            out["class_agreement"] = float((probs.argmax(1) == y).double().mean())
        out["nn_distance"] = float(self.nearest_train(x[:NN_SAMPLES])[0].mean())
        out["nn_distance_real"] = self.nn_distance_real()
        return out


# ---------------------------------------------------------------------------------------------
# where judges live, and the lock that keeps two processes from training the same one


def _safe_name(dataset_name: str) -> str:
    """A folder name for a dataset: itself when already safe (mnist-5k), else a cleaned name + a hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_name).strip("._-") or "dataset"
    if safe != dataset_name or len(safe) > 64:
        safe = f"{safe[:64]}-{hashlib.sha256(dataset_name.encode()).hexdigest()[:10]}"
    return safe


def judge_path(dataset_name: str, runs_dir=None) -> Path:
    """RUNS/.judges/<dataset name made filesystem-safe>."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    return runs_dir / JUDGE_DIRNAME / _safe_name(dataset_name)


def _locked(path: Path):
    """An exclusive lock on PATH.lock, beside the judge folder, for the duration of a block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return file_lock(path.parent / f"{path.name}.lock")


def _judgeable(dataset) -> bool:
    return (dataset.num_classes >= 2 and bool((dataset.y_train >= 0).all())
            and bool((dataset.y_test >= 0).all()) and len(dataset.x_test) >= 2)


# ---------------------------------------------------------------------------------------------
# training


def train_judge(dataset_name: str, runs_dir=None, *, seed: int = 0, epochs: int | None = None, device="cpu",
                on_log=None) -> Judge:
    """Train (or retrain) the judge of a labelled dataset and store it; returns it loaded from disk.

    Raises ValueError when the dataset has no labels or fewer than 2 classes.
    """
    _labelled_dataset(dataset_name)  # before the lock file is made
    path = judge_path(dataset_name, runs_dir)
    with _locked(path):
        _train_unlocked(dataset_name, path, seed=seed, epochs=epochs, device=device, on_log=on_log)
    return _load(path, device)


def _labelled_dataset(dataset_name: str):
    dataset = load_dataset(dataset_name)
    if not _judgeable(dataset):
        raise ValueError(f"dataset {dataset_name!r} has no labels or fewer than 2 classes; a judge "
                         "(a classifier) needs labelled images of at least 2 classes")
    return dataset


def _train_unlocked(dataset_name: str, path: Path, *, seed: int, epochs: int | None, device, on_log) -> None:
    dataset = _labelled_dataset(dataset_name)
    device = resolve_device(device)
    epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    train = {"seed": seed, "epochs": epochs, "batch_size": 64, "lr": 3e-3, "schedule": "one_cycle",
             "max_shift": 2, "threads": TRAIN_THREADS, "device": str(device)}
    net_config = JudgeConfig(num_classes=dataset.num_classes)
    config = {"model": JUDGE_MODEL, "dataset": dataset_name, "model_config": asdict(net_config), "train": train,
              "seed": seed, "epochs": epochs, "classes": dataset.classes}

    # Train into a hidden folder and rename it into place when done: a crash leaves no half judge,
    # and readers see the old judge or the new one, never a mix.
    tmp_parent = path.parent / f".tmp-{path.name}-{secrets.token_hex(4)}"
    try:
        run = Run.create(tmp_parent, config, run_id=path.name)
        fit(run, dataset, net_config, train, device, on_log)
        old = path.parent / f".old-{path.name}-{secrets.token_hex(4)}"
        if path.exists():
            path.rename(old)
        run.path.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp_parent, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# loading (memoised per process)


_JUDGES: dict[tuple, Judge] = {}
_JUDGES_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every loaded judge (tests; after a judge was replaced by hand)."""
    with _JUDGES_LOCK:
        _JUDGES.clear()


def _checkpoint_of(path: Path) -> Path | None:
    try:
        run = Run(path)
        if run.status().state != "done":
            return None
        return run.latest_checkpoint()
    except RunError:
        return None


def _load(path: Path, device="cpu") -> Judge:
    """The judge stored at `path` (validated by engine.runs.read_checkpoint), memoised by file identity."""
    device = resolve_device(device)
    ckpt = _checkpoint_of(path)
    if ckpt is None:
        raise RunError(f"{path} holds no finished judge; train one with: python -m engine judge --retrain")
    st = ckpt.stat()
    key = (str(ckpt.resolve()), st.st_mtime_ns, st.st_size, str(device))
    with _JUDGES_LOCK:
        if key in _JUDGES:
            return _JUDGES[key]
    header, tensors = read_checkpoint(ckpt)
    if header.get("model") != JUDGE_MODEL:
        raise RunError(f"checkpoint {ckpt} holds a {header.get('model')!r} model, not a judge")
    try:
        net = JudgeNet(JudgeConfig(**header["model_config"]))
        net.load_state_dict(model_state(tensors))
        judge = Judge(header["dataset"], header["classes"], header["test_accuracy"], net, device, path)
    except (KeyError, TypeError, RuntimeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunError(f"checkpoint {ckpt} is not a usable judge ({first}); retrain it with: "
                       f"python -m engine judge --dataset {header.get('dataset', 'NAME')} --retrain") from None
    with _JUDGES_LOCK:
        for old in [k for k in _JUDGES if k[0] == key[0] and k[3] == key[3]]:
            del _JUDGES[old]  # the file was replaced: drop its older version
        _JUDGES[key] = judge
    return judge


def load_judge(dataset_name: str, runs_dir=None, *, train_if_missing: bool = True, device="cpu",
               on_log=None) -> Judge | None:
    """The dataset's judge: loaded, or trained first when missing (or trained for other classes).

    None when the dataset has no labels or fewer than 2 classes (or no judge exists and
    train_if_missing is False): callers then skip the judge metrics. A damaged or tampered
    judge raises RunError rather than being silently replaced.
    """
    dataset = load_dataset(dataset_name)
    if not _judgeable(dataset):
        return None
    path = judge_path(dataset_name, runs_dir)

    def current() -> Judge | None:
        if _checkpoint_of(path) is None:
            return None
        judge = _load(path, device)
        return judge if judge.classes == list(dataset.classes) else None  # stale: the data changed

    try:
        judge = current()
    except (RunError, OSError):
        if not train_if_missing:
            raise
        judge = None  # perhaps being replaced this instant (a retrain): look again under the lock
    if judge is not None or not train_if_missing:
        return judge
    with _locked(path):
        judge = current()  # another process may have trained it while this one waited
        if judge is None:
            _train_unlocked(dataset_name, path, seed=0, epochs=None, device=device, on_log=on_log)
    return judge or _load(path, device)


# ---------------------------------------------------------------------------------------------
# scoring a generator


@torch.no_grad()
def evaluate_generator(model, dataset_name: str, runs_dir=None, *, n: int = 2000, seed: int = 0,
                       device="cpu") -> dict:
    """Judge n seeded samples of an adversarial model: Judge.score(...) plus judge_accuracy.

    A conditional model is asked for the classes 0, 1, …, K−1 in turn, and those are passed to the
    judge as y (class_agreement). {} when the dataset allows no judge (no labels).
    """
    judge = load_judge(dataset_name, runs_dir, device=device)
    if judge is None:
        return {}
    if n < 2:
        raise ValueError(f"evaluate_generator needs n ≥ 2 samples, got {n}")
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()  # BatchNorm's running statistics, not the batch's
    try:
        y = None
        if model.capabilities.conditional:
            if model.num_classes != judge.num_classes:
                raise ValueError(f"the model generates {model.num_classes} classes but dataset {dataset_name!r} "
                                 f"has {judge.num_classes}; evaluate it on the dataset it was trained on")
            y = torch.arange(n) % model.num_classes
        chunks = []
        for i in range(0, n, BATCH):
            yb = None if y is None else y[i:i + BATCH]
            chunks.append(model.sample(min(BATCH, n - i), y=yb, generator=gen).float().cpu())
        x = torch.cat(chunks)  # (n, 1, 28, 28)
    finally:
        model.train(was_training)
    return {**judge.score(x, y), "judge_accuracy": judge.test_accuracy, "n": n}
