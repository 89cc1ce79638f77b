"""The runs gallery and one run's live panel: what Home, Train and the GAN studio share.

The panel polls the run directory (st.fragment with run_every) while the run is queued or
running, and stops polling once it is finished; a change of state redraws the whole page so the
table, the run picker and the buttons agree.
"""

import streamlit as st

from engine.lab.gan_studio import is_gan_config
from engine.lab.home import gallery_row
from engine.runs import ACTIVE, RESUMABLE, Run, RunError, RunStatus
from engine.runs.queue import QueuePlace
from ui.charts.losses import loss_figure
from ui.images import read_image
from ui.resources import job_manager
from ui.session import actor, share_link, shared_runs
from ui.text import fmt, state_icon
from ui.escape import md

SIGNATURE_KEY = "runs_signature"
CONFIRM_DELETE_KEY = "run_panel_confirm_delete"  # the run id whose deletion awaits a yes

ERRORS = (RunError, ValueError, OSError)

GALLERY_COLUMNS = {
    "id": st.column_config.TextColumn("id", width="medium"),
    "name": st.column_config.TextColumn("name", help="the name given when the run was started"),
    "latent": st.column_config.NumberColumn("latent", format="%d", help="latent_dim: the size of z"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "test MSE": st.column_config.NumberColumn("test MSE", format="%.4f",
                                              help="mean ‖x − x̂‖² per pixel on the test split "
                                                   "(lower is better)"),
    "PSNR (dB)": st.column_config.NumberColumn("PSNR (dB)", format="%.1f"),
    "damaged": st.column_config.TextColumn("damaged", help="why a run cannot be read (a damaged or missing file)"),
    "kNN acc": st.column_config.NumberColumn("kNN acc", format="percent",
                                             help="a 5-nearest-neighbour classifier fitted on the train split's "
                                                  "codes z, scored on the test split's: how well the codes tag "
                                                  "new images (feature quality)"),
}


def signature(summaries: list[dict]) -> tuple:
    """What, when it changes, needs the whole page redrawn: which runs exist and their states."""
    return tuple((s["id"], s.get("state")) for s in summaries)


def run_summaries() -> list[dict]:
    """Every run's summary, for a page that draws runs_table(): records the signature the table compares.

    When the runs folder cannot be listed, the page says so and stops.
    """
    jm = job_manager()
    try:
        summaries = [r.summary() for r in jm.runs(actor(), shared_runs())]
    except ERRORS as e:
        st.error(f"Cannot list the runs: {md(e)}")
        st.stop()
    st.session_state[SIGNATURE_KEY] = signature(summaries)
    return summaries


@st.fragment(run_every=2.0)
def runs_table() -> None:
    """Every run, refreshed every 2 s; the page must store signature() under SIGNATURE_KEY when it draws."""
    try:
        summaries = [r.summary() for r in job_manager().runs(actor(), shared_runs())]
    except ERRORS as e:  # e.g. a run folder deleted between listing and reading it: try again next tick
        st.error(f"Cannot list the runs: {md(e)}")
        return
    if signature(summaries) != st.session_state.get(SIGNATURE_KEY):
        st.rerun()  # a run appeared, vanished or changed state: refresh the picker and the panel too
    if summaries:
        st.dataframe([table_row(s) for s in summaries], column_config=GALLERY_COLUMNS, hide_index=True,
                     placeholder="–")


def table_row(summary: dict) -> dict:
    """gallery_row, with a damaged run's state reading "damaged" and the reason in its own column."""
    row = gallery_row(summary)
    damaged = summary.get("damaged")
    if damaged:
        row["state"] = "damaged"
    row["damaged"] = damaged
    return row


def act(action, run_id: str, verb: str):
    """Run `action()` (a job manager call on run_id), saying why when it is refused; reruns the page on success."""
    try:
        result = action()
    except ERRORS as e:
        st.error(f"Could not {verb} run {md(run_id)}: {md(e)}")
        return None
    st.rerun()
    return result


def run_panel(run_id: str, drawn_state: str) -> None:
    """The selected run, live: progress, inputs next to the latest reconstructions, the loss curve."""
    jm = job_manager()
    with st.container(border=True, key="run_panel"):
        state, readable = "failed", False
        try:
            run = Run(jm.runs_dir / run_id)
            config, status = run.config, run.status()
        except ERRORS as e:
            st.error(f"Run {md(run_id)} cannot be shown: {md(e)}")
        else:
            state, readable = status.state, True
            if state != drawn_state:
                st.rerun()  # the table and the buttons follow; a finished run's panel stops polling
            try:
                draw_run(run, config, status)
            except Exception as e:
                st.error(f"Run {md(run_id)} is damaged and cannot be drawn: {type(e).__name__}: {md(e)}")
        run_buttons(run_id, state, resumable=readable and state in RESUMABLE)


def draw_run(run: Run, config: dict, status: RunStatus) -> None:
    state = status.state
    latent_dim = config["model_config"].get("latent_dim")
    name = config.get("name") if isinstance(config.get("name"), str) else None
    st.markdown(f"#### {md(name, 120)} · {md(run.id)}" if name else f"#### {md(run.id)}")
    imported = config.get("imported") if isinstance(config.get("imported"), dict) else {}
    st.caption(f"{md(config['model'])} · latent_dim {md(latent_dim)} · {md(config['dataset'], 120)} · "
               f"{md(status.device or 'device not chosen yet')}"
               + (f" · imported from run {md(imported.get('from'), 120)}" if imported else ""))
    st.markdown(f"{state_icon(state)} **State:** {state} · step {status.step:,} · epoch {status.epoch}")
    place = job_manager().queue().get(run.id) if state == "queued" else None  # reads every run: only when queued
    st.progress(status.progress, text=progress_line(status, config, place))
    error = (status.error or "").strip()
    if error and state in ("failed", "interrupted", "cancelled"):
        (st.error if state == "failed" else st.warning)(md(error.splitlines()[0]))
        if "\n" in error:
            with st.expander("Details"):
                st.code(error, language=None)

    problem = run.problem()
    if problem and not status.damaged:  # a damaged status.json said so above
        st.error(f"This run is damaged: {md(problem)}", icon=":material/broken_image:")
    elif (note := run.problem_note()) is not None:
        st.info(f"The pages use an older checkpoint: {md(note)}", icon=":material/history:")
    gan = is_gan_config(config)
    snaps = {kind: run.snapshots(kind) for kind in ("recon", "samples")}
    images = [("real images (the training split)" if gan else "x: inputs (a fixed test batch)",
               read_image(run.path / "snapshots" / "inputs.png"))]
    if snaps["recon"]:
        images.append((f"x̂: reconstructions at step {snaps['recon'][-1].step:,}",
                       read_image(snaps["recon"][-1].path)))
    if snaps["samples"]:
        what = "G(z) for a fixed z" if gan else "samples from the prior"
        images.append((f"{what} at step {snaps['samples'][-1].step:,}", read_image(snaps["samples"][-1].path)))
    # a GAN's two small grids share a row with its losses (the GAN studio replays them in full below)
    cols = st.columns([1, 1, 2] if gan else [1] * len(images))
    for col, (caption, png) in zip(cols, images):
        with col:
            if png:
                st.image(png, caption=caption, width="stretch")
            else:
                st.caption(f"{caption}: not written yet")

    records = run.metrics()
    fig = loss_figure(records)
    if fig is not None:
        (cols[-1] if gan else st).plotly_chart(fig, key="run_panel_loss", config={"displayModeBar": False})
    elif any("eval/mse" in r for r in records):
        st.caption("No loss curve: this model is fitted in closed form, in one step.")
    elif state not in ACTIVE:
        st.caption("No loss curve: the run stopped before logging its first step.")

    final = status.final_metrics
    if final and gan:
        cols = st.columns(4)
        cols[0].metric("FID-style distance", fmt(final.get("fid"), ".1f"),
                       help="Fréchet distance between the judge's features of real and generated images (lower is "
                            "better)")
        cols[1].metric("vs untrained", fmt(final.get("fid_ratio"), ".0%"),
                       help="the distance as a share of the untrained generator's: how far training got")
        cols[2].metric("inception-style score", fmt(final.get("inception_score"), ".2f"),
                       help="exp E KL(p(y|x) ‖ p(y)) under the judge: confident and varied samples score high")
        cols[3].metric("classes covered", fmt(final.get("classes_covered"), ".0f"))
        verdict = gan_verdict(final)
        if verdict:
            st.markdown(verdict)
    elif final:
        cols = st.columns(4)
        cols[0].metric("test MSE", fmt(final.get("mse"), ".4f"))
        cols[1].metric("PSNR", fmt(final.get("psnr"), ".1f", " dB"))
        cols[2].metric(f"PCA MSE (k={latent_dim})", fmt(final.get("pca_mse"), ".4f"),
                       help="PCA with as many components as the latent has: the linear baseline")
        cols[3].metric("kNN accuracy", fmt(final.get("knn_accuracy"), ".1%"),
                       help="a 5-nearest-neighbour classifier fitted on the train split's codes z, scored on the "
                            "test split's: how well the codes tag new images")
        verdict = reconstruction_verdict(final, latent_dim)
        if verdict:
            st.markdown(verdict)
    elif gan and state == "done":
        st.caption("No judge scores: the judge classifier was off for this run or unavailable.")


def seconds_text(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def progress_line(status: RunStatus, config: dict, place: QueuePlace | None) -> str:
    """What the run is doing now and for about how long, in one line under its progress bar."""
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    if status.state == "queued":
        if place is None:
            return "Queued: waiting for a free training slot."
        where = "next in line" if place.position == 1 else f"{ordinal(place.position)} in line"
        when = (f", starts in about {seconds_text(place.wait_s)}" if place.wait_s is not None
                else ", starts when a running job finishes")
        then = f" and then takes about {seconds_text(place.duration_s)}" if place.duration_s else ""
        return f"Queued: {where}{when}{then}."
    if status.state != "running":
        return f"{status.state.capitalize()} at step {status.step:,}."
    if status.phase and status.phase != "training":
        return f"Preparing: {md(status.phase, 120)}."
    if not status.phase and status.step == 0:
        return "Starting: launching the training process."
    steps = train.get("steps")
    done = f"step {status.step:,} of {steps:,}" if isinstance(steps, int) else f"step {status.step:,}"
    left = status.seconds_left()
    return f"Training: {done}, " + (f"about {seconds_text(left)} left." if left is not None else
                                    "measuring its pace…")


def reconstruction_verdict(final: dict, latent_dim) -> str | None:
    """How good a finished autoencoder is, said plainly: its test error against PCA's with as many numbers."""
    ratio = final.get("mse_vs_pca")
    if not isinstance(ratio, (int, float)):
        return None
    head = f"**{ratio:.2f}× PCA's test error** with the same {md(latent_dim)} numbers per image: "
    if ratio <= 0.7:
        return head + "the autoencoder clearly beats the best linear code."
    if ratio < 1:
        return head + "a little better than the best linear code; training longer would widen the gap."
    return head + ("not better than PCA yet: it needs more steps (a time budget on a busy machine gives few). "
                   "Train one with a larger step budget, or see the PCA vs autoencoder page.")


def gan_verdict(final: dict) -> str | None:
    """How far a finished GAN got: its Fréchet distance as a share of the same generator's before training."""
    ratio = final.get("fid_ratio")
    if not isinstance(ratio, (int, float)):
        return None
    head = f"**Fréchet distance {ratio:.0%} of the untrained generator's**: "
    if ratio <= 0.3:
        return head + "its samples are far closer to real images than where it started."
    if ratio <= 0.7:
        return head + "it has learned something; more training would sharpen the samples."
    return head + "it has hardly learned yet: train one with a larger step budget."


def run_buttons(run_id: str, state: str, resumable: bool) -> None:
    """Cancel, resume and delete (with an inline confirmation: a popover re-mounts on every rerun) for the run's
    owner, with its share link; for anyone else a read-only note and Copy (the job manager checks either way)."""
    jm = job_manager()
    me = actor()
    try:
        run = Run(jm.runs_dir / run_id)
    except ERRORS:
        return
    if not jm.owns(run, me):
        read_only_buttons(run_id)
        return
    if st.session_state.get(CONFIRM_DELETE_KEY) == run_id:
        st.warning(f"Delete run {md(run_id)} and its checkpoints for good?")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="run_panel_delete_yes", type="primary", icon=":material/delete:",
                      width="stretch"):
            st.session_state.pop(CONFIRM_DELETE_KEY, None)
            st.query_params.pop("run", None)
            act(lambda: jm.delete(run_id, actor=me), run_id, "delete")
        no.button("Keep it", key="run_panel_delete_no", width="stretch",
                  on_click=lambda: st.session_state.pop(CONFIRM_DELETE_KEY, None))
        return
    c1, c2, c3 = st.columns(3)
    if c1.button("Cancel", key="run_panel_cancel", icon=":material/stop:", disabled=state not in ACTIVE,
                 width="stretch"):
        act(lambda: jm.cancel(run_id, actor=me), run_id, "cancel")
    if c2.button("Resume", key="run_panel_resume", icon=":material/play_arrow:", disabled=not resumable,
                 width="stretch"):
        act(lambda: jm.resume(run_id, actor=me), run_id, "resume")
    c3.button("Delete", key="run_panel_delete", icon=":material/delete:", width="stretch",
              on_click=lambda: st.session_state.__setitem__(CONFIRM_DELETE_KEY, run_id))
    if jm.hosted_mode():
        share_and_pin(run_id, me.presenter)


def share_and_pin(run_id: str, presenter: bool) -> None:
    """The run's read-only share link (hosted mode) and, for the presenter, the gallery pin."""
    jm = job_manager()
    with st.expander("Share this run (read-only link)", icon=":material/share:"):
        st.caption("Whoever opens this link sees this view of the run; they cannot cancel, delete or change it, "
                   "and can copy it into their own workspace. It holds no key to your workspace.")
        st.code(share_link(run_id), language=None)
    if presenter:
        pinned = jm.is_pinned(run_id)
        if st.button("Unpin from the gallery" if pinned else "Pin to the gallery", key="run_panel_pin",
                     icon=":material/push_pin:"):
            act(lambda: jm.pin(run_id, actor=actor(), pin=not pinned), run_id, "pin")


RUN_PICKERS = ("home_run", "train_run", "gan_run")  # the pages' run pickers that show this panel


def read_only_buttons(run_id: str) -> None:
    """A run of another workspace: say so, and offer a copy into this one."""
    st.info("This run belongs to another workspace: you can look at it, not cancel, resume or delete it. "
            "Copy it into your workspace to keep playing with it.", icon=":material/visibility:")
    st.button("Copy into my workspace", key="run_panel_copy", icon=":material/content_copy:",
              on_click=copy_run, args=(run_id,))
    failed = st.session_state.pop("run_panel_copy_error", None)
    if failed:
        st.error(f"Could not copy run {md(run_id)}: {md(failed)}")
    if st.session_state.pop("run_panel_copied", None):
        st.rerun(scope="app")  # the panel is a fragment: the page's picker must redraw on the copy


def copy_run(run_id: str) -> None:
    """on_click of Copy: runs before the page, so the pickers can switch to the copy."""
    try:
        new = job_manager().copy(run_id, actor=actor(), shared=run_id in shared_runs())
    except ERRORS as e:
        st.session_state["run_panel_copy_error"] = str(e)
        return
    for key in RUN_PICKERS:
        if st.session_state.get(key) == run_id:
            st.session_state[key] = new.id
    st.query_params["run"] = new.id
    st.query_params.pop("share", None)
    st.session_state["run_panel_copied"] = new.id


LIVE_PANEL_EVERY_S = {"queued": 1.0, "running": 2.0}  # the live panel's tick per state (live_run_panel)


def live_run_panel(run_id: str, state: str) -> None:
    """run_panel in a fragment that reruns every second while the run is queued (its start is what the visitor
    waits for), every two seconds while it trains (a metrics line comes about every second, a snapshot every
    1.5 s: a faster tick mostly redraws what is there, and twenty visitors' ticks cost the trainings' CPU), and
    not at all once it is finished. A change of state redraws the whole page, so the interval follows it."""
    every = LIVE_PANEL_EVERY_S.get(state, 1.0) if state in ACTIVE else None
    st.fragment(run_every=every)(run_panel)(run_id, state)

