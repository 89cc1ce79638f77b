"""Issue 12, item 4: datasets uploaded from the browser. Malformed archives are refused (or their bad files
skipped and listed) with a clear message, the good images are kept, and nothing is ever written outside
the workspace's folder; an upload loads and trains like any dataset."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import (DataError, UploadLimitError, check_dataset, clear_cache, dataset_classes, delete_upload,
                         list_uploads, load_dataset, remove_workspace_uploads, save_upload, upload_owner, uploads_dir,
                         workspace_upload_bytes)
from engine.data import archive, uploads

ROOT = Path(__file__).resolve().parents[2]
WS = "ws1"


# -- helpers -----------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A tmp folder holding the uploads folder; the limits at their defaults."""
    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(tmp_path / "uploads"))
    for var in ("LATENT_LAB_MAX_UPLOAD_MB", "LATENT_LAB_MAX_UPLOADS"):
        monkeypatch.delenv(var, raising=False)
    clear_cache()
    yield tmp_path
    clear_cache()


def tree(root: Path) -> set[str]:
    """Every file under root, as a path relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def digit(k: int, seed: int = 0) -> np.ndarray:
    """A 28×28 uint8 image, white ink on black, distinct for each (k, seed): a bar at row k plus noise ink."""
    rng = np.random.default_rng(1000 * k + seed)
    x = np.zeros((28, 28), np.uint8)
    x[2 + 3 * k: 4 + 3 * k, 4:24] = 255
    x[rng.integers(0, 28, 20), rng.integers(0, 28, 20)] = rng.integers(50, 200, 20)
    return x


def make_zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def labelled_zip(per_class: int = 4, classes=("zero", "one"), prefix: str = "") -> tuple[bytes, dict[bytes, str]]:
    """A zip of per_class distinct PNGs per class folder, and each image's bytes → its class."""
    members, truth = {}, {}
    for k, c in enumerate(classes):
        for i in range(per_class):
            x = digit(k, i)
            members[f"{prefix}{c}/{i}.png"] = png(x)
            truth[x.tobytes()] = c
    return make_zip(members), truth


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def assert_refused(store: Path, filename: str, data: bytes, message: str, workspace: str = WS, **kw) -> DataError:
    """The upload is refused with `message`, stores nothing, writes nothing outside the workspace's folder,
    and its message names no server path."""
    before = tree(store)
    with pytest.raises(DataError, match=message) as e:
        save_upload(workspace, filename, data, **kw)
    new = tree(store) - before
    assert new <= {f"uploads/{workspace}/.lock"}, f"a refused upload wrote {new}"
    assert str(store) not in str(e.value), "the message shows a server path"
    return e.value


def all_images(ds) -> list[tuple[bytes, int]]:
    """(uint8 pixels, label) of every image of both splits."""
    x = np.concatenate([ds.x_train.numpy(), ds.x_test.numpy()])[:, 0]
    y = np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()])
    return [(np.rint(im * 255).astype(np.uint8).tobytes(), int(label)) for im, label in zip(x, y)]


# -- round trips ---------------------------------------------------------------------------------------


def test_a_zip_of_class_folders_round_trips_to_the_same_images_and_labels(store):
    data, truth = labelled_zip(per_class=5, prefix="my digits/")  # wrapped in one folder, as "compress" makes
    result = save_upload(WS, "My Digits.zip", data)
    assert result.dataset == f"upload:{WS}/my-digits" and result.n_images == 10 and result.n_skipped == 0
    assert result.classes == ["one", "zero"]  # sorted, as folder:DIR sorts them
    assert tree(store) == {f"uploads/{WS}/my-digits.npz", f"uploads/{WS}/my-digits.json", f"uploads/{WS}/.lock"}

    ds = load_dataset(result.dataset)
    assert ds.name == result.dataset and ds.classes == ["one", "zero"]
    assert (len(ds.x_train), len(ds.x_test)) == (result.n_train, result.n_test) == (8, 2)
    got = all_images(ds)
    assert sorted(pixels for pixels, _ in got) == sorted(truth)  # every image, unchanged (28×28 needs no resize)
    assert all(ds.classes[label] == truth[pixels] for pixels, label in got)
    assert dataset_classes(result.dataset) == 2 and upload_owner(result.dataset) == WS
    check_dataset(result.dataset)

    record = json.loads((store / "uploads" / WS / "my-digits.json").read_text())
    assert record["filename"] == "My Digits.zip" and record["n_train"] + record["n_test"] == 10
    assert record["skipped"] == [] and record["created_at"] > 0


