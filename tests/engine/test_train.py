"""The training loop on tiny budgets: what it writes, cancel, resume, determinism, failure."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from engine.runs import Run, TrainConfig, make_run_config, split_settings
from engine.train import train_run

FAST = {"log_every_s": 0.05, "snapshot_every_s": 0.1, "checkpoint_every_s": 0.2, "eval_batch": 200}


def new_run(tmp_path, model="ae", model_config=None, **train) -> Run:
    mcfg = {"latent_dim": 4, **({"hidden": [32]} if model == "ae" else {}), **(model_config or {})}
    return Run.create(tmp_path, make_run_config(model, "mnist-5k", mcfg, {**FAST, **train}))


def test_a_run_writes_the_whole_contract(tmp_path):
    run = new_run(tmp_path, epochs=2, batch_size=256)
    logged = []
    metrics = train_run(run, on_log=logged.append)
    status = run.status()
    assert status.state == "done" and status.progress == 1.0
    assert status.epoch == 2 and status.step == 2 * 16  # 4,000 images / 256 → 16 batches
    assert set(metrics) >= {"mse", "psnr", "bce", "pca_mse", "knn_accuracy"}
    assert status.final_metrics == metrics
    records = run.metrics()
    assert records == logged
    assert records[-1]["eval/mse"] == metrics["mse"]
    steps = [r["step"] for r in records]
    assert steps == sorted(steps)
    assert all("train/loss" in r and "test/mse" in r for r in records[:-1])
    assert records[-2]["test/mse"] < records[0]["test/mse"]  # it learned something
    snaps = run.snapshots("recon")
    assert snaps[0].step == 0 and snaps[-1].step == 32  # the untrained model and the final one
    assert (run.path / "snapshots" / "inputs.png").stat().st_size > 100
    assert run.checkpoints()[-1][0] == 32
    model, header = run.load_model()
    assert header["epoch"] == 2 and header["model"] == "ae"


def test_the_time_budget_stops_training(tmp_path):
    run = new_run(tmp_path, seconds=1.0)
    t = time.perf_counter()
    train_run(run)
    assert run.status().state == "done"
    final = run.metrics()[-1]  # the evaluation line: the loop's own clock when the loop ended
    assert 1.0 <= final["elapsed"] < 1.5  # stops at the first step past the budget
    assert time.perf_counter() - t < 30


def test_a_step_budget_stops_at_exactly_that_step_and_reports_progress(tmp_path):
    """Steps, not seconds: the same model on a busy machine (issue 10)."""
    run = new_run(tmp_path, steps=37, batch_size=256)  # 16 batches an epoch: stops in the third
    train_run(run)
    status = run.status()
    assert status.state == "done" and status.step == 37 and status.epoch == 2 and status.progress == 1.0
    assert status.elapsed is not None and status.elapsed > 0
    assert run.checkpoints()[-1][0] == 37
    lines = [r for r in run.metrics() if "train/loss" in r]
    assert all(r["step"] <= 37 for r in lines)
    assert TrainConfig(steps=5).max_epochs is None and TrainConfig().max_epochs == 10
    with pytest.raises(ValueError, match="steps must be at least 1"):
        make_run_config("ae", "mnist-5k", {}, {"steps": 0})


def test_the_same_step_budget_gives_the_same_model_however_slowly_it_runs(tmp_path):
    fast = new_run(tmp_path / "a", steps=20, batch_size=128)
    slow = new_run(tmp_path / "b", steps=20, batch_size=128)
    train_run(fast)
    lagging = threading.Event()

    def slowly():  # another process's load: every step waits a little
        return lagging.wait(0.01) and False

    train_run(slow, should_stop=slowly)
    a, b = fast.load_model()[0].state_dict(), slow.load_model()[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fast.status().step == slow.status().step == 20


def test_one_cycle_warms_up_then_anneals_over_the_budget(tmp_path):
    from engine.train.trainer import schedule_factor

    assert schedule_factor("constant", 0.7) == 1.0
    assert schedule_factor("one_cycle", 0.0) == pytest.approx(1 / 25)
    assert schedule_factor("one_cycle", 0.3) == pytest.approx(1.0)
    assert schedule_factor("one_cycle", 1.0) == pytest.approx(1e-4)
    rising = [schedule_factor("one_cycle", p / 100) for p in range(31)]
    falling = [schedule_factor("one_cycle", p / 100) for p in range(30, 101)]
    assert rising == sorted(rising) and falling == sorted(falling, reverse=True)

    # the rate each step trained with (the metrics lines are spaced out to keep their cost small, so they sample it)
    from engine.train import trainer as trainer_module

    used = []
    real = trainer_module.scale_lr

    def recording(optimizer, factor):
        real(optimizer, factor)
        used.append(optimizer.param_groups[0]["lr"])

    run = new_run(tmp_path, steps=60, batch_size=128, lr=1e-2, schedule="one_cycle")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module, "scale_lr", recording)
        train_run(run)
    assert len(used) >= 60
    peak = used.index(max(used))
    assert max(used) == pytest.approx(1e-2, rel=0.05) and used[0] < 2e-3 and used[-1] < 1e-3
    assert 0.15 < peak / len(used) < 0.45  # the peak about 30 % of the way
    logged = [r["lr"] for r in run.metrics() if "lr" in r]
    assert logged and all(min(used) <= lr <= max(used) for lr in logged)  # the lines say the rates it used


def test_cancel_file_stops_within_two_seconds(tmp_path):
    run = new_run(tmp_path, epochs=1000)
    seen = {}

    def cancel_later():
        while run.status().step < 5:
            time.sleep(0.05)
        seen["asked"] = time.perf_counter()
        run.request_cancel()

    threading.Thread(target=cancel_later, daemon=True).start()
    train_run(run)
    stopped = time.perf_counter() - seen["asked"]
    assert run.status().state == "cancelled"
    assert stopped < 2.0, f"took {stopped:.2f} s to stop"
    assert not run.cancel_requested()
    assert run.checkpoints(), "a cancelled run keeps a checkpoint to resume from"


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    run = new_run(tmp_path, epochs=20, batch_size=200)
    calls = {"n": 0}

    def stop_after_checkpoint():
        calls["n"] += 1
        return bool(run.checkpoints()) and calls["n"] > 25

    train_run(run, should_stop=stop_after_checkpoint)
    assert run.status().state == "cancelled"
    ckpt_step = run.checkpoints()[-1][0]
    train_run(run, resume=True)
    status = run.status()
    assert status.state == "done" and status.epoch == 20 and status.step == 400
    steps = [r["step"] for r in run.metrics()]
    assert steps == sorted(steps) and steps[0] <= ckpt_step < steps[-1]


def test_same_seed_same_weights(tmp_path):
    def final_weights(seed):
        run = new_run(tmp_path, "denoising_ae", {"hidden": [16]}, epochs=1, seed=seed, threads=1)
        train_run(run)
        return run.load_model()[0].state_dict()

    a, b, c = final_weights(3), final_weights(3), final_weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_vae_runs_log_elbo_and_sample_grids(tmp_path):
    run = new_run(tmp_path, "vae", {"hidden": [32]}, epochs=1)
    metrics = train_run(run)
    assert metrics["elbo"] < 0 and metrics["kl"] > 0
    assert run.snapshots("samples")
    assert "train/elbo" in run.metrics()[0]


def test_pca_is_fitted_in_closed_form(tmp_path):
    run = Run.create(tmp_path, make_run_config("pca", "mnist-5k", {"latent_dim": 16}))
    metrics = train_run(run)
    assert metrics["mse"] == pytest.approx(metrics["pca_mse"])
    assert run.status().state == "done" and run.checkpoints()


def test_a_failing_run_is_marked_failed_with_the_error(tmp_path):
    bad = tmp_path / "digits.npz"
    bad.write_bytes(b"not a zip archive")
    run = Run.create(tmp_path, make_run_config("ae", f"npz:{bad}"))
    with pytest.raises(ValueError):
        train_run(run)
    status = run.status()
    assert status.state == "failed" and "digits.npz" in status.error


def test_a_missing_dataset_fails_before_a_run_exists(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        make_run_config("ae", "npz:/nowhere/data.npz")
    with pytest.raises(ValueError, match="unknown dataset"):
        make_run_config("ae", "imagenet")


def test_settings_are_routed_and_checked():
    assert split_settings("vae", {"beta": "4", "lr": "0.01"}) == ({"beta": "4"}, {"lr": "0.01"})
    with pytest.raises(ValueError, match="unknown setting"):
        split_settings("ae", {"betta": 1})
    with pytest.raises(ValueError, match="batch_size"):
        make_run_config("ae", train={"batch_size": 1})
    assert TrainConfig().max_epochs == 10 and TrainConfig(seconds=5).max_epochs is None


# -- speed: the test scores beside the steps, the step's precision and layout (issue 11) ------------------------


def test_scores_of_a_copy_are_those_of_the_step_it_was_taken_at():
    from engine.data import load_dataset
    from engine.models import build_model
    from engine.train.reconstruction import ReconstructionTrainer

    torch.manual_seed(0)
    model = build_model("conv_ae", {"latent_dim": 8}).train()
    trainer = ReconstructionTrainer(model, load_dataset("mnist-5k"), TrainConfig(eval_batch=200, batch_size=64),
                                    torch.device("cpu"))
    trainer.train_step(torch.arange(64))
    now = trainer.quick_eval()
    later = trainer.quick_eval_later()  # taken now, scored after three more steps
    for i in range(1, 4):
        trainer.train_step(torch.arange(64 * i, 64 * (i + 1)))
    assert later() == now
    assert trainer.quick_eval() != now and model.training


def test_a_one_thread_run_scores_its_lines_beside_training_and_writes_them_in_order(tmp_path, monkeypatch):
    import os

    from engine.train.reconstruction import ReconstructionTrainer

    scored_on = []
    real = ReconstructionTrainer._quick_eval

    def recording(self, model):
        scored_on.append(threading.current_thread().name)
        return real(self, model)

    monkeypatch.setattr(ReconstructionTrainer, "_quick_eval", recording)
    run = new_run(tmp_path, "conv_ae", epochs=2, batch_size=128, threads=1)
    logged = []
    train_run(run, on_log=logged.append)
    records = run.metrics()
    assert records == logged and len(records) > 3
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and len(set(steps[:-1])) == len(steps) - 1
    assert all("train/loss" in r and "test/mse" in r for r in records[:-1])
    assert run.status().last_metrics == {k: v for k, v in records[-2].items() if k.startswith("test/")}
    spare_core = len(os.sched_getaffinity(0)) > 1
    assert scored_on and all(name.startswith("latent-lab-scores") == spare_core for name in scored_on)
    assert not [t for t in threading.enumerate() if t.name.startswith("latent-lab-scores")]  # shut down


def test_the_cpu_step_is_bfloat16_only_for_conv_models_on_a_cpu_that_has_it(monkeypatch):
    from engine.models import build_model
    from engine.train import trainer as trainer_module

    cpu = torch.device("cpu")
    conv, dense, vae = (build_model(name, {}) for name in ("conv_ae", "ae", "conv_vae"))
    native = trainer_module.native_cpu_bf16()
    assert trainer_module.autocast_dtype(conv, cpu) == (torch.bfloat16 if native else None)
    assert trainer_module.autocast_dtype(dense, cpu) is None and trainer_module.autocast_dtype(vae, cpu) is None
    monkeypatch.setenv("LATENT_LAB_CPU_BF16", "0")
    trainer_module.native_cpu_bf16.cache_clear()
    try:
        assert trainer_module.autocast_dtype(conv, cpu) is None
    finally:
        monkeypatch.delenv("LATENT_LAB_CPU_BF16")
        trainer_module.native_cpu_bf16.cache_clear()


def test_a_conv_run_is_the_same_for_its_seed(tmp_path):
    """Whatever the step's precision and layout on this CPU: the same seed, the same weights."""
    def final_weights(seed):
        run = new_run(tmp_path, "conv_ae", steps=15, batch_size=64, seed=seed, threads=1)
        train_run(run)
        return run.load_model()[0].state_dict()

    a, b, c = final_weights(3), final_weights(3), final_weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_a_channels_last_conv_model_makes_its_decoder_images_channels_last_too():
    import copy

    from engine.models import build_model
    from engine.train.trainer import to_memory_format

    torch.manual_seed(0)
    model = build_model("conv_ae", {"latent_dim": 8}).eval()
    other = copy.deepcopy(model)
    to_memory_format(other, torch.channels_last)
    z = torch.randn(5, 8)
    image = other.decoder[1](other.decoder[0](z))  # the Linear's vector made an image
    assert image.is_contiguous(memory_format=torch.channels_last)
    assert model.decoder[1](model.decoder[0](z)).is_contiguous()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(other(x.contiguous(memory_format=torch.channels_last)), model(x))
