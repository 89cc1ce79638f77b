"""engine/lab/latent_map.py: projections against references, separated clusters, placement, Procrustes, UMAP lock.

The UMAP tests compile numba once per test process (~15–30 s on 2 cores); they share one module.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.lab import latent_map as maps


def clusters(n_per: int = 60, n_classes: int = 5, d: int = 16, spread: float = 0.3, seed: int = 0):
    """Well-separated Gaussian blobs: codes (n_per·n_classes, d) and labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d)) * 4.0
    y = np.repeat(np.arange(n_classes), n_per)
    z = centres[y] + spread * rng.normal(size=(len(y), d))
    perm = rng.permutation(len(y))
    return z[perm].astype(np.float32), y[perm]


def random_rotation(d: int, seed: int = 1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# -- PCA -------------------------------------------------------------------------------------------


def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    z = np.random.default_rng(0).normal(size=(400, 12)) * np.linspace(3, 0.5, 12)
    xy = maps.project(z, "pca")
    ref = PCA(n_components=2, svd_solver="full").fit_transform(z)
    assert xy.shape == (400, 2) and xy.dtype == np.float32
    for axis in range(2):
        sign = np.sign(xy[:, axis] @ ref[:, axis])
        np.testing.assert_allclose(sign * xy[:, axis], ref[:, axis], rtol=1e-4, atol=1e-4)


def test_pca_places_new_codes_like_sklearn_transform():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    z, z_new = rng.normal(size=(300, 8)) * np.arange(8, 0, -1), rng.normal(size=(7, 8))
    projection = maps.fit(z, "pca")
    ref = PCA(n_components=2, svd_solver="full").fit(z)
    signs = np.sign((projection.xy * ref.transform(z)).sum(0))
    np.testing.assert_allclose(projection.place(z_new) * signs, ref.transform(z_new), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(projection.place(z[:5]), projection.xy[:5], atol=1e-5)  # a fitted code lands on itself
    with pytest.raises(ValueError, match="latent_dim"):
        projection.place(np.zeros(3))


def test_pca_of_a_one_dimensional_latent():
    z = np.random.default_rng(2).normal(size=(50, 1))
    xy = maps.project(z, "pca")
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(z[:, 0] - z[:, 0].mean()), rtol=1e-5, atol=1e-5)
    assert np.all(xy[:, 1] == 0)


def test_bad_input_says_what_is_wrong():
    with pytest.raises(ValueError, match="method must be one of"):
        maps.project(np.zeros((10, 2)), "mds")
    with pytest.raises(ValueError, match="NaN"):
        maps.project(np.full((10, 2), np.nan), "pca")
    with pytest.raises(ValueError, match="at least"):
        maps.project(np.zeros((3, 2)), "tsne")
    with pytest.raises(ValueError, match="init must be"):
        maps.project(np.zeros((10, 2)), "tsne", init=np.zeros((9, 2)))


# -- kNN accuracy of a map --------------------------------------------------------------------------


def test_map_knn_accuracy_is_sklearns_leave_one_out():
    from sklearn.model_selection import LeaveOneOut, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(3)
    xy = rng.normal(size=(150, 2))
    y = (xy[:, 0] + 0.8 * rng.normal(size=150) > 0).astype(int) + (xy[:, 1] > 0.5)  # 3 overlapping classes
    ref = cross_val_score(KNeighborsClassifier(n_neighbors=5), xy, y, cv=LeaveOneOut()).mean()
    assert maps.map_knn_accuracy(xy, y) == pytest.approx(ref)
    assert 0.3 < ref < 0.95  # overlapping on purpose: neither trivial nor hopeless


def test_map_knn_accuracy_edge_cases():
    xy = np.array([[0.0, 0.0]] * 4 + [[5.0, 5.0]] * 4)  # duplicates: "itself" may not come first
    y = np.array([0] * 4 + [1] * 4)
    assert maps.map_knn_accuracy(xy, y, k=3) == 1.0
    assert np.isnan(maps.map_knn_accuracy(xy, np.full(8, -1)))  # nothing labelled
    y_part = y.copy()
    y_part[0] = -1  # an unlabelled point is left out, not counted as a class
    assert maps.map_knn_accuracy(xy, y_part, k=3) == 1.0


# -- UMAP and t-SNE ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_nonlinear_maps_keep_separated_clusters_apart(method):
    z, y = clusters()
    projection = maps.fit(z, method, seed=0)
    assert projection.xy.shape == (len(z), 2) and projection.xy.dtype == np.float32
    assert np.isfinite(projection.xy).all()
    assert maps.map_knn_accuracy(projection.xy, y) > 0.97
    # and a map of shuffled labels is near chance: the score measures the clusters, not the method
    assert maps.map_knn_accuracy(projection.xy, np.random.default_rng(0).permutation(y)) < 0.5


@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_a_fitted_code_is_placed_near_its_own_point(method):
    z, y = clusters(seed=4)
    projection = maps.fit(z, method, seed=0)
    placed = projection.place(z[:10])
    own = np.linalg.norm(placed - projection.xy[:10], axis=1)
    spread = np.linalg.norm(projection.xy - projection.xy.mean(0), axis=1).mean()
    assert own.max() < 0.15 * spread, (own, spread)
    # a new code near a cluster's centre lands among that cluster's points
    centre = z[y == 2].mean(0)
    landed = projection.place(centre)[0]
    nearest = np.linalg.norm(projection.xy - landed, axis=1).argsort()[:10]
    assert (y[nearest] == 2).mean() >= 0.9


def test_tsne_placement_is_the_weighted_mean_of_neighbours():
    rng = np.random.default_rng(5)
    z_ref, xy_ref = rng.normal(size=(40, 3)), rng.normal(size=(40, 2))
    z_new = rng.normal(size=(2, 3))
    placed = maps.neighbour_placement(z_ref, xy_ref, z_new, k=4)
    for q, p in zip(z_new, placed):
        d = np.linalg.norm(z_ref - q, axis=1)
        idx = d.argsort()[:4]
        np.testing.assert_allclose(p, (xy_ref[idx] / d[idx, None]).sum(0) / (1 / d[idx]).sum(), rtol=1e-5)


def test_warm_up_runs_once_and_makes_umap_ready():
    first = maps.warm_umap_in_background()
    assert maps.warm_umap_in_background() is first  # idempotent: one thread per process
    first.join(timeout=300)
    assert not first.is_alive()
    assert maps.umap_ready()


class OverlapSpy:
    """A stand-in for umap.UMAP whose fit records how many fits run at the same moment."""

    active = 0
    most = 0
    guard = threading.Lock()

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def fit(self, z):
        cls = type(self)
        with cls.guard:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        time.sleep(0.05)
        with cls.guard:
            cls.active -= 1
        self.embedding_ = np.zeros((len(z), 2))
        return self


def run_in_threads(target, n: int = 4) -> None:
    threads = [threading.Thread(target=target) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_the_umap_lock_serialises_fits(monkeypatch):
    import umap

    z = np.zeros((20, 3), np.float32)
    # The instrument can see overlap: fits called from threads without the lock do overlap.
    OverlapSpy.most = 0
    run_in_threads(lambda: OverlapSpy().fit(z))
    assert OverlapSpy.most > 1
    # Through engine.lab.latent_map they never do.
    monkeypatch.setattr(umap, "UMAP", OverlapSpy)
    OverlapSpy.most = 0
    run_in_threads(lambda: maps.project(z, "umap"))
    assert OverlapSpy.most == 1


# -- replays over checkpoints -----------------------------------------------------------------------


def test_procrustes_recovers_a_rotated_scaled_shifted_copy():
    xy = np.random.default_rng(6).normal(size=(200, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for flip in (np.eye(2), np.diag([1.0, -1.0])):  # a rotation, and a rotation with a reflection
        moved = 2.5 * xy @ rot @ flip + np.array([3.0, -7.0])
        np.testing.assert_allclose(maps.align_to(moved, xy), xy, atol=1e-5)
    assert not np.allclose(maps.align_to(np.random.default_rng(7).normal(size=(200, 2)), xy), xy, atol=0.1)


def test_checkpoint_maps_align_frames_to_the_last():
    z, _ = clusters(d=8)
    rotated = z @ random_rotation(8)  # the same geometry in another basis: the PCA map differs by signs only
    frames = maps.checkpoint_maps([rotated, z * 3.0, z], "pca")
    assert len(frames) == 3 and all(f.shape == (len(z), 2) for f in frames)
    np.testing.assert_allclose(frames[-1], maps.project(z, "pca"))
    for frame in frames[:-1]:
        np.testing.assert_allclose(frame, frames[-1], atol=1e-3)


def test_pick_frames_spreads_evenly_and_keeps_both_ends():
    assert maps.pick_frames([30, 10, 20]) == [10, 20, 30]
    steps = list(range(0, 1000, 10))
    picked = maps.pick_frames(steps, 12)
    assert len(picked) == 12 and picked[0] == 0 and picked[-1] == 990
    gaps = np.diff(picked)
    assert gaps.max() - gaps.min() <= 10  # one step of the input grid at most


def test_subset_indices():
    assert list(maps.subset_indices(5, 10)) == list(range(5))
    idx = maps.subset_indices(10_000, 3000, seed=1)
    assert len(idx) == 3000 and len(set(idx)) == 3000 and np.all(np.diff(idx) > 0) and idx.max() < 10_000
    assert np.array_equal(idx, maps.subset_indices(10_000, 3000, seed=1))


def test_replay_codes_match_each_checkpoint(finished_pca_run):
    from engine.data import load_dataset
    from engine.eval.codes import split_codes
    from engine.runs import Run
    from engine.runs.loaded import checkpoint_steps, load_run

    run, dataset = Run(finished_pca_run), load_dataset("mnist-5k")
    steps = checkpoint_steps(run)
    (codes,) = maps.replay_codes(run, dataset, steps[-1:], indices=np.arange(0, 1000, 7))
    np.testing.assert_allclose(codes, split_codes(load_run(run), dataset)[::7])


# -- background jobs --------------------------------------------------------------------------------


def wait_for(jobs, key, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while jobs.state(key) == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    return jobs.state(key)


def test_projection_jobs():
    jobs = maps.ProjectionJobs(max_entries=2)
    z, _ = clusters(n_per=10)
    assert jobs.state("a") == "missing" and jobs.result("a") is None
    jobs.submit("a", z, "pca")
    jobs.submit("a", z * 100, "pca")  # the same key again: nothing new is computed
    assert wait_for(jobs, "a") == "done"
    np.testing.assert_allclose(jobs.result("a").xy, maps.project(z, "pca"))

    jobs.submit("bad", z[:3], "tsne")  # too few codes
    assert wait_for(jobs, "bad") == "failed"
    with pytest.raises(ValueError, match="at least"):
        jobs.result("bad")
    jobs.discard("bad")
    assert jobs.state("bad") == "missing"

    for key in ("b", "c", "d"):
        jobs.submit(key, z, "pca")
        wait_for(jobs, key)
    assert jobs.state("a") == "missing" and jobs.state("d") == "done"  # only the newest few are kept
