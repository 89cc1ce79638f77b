"""Which run a page opens on (issue 10: pages opened on the newest run, even the PCA baseline)."""

from __future__ import annotations

from engine.lab.choice import best_run


def summary(run_id, model, state="done", created=0.0, **metrics):
    return {"id": run_id, "model": model, "state": state, "created_at": created, "metrics": metrics}


def configs(*summaries, latent=None):
    return {s["id"]: {"model": s["model"], "model_config": {"latent_dim": (latent or {}).get(s["id"], 32)}}
            for s in summaries}


def test_a_finished_model_beats_the_newer_pca_baseline_and_a_run_still_training():
    runs = [summary("conv", "conv_ae", created=1, mse_vs_pca=0.41),
            summary("pca", "pca", created=2, mse_vs_pca=1.0),
            summary("vae", "vae", state="running", created=3, mse_vs_pca=0.9)]
    choice = best_run(runs, configs(*runs))
    assert choice.run_id == "conv" and choice.reason.startswith("the finished model")


def test_among_finished_models_the_lowest_error_relative_to_pca_wins_and_says_so():
    runs = [summary("a", "ae", created=3, mse_vs_pca=0.8), summary("b", "conv_ae", created=1, mse_vs_pca=0.41)]
    choice = best_run(runs, configs(*runs))
    assert choice.run_id == "b" and "0.41×" in choice.reason


def test_the_map_ranks_by_knn_accuracy():
    runs = [summary("a", "ae", created=3, knn_accuracy=0.9, mse_vs_pca=0.3),
            summary("b", "conv_ae", created=1, knn_accuracy=0.95, mse_vs_pca=0.5)]
    choice = best_run(runs, configs(*runs), quality="clusters")
    assert choice.run_id == "b" and "95.0%" in choice.reason


def test_a_page_preference_comes_before_quality_and_is_named():
    runs = [summary("conv", "conv_ae", created=1, mse_vs_pca=0.41), summary("vae2", "vae", created=0, mse_vs_pca=0.8)]
    two_d = configs(*runs, latent={"vae2": 2})
    choice = best_run(runs, two_d, prefer=lambda c: c["model_config"]["latent_dim"] == 2, prefer_why="a 2-D code")
    assert choice.run_id == "vae2" and "a 2-D code" in choice.reason
    assert best_run(runs, two_d).run_id == "conv"  # without the preference, quality decides


def test_pca_only_when_nothing_learned_fits_and_ties_go_to_the_newest():
    runs = [summary("pca", "pca", mse_vs_pca=1.0), summary("pca2", "pca", created=5, mse_vs_pca=1.0)]
    choice = best_run(runs, configs(*runs))
    assert choice.run_id == "pca2" and "PCA baseline" in choice.reason
    unscored = [summary("x", "ae", created=1), summary("y", "ae", created=2)]
    assert best_run(unscored, configs(*unscored)).run_id == "y"
    assert "newest" in best_run(unscored, configs(*unscored)).reason
    assert best_run([], {}) is None
    assert best_run(runs[:1], configs(*runs)).reason == "the only run that fits this page"


def test_a_run_still_training_when_none_has_finished():
    runs = [summary("q", "ae", state="queued", created=3), summary("r", "ae", state="running", created=1)]
    assert best_run(runs, configs(*runs)).run_id == "r"


def owned(cfgs: dict, **owners) -> dict:
    """configs with run id → workspace (a run not named has none: the server's) and kit keys for ids in `kit`."""
    kit = owners.pop("kit", ())
    for run_id, config in cfgs.items():
        if run_id in owners:
            config["workspace"] = owners[run_id]
        if run_id in kit:
            config["kit"] = {"name": "workshop", "entry": run_id}
    return cfgs


def test_a_visitor_gets_their_own_finished_run_else_the_kits_else_anyone_elses():
    runs = [summary("kit", "conv_ae", created=1, mse_vs_pca=0.5),
            summary("operator", "conv_ae", created=2, mse_vs_pca=0.3),  # better, but not prepared for the room
            summary("mine", "ae", created=3, mse_vs_pca=0.9),
            summary("training", "conv_ae", state="running", created=4, mse_vs_pca=0.2)]
    cfgs = owned(configs(*runs), mine="visitor1", training="visitor1", kit=("kit",))
    choice = best_run(runs, cfgs, workspace="visitor1")
    assert choice.run_id == "mine" and "of your own" in choice.reason  # worse than the kit's, but theirs
    empty = best_run(runs, cfgs, workspace="visitor2")  # a visitor with nothing yet: the kit's, at once
    assert empty.run_id == "kit" and "workshop kit" in empty.reason
    assert best_run(runs[1:], cfgs, workspace="visitor2").run_id == "operator"  # no kit: the best of the rest
    pinned = best_run(runs[1:], cfgs, workspace="visitor2", gallery={"mine"})  # a pinned run counts as prepared
    assert pinned.run_id == "mine" and "gallery" in pinned.reason
    assert best_run(runs, cfgs).run_id == "operator"  # local mode (no workspace): every run is theirs, quality wins
