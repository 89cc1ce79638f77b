"""The workshop kit (engine/runs/kit.py, `python -m engine kit`): a TOML list of runs trained once, pinned to the
gallery, resumed when interrupted, and carried between runs folders as one checked archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.runs import Run, list_runs
from engine.runs import workspace as ws
from engine.runs.kit import DEFAULT_KIT, KitError, export_kit, import_kit, kit_runs, load_kit, parse_kit, train_kit
from engine.runs.transfer import export_run, import_run
from engine.train import train_run

ROOT = Path(__file__).resolve().parents[2]

# Three entries of about a second of training each; one thread each (two workers share the test machine).
TINY = """
name = "tiny"
description = "a kit for tests"

[runs.conv]
name = "conv AE · latent 8"
model = "conv_ae"
model_config = { latent_dim = 8 }
train = { steps = 30, threads = 1, eval_batch = 100 }

[runs.pca]
name = "PCA · 8 components"
model = "pca"
model_config = { latent_dim = 8 }

[runs.zeros]
name = "one-class AE · digit 0"
model = "ae"
model_config = { latent_dim = 4, hidden = [32] }
train = { classes = [0], steps = 30, threads = 1, eval_batch = 100 }
"""


def write_kit(folder: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def run_ids(runs_dir: Path) -> set[str]:
    return {r.id for r in list_runs(runs_dir)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A runs folder holding the tiny kit, trained once for the module (copy it before changing it)."""
    folder = tmp_path_factory.mktemp("kit")
    kit = load_kit(write_kit(folder))
    lines = []
    outcomes = train_kit(kit, folder / "runs", jobs=2, on_event=lines.append, poll_s=0.1)
    return kit, folder / "runs", outcomes, lines


def copy_of(runs_dir: Path, tmp_path: Path) -> Path:
    return shutil.copytree(runs_dir, tmp_path / "runs")


def cli(*args, runs_dir: Path):
    env = {**os.environ, "LATENT_LAB_RUNS": str(runs_dir)}
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


# -- the kit file -------------------------------------------------------------------------------------------


def test_the_default_kit_holds_the_workshops_runs_with_readable_names():
    kit = load_kit()
    assert kit.name == DEFAULT_KIT and load_kit("workshop") == kit
    models = [e.model for e in kit.entries]
    for model in ("conv_ae", "vae", "denoising_ae", "sparse_ae", "contractive_ae", "pca", "dcgan", "cgan"):
        assert model in models
    assert {e.dataset for e in kit.entries} == {"mnist-5k"}
    assert kit.entry("conv_ae").name == "conv AE · latent 32" and kit.entry("conv_ae").model_config["latent_dim"] == 32
    assert kit.entry("vae_2d").model_config["latent_dim"] == 2
    assert kit.entry("one_class_0").train["classes"] == [0]
    assert len({e.name for e in kit.entries}) == len(kit.entries)
    assert all("steps" in e.train for e in kit.entries if e.model != "pca")  # the same models on any machine


@pytest.mark.parametrize("text, words", [
    ("name = 'x'\n[runs.a\n", "not valid TOML"),
    ("colour = 'red'\n[runs.a]\nname = 'A'\nmodel = 'pca'\n", "unknown field 'colour'"),
    ("name = 'x'\n", "has no entries"),
    ("[runs.a]\nname = 'A'\n", "model is missing"),
    ("[runs.a]\nname = 'A'\nmodel = 'no_such_model'\n", "[runs.a]"),
    ("[runs.a]\nname = 'A'\nmodel = 'conv_ae'\nmodel_config = { latent_dim = -3 }\n", "latent_dim"),
    ("[runs.a]\nname = 'A'\nmodel = 'conv_ae'\ntrain = { classes = [12] }\n", "classes"),
    ("[runs.a]\nname = 'A'\nmodel = 'pca'\n[runs.b]\nname = 'A'\nmodel = 'pca'\n", "another entry's too"),
    ("[runs.a]\nname = 'A'\nmodel = 'pca'\nsteps = 3\n", "unknown field 'steps'"),
    ("name = 'Bad Name'\n[runs.a]\nname = 'A'\nmodel = 'pca'\n", "name must be"),
])
def test_a_malformed_kit_file_says_what_is_wrong_in_one_line(text, words):
    with pytest.raises(KitError) as e:
        parse_kit(text, "my.toml")
    assert words in str(e.value) and "my.toml" in str(e.value) and "\n" not in str(e.value)


def test_a_kit_is_named_by_its_name_or_its_file(tmp_path):
    assert load_kit(write_kit(tmp_path)).name == "tiny"
    assert load_kit(write_kit(tmp_path, TINY.replace('name = "tiny"\n', ""), "other.toml")).name == "other"
    assert load_kit(write_kit(tmp_path, TINY.replace('name = "tiny"\n', ""), "My Kit.toml")).name == "my-kit"
    with pytest.raises(KitError, match="no kit named 'nonesuch'"):
        load_kit("nonesuch")
    with pytest.raises(KitError, match="does not exist"):
        load_kit(tmp_path / "missing.toml")


