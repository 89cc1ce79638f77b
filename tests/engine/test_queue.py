"""Where a queued run stands and how long it will be (issue 10: four starters queued with no word on when)."""

from __future__ import annotations

import pytest

from engine.runs import Run, make_run_config
from engine.runs.queue import START_S, expected_duration, queue_places

STARTER = {"steps": 800}


def make(tmp_path, run_id, state, train=None, **status) -> Run:
    """A run in `state` (created now: creation order is queue order)."""
    run = Run.create(tmp_path, make_run_config("conv_ae", "mnist-5k", {"latent_dim": 32}, train or STARTER),
                     run_id=run_id)
    run.set_status(state=state, **status)
    return run


def test_queued_runs_get_places_in_creation_order_and_waits_from_the_running_ones(tmp_path):
    make(tmp_path, "done", "done", step=800, elapsed=20.0)  # 40 steps/s here
    make(tmp_path, "run-a", "running", step=400, elapsed=10.0, progress=0.5)  # 10 s left
    make(tmp_path, "run-b", "running", step=200, elapsed=5.0, progress=0.25)  # 15 s left
    make(tmp_path, "q-z", "queued")  # queued first, listed last
    make(tmp_path, "q-y", "queued")
    make(tmp_path, "q-x", "queued", train={"seconds": 30.0})
    places = queue_places([Run(p) for p in sorted(tmp_path.iterdir())], slots=2)
    assert set(places) == {"q-x", "q-y", "q-z"}
    one, two, three = places["q-z"], places["q-y"], places["q-x"]
    assert (one.position, two.position, three.position) == (1, 2, 3)
    duration = START_S + 800 / 40
    assert one.wait_s == pytest.approx(10.0) and one.duration_s == pytest.approx(duration)  # run-a's slot first
    assert two.wait_s == pytest.approx(15.0)  # then run-b's
    assert three.wait_s == pytest.approx(10.0 + duration)  # q-1's slot frees next
    assert three.duration_s == pytest.approx(START_S + 30.0)  # a time budget is its own estimate


def test_the_pace_of_running_runs_stands_in_until_one_has_finished(tmp_path):
    make(tmp_path, "run-a", "running", step=100, elapsed=5.0, progress=0.125)  # 20 steps/s
    make(tmp_path, "q", "queued")
    place = queue_places([Run(p) for p in sorted(tmp_path.iterdir())], slots=1)["q"]
    assert place.position == 1 and place.duration_s == pytest.approx(START_S + 800 / 20)
    assert place.wait_s == pytest.approx(5.0 * 0.875 / 0.125)


def test_what_cannot_be_known_is_none_not_a_guess(tmp_path):
    make(tmp_path, "run-a", "running", step=0)  # not one step yet, and no other run of its model
    make(tmp_path, "q", "queued")
    place = queue_places([Run(p) for p in sorted(tmp_path.iterdir())], slots=1)["q"]
    assert place.position == 1 and place.wait_s is None and place.duration_s is None
    assert expected_duration({"model": "conv_ae", "train": {"seconds": 12.0}}, []) == START_S + 12.0
    assert expected_duration({"model": "conv_ae", "train": {"steps": 100}}, []) is None
    free = queue_places([Run(p) for p in sorted(tmp_path.iterdir())], slots=2)["q"]
    assert free.wait_s == 0.0  # a free slot: it starts at once
