"""Issue 16, items 1, 6 and 7: an uploaded run cannot name a server path or fill the disk, bombs are refused
before they cost memory, and the Train form does not re-read model declarations on every render."""

from __future__ import annotations

import ast
import inspect
import io
import json
import sys
import tracemalloc
import typing
import zipfile

import pytest
from PIL import Image

from engine.data import DataError, check_dataset, load_dataset
from engine.data.preprocess import MAX_PNG_PIXELS, PreprocessError, from_image_bytes
from engine.lab.train import model_settings, train_settings, trainable_models
from engine.runs import Run, RunError, make_run_config, transfer
from engine.runs.transfer import export_run, import_run
from tests.engine.test_transfer import repack, unpack


@pytest.fixture(scope="module")
def pca_export(finished_pca_run) -> dict[str, bytes]:
    return unpack(export_run(Run(finished_pca_run)))


def with_config(files: dict[str, bytes], dataset=None, **train) -> bytes:
    config = json.loads(files["config.json"])
    if dataset is not None:
        config["dataset"] = dataset
    config["train"].update(train)
    return repack({**files, "config.json": json.dumps(config).encode()})


def assert_refused(dest, data: bytes, message: str) -> RunError:
    with pytest.raises(RunError, match=message) as e:
        import_run(dest, data)
    assert list(dest.iterdir()) == [], "a refused import must write nothing"
    return e.value


def peak_mib(fn) -> float:
    """Peak Python-side memory (MiB) while fn runs (numpy arrays count; Pillow's own buffers do not)."""
    tracemalloc.start()
    try:
        fn()
    except ValueError:
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG")
    return buf.getvalue()


# -- item 1: an upload names no server path, and cannot fill the disk ----------------------------------


@pytest.mark.parametrize("dataset", ["folder:/etc", "folder:/root/private-images", "npz:/dev/zero",
                                     "npz:/srv/data/users.npz", "folder:"])
def test_an_uploaded_run_must_use_one_of_the_servers_datasets(pca_export, tmp_path, dataset):
    e = assert_refused(tmp_path, with_config(pca_export, dataset=dataset), "one of this server's datasets")
    path = dataset.partition(":")[2]
    assert not path or path not in str(e), "the refusal echoes the path back"


def test_an_uploaded_run_on_a_server_dataset_imports_and_keeps_it(pca_export, tmp_path):
    run = import_run(tmp_path, with_config(pca_export, dataset="mnist-5k"))
    assert run.config["dataset"] == "mnist-5k"


def test_a_run_imported_before_the_check_cannot_train_on_a_server_path(pca_export, tmp_path, monkeypatch):
    """An archive imported by an older server (or a config.json edited since) may still name `npz:` or `folder:`:
    neither resume nor a worker reads that path."""
    from engine.runs.files import atomic_write_json
    from engine.runs.jobs import JobManager
    from engine.train import train_run

    run = import_run(tmp_path, with_config(pca_export, dataset="mnist-5k"))
    secret = tmp_path / "private.npz"
    atomic_write_json(run.path / "config.json", {**run.config, "dataset": f"npz:{secret}"})
    run.set_status(state="interrupted")
    with pytest.raises(RunError, match="imported and names a dataset that is not one of this server's"):
        JobManager(tmp_path).resume(run.id)
    assert run.status().state == "interrupted"  # nothing was queued

    read = []
    monkeypatch.setattr("engine.train.loop.load_dataset", lambda name: read.append(name))
    with pytest.raises(RunError):
        train_run(run, resume=True)
    assert read == [] and run.status().state == "failed" and str(secret) not in run.status().error


def test_an_imported_config_is_rewritten_as_the_engine_writes_one(pca_export, tmp_path):
    """Typed as the engine types it, and nothing the uploader added besides: pages read these fields."""
    config = json.loads(pca_export["config.json"])
    config.update(model_config={"latent_dim": "8"}, extra={"html": "<script>"}, created_at="yesterday")
    config["train"].update(epochs="3", classes="1,2")
    run = import_run(tmp_path, repack({**pca_export, "config.json": json.dumps(config).encode()}))
    assert run.config["model_config"] == {"latent_dim": 8}
    assert run.config["train"]["epochs"] == 3 and run.config["train"]["classes"] == [1, 2]
    assert "extra" not in run.config and "created_at" not in run.config


@pytest.mark.parametrize("train, message", [
    ({"keep_checkpoints": 0}, "keep_checkpoints must be at least 1"),
    ({"keep_checkpoints": 10**6}, "keep_checkpoints must be at most 100"),
    ({"checkpoint_every_s": 0.001}, "checkpoint_every_s must be at least 0.2"),
    ({"snapshot_every_s": 0}, "snapshot_every_s must be at least 0.1"),
    ({"log_every_s": -1}, "log_every_s must be at least"),
    ({"eval_batch": 0}, "eval_batch must be at least 1"),
    ({"classes": [99]}, "classes must be indices of mnist-5k's 10 classes"),
    ({"threads": -4}, "threads must be at least 0"),
    ({"batch_size": 10**8}, "batch_size must be at most 4,096"),
])
def test_uploaded_disk_and_size_settings_are_bounded(pca_export, tmp_path, train, message):
    assert_refused(tmp_path, with_config(pca_export, **train), message)


