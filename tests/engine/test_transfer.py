"""Run download and upload: export → import gives the same model; every tampering is refused, writing nothing."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import stat
import zipfile

import pytest
import torch

from engine.models import build_model
from engine.runs import RESUMABLE, Run, RunError, list_runs, make_run_config, read_checkpoint, transfer
from engine.runs.transfer import MANIFEST, export_run, import_run

# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def trained_ae(tmp_path) -> Run:
    """A small dense AE run after two Adam steps, left 'running' (as if exported mid-training)."""
    config = make_run_config("ae", "mnist-5k", {"latent_dim": 4, "hidden": [16]}, {"device": "cpu", "seed": 3})
    run = Run.create(tmp_path / "src", config, run_id="20250101-000000-ae-src")
    torch.manual_seed(0)
    model = build_model("ae", config["model_config"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(8, 1, 28, 28)
    for step in (1, 2):
        out = model.loss_step(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        run.log({"step": step, "train/loss": float(out.loss.detach()), "test/mse": float(out.logs["mse"])})
        header = {"model": "ae", "model_config": config["model_config"], "kind": "reconstruction",
                  "dataset": "mnist-5k", "epoch": 0, "batch": step, "elapsed": 0.1 * step, "train": config["train"]}
        run.save_checkpoint(model, step, header, {"adam": opt})
    run.save_snapshot(_png(), 2)
    (run.path / "snapshots" / "inputs.png").write_bytes(_png())
    run.set_status(state="running", step=2, pid=1, pid_start="0", threads=1, device="cpu")
    return run


@pytest.fixture
def pca_run(tmp_path, finished_pca_run) -> Run:
    return Run(shutil.copytree(finished_pca_run, tmp_path / "src" / "pca-finished"))


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / "dest"
    path.mkdir()
    return path


def _png() -> bytes:
    from engine.data.images import png_bytes

    return png_bytes(torch.zeros(28, 28, dtype=torch.uint8).numpy())


def unpack(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def repack(files: dict[str, bytes], manifest: bool = True) -> bytes:
    """Zip `files` again; manifest=True rewrites manifest.json so its checksums match (a careful forger)."""
    files = dict(files)
    if manifest:
        m = json.loads(files[MANIFEST])
        m["files"] = {n: hashlib.sha256(b).hexdigest() for n, b in files.items() if n != MANIFEST}
        files[MANIFEST] = json.dumps(m).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return buf.getvalue()


def ckpt_name(files: dict) -> str:
    (name,) = [n for n in files if n.startswith("checkpoints/")]
    return name


def assert_refused(dest, data: bytes, message: str, **kw) -> None:
    with pytest.raises(RunError, match=message):
        import_run(dest, data, **kw)
    assert list(dest.iterdir()) == [], "a refused import must write nothing"


# -- round trip ------------------------------------------------------------------------------------


def test_round_trip_gives_the_same_model(trained_ae, dest):
    data = export_run(trained_ae)
    files = unpack(data)
    expected = {"checkpoints/step_00000002.safetensors", "snapshots/inputs.png", "snapshots/recon_00000002.png"}
    assert set(files) == {MANIFEST, "config.json", "status.json", "metrics.jsonl", *expected}
    assert not any(b.startswith(b"\x80") for b in files.values())  # no pickle protocol header anywhere

    new = import_run(dest, data)
    assert [r.id for r in list_runs(dest)] == [new.id] and new.id != trained_ae.id
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    (a, _), (b, _) = trained_ae.load_model(), new.load_model()
    with torch.no_grad():
        torch.testing.assert_close(a.encode(x), b.encode(x), rtol=0, atol=0)
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    # the optimizer state travels too, so a resume continues Adam where it stopped
    _, t_old = read_checkpoint(trained_ae.latest_checkpoint())
    _, t_new = read_checkpoint(new.latest_checkpoint())
    assert t_old.keys() == t_new.keys() and any(k.startswith("adam:") for k in t_new)
    assert all(torch.equal(t_old[k], t_new[k]) for k in t_old)
    assert new.metrics() == trained_ae.metrics()
    assert [s.step for s in new.snapshots()] == [2]


def test_an_unfinished_run_comes_back_cancelled_and_resumable(trained_ae, dest):
    new = import_run(dest, export_run(trained_ae))
    status = new.status()
    assert status.state == "cancelled" and status.state in RESUMABLE
    assert "imported while it was running" in status.error and "step 2" in status.error
    # another machine's process ids mean nothing here
    assert status.pid is None and "pid" not in status.raw and "threads" not in status.raw
    config = new.config
    assert config["id"] == new.id and config["train"]["device"] == "auto"
    assert config["imported"]["from"] == trained_ae.id and config["imported"]["device"] == "cpu"
    assert config["model_config"] == trained_ae.config["model_config"]


def test_a_done_run_stays_done_and_imports_never_overwrite(pca_run, dest):
    data = export_run(pca_run)
    first, second = import_run(dest, data), import_run(dest, data)
    assert first.id != second.id and len(list_runs(dest)) == 2
    for new in (first, second):
        assert new.status().state == "done"
        assert new.status().final_metrics == pca_run.status().final_metrics
    assert first.summary()["metrics"]["mse"] == pca_run.summary()["metrics"]["mse"]


def test_a_failed_run_keeps_its_error(pca_run, dest):
    pca_run.set_status(state="failed", error="ValueError: boom")
    status = import_run(dest, export_run(pca_run)).status()
    assert (status.state, status.error) == ("failed", "ValueError: boom")
    assert status.final_metrics == pca_run.status().final_metrics and status.pid is None and "pid" not in status.raw


def test_export_needs_a_checkpoint_and_skips_a_damaged_newest(trained_ae, tmp_path):
    newest = trained_ae.latest_checkpoint()
    raw = bytearray(newest.read_bytes())
    raw[-3] ^= 0xFF
    newest.write_bytes(bytes(raw))
    assert ckpt_name(unpack(export_run(trained_ae))) == "checkpoints/step_00000001.safetensors"
    for _, p in trained_ae.checkpoints():
        p.unlink()
    with pytest.raises(RunError, match="no checkpoint yet"):
        export_run(trained_ae)


def test_export_thins_snapshots_and_leaves_out_a_torn_metrics_line(trained_ae, dest):
    for step in range(3, 300):
        trained_ae.save_snapshot(_png(), step)
    with open(trained_ae.path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "train/lo')  # a line being appended while the export reads
    files = unpack(export_run(trained_ae))
    recon = sorted(n for n in files if n.startswith("snapshots/recon_"))
    assert len(recon) == transfer.MAX_SNAPSHOTS
    assert recon[0].endswith("00000002.png") and recon[-1].endswith("00000299.png")
    assert files["metrics.jsonl"].endswith(b"\n") and b"train/lo\"" not in files["metrics.jsonl"].split(b"\n")[-1]
    assert len(import_run(dest, repack(files, manifest=False)).metrics()) == 2


# -- tampering -------------------------------------------------------------------------------------


def test_not_a_zip(dest):
    assert_refused(dest, b"just some bytes, not a zip", "not a zip archive")
    assert_refused(dest, b"", "not a zip archive")


def test_a_flipped_checkpoint_byte(trained_ae, dest):
    files = unpack(export_run(trained_ae))
    name = ckpt_name(files)
    raw = bytearray(files[name])
    raw[-5] ^= 0x01  # inside the last tensor's bytes
    files[name] = bytes(raw)
    assert_refused(dest, repack(files, manifest=False), "fails its checksum: it was changed after the export")
    # a forger who fixes the manifest still meets the checkpoint's own sha256
    assert_refused(dest, repack(files), "fails its checksum: its weights were changed after saving")


@pytest.mark.parametrize("name", ["../evil.py", "/etc/cron.d/evil", "snapshots/../../evil.png",
                                  "C:\\evil.png", "checkpoints\\..\\..\\evil"])
def test_path_traversal(pca_run, dest, name):
    files = unpack(export_run(pca_run))
    files[name] = b"print('hi')"
    assert_refused(dest, repack(files), "unsafe path")


def test_a_symlink_member(pca_run, dest):
    files = unpack(export_run(pca_run))
    buf = io.BytesIO(repack(files))
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("snapshots/recon_00000099.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(dest, buf.getvalue(), "symbolic link")


@pytest.mark.parametrize("name, blob, message", [
    ("model.pkl", pickle.dumps({"w": [1, 2]}), "unexpected file 'model.pkl'"),
    ("checkpoints/step_00000001.pt", pickle.dumps({}), "unexpected file"),
    ("run.sh", b"rm -rf /", "unexpected file"),
])
def test_unexpected_files(pca_run, dest, name, blob, message):
    files = unpack(export_run(pca_run))
    files[name] = blob
    assert_refused(dest, repack(files), message)


def test_a_pickle_in_place_of_the_checkpoint(trained_ae, dest):
    files = unpack(export_run(trained_ae))
    buf = io.BytesIO()
    torch.save(build_model("ae", trained_ae.config["model_config"]).state_dict(), buf)  # a zip of pickles
    files[ckpt_name(files)] = buf.getvalue()
    assert_refused(dest, repack(files), "not a readable safetensors file")


def test_a_zip_bomb(pca_run, dest):
    files = unpack(export_run(pca_run))
    files["metrics.jsonl"] = b"\n" * (20 * 2**20)  # 20 MiB that deflate to ~20 KiB
    assert_refused(dest, repack(files), "zip bomb")


def test_size_limits(pca_run, dest, monkeypatch):
    data = export_run(pca_run)
    assert_refused(dest, data, "over the 0 MiB limit", max_bytes=len(data) - 1)
    monkeypatch.setattr(transfer, "MAX_UNCOMPRESSED_BYTES", 10_000)
    assert_refused(dest, data, "unpacks to more than")
    monkeypatch.undo()
    files = unpack(data)
    files.update({f"snapshots/recon_{i:08d}.png": _png() for i in range(10, 10 + transfer.MAX_MEMBERS)})
    assert_refused(dest, repack(files), "more than the 512")


def test_a_duplicate_member(pca_run, dest):
    files = unpack(export_run(pca_run))
    buf = io.BytesIO(repack(files))
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("config.json", files["config.json"])
    assert_refused(dest, buf.getvalue(), "twice")


def _edit_config(files, **changes):
    config = json.loads(files["config.json"])
    for key, value in changes.items():
        config[key] = value
    files["config.json"] = json.dumps(config).encode()
    return files


def test_config_naming_an_unknown_model(pca_run, dest):
    files = _edit_config(unpack(export_run(pca_run)), model="resnet_152")
    assert_refused(dest, repack(files), "unknown model 'resnet_152'")


def test_config_that_does_not_match_the_checkpoint(trained_ae, dest):
    files = unpack(export_run(trained_ae))
    mcfg = json.loads(files["config.json"])["model_config"]
    assert_refused(dest, repack(_edit_config(dict(files), model_config={**mcfg, "latent_dim": 6})),
                   "other model settings")
    assert_refused(dest, repack(_edit_config(dict(files), model_config={**mcfg, "latent_dim": -1})),
                   "latent_dim must be at least 1")
    assert_refused(dest, repack(_edit_config(dict(files), model="linear_ae",
                                             model_config={k: mcfg[k] for k in ("latent_dim", "loss", "noise",
                                                                                "noise_level")})),
                   "holds a 'ae' model|does not fit")


def test_missing_pieces(trained_ae, dest):
    files = unpack(export_run(trained_ae))
    no_ckpt = {n: b for n, b in files.items() if not n.startswith("checkpoints/")}
    assert_refused(dest, repack(no_ckpt), "no checkpoint")
    assert_refused(dest, repack({n: b for n, b in files.items() if n != "config.json"}), "no config.json")
    assert_refused(dest, repack({n: b for n, b in files.items() if n != MANIFEST}, manifest=False),
                   "no manifest.json")
    extra = dict(files)
    del extra["snapshots/inputs.png"]
    assert_refused(dest, repack(extra, manifest=False), "missing: snapshots/inputs.png")


def test_damaged_json_and_images(trained_ae, dest):
    files = unpack(export_run(trained_ae))
    assert_refused(dest, repack({**files, "status.json": b"[1, 2"}), "status.json in the archive is not valid JSON")
    assert_refused(dest, repack({**files, "config.json": b"[" * 100_000}), "config.json in the archive is not valid")
    assert_refused(dest, repack({**files, "status.json": b'{"state": "exploded"}'}), "unknown state")
    assert_refused(dest, repack({**files, "snapshots/inputs.png": b"GIF89a"}), "not a PNG image")
    big = io.BytesIO()
    from PIL import Image

    Image.new("L", (5000, 5000)).save(big, format="PNG")  # a tiny file claiming 25 M pixels
    assert_refused(dest, repack({**files, "snapshots/inputs.png": big.getvalue()}), "far larger than a snapshot")
    manifest = json.loads(files[MANIFEST])
    assert_refused(dest, repack({**files, MANIFEST: json.dumps({**manifest, "format_version": 99}).encode()},
                                manifest=False), "export format version 99")


def test_forged_settings_asking_for_a_huge_model_are_refused_before_building_it(trained_ae, dest):
    """The header is outside the checkpoint's sha256: a forger can rewrite it along with config.json."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    files = unpack(export_run(trained_ae))
    name = ckpt_name(files)
    header_len = int.from_bytes(files[name][:8], "little")
    header = json.loads(json.loads(files[name][8:8 + header_len])["__metadata__"]["latent_lab"])
    huge = {**header["model_config"], "hidden": [2**28]}  # 784 × 2²⁸ floats: about 840 GB if it were built
    files[name] = st_save(st_load(files[name]), metadata={"latent_lab": json.dumps({**header, "model_config": huge})})
    files = _edit_config(files, model_config=huge)
    # refused by the declared range of `hidden` now, before even the shapes are compared
    assert_refused(dest, repack(files), "hidden must be at most 4,096|does not fit a 'ae' model with these settings")