def test_images_at_the_top_level_are_one_unlabelled_set(store):
    data = make_zip({f"{i}.png": png(digit(i % 3, i)) for i in range(6)})
    result = save_upload(WS, "loose.zip", data)
    ds = load_dataset(result.dataset)
    assert result.classes == [] and ds.classes == [] and set(ds.y_train.tolist() + ds.y_test.tolist()) == {-1}
    assert "unlabelled" in list_uploads(WS)[0].description
    save_upload(WS, "[log in](javascript:x) *now*.zip", data)  # the name is shown as Markdown by pickers
    assert list_uploads(WS)[1].description.endswith("from _log in__javascript_x_ _now_.zip")


def test_the_cli_trains_on_an_upload(store, tmp_path):
    data, _ = labelled_zip(per_class=20)
    name = save_upload(WS, "digits.zip", data).dataset
    env = {**os.environ, "LATENT_LAB_RUNS": str(tmp_path / "runs"), "LATENT_LAB_UPLOADS": str(uploads_dir())}
    proc = subprocess.run([sys.executable, "-m", "engine", "train", "ae", "--data", name, "--steps", "20",
                           "--latent-dim", "4", "--set", "hidden=32", "--batch-size", "16", "--device", "cpu",
                           "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["state"] == "done" and result["metrics"]["mse"] > 0
    assert json.loads((Path(result["path"]) / "config.json").read_text())["dataset"] == name


def test_an_npz_round_trips(store):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.arange(30) % 3
    result = save_upload(WS, "arrays.npz", npz_bytes(x=x, y=y, classes=np.array(["a", "b", "c"])))
    assert result.classes == ["a", "b", "c"] and result.n_images == 30
    ds = load_dataset(result.dataset)
    assert sorted(all_images(ds)) == sorted(zip((im.tobytes() for im in x), y.tolist()))
    # floats in [0, 1] and flat rows are what npz:FILE takes too; they are stored as 0-255
    flat = save_upload(WS, "flat.npz", npz_bytes(x=(x.reshape(30, 784) / 255).astype(np.float32)))
    assert sorted(p for p, _ in all_images(load_dataset(flat.dataset))) == sorted(im.tobytes() for im in x)


# -- malformed archives --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "digits/../../evil.png", "C:\\evil.png",
                                  "digits\\..\\..\\evil.png"])
def test_zip_slip_and_absolute_names_are_refused(store, name):
    data, _ = labelled_zip()
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr(name, png(digit(0)))
    assert_refused(store, "digits.zip", buf.getvalue(), "unsafe path")


