"""The Latent map's engine: 2-D maps of codes (PCA, UMAP, t-SNE), new codes placed on them, replays.

A map squeezes codes z (N, latent_dim) to points xy (N, 2) so that a person can see which images a
model keeps together:

- PCA    xy = (z − z̄) W,  W = the top two right singular vectors of the centred codes (d, 2).
         Linear and exact: distances along those two axes are real distances in z.
- UMAP   builds the k-nearest-neighbour graph of the codes (fuzzy weights w_ij) and lays it out in 2-D
         by minimising the cross-entropy between w_ij and v_ij = (1 + a‖y_i − y_j‖^2b)^-1
         (McInnes, Healy & Melville 2018). Neighbours stay neighbours; distances between far
         clusters mean little.
- t-SNE  matches Student-t neighbour probabilities in 2-D to Gaussian ones in z (van der Maaten &
         Hinton 2008). Like UMAP it keeps neighbourhoods, not global distances.

UMAP runs numba code: it compiles for ~30 s on first use in a process, and numba's default
threading layer can abort the process when two threads run UMAP at once. So every UMAP call here
holds one process-wide lock, and `warm_umap_in_background` compiles it once per process on a thread
while the app shows a PCA map.

Maps show at most MAX_POINTS codes (a fixed random subset): below 4,096 points UMAP finds exact
nearest neighbours (above, it switches to NN-descent, whose own compilation takes minutes on a small
CPU), and t-SNE stays in the seconds.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from engine.eval.codes import split_codes
from engine.models.pca import principal_components
from engine.runs.loaded import load_run

METHODS = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}  # name → label, the default first
MAX_POINTS = 3000  # codes on one map: UMAP's exact-neighbour path (< 4,096) and a t-SNE of seconds
UMAP_SETTINGS = dict(n_neighbors=15, min_dist=0.1, n_epochs=200)  # 200 epochs + PCA init: ~1–1.5 s for 5k×32
TSNE_ITERATIONS = 500  # sklearn's floor is 250; with PCA init 500 separates digit clusters well
PLACE_NEIGHBOURS = 10  # t-SNE placement: a new code lands at the weighted mean of this many neighbours
MIN_CODES = 5  # fewer codes than this make no neighbour graph
REPLAY_POINTS = 1500  # codes in a replay over checkpoints (an animated SVG scatter stays smooth)


class _Turn:
    """A lock that counts the threads waiting for it, so that the warm-up can step aside for a real map."""

    def __init__(self):
        self._lock, self._count = threading.Lock(), threading.Lock()
        self.waiting = 0

    def __enter__(self):
        with self._count:
            self.waiting += 1
        self._lock.acquire()
        with self._count:
            self.waiting -= 1

    def __exit__(self, *exc):
        self._lock.release()


_UMAP_LOCK = _Turn()  # one UMAP (fit or transform) at a time in this process: numba aborts otherwise
_UMAP_READY = threading.Event()  # set once a UMAP fit finished in this process (numba has compiled)
_WARM_LOCK = threading.Lock()
_warm_thread: threading.Thread | None = None


# ---------------------------------------------------------------------------------------------
# helpers


def _codes(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"codes must be a non-empty (N, latent_dim) array, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("the codes contain NaN or infinity: the model diverged; train it again with a lower lr")
    return z


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")


def subset_indices(n: int, max_points: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most `max_points` of n items: all of them, or a fixed random subset."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


# ---------------------------------------------------------------------------------------------
# projections


@dataclass
class Projection:
    """A fitted 2-D map of codes z (N, d): the points xy (N, 2), and how to place new codes on it."""

    method: str
    xy: np.ndarray  # (N, 2) float32
    z: np.ndarray  # (N, d) float32, the codes it was fitted on
    model: object = None  # PCA: (mean (d,), W (d, 2)); UMAP: the fitted umap.UMAP; t-SNE: None

    def place(self, z_new) -> np.ndarray:
        """Positions (M, 2) float32 of new codes z_new (M, d) or (d,) on this map.

        PCA: the same linear map, (z − z̄) W. UMAP: `UMAP.transform`, which embeds new points against
        the fitted graph. t-SNE has no transform: a new code lands at the mean of its PLACE_NEIGHBOURS
        nearest fitted codes' positions, weighted by 1 / distance in z (a code equal to a fitted one
        lands on it). The same neighbour rule would work for any map; it is exact for none.
        """
        z_new = _codes(np.atleast_2d(np.asarray(z_new, dtype=np.float32)))
        if z_new.shape[1] != self.z.shape[1]:
            raise ValueError(f"codes of latent_dim {z_new.shape[1]} cannot go on a map of latent_dim "
                             f"{self.z.shape[1]} codes")
        if self.method == "pca":
            mean, w = self.model
            return ((z_new - mean) @ w).astype(np.float32)
        if self.method == "umap":
            with _UMAP_LOCK:
                return np.asarray(self.model.transform(z_new), dtype=np.float32)
        return neighbour_placement(self.z, self.xy, z_new)


def neighbour_placement(z_ref: np.ndarray, xy_ref: np.ndarray, z_new: np.ndarray,
                        k: int = PLACE_NEIGHBOURS) -> np.ndarray:
    """Σ_j w_j xy_j / Σ_j w_j over the k codes z_j nearest to each new code, w_j = 1 / ‖z − z_j‖  → (M, 2)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(z_ref))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(z_ref).kneighbors(z_new)  # (M, k) each
    w = 1.0 / np.maximum(dist, 1e-12)  # an exact match (distance 0) outweighs the rest by ~1e12
    return ((w[:, :, None] * xy_ref[idx]).sum(1) / w.sum(1, keepdims=True)).astype(np.float32)