def test_disk_settings_are_bounded_before_a_run_folder_exists(tmp_path):
    for train in ({"keep_checkpoints": 0}, {"checkpoint_every_s": 0.001}, {"lr": float("inf")},
                  {"weight_decay": float("nan")}, {"eval_batch": 0}):
        with pytest.raises(ValueError, match=next(iter(train))):
            make_run_config("ae", "mnist-5k", {}, train)


def test_a_device_or_a_folder_named_as_an_npz_is_said_to_be_what_it_is(tmp_path):
    with pytest.raises(DataError, match="/dev/zero is not a regular file"):
        check_dataset("npz:/dev/zero")
    with pytest.raises(DataError, match="/dev/zero is not a regular file"):
        load_dataset("npz:/dev/zero")
    with pytest.raises(DataError, match="is not a regular file"):
        check_dataset(f"npz:{tmp_path}")
    with pytest.raises(DataError, match="does not exist"):
        check_dataset(f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(DataError, match="is not a folder"):
        check_dataset("folder:/dev/zero")


# -- item 6: memory before refusal -------------------------------------------------------------------


def many_member_bomb(n: int = 240) -> bytes:
    """The audit's bomb: n members of 1 MiB each (each at the old ratio check's floor), deflated to almost
    nothing, named like snapshots so every name check passes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", json.dumps({"format": "latent-lab-run", "format_version": 1, "files": {}}))
        for i in range(n):
            zf.writestr(f"snapshots/recon_{i:08d}.png", b"\0" * transfer.RATIO_FLOOR)
    return buf.getvalue()


def test_a_bomb_of_many_small_members_is_refused_before_any_is_read(tmp_path, monkeypatch):
    data = many_member_bomb()
    assert len(data) < 2**20
    monkeypatch.setattr(transfer, "_read_members", lambda zf, infos: pytest.fail("members were decompressed"))
    assert_refused(tmp_path, data, "zip bomb")
    monkeypatch.undo()
    peak = peak_mib(lambda: import_run(tmp_path, data))
    assert peak < 8, f"{peak:.0f} MiB spent before refusing a {len(data) // 1000} kB upload"  # was 253 MiB


def test_each_member_is_bounded_by_what_such_a_file_can_be(pca_export, tmp_path):
    big = {**pca_export, "status.json": b" " * (2 * 2**20)}  # stored: no ratio to notice
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, blob in big.items():
            zf.writestr(name, blob)
    assert_refused(tmp_path, buf.getvalue(), "status.json.* over the 1 MiB")


def test_an_uploaded_png_bomb_is_refused_from_its_header(monkeypatch):
    bomb = png(6300)  # 39 kB claiming 40 M pixels
    assert len(bomb) < 50_000 and 6300 * 6300 > MAX_PNG_PIXELS
    with pytest.raises(PreprocessError, match="6,300×6,300 pixels"):
        from_image_bytes(bomb)
    peak = peak_mib(lambda: from_image_bytes(bomb))
    assert peak < 8, f"{peak:.0f} MiB spent before refusing a 39 kB PNG"  # was 318 MiB (and 3 s)


def test_an_ordinary_upload_still_reads():
    from engine.data.preprocess import EmptyImageError

    with pytest.raises(EmptyImageError):  # read and decoded in full: one flat colour has no digit
        from_image_bytes(png(2000))


def test_a_png_bomb_in_an_import_is_refused_before_pillow_opens_it(pca_export, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow opened the PNG"))
    assert_refused(tmp_path, repack({**pca_export, "snapshots/inputs.png": png(6300)}), "6300×6300 pixels")
    assert_refused(tmp_path, repack({**pca_export, "snapshots/inputs.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 8}),
                   "no IHDR")


# -- item 7: the Train form reads its declarations once ----------------------------------------------


class Counting:
    """Counts calls of typing.get_type_hints, inspect.getsource and ast.parse while active.

    Streamlit compiling the page script itself is not counted (AppTest compiles it on every run; a server
    caches the bytecode).
    """

    TARGETS = ((typing, "get_type_hints"), (inspect, "getsource"), (ast, "parse"))

    def __init__(self, monkeypatch):
        self.calls = {name: 0 for _, name in self.TARGETS}
        for module, name in self.TARGETS:
            original = getattr(module, name)

            def counted(*a, _original=original, _name=name, **k):
                caller = sys._getframe(1).f_code.co_filename
                if "streamlit/runtime/scriptrunner" not in caller.replace("\\", "/"):
                    self.calls[_name] += 1
                return _original(*a, **k)

            monkeypatch.setattr(module, name, counted)


def test_the_forms_settings_are_described_once_per_model(monkeypatch):
    for model in trainable_models():
        model_settings(model), train_settings(model)
    calls = Counting(monkeypatch).calls
    for model in trainable_models():
        model_settings(model), train_settings(model)
    assert calls == {"get_type_hints": 0, "getsource": 0, "parse": 0}


def test_a_rerun_of_the_train_page_parses_no_source(runs_dir, monkeypatch, fresh_data_cache):
    from tests.apptest import render_page, rerun

    at = render_page("pages/train.py")
    rerun(at)  # anything imported lazily on the first reruns is imported now
    calls = Counting(monkeypatch).calls
    rerun(at)
    assert calls == {"get_type_hints": 0, "getsource": 0, "parse": 0}, calls
    # the form's number inputs carry the declared ranges
    inputs = {w.key.rsplit("_t_", 1)[-1]: w for w in at.number_input if "_t_" in w.key}
    assert inputs["batch_size"].min == 2 and inputs["batch_size"].max == 4096
    assert inputs["epochs"].min == 1 and inputs["weight_decay"].max == 1.0