def test_a_symlink_member_is_refused(store):
    buf = io.BytesIO(labelled_zip()[0])
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("zero/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(store, "digits.zip", buf.getvalue(), "symbolic link")


def test_a_zip_bomb_is_refused_before_any_member_is_read(store, monkeypatch):
    monkeypatch.setattr(archive, "read_member", lambda *a: pytest.fail("a member was decompressed"))
    one = make_zip({"zero/big.png": b"\0" * (20 * 2**20)})  # 20 MiB deflated to ~20 kB: ratio ~1000
    assert len(one) < 100_000
    assert_refused(store, "bomb.zip", one, "zip bomb")
    # many members, each under the per-member ratio floor, together 40 MiB from a ~40 kB file
    many = make_zip({f"zero/{i}.png": b"\0" * archive.MiB for i in range(40)})
    assert_refused(store, "bomb.zip", many, "zip bomb")
    # stored members have no ratio to notice: the total is bounded by itself (here 1 MiB, not 256, to stay small)
    monkeypatch.setattr(uploads, "_ZIP_LIMITS", dataclasses.replace(uploads._ZIP_LIMITS, max_total_bytes=archive.MiB))
    stored = make_zip({f"zero/{i}.png": b"\0" * 100_000 for i in range(11)}, zipfile.ZIP_STORED)
    assert_refused(store, "big.zip", stored, "unpacks to more than 1 MiB, the limit for a dataset upload")


def test_thousands_of_members_are_refused_from_the_directory(store, monkeypatch):
    monkeypatch.setattr(archive, "read_member", lambda *a: pytest.fail("a member was decompressed"))
    data = make_zip({f"zero/{i}.png": b"" for i in range(uploads.MAX_ZIP_MEMBERS + 1)})
    e = assert_refused(store, "many.zip", data, "holds 10,001 files, more than the 10,000")
    assert ".npz" in str(e)  # says what to do instead


def test_an_image_claiming_a_gigapixel_is_skipped_from_its_header(store, monkeypatch):
    big = png(np.zeros((3000, 3000), np.uint8))  # ~10 kB claiming 9 megapixels
    decoded = []
    real = uploads._read_image
    monkeypatch.setattr(uploads, "_read_image", lambda f: decoded.append(1) or real(f))
    data, _ = labelled_zip(per_class=3)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("zero/huge.png", big)
    result = save_upload(WS, "digits.zip", buf.getvalue())
    assert result.n_images == 6 and len(decoded) == 6  # the big one was never decoded
    (skip,) = result.skipped
    assert skip.file == "zero/huge.png" and "3,000×3,000 pixels" in skip.why and "shrink it" in skip.why
    # all images together are bounded too, before each is decoded
    monkeypatch.setattr(uploads, "MAX_TOTAL_PIXELS", 28 * 28 * 4)
    assert_refused(store, "digits.zip", data, "megapixels together")


def test_non_images_are_skipped_and_listed(store):
    gif = png(digit(1), fmt="GIF")
    data, _ = labelled_zip(per_class=3)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("README.txt", b"my digits")
        zf.writestr("one/more.zip", make_zip({"x.png": png(digit(1))}))
        zf.writestr("one/fake.png", gif)
        zf.writestr("zero/notes", b"no suffix")
        zf.writestr("__MACOSX/zero/._0.png", b"\0\5\26\7")  # macOS' shadows are ignored, not listed
        zf.writestr("zero/.DS_Store", b"\0")
    result = save_upload(WS, "digits.zip", buf.getvalue())
    assert result.n_images == 6 and result.classes == ["one", "zero"]
    why = {s.file: s.why for s in result.skipped}
    assert set(why) == {"README.txt", "one/more.zip", "one/fake.png", "zero/notes"}
    assert "not a PNG/JPEG file (.txt)" in why["README.txt"] and "zip inside the zip" in why["one/more.zip"]
    assert "a GIF image" in why["one/fake.png"] and "no suffix" in why["zero/notes"]
    assert "4 files skipped" in list_uploads(WS)[0].description
    assert json.loads((store / "uploads" / WS / "digits.json").read_text())["n_skipped"] == 4

    nothing = make_zip({"a/readme.txt": b"hi", "a/b.gif": gif})
    assert_refused(store, "empty.zip", nothing, "holds no readable PNG/JPEG image")


def test_mixed_sizes_and_modes_become_28_by_28_as_the_folder_loader_makes_them(store, tmp_path):
    rng = np.random.default_rng(3)
    images = {"a/small.png": rng.integers(0, 255, (10, 10), dtype=np.uint8),
              "a/wide.png": rng.integers(0, 255, (48, 64), dtype=np.uint8),
              "a/photo.jpg": rng.integers(0, 255, (200, 300, 3), dtype=np.uint8),
              "b/rgba.png": rng.integers(0, 255, (30, 30, 4), dtype=np.uint8),
              "b/light.png": np.full((40, 40), 230, np.uint8)}  # dark ink on paper: flipped
    members = {n: png(x, "JPEG" if n.endswith(".jpg") else "PNG") for n, x in images.items()}
    result = save_upload(WS, "mixed.zip", make_zip(members))
    assert result.n_images == 5 and result.n_skipped == 0
    ds = load_dataset(result.dataset)
    assert tuple(ds.x_train.shape[1:]) == (1, 28, 28)
    # the same pixels as folder:DIR gives for the same files
    for name, blob in members.items():
        (tmp_path / "folder" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "folder" / name).write_bytes(blob)
    folder = load_dataset(f"folder:{tmp_path / 'folder'}")
    assert sorted(all_images(ds)) == sorted(all_images(folder))


def test_a_folder_with_some_broken_files_keeps_the_good_ones_and_lists_the_rest(store):
    noise = png(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data, truth = labelled_zip(per_class=4)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("zero/truncated.png", noise[: len(noise) // 2])
        zf.writestr("zero/garbage.jpg", b"\xff\xd8\xff\xe0 this is not really a jpeg")
        zf.writestr("one/empty.png", b"")
        zf.writestr("one/header-only.png", noise[:33])
        zf.writestr("loose.png", png(digit(2)))  # beside the class folders: whose class?
    result = save_upload(WS, "digits.zip", buf.getvalue())
    assert result.n_images == 8 and sorted(p for p, _ in all_images(load_dataset(result.dataset))) == sorted(truth)
    why = {s.file: s.why for s in result.skipped}
    assert set(why) == {"zero/truncated.png", "zero/garbage.jpg", "one/empty.png", "one/header-only.png",
                        "loose.png"}
    assert "truncated" in why["zero/truncated.png"] and "not a readable" in why["zero/garbage.jpg"]
    assert "move it into the folder of its class" in why["loose.png"]
    assert all("BytesIO" not in w for w in why.values())


def test_a_member_damaged_inside_the_zip_is_skipped(store):
    data = bytearray(make_zip({"zero/a.png": png(digit(0)), "zero/b.png": png(digit(0, 1)),
                               "one/c.png": png(digit(1))}, zipfile.ZIP_STORED))
    at = data.find(png(digit(1))) + 40
    data[at] ^= 0xFF  # one byte of c.png: its CRC no longer matches
    result = save_upload(WS, "digits.zip", bytes(data))
    assert result.n_images == 2 and [s.file for s in result.skipped] == ["one/c.png"]
    assert "damaged inside the zip" in result.skipped[0].why


class Marker:
    """Unpickling it would create a file: proof that allow_pickle stayed off."""

    path = None

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("make, message", [
    (lambda: npz_bytes(x=np.zeros((10, 27, 27), np.uint8)), r"x has shape \(10, 27, 27\)"),
    (lambda: npz_bytes(x=np.zeros((10, 28, 28), np.complex64)), "x has dtype complex64"),
    (lambda: npz_bytes(x=np.full((10, 28, 28), np.nan, np.float32)), "contains NaN"),
    (lambda: npz_bytes(x=np.full((10, 28, 28), 2.0, np.float32) * 200), "outside"),
    (lambda: npz_bytes(x=np.zeros((10, 28, 28), np.uint8), y=np.zeros(9, np.int64)), r"must be \(10,\) integer"),
    (lambda: npz_bytes(x=np.zeros((10, 28, 28), np.uint8), y=np.full(10, 0.5)), "integer labels"),
    (lambda: npz_bytes(images=np.zeros((10, 28, 28), np.uint8)), "has no array named x"),
    (lambda: npz_bytes(x=np.zeros((1, 28, 28), np.uint8)), r"holds 1 image\(s\)"),
    (lambda: npz_bytes(x=np.array([{"a": 1}] * 3, dtype=object)), "holds Python objects"),
    (lambda: make_zip({"x.npy": b"hello", "run.sh": b"rm -rf /"}), "which is not an array"),
    (lambda: make_zip({"x.npy": b"\x93NUMPY\x09\x00garbage"}), "cannot be read"),
    (lambda: b"definitely not a zip", "not a readable .npz"),
    (lambda: (lambda b: (np.save(b, np.zeros((3, 28, 28), np.uint8)), b.getvalue())[1])(io.BytesIO()),
     "not a readable .npz"),  # a bare .npy under an .npz name
])
def test_malformed_npz_files_are_refused(store, make, message):
    assert_refused(store, "arrays.npz", make(), message)


def test_an_npz_header_claiming_a_gigantic_array_is_refused_unread(store):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)})
    data = make_zip({"x.npy": header.getvalue() + bytes(784)})  # the header (magic included), then 784 bytes
    assert_refused(store, "arrays.npz", data, r"claims the shape \(1000000000, 28, 28\)")


def test_an_object_array_is_never_unpickled(store, tmp_path):
    Marker.path = str(tmp_path / "unpickled")
    assert_refused(store, "evil.npz", npz_bytes(x=np.array([Marker()], dtype=object)), "never unpickled")
    assert not (tmp_path / "unpickled").exists()


# -- limits, names and workspaces ----------------------------------------------------------------------


def test_over_the_size_cap(store, monkeypatch):
    data, _ = labelled_zip()
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOAD_MB", str(len(data) / 2 / 2**20))
    assert_refused(store, "digits.zip", data, "MB an upload may be; upload fewer or smaller images")
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOAD_MB", "twenty")
    with pytest.raises(ValueError, match="LATENT_LAB_MAX_UPLOAD_MB must be a number"):
        save_upload(WS, "digits.zip", data)
    monkeypatch.delenv("LATENT_LAB_MAX_UPLOAD_MB")
    assert uploads.max_upload_bytes() == 20 * 2**20
    assert_refused(store, "digits.zip", b"", "is empty")
    assert_refused(store, "digits.tar", data, "neither a .zip nor an .npz")


def test_names_are_unique_within_a_workspace(store):
    data, _ = labelled_zip()
    assert save_upload(WS, "digits.zip", data).slug == "digits"
    assert save_upload(WS, "digits.zip", data).slug == "digits-2"  # the same file again: a new name
    assert save_upload(WS, "other.zip", data, name="My set!").slug == "my-set"
    e = assert_refused(store, "other.zip", data, "already has an upload named 'my-set'", name="my set")
    assert "choose another name" in str(e)
    assert_refused(store, "other.zip", data, "has no letters or digits", name="!!!")
    assert [i.name for i in list_uploads(WS)] == [f"upload:{WS}/digits", f"upload:{WS}/digits-2",
                                                  f"upload:{WS}/my-set"]


def test_a_workspace_keeps_a_limited_number_of_uploads(store, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOADS", "2")
    data, _ = labelled_zip()
    save_upload(WS, "a.zip", data)
    save_upload(WS, "b.zip", data)
    with pytest.raises(UploadLimitError, match="at most 2 uploaded datasets and has 2; delete one"):
        save_upload(WS, "c.zip", data)
    assert len(list_uploads(WS)) == 2
    save_upload("ws2", "c.zip", data)  # another workspace has its own count
    delete_upload(WS, "a")
    assert save_upload(WS, "c.zip", data).slug == "c"


def test_another_workspaces_uploads_are_its_own(store):
    data, _ = labelled_zip()
    alice = save_upload("alice", "digits.zip", data)
    bob = save_upload("bob", "digits.zip", labelled_zip(per_class=2)[0])
    assert (alice.dataset, bob.dataset) == ("upload:alice/digits", "upload:bob/digits")
    assert upload_owner(alice.dataset) == "alice" and upload_owner("mnist-5k") is None
    assert upload_owner(f"npz:{store}/x.npz") is None
    assert [i.name for i in list_uploads("bob")] == ["upload:bob/digits"]
    assert load_dataset(bob.dataset).x_train.shape[0] + load_dataset(bob.dataset).x_test.shape[0] == 4
    with pytest.raises(DataError, match="no upload named 'other'"):
        delete_upload("bob", "other")
    delete_upload("bob", "digits")
    assert list_uploads("bob") == [] and len(list_uploads("alice")) == 1
    assert workspace_upload_bytes("alice") > 0 and workspace_upload_bytes("bob") < 100  # only its lock is left
    remove_workspace_uploads("alice")  # the workspace expired
    assert list_uploads("alice") == [] and workspace_upload_bytes("alice") == 0
    assert tree(store) == {"uploads/bob/.lock"}


@pytest.mark.parametrize("workspace", ["../alice", "Alice", "", "a" * 41, "al ice", "alice/..", "alice\n", None])
def test_workspace_ids_are_checked_before_anything_is_written(store, workspace):
    data, _ = labelled_zip()
    before = tree(store)
    with pytest.raises(DataError, match="is not a workspace id"):
        save_upload(workspace, "digits.zip", data)
    assert tree(store) == before
    with pytest.raises(DataError, match="is not a workspace id"):
        list_uploads(workspace)


@pytest.mark.parametrize("name", ["upload:../../etc/passwd", "upload:alice/../bob/digits", "upload:alice",
                                  "upload:alice/Digits", "upload:/abs/path", "upload:alice/digits.npz",
                                  "upload:alice/digits\n", "upload:alice\n/digits"])
def test_malformed_upload_names_are_refused_everywhere(store, name):
    save_upload("alice", "digits.zip", labelled_zip()[0])
    for call in (load_dataset, check_dataset, upload_owner):
        with pytest.raises(DataError, match="is not an uploaded dataset's name") as e:
            call(name)
        assert str(store) not in str(e.value)


def test_a_missing_or_damaged_upload_is_said_so_without_its_path(store):
    for call in (load_dataset, check_dataset):
        with pytest.raises(DataError, match="there is no uploaded dataset 'upload:alice/gone'") as e:
            call("upload:alice/gone")
        assert str(store) not in str(e.value)
    result = save_upload("alice", "digits.zip", labelled_zip()[0])
    path = store / "uploads" / "alice" / "digits.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="upload:alice/digits cannot be read") as e:
        load_dataset(result.dataset)
    assert str(store) not in str(e.value)


def test_an_upload_deleted_and_made_again_is_not_served_from_the_cache(store):
    first = save_upload(WS, "digits.zip", labelled_zip(per_class=2)[0])
    assert len(all_images(load_dataset(first.dataset))) == 4
    delete_upload(WS, "digits")
    with pytest.raises(DataError, match="no uploaded dataset"):
        load_dataset(first.dataset)
    again = save_upload(WS, "digits.zip", labelled_zip(per_class=5)[0])
    assert again.dataset == first.dataset and len(all_images(load_dataset(again.dataset))) == 10


def test_the_default_place_is_the_runs_folders_uploads(monkeypatch, tmp_path):
    monkeypatch.delenv("LATENT_LAB_UPLOADS", raising=False)
    monkeypatch.setenv("LATENT_LAB_RUNS", str(tmp_path / "runs"))
    assert uploads_dir() == tmp_path / "runs" / ".uploads"
    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(tmp_path / "elsewhere"))
    assert uploads_dir() == tmp_path / "elsewhere"


def test_a_disk_that_cannot_be_written_is_a_message_without_the_path(store, monkeypatch):
    blocker = store / "not-a-folder"
    blocker.write_bytes(b"")
    monkeypatch.setenv("LATENT_LAB_UPLOADS", str(blocker / "uploads"))  # mkdir fails under a file
    for filename, data in (("digits.zip", labelled_zip()[0]), ("arrays.npz", npz_bytes(x=np.zeros((4, 28, 28),
                                                                                                  np.uint8)))):
        with pytest.raises(DataError, match=f"the server could not store {filename}") as e:
            save_upload(WS, filename, data)
        assert str(store) not in str(e.value)


def test_only_the_latest_uploads_stay_loaded(store, monkeypatch):
    from engine.data import catalogue

    monkeypatch.setattr(catalogue, "MAX_CACHED_UPLOADS", 2)
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOADS", "0")  # no limit
    names = [save_upload(WS, f"{k}.zip", labelled_zip(per_class=2)[0]).dataset for k in "abc"]
    first = load_dataset(names[0])
    assert load_dataset(names[0]) is first  # cached
    load_dataset(names[1]), load_dataset(names[2])
    assert load_dataset(names[2]) is load_dataset(names[2])
    assert load_dataset(names[0]) is not first  # evicted by the two loaded after it, so read again
    assert load_dataset("mnist-5k") is load_dataset("mnist-5k")  # the server's own datasets are not counted


# -- a .csv of series (the Sequences page's upload) ---------------------------------------------------------------


def series_csv(n: int = 30, steps: int = 20, labelled: bool = True) -> bytes:
    """n noisy sine waves of `steps` values, two phases ("up", "down"), one per row (a label column first)."""
    rng = np.random.default_rng(0)
    lines = [("label," if labelled else "") + ",".join(f"t{i}" for i in range(steps))]
    for k in range(n):
        wave = np.sin(np.arange(steps) / 3 + 2 * (k % 2)) + 0.1 * rng.normal(size=steps)
        lines.append((("up," if k % 2 else "down,") if labelled else "") + ",".join(f"{v:.4f}" for v in wave))
    return "\n".join(lines).encode()


def long_csv(steps: int = 1000) -> bytes:
    """One long series (value, label) with one labelled anomaly late in it."""
    t = np.arange(steps)
    value = np.sin(t / 5) + np.where((t > 700) & (t < 720), 2.0, 0.0)
    return ("value,label\n" + "\n".join(f"{v:.4f},{int(700 < i < 720)}" for i, v in enumerate(value))).encode()


def test_a_csv_of_series_is_stored_in_the_workspace_and_loads_as_csv_file_does(store, tmp_path):
    from engine.data.sequences import read_csv

    result = uploads.save_series_upload(WS, "My Waves.csv", series_csv())
    assert (result.dataset, result.form, result.classes) == (f"upload:{WS}/my-waves", "rows", ["down", "up"])
    assert (result.n_train, result.n_test, result.length, result.channels) == (24, 6, 20, 1)
    assert tree(store) == {f"uploads/{WS}/{f}" for f in (".lock", "my-waves.csv", "my-waves.json")}
    # listed with the series (and its limit's count), never among the images an image page offers
    assert [i.name for i in list_uploads(WS)] == [result.dataset]
    assert list_uploads(WS, kind="images") == [] and uploads.series_uploads(WS, "long") == []
    (info,) = uploads.series_uploads(WS, "rows")
    assert info.description.startswith("your upload my-waves: 30 series of 20 steps in 2 classes")
    ds = load_dataset(result.dataset)
    (tmp_path / "same.csv").write_bytes(series_csv())
    reference = read_csv(tmp_path / "same.csv")  # the upload is exactly what csv:FILE makes of the same bytes
    assert ds.kind == "sequence" and ds.name == result.dataset
    for part in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(ds, part).numpy(), getattr(reference, part).numpy()), part
    assert dataset_classes(result.dataset) == 2 and upload_owner(result.dataset) == WS
    check_dataset(result.dataset)