def _fit_pca(z: np.ndarray) -> Projection:
    """The codes' two principal directions (engine.models.pca); a 1-D latent leaves the second axis at 0."""
    k = min(2, z.shape[1], len(z))
    w = np.zeros((z.shape[1], 2))
    mean = z.mean(0)
    if len(z) > 1:
        w[:, :k] = principal_components(z, k).components.T  # (d, k), each axis's largest weight positive
    w = w.astype(np.float32)
    return Projection("pca", ((z - mean) @ w).astype(np.float32), z, (mean, w))


def _fit_umap(z: np.ndarray, seed: int, init) -> Projection:
    import umap

    # random_state makes UMAP single-threaded and repeatable (n_jobs=1 said explicitly, so it doesn't warn).
    model = umap.UMAP(n_components=2, n_neighbors=min(UMAP_SETTINGS["n_neighbors"], len(z) - 1),
                      min_dist=UMAP_SETTINGS["min_dist"], n_epochs=UMAP_SETTINGS["n_epochs"],
                      init="pca" if init is None else init, random_state=seed, transform_seed=seed, n_jobs=1)
    with _UMAP_LOCK:
        model.fit(z)
    _UMAP_READY.set()
    return Projection("umap", np.asarray(model.embedding_, dtype=np.float32), z, model)


def _fit_tsne(z: np.ndarray, seed: int, init) -> Projection:
    from sklearn.manifold import TSNE

    # perplexity ≈ the number of neighbours each point attends to; it must stay below N.
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(z) - 1) / 3), init="pca" if init is None else init,
                learning_rate="auto", max_iter=TSNE_ITERATIONS, random_state=seed)
    return Projection("tsne", tsne.fit_transform(z).astype(np.float32), z)


def fit(z, method: str = "umap", seed: int = 0, init=None) -> Projection:
    """A map of codes z (N, d). init: None (PCA start) or an (N, 2) start layout (UMAP and t-SNE)."""
    _check_method(method)
    z = _codes(z)
    if method == "pca":
        return _fit_pca(z)
    if len(z) < MIN_CODES:
        raise ValueError(f"a {METHODS[method]} map needs at least {MIN_CODES} codes, got {len(z)}; use PCA")
    if init is not None:
        init = np.asarray(init, dtype=np.float32)
        if init.shape != (len(z), 2):
            raise ValueError(f"init must be ({len(z)}, 2), got {init.shape}")
    return _fit_umap(z, seed, init) if method == "umap" else _fit_tsne(z, seed, init)