# -- training -----------------------------------------------------------------------------------------------


def test_a_kit_trains_named_pinned_server_runs(trained):
    kit, runs_dir, outcomes, lines = trained
    assert [o.entry for o in outcomes] == ["conv", "pca", "zeros"]
    assert {o.action for o in outcomes} == {"trained"} and {o.state for o in outcomes} == {"done"}
    assert run_ids(runs_dir) == {o.run for o in outcomes}
    assert ws.pinned(runs_dir) == {o.run for o in outcomes}  # the gallery: every visitor sees them
    for outcome in outcomes:
        config = Run(runs_dir / outcome.run).config
        assert config["name"] == kit.entry(outcome.entry).name
        assert config["kit"] == {"name": "tiny", "entry": outcome.entry}
        assert ws.owner(config) == ws.SERVER  # no workspace: the server's runs
    zeros = Run(runs_dir / outcomes[2].run)
    assert zeros.config["train"]["classes"] == [0] and zeros.status().final_metrics["anomaly_auroc"] > 0.5
    assert outcomes[0].metrics["mse_vs_pca"] > 0
    assert any("conv AE · latent 8: done in" in line for line in lines)
    assert "3 to train" in lines[0] and "3 of 3 runs finished" in lines[-1]


def test_a_second_call_trains_nothing(trained, tmp_path):
    kit, source, _, _ = trained
    runs_dir = copy_of(source, tmp_path)
    before = run_ids(runs_dir)
    ws.set_pinned(runs_dir, sorted(before)[0], False)  # a run taken out of the gallery is pinned again
    outcomes = train_kit(kit, runs_dir, poll_s=0.1)
    assert {o.action for o in outcomes} == {"ready"} and {o.state for o in outcomes} == {"done"}
    assert run_ids(runs_dir) == before and ws.pinned(runs_dir) == before


def test_an_interrupted_entry_is_resumed_from_its_checkpoint(trained, tmp_path):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    old = Run(runs_dir / outcomes[0].run)
    old.delete()  # the conv entry: trained again below, this time stopped half-way
    ws.set_pinned(runs_dir, old.id, False)
    run = Run.create(runs_dir, kit.entry("conv").run_config(kit.name))
    calls = iter(range(10**6))
    train_run(run, should_stop=lambda: next(calls) >= 15)  # stops after ~15 steps with a checkpoint
    stopped = run.status().step
    assert run.latest_checkpoint() is not None and 0 < stopped < 30
    run.set_status(state="interrupted", error="the worker was killed by signal SIGKILL")  # what a kill leaves
    before = run_ids(runs_dir)
    result = {o.entry: o for o in train_kit(kit, runs_dir, poll_s=0.1)}
    assert result["conv"].action == "resumed" and result["conv"].run == run.id
    assert {result["pca"].action, result["zeros"].action} == {"ready"}
    assert run.status().state == "done" and run.status().step == 30
    assert run_ids(runs_dir) == before  # nothing new: the same run continued
    assert min(r["step"] for r in run.metrics() if "step" in r) <= stopped  # its earlier lines kept
    assert run.id in ws.pinned(runs_dir)


def test_a_queued_entry_is_waited_for_not_trained_twice(trained, tmp_path):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    Run(runs_dir / outcomes[2].run).delete()
    queued = Run.create(runs_dir, kit.entry("zeros").run_config(kit.name))  # e.g. left by a call that was killed
    result = {o.entry: o for o in train_kit(kit, runs_dir, poll_s=0.1)}
    assert result["zeros"].action == "waited" and result["zeros"].run == queued.id
    assert queued.status().state == "done" and len(run_ids(runs_dir)) == 3 and queued.id in ws.pinned(runs_dir)


def test_an_edited_entry_trains_again_and_its_old_run_leaves_the_gallery(trained, tmp_path):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    edited = parse_kit(TINY.replace("latent_dim = 8 }\n\n[runs.zeros]", "latent_dim = 6 }\n\n[runs.zeros]"))
    assert edited.entry("pca").model_config == {"latent_dim": 6}
    result = {o.entry: o for o in train_kit(edited, runs_dir, poll_s=0.1)}
    assert result["pca"].action == "trained" and result["pca"].run != outcomes[1].run
    assert Run(runs_dir / result["pca"].run).config["model_config"]["latent_dim"] == 6
    assert outcomes[1].run not in ws.pinned(runs_dir) and result["pca"].run in ws.pinned(runs_dir)
    assert kit_runs(edited, runs_dir)[""][0].id == outcomes[1].run  # kept, as a stale run