def test_one_long_column_is_a_long_series_for_the_anomaly_page(store):
    result = uploads.save_series_upload(WS, "ecg.csv", long_csv())
    assert result.form == "long" and result.steps == 1000 and result.classes == ["normal", "anomaly"]
    assert [i.name for i in uploads.series_uploads(WS, "long")] == [result.dataset]
    series = load_dataset(result.dataset).series
    assert series is not None and len(series.values) == 1000 and series.labels[701:720].all()
    assert series.train_end <= 700  # the normal start ends before the labelled anomaly


@pytest.mark.parametrize("data, message", [
    (b"", "is empty"),
    ("1,2,3,4\n5,6,7,8\n".encode("utf-16"), "not UTF-8"),
    (b"1,2,3,4\n5,6,7\n", "row 2 has 3 values but the first data row has 4"),
    (b"1,2,3,4\n5,6,x,8\n", "'x' is not a number"),
    (b"1,2,3,4\n5,6,nan,8\n", "NaN or infinity"),
    (b"1,2,3,inf\n5,6,7,8\n", "NaN or infinity"),
    (b"1,2,3,4\n", "holds 1 data row"),
    (b"1,2\n3,4\n", "at least 4 steps"),
    (b"value,label\n1,0\n2,3\n3,0\n", "must hold 0 .normal. or 1"),
    (b"1,2,3,4\x00\n5,6,7,8\n", "NUL"),
])
def test_a_malformed_csv_is_refused_with_its_reason_and_nothing_is_stored(store, data, message):
    before = tree(store)
    with pytest.raises(DataError, match=message) as e:
        uploads.save_series_upload(WS, "bad.csv", data)
    assert tree(store) - before <= {f"uploads/{WS}/.lock"}, "a refused upload was stored"
    assert str(store) not in str(e.value), "the message shows a server path"
    assert list_uploads(WS) == []