def project(z, method: str = "umap", seed: int = 0, init=None) -> np.ndarray:
    """Points xy (N, 2) float32 of codes z (N, d) by PCA, UMAP or t-SNE."""
    return fit(z, method, seed, init).xy


# ---------------------------------------------------------------------------------------------
# UMAP's compilation, once per process


def _warm_up() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 4)).astype(np.float32)
    # The same code paths as a real map (exact neighbours below 4,096 points), then a transform,
    # which compiles functions of its own (for the drawing placed on a map) — unless a real map is
    # already waiting for the lock: on a busy CPU that compilation can take a minute, and the map
    # matters more (a first drawing placed on a UMAP map then compiles it).
    projection = _fit_umap(z, seed=0, init=None)
    if not _UMAP_LOCK.waiting:
        projection.place(z[:2])


def warm_umap_in_background() -> threading.Thread:
    """Start (once per process) a daemon thread that compiles UMAP with a tiny fit; returns that thread."""
    global _warm_thread
    with _WARM_LOCK:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm_up, name="umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def umap_ready() -> bool:
    """True once UMAP has finished a fit in this process (the next one takes seconds, not ~30 s)."""
    return _UMAP_READY.is_set()


# ---------------------------------------------------------------------------------------------
# judging a map


def map_knn_accuracy(points, y, k: int = 5) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of labels y (N,) from points (N, D): a map's xy or codes z.

    Each point's class is the majority vote of its k nearest *other* points (ties → the smaller
    label, as scikit-learn's KNeighborsClassifier). Computed the same way on z and on the map, the
    difference is what the projection to 2-D lost. Points labelled −1 (unlabelled) are left out;
    NaN when fewer than k + 1 labelled points remain.
    """
    from sklearn.neighbors import NearestNeighbors

    points, y = np.asarray(points, dtype=np.float64), np.asarray(y)
    keep = y >= 0
    points, y = points[keep], y[keep]
    n = len(y)
    if n < k + 1:
        return float("nan")
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)  # (n, k+1), usually self first
    own = idx == np.arange(n)[:, None]
    own[~own.any(1), -1] = True  # a duplicate may hide the point itself: drop the farthest instead
    neighbours = idx[~own].reshape(n, k)
    counts = np.stack([(y[neighbours] == c).sum(1) for c in range(int(y.max()) + 1)], 1)  # (n, classes)
    return float((counts.argmax(1) == y).mean())


# ---------------------------------------------------------------------------------------------
# maps across checkpoints (a replay of training)


def align_to(xy: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """xy (N, 2) moved onto ref (N, 2) by the best rotation or reflection, uniform scale and shift.

    Orthogonal Procrustes (Schönemann 1966) on centred points A, B: R = argmin ‖A R − B‖_F over
    orthogonal R, then the scale c = tr((A R)ᵀ B) / ‖A‖²_F. The result c·A·R + mean(ref) keeps the
    map's shape and only takes away what is arbitrary in it (a PCA's signs, a UMAP's orientation).
    """
    from scipy.linalg import orthogonal_procrustes

    xy, ref = np.asarray(xy, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if xy.shape != ref.shape:
        raise ValueError(f"cannot align maps of different shapes {xy.shape} and {ref.shape}")
    a, b = xy - xy.mean(0), ref - ref.mean(0)
    norm = (a ** 2).sum()
    if norm < 1e-24:  # every point at one place (an untrained model): centre it on ref
        return np.broadcast_to(ref.mean(0), xy.shape).astype(np.float32)
    r, s = orthogonal_procrustes(a, b)  # s = Σ singular values of aᵀb = tr((a r)ᵀ b)
    return (s / norm * a @ r + ref.mean(0)).astype(np.float32)


def pick_frames(steps: Sequence[int], max_frames: int = 12) -> list[int]:
    """At most max_frames of the steps, evenly spread, the first and the last always among them."""
    steps = sorted(set(steps))
    if len(steps) <= max_frames:
        return steps
    picks = np.linspace(0, len(steps) - 1, max_frames).round().astype(int)
    return [steps[i] for i in sorted(set(picks))]


def checkpoint_maps(codes: Sequence[np.ndarray], method: str = "pca", seed: int = 0) -> list[np.ndarray]:
    """One map (N, 2) per checkpoint's codes (N, d_t) of the same N images, each aligned to the last.

    Each checkpoint has its own latent space (the encoder changed), so no single fitted projection
    fits them all: each frame is projected on its own and then moved onto the last frame by
    Procrustes (`align_to`), so clusters grow in place instead of flipping or spinning between frames.
    PCA is the default: milliseconds a frame, and deterministic.
    """
    if not codes:
        raise ValueError("no checkpoints to map")
    frames = [project(z, method, seed) for z in codes]
    return [align_to(xy, frames[-1]) for xy in frames[:-1]] + [frames[-1]]


def replay_codes(run, dataset, steps: Sequence[int], indices=None, split: str = "test") -> list[np.ndarray]:
    """Codes (N, latent_dim) of a split's images (or the rows `indices` of it) under each checkpoint of `steps`."""
    out = []
    for step in steps:
        z = split_codes(load_run(run, step, encodes=True), dataset, split)
        out.append(z if indices is None else z[indices])
    return out


