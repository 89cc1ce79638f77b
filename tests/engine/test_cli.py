"""The command line as a script would use it: JSON out, one-line errors, --help everywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.models import MODELS

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["datasets", "models", "train", "resume", "eval", "judge", "runs", "sample", "export", "import",
            "fetch-mnist", "worker"]


def cli(*args, runs_dir=None, check=True):
    env = dict(os.environ)  # the engine is installed (pip install -e .): no PYTHONPATH
    if runs_dir:
        env["LATENT_LAB_RUNS"] = str(runs_dir)
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_datasets_and_models_print_json():
    datasets = {d["name"]: d for d in json_lines(cli("datasets").stdout)}
    assert datasets["mnist-5k"]["available"] and datasets["mnist-5k"]["n_train"] == 4000
    for d in datasets.values():
        assert d["available"] or (d["reason"] and d["how_to_get"])
    models = json_lines(cli("models").stdout)
    assert [m["name"] for m in models] == list(MODELS)


def test_datasets_lists_the_sequence_sets_with_their_shapes_classes_and_sizes():
    from engine.data import load_dataset
    from engine.data.sequences import SEQUENCE_DATASETS

    rows = json_lines(cli("datasets").stdout)
    assert [r["kind"] for r in rows] == sorted((r["kind"] for r in rows), key=["image", "sequence"].index)
    series = {r["name"]: r for r in rows if r["kind"] == "sequence"}
    assert list(series) == list(SEQUENCE_DATASETS)
    for name, row in series.items():
        ds = load_dataset(name)  # what the listing says is what loads
        assert row["available"] and row["description"], name
        assert (row["shape"], row["classes"], row["n_train"], row["n_test"]) == (
            [ds.length, ds.channels], ds.num_classes, len(ds.x_train), len(ds.x_test)), name
    assert {r["name"]: r["shape"] for r in rows if r["kind"] == "image"}["mnist-5k"] == [1, 28, 28]


def test_train_eval_sample_and_runs(tmp_path):
    proc = cli("train", "ae", "--data", "mnist-5k", "--epochs", "1", "--latent-dim", "8", "--seed", "1",
               "--set", "hidden=64", "--set", "log_every_s=0.1", "--batch-size", "200", "--device", "cpu",
               "--runs-dir", tmp_path)
    result = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    assert result["state"] == "done" and result["metrics"]["mse"] > 0
    assert "step" in proc.stderr and "test mse" in proc.stderr  # progress lines on stderr
    run_path = Path(result["path"])
    config = json.loads((run_path / "config.json").read_text())
    assert config["model_config"]["hidden"] == [64] and config["model_config"]["latent_dim"] == 8
    assert config["train"]["seed"] == 1 and config["train"]["batch_size"] == 200

    evaluated = json.loads(cli("eval", result["run"], "--runs-dir", tmp_path).stdout)
    assert evaluated["metrics"]["mse"] == pytest.approx(result["metrics"]["mse"])

    out = tmp_path / "grid.png"
    sampled = json.loads(cli("sample", str(run_path), "--out", out, "-n", "16").stdout)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and sampled["n"] == 16

    listed = json_lines(cli("runs", runs_dir=tmp_path).stdout)
    assert [r["id"] for r in listed] == [result["run"]] and listed[0]["state"] == "done"


def test_export_and_import(tmp_path, finished_pca_run):
    src, dest = tmp_path / "src", tmp_path / "dest"
    shutil.copytree(finished_pca_run, src / "pca-finished")
    out = tmp_path / "pca.zip"
    exported = json.loads(cli("export", "pca", "--out", out, "--runs-dir", src).stdout)
    assert exported == {"run": "pca-finished", "out": str(out), "bytes": out.stat().st_size}
    imported = json.loads(cli("import", out, "--runs-dir", dest).stdout)
    assert imported["imported_from"] == "pca-finished" and imported["state"] == "done"
    listed = json_lines(cli("runs", runs_dir=dest).stdout)
    assert [r["id"] for r in listed] == [imported["run"]]
    assert listed[0]["metrics"] == json_lines(cli("runs", runs_dir=src).stdout)[0]["metrics"]

    out.write_bytes(out.read_bytes()[:-100])  # truncated: its central directory is gone
    proc = cli("import", out, "--runs-dir", dest, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: the file is not a zip archive")
    assert len(list(dest.iterdir())) == 1


def test_judge_and_eval_of_a_gan(tmp_path, mnist_judge):
    from engine.eval.judge import evaluate_generator, judge_path
    from engine.runs import Run, make_run_config
    from engine.train import train_run

    runs = tmp_path / "runs"
    path = judge_path("mnist-5k", runs)
    shutil.copytree(mnist_judge.path, path)  # trained once per session; the CLI must load it, not retrain
    ckpt = Run(path).latest_checkpoint()
    mtime = ckpt.stat().st_mtime_ns
    judged = json.loads(cli("judge", "--runs-dir", runs).stdout)
    assert judged["dataset"] == "mnist-5k" and judged["path"] == str(path)
    assert judged["test_accuracy"] == mnist_judge.test_accuracy >= 0.95 and judged["seconds"] >= 0
    assert ckpt.stat().st_mtime_ns == mtime and [p for _, p in Run(path).checkpoints()] == [ckpt]

    config = make_run_config("gan", "mnist-5k", {"hidden": [32]},
                             {"epochs": 1, "judge": False, "device": "cpu", "batch_size": 200})
    run = Run.create(runs, config, run_id="tiny-gan")
    train_run(run)
    evaluated = json.loads(cli("eval", "tiny-gan", "--runs-dir", runs, "-n", "300", "--seed", "3",
                               "--device", "cpu").stdout)
    assert evaluated["model"] == "gan" and evaluated["dataset"] == "mnist-5k"
    metrics = evaluated["metrics"]
    assert metrics["judge_accuracy"] == mnist_judge.test_accuracy and "mse" not in metrics
    assert len(metrics["class_hist"]) == 10 and sum(metrics["class_hist"]) == pytest.approx(1.0)
    model, _ = run.load_model()  # the CLI scored exactly these seeded samples of the latest checkpoint
    direct = evaluate_generator(model, "mnist-5k", runs, n=300, seed=3)
    assert metrics["fid"] == pytest.approx(direct["fid"], rel=1e-4)
    assert metrics["classes_covered"] == direct["classes_covered"]
    assert ckpt.stat().st_mtime_ns == mtime
    assert [r["id"] for r in json_lines(cli("runs", runs_dir=runs).stdout)] == ["tiny-gan"]  # no judge listed


def test_judge_of_unlabelled_data_is_refused(tmp_path):
    import numpy as np

    npz = tmp_path / "unlabelled.npz"
    np.savez(npz, x=np.zeros((20, 28, 28), np.uint8))
    proc = cli("judge", "--dataset", f"npz:{npz}", "--runs-dir", tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: ") and "no labels" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "nope"], "unknown model"),
    (["train", "ae", "--epochs", "two"], "invalid int"),
    (["train", "ae", "--epochs", "1", "--seconds", "3"], "not allowed with"),
    (["train", "ae", "--set", "latent_dim"], "key=value"),
    (["train", "ae", "--set", "colour=red"], "unknown setting"),
    (["train", "ae", "--data", "imagenet"], "imagenet"),
    (["train", "ae", "--device", "tpu"], "device"),
    (["eval", "no-such-run"], "no run"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_bad_arguments_get_one_line_and_a_non_zero_exit(tmp_path, args, message):
    proc = cli(*args, "--runs-dir", tmp_path, check=False) if args and args[0] in ("train", "eval") \
        else cli(*args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    proc = cli(command, "--help")
    assert "usage:" in proc.stdout and len(proc.stdout.splitlines()) > 2
