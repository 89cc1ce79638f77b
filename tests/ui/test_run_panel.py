"""The live panel's words: what a run is doing and for how long, and how good it turned out (issue 10)."""

from __future__ import annotations

from engine.runs import RunStatus
from engine.runs.queue import QueuePlace
from ui.run_panel import gan_verdict, progress_line, reconstruction_verdict

STEPS = {"train": {"steps": 800}}


def status(**fields) -> RunStatus:
    return RunStatus.parse({"state": "running", **fields})


def test_a_queued_run_says_its_place_and_when_it_starts():
    queued = status(state="queued")
    assert progress_line(queued, STEPS, QueuePlace(1, 12.0, 24.0)) == \
        "Queued: next in line, starts in about 12 s and then takes about 24 s."
    assert progress_line(queued, STEPS, QueuePlace(3, 150.0, None)) == "Queued: 3rd in line, starts in about 2 min."
    assert progress_line(queued, STEPS, QueuePlace(2, None, None)) == \
        "Queued: 2nd in line, starts when a running job finishes."
    assert progress_line(queued, STEPS, None).startswith("Queued")


def test_a_running_run_says_what_it_is_doing_and_how_long_is_left():
    assert progress_line(status(), STEPS, None) == "Starting: launching the training process."
    judge = status(phase="training the judge classifier that scores the samples, once per dataset: epoch 2 of 8")
    assert progress_line(judge, STEPS, None).startswith("Preparing: training the judge classifier")
    assert progress_line(status(phase="training", step=5, progress=0.006, elapsed=0.5), STEPS, None) == \
        "Training: step 5 of 800, measuring its pace…"
    assert progress_line(status(phase="training", step=200, progress=0.25, elapsed=5.0), STEPS, None) == \
        "Training: step 200 of 800, about 15 s left."
    assert progress_line(status(state="done", step=800), STEPS, None) == "Done at step 800."


def test_a_finished_run_says_how_good_it_is():
    assert "0.41× PCA's test error" in reconstruction_verdict({"mse_vs_pca": 0.41}, 32)
    assert "clearly beats" in reconstruction_verdict({"mse_vs_pca": 0.41}, 32)
    assert "not better than PCA" in reconstruction_verdict({"mse_vs_pca": 1.2}, 32)
    assert reconstruction_verdict({}, 32) is None
    assert "17% of the untrained" in gan_verdict({"fid_ratio": 0.17}) and gan_verdict({}) is None
    assert "hardly learned" in gan_verdict({"fid_ratio": 0.95})