# ---------------------------------------------------------------------------------------------
# maps computed in the background (for a UI that shows a PCA map meanwhile)


class ProjectionJobs:
    """Maps computed one at a time on a background thread, keyed by the caller (e.g. run, checkpoint, method).

    Thread-safe: any thread may submit and read. Keeps the newest `max_entries` finished maps. One
    worker, so a t-SNE and a UMAP queue behind each other rather than share two cores. The worker is
    a daemon thread (not a ThreadPoolExecutor, whose threads the interpreter joins at exit): stopping
    the server never waits for a map nobody will see.
    """

    def __init__(self, max_entries: int = 32):
        self.max_entries = max_entries
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._futures: OrderedDict[Hashable, Future] = OrderedDict()
        self._lock = threading.Lock()

    def _work(self) -> None:
        while True:
            future, args = self._queue.get()
            try:
                future.set_result(fit(*args))
            except Exception as e:
                future.set_exception(e)

    def submit(self, key: Hashable, z, method: str, seed: int = 0) -> None:
        """Start computing fit(z, method, seed) under `key`, unless it is already there."""
        _check_method(method)
        with self._lock:
            if key in self._futures:
                self._futures.move_to_end(key)
                return
            future = Future()
            future.set_running_or_notify_cancel()
            self._futures[key] = future
            self._queue.put((future, (z, method, seed)))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="latent-map", daemon=True)
                self._worker.start()
            self._evict()

    def compute(self, key: Hashable, z, method: str, seed: int = 0) -> Projection:
        """fit(z, method, seed) in the caller's thread (for PCA: milliseconds), kept under `key` like the rest."""
        with self._lock:
            future = self._futures.get(key)
        if future is not None and future.done() and future.exception() is None:
            return future.result()
        projection = fit(z, method, seed)
        future = Future()
        future.set_result(projection)
        with self._lock:
            self._futures[key] = future
            self._evict()
        return projection

    def _evict(self) -> None:
        """Drop the oldest finished maps beyond max_entries (call with the lock held)."""
        done = [k for k, f in self._futures.items() if f.done()]
        for k in done[:max(0, len(self._futures) - self.max_entries)]:
            del self._futures[k]

    def state(self, key: Hashable) -> str:
        """'missing', 'pending' (queued or running), 'done' or 'failed'."""
        with self._lock:
            future = self._futures.get(key)
        if future is None:
            return "missing"
        if not future.done():
            return "pending"
        return "failed" if future.exception() is not None else "done"

    def result(self, key: Hashable) -> Projection | None:
        """The finished map, None while pending or missing; raises the job's error when it failed."""
        with self._lock:
            future = self._futures.get(key)
        if future is None or not future.done():
            return None
        return future.result()

    def discard(self, key: Hashable) -> None:
        """Forget a key (e.g. a failed job, so that the next submit tries again)."""
        with self._lock:
            self._futures.pop(key, None)