def test_a_series_upload_is_capped_before_it_is_read_and_counts_against_the_same_limit(store, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOAD_MB", "0.01")
    with pytest.raises(DataError, match=r"big.csv is 0.0 MB, over the 0.00\d+ MB an upload may be"):
        uploads.save_series_upload(WS, "big.csv", b"\xff" * 20_000)  # not UTF-8 either: the size is said first
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOAD_MB", "20")
    with pytest.raises(DataError, match="not a .csv"):
        uploads.save_series_upload(WS, "series.txt", series_csv())
    with pytest.raises(DataError, match="upload it on the Sequences page"):
        save_upload(WS, "series.csv", series_csv())  # the image upload says where a CSV goes
    monkeypatch.setenv("LATENT_LAB_MAX_UPLOADS", "2")
    save_upload(WS, "digits.zip", labelled_zip()[0])
    uploads.save_series_upload(WS, "waves.csv", series_csv())
    with pytest.raises(UploadLimitError, match="at most 2 uploaded datasets"):
        uploads.save_series_upload(WS, "waves.csv", series_csv())
    delete_upload(WS, "waves")
    assert uploads.save_series_upload(WS, "waves.csv", series_csv()).slug == "waves"
    assert workspace_upload_bytes(WS) > len(series_csv())


def test_a_series_upload_trains_through_the_job_path_in_its_own_workspace_only(store, tmp_path, monkeypatch):
    from engine.lab.sequences import run_settings
    from engine.runs import RunError
    from engine.runs.config import check_own_data
    from engine.runs.jobs import JobManager
    from engine.runs.workspace import AccessError, Actor, Limits
    from engine.train import train_run

    monkeypatch.setenv("LATENT_LAB_MODE", "hosted")
    monkeypatch.setattr(JobManager, "_start", lambda self, run: None)  # queued only: the worker is train_run below
    mine, other = Actor("a" * 20), Actor("b" * 20)
    name = uploads.save_series_upload(mine.workspace, "waves.csv", series_csv()).dataset
    jm = JobManager(tmp_path / "runs", max_concurrent=1, poll_interval=None, limits=Limits())
    model_config, train = run_settings("conv1d_ae", name, 4, 10)
    with pytest.raises(AccessError, match="another workspace"):
        jm.submit("conv1d_ae", name, model_config, train, actor=other)
    with pytest.raises(AccessError, match="does not read its folders"):  # a path, even to the stored file
        jm.submit("conv1d_ae", f"csv:{uploads.upload_path(name)}", model_config, train, actor=mine)
    run = jm.submit("conv1d_ae", name, model_config, train, actor=mine)
    assert run.config["model_config"]["length"] == 20 and run.config["workspace"] == mine.workspace
    with pytest.raises(RunError, match="another workspace"):  # a worker refuses a run edited to name it
        check_own_data({**run.config, "workspace": other.workspace})
    clear_cache()  # the worker's own process loads it afresh
    train_run(run)
    assert run.status().state == "done" and run.status().final_metrics["mse"] > 0


def test_the_cli_lists_every_workspaces_uploads_with_their_kind_shape_and_classes(store):
    """`python -m engine datasets` listed the bundled sets only: an operator could not see what visitors uploaded."""
    data, _ = labelled_zip(per_class=6)
    images = save_upload(WS, "digits.zip", data).dataset
    series = uploads.save_series_upload("ws2", "waves.csv", series_csv()).dataset
    env = {**os.environ, "LATENT_LAB_UPLOADS": str(uploads_dir())}
    proc = subprocess.run([sys.executable, "-m", "engine", "datasets"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    listed = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [r["kind"] for r in listed]
    assert kinds == sorted(kinds, key=["image", "sequence"].index)  # each upload among its kind
    by_name = {r["name"]: r for r in listed}
    assert {k: by_name[images][k] for k in ("kind", "shape", "classes", "workspace", "available")} == {
        "kind": "image", "shape": [1, 28, 28], "classes": 2, "workspace": WS, "available": True}
    assert by_name[images]["n_train"] + by_name[images]["n_test"] == 12
    ds = load_dataset(series)  # what the listing says is what loads
    assert {k: by_name[series][k] for k in ("kind", "shape", "classes", "workspace")} == {
        "kind": "sequence", "shape": [ds.length, ds.channels], "classes": ds.num_classes, "workspace": "ws2"}
    assert (by_name[series]["n_train"], by_name[series]["n_test"]) == (len(ds.x_train), len(ds.x_test))