def test_an_imported_run_keeps_only_a_well_formed_kit_key(trained, tmp_path):
    from engine.runs.kit import kit_key

    assert kit_key({"name": "workshop", "entry": "conv_ae"}) == {"name": "workshop", "entry": "conv_ae"}
    for forged in ({"name": "../x", "entry": "a"}, {"name": "w", "entry": "a", "extra": 1}, {"name": "w"},
                   {"name": 3, "entry": "a"}, "workshop", None):
        assert kit_key(forged) is None
    _, source, outcomes, _ = trained
    run = Run(source / outcomes[1].run)
    with zipfile.ZipFile(io.BytesIO(export_run(run))) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    config["kit"] = {"name": "tiny", "entry": "pca", "workspace": "someone"}
    files["config.json"] = json.dumps(config).encode()
    manifest = json.loads(files["manifest.json"])
    manifest["files"]["config.json"] = hashlib.sha256(files["config.json"]).hexdigest()
    files["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    assert "kit" not in import_run(tmp_path / "runs", buf.getvalue()).config


def test_a_visitors_copy_of_a_kit_run_is_theirs_not_the_kits(trained, tmp_path):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    copy = import_run(runs_dir, export_run(Run(runs_dir / outcomes[1].run)), workspace="visitor1")
    assert "kit" not in copy.config
    assert kit_runs(kit, runs_dir)["pca"][0].id == outcomes[1].run
    server_copy = import_run(runs_dir, export_run(Run(runs_dir / outcomes[1].run)))
    assert server_copy.config["kit"] == {"name": "tiny", "entry": "pca"}  # an operator's import keeps it


# -- one archive for the whole kit -------------------------------------------------------------------------------


def test_a_kit_exports_and_imports_as_one_archive_once(trained, tmp_path):
    kit, source, outcomes, _ = trained
    data = export_kit(kit, source)
    fresh = tmp_path / "server"
    rows = import_kit(fresh, data)
    assert [r["action"] for r in rows] == ["imported"] * 3 and [r["entry"] for r in rows] == ["conv", "pca", "zeros"]
    imported = {r["entry"]: Run(fresh / r["run"]) for r in rows}
    for entry, run in imported.items():
        assert run.config["kit"] == {"name": "tiny", "entry": entry}
        assert run.config["name"] == kit.entry(entry).name and run.status().state == "done"
        assert ws.owner(run.config) == ws.SERVER
    assert ws.pinned(fresh) == {r.id for r in imported.values()}
    again = import_kit(fresh, data)  # twice: nothing new
    assert [r["action"] for r in again] == ["present"] * 3 and run_ids(fresh) == ws.pinned(fresh)
    assert {o.action for o in train_kit(kit, fresh, poll_s=0.1)} == {"ready"}  # the server trains nothing
    assert len(run_ids(fresh)) == 3


def rezip(data: bytes, change) -> bytes:
    """The kit archive with its members changed by change(dict name → bytes)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    change(files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in files.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def manifest_edit(edit):
    def change(files):
        manifest = json.loads(files["kit.json"])
        edit(manifest, files)
        files["kit.json"] = json.dumps(manifest).encode()
    return change


def swap_entries(manifest, files):
    """conv's run under zeros' name, with the checksums fixed up: each file is a valid run export."""
    files["runs/conv.zip"], files["runs/zeros.zip"] = files["runs/zeros.zip"], files["runs/conv.zip"]
    for item in manifest["runs"]:
        item["sha256"] = hashlib.sha256(files[item["file"]]).hexdigest()


@pytest.mark.parametrize("change, words", [
    (lambda f: f.__setitem__("runs/evil.pkl", b"cos\nsystem\n"), "unexpected file"),
    (lambda f: f.__setitem__("../escape.zip", b"x"), "unsafe path"),
    (lambda f: f.pop("kit.json"), "no kit.json"),
    (lambda f: f.__setitem__("runs/pca.zip", f["runs/pca.zip"][:-40] + b"\0" * 40), "checksum"),
    (lambda f: f.__setitem__("runs/extra.zip", f["runs/pca.zip"]), "does not list"),
    (manifest_edit(lambda m, f: m.__setitem__("format_version", 99)), "format version"),
    (manifest_edit(lambda m, f: m.__setitem__("kit", "../../etc")), "no valid kit"),
    (manifest_edit(swap_entries), "is not the run of kit tiny's entry"),
])
def test_a_tampered_kit_archive_is_refused_and_leaves_nothing(trained, tmp_path, change, words):
    kit, source, _, _ = trained
    bad = rezip(export_kit(kit, source), change)
    fresh = tmp_path / "server"
    fresh.mkdir()
    with pytest.raises(KitError, match=words):
        import_kit(fresh, bad)
    assert run_ids(fresh) == set() and ws.pinned(fresh) == set()
    assert not [p for p in fresh.iterdir() if p.name.startswith(".import-")]


def test_a_kit_archive_over_the_limits_is_refused_before_it_is_unpacked(trained, tmp_path, monkeypatch):
    import engine.runs.kit as kit_module

    kit, source, _, _ = trained
    data = export_kit(kit, source)
    monkeypatch.setattr(kit_module, "MAX_IMPORT_BYTES", 1000)  # each run export's own cap
    with pytest.raises(KitError, match="runs/conv.zip"):
        import_kit(tmp_path / "a", data)
    monkeypatch.setattr(kit_module, "MAX_KIT_IMPORT_BYTES", len(data) - 1)
    with pytest.raises(KitError, match="over the"):
        import_kit(tmp_path / "b", data)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_damaged_run_inside_a_kit_is_refused_by_the_run_checks(trained, tmp_path):
    kit, source, _, _ = trained

    def forge(manifest, files):  # a run export whose config.json was edited, its kit checksum fixed up
        with zipfile.ZipFile(io.BytesIO(files["runs/pca.zip"])) as zf:
            inner = {n: zf.read(n) for n in zf.namelist()}
        config = json.loads(inner["config.json"])
        config["dataset"] = "folder:/etc"
        inner["config.json"] = json.dumps(config).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in inner.items():
                zf.writestr(n, b)
        files["runs/pca.zip"] = buf.getvalue()
        for item in manifest["runs"]:
            item["sha256"] = hashlib.sha256(files[item["file"]]).hexdigest()

    fresh = tmp_path / "server"
    with pytest.raises(KitError, match="runs/pca.zip in the archive: .*checksum"):
        import_kit(fresh, rezip(export_kit(kit, source), manifest_edit(forge)))
    assert run_ids(fresh) == set()  # conv, imported before pca failed, was removed again


def test_an_unfinished_kit_does_not_export(trained, tmp_path):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    Run(runs_dir / outcomes[2].run).delete()
    with pytest.raises(KitError, match="no finished run for zeros"):
        export_kit(kit, runs_dir)


# -- the command line ---------------------------------------------------------------------------------------------


def test_the_cli_trains_nothing_twice_and_moves_a_kit_between_folders(trained, tmp_path, capsys):
    kit, source, outcomes, _ = trained
    runs_dir = copy_of(source, tmp_path)
    kit_file = write_kit(tmp_path)
    proc = cli("kit", kit_file, runs_dir=runs_dir)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["entry"], r["action"], r["state"]) for r in rows] == [
        ("conv", "ready", "done"), ("pca", "ready", "done"), ("zeros", "ready", "done")]
    assert rows[0]["name"] == "conv AE · latent 8" and rows[0]["headline"].startswith("test MSE ÷ PCA")
    assert rows[2]["headline"].startswith("AUROC")
    assert "3 finished already" in proc.stderr
    from engine.cli import main

    archive_path = tmp_path / "kit.zip"
    assert main(["kit", "--export", str(archive_path), str(kit_file), "--runs-dir", str(runs_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 3
    server = tmp_path / "server"
    for action in ("imported", "present"):
        assert main(["kit", "--import", str(archive_path), "--runs-dir", str(server)]) == 0
        assert [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()] == [action] * 3
    assert len(run_ids(server)) == 3 and ws.pinned(server) == run_ids(server)


@pytest.mark.parametrize("args, code, words", [
    (["kit", "nonesuch"], 1, "error: there is no kit named 'nonesuch'"),
    (["kit", "BAD"], 1, "error: kit file BAD, [runs.a]: "),
    (["kit", "--export", "a.zip", "--import", "b.zip"], 2, "not allowed with argument"),
    (["kit", "--import", "missing.zip"], 1, "error: No such file or directory"),
    (["kit", "--import", "KITZIP", "tiny"], 1, "--import takes the archive alone"),
    (["kit", "--import", "KITZIP"], 1, "error: the file is not a zip archive"),
    (["kit", "--jobs", "many"], 2, "invalid int value"),
])
def test_the_cli_says_what_is_wrong_in_one_line_and_exits_non_zero(tmp_path, monkeypatch, capsys, args, code, words):
    from engine.cli import main

    (tmp_path / "BAD").write_text("[runs.a]\nname = 'A'\nmodel = 'conv_ae'\nmodel_config = { latent_dim = 0 }\n")
    (tmp_path / "KITZIP").write_bytes(b"PK not a zip")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LATENT_LAB_RUNS", str(tmp_path / "runs"))
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's errors
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == code and words in err, err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "runs").exists() or run_ids(tmp_path / "runs") == set()


def test_kit_help():
    proc = subprocess.run([sys.executable, "-m", "engine", "kit", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and "--export" in proc.stdout and "--import" in proc.stdout
