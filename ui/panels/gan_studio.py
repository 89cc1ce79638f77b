"""The GAN studio's panels: the GAN runs table, the timeline, slow motion, learning rates, memorisation,
class samples. Each draws one view of one run; the page (pages/gan_studio.py) lays them out and wraps
them in fragments. The work is in engine/lab/gan_studio.py, the charts in ui/charts/gan_studio.py.
"""

from __future__ import annotations

import streamlit as st

from engine.data.images import grid_png
from engine.lab import gan_studio as gan_lab
from engine.runs import ACTIVE, Run
from engine.runs.loaded import LoadedRun, checkpoint_near
from engine.runs.workspace import SLOW_MOTION
from ui.charts import gan_studio as gan_charts
from ui.images import read_image
from ui.resources import dataset_tensors, job_manager, loaded_at
from ui.session import actor, shared_runs
from ui.run_panel import ERRORS, signature
from ui.text import fmt
from ui.urlstate import query_value, set_query
from ui.escape import md

SIGNATURE_KEY = "gan_signature"  # the GAN runs and states the page was drawn with


# -- cached engine calls ---------------------------------------------------------------------------


def gan_at(run: Run, step: int | None = None) -> LoadedRun:
    """The run's GAN at the checkpoint nearest `step` (the newest with None), loaded once per checkpoint file."""
    chosen, _ = checkpoint_near(run, step)
    return loaded_at(str(run.path), run.checkpoint_token(chosen) or (chosen,), adversarial=True)


@st.cache_resource(ttl=60, show_spinner="Loading the judge…")
def judge_for(dataset_name: str, runs_dir: str):
    """(judge, None) or (None, why not); looked at again after a minute (the first GAN run trains it)."""
    return gan_lab.judge_for(dataset_name, runs_dir)


@st.cache_data(max_entries=64, show_spinner=False)
def class_pngs(run_path: str, token: tuple, y: int, seed: int, seed0: int, seed1: int, method: str):
    """(32 samples of class y, a 10-image strip from z(seed0) to z(seed1) of class y) as PNG bytes."""
    loaded = loaded_at(run_path, token, adversarial=True)
    return (grid_png(gan_lab.samples(loaded, 32, seed, y), ncol=8, scale=2),
            grid_png(gan_lab.interpolation(loaded, seed0, seed1, 10, method, y), ncol=10, scale=2))


def class_names(dataset_name: str, k: int) -> list[str]:
    try:
        names = list(dataset_tensors(dataset_name).classes)
    except ERRORS:
        names = []
    return [names[i] if i < len(names) else str(i) for i in range(k)]


def gone(run: Run) -> bool:
    """True (and says so) when the run's folder was deleted since the page listed it."""
    if (run.path / "config.json").is_file():
        return False
    st.warning(f"Run {run.id} was deleted; pick another run above.", icon=":material/delete:")
    return True


# -- the runs table --------------------------------------------------------------------------------


def gan_summaries() -> list[dict]:
    """Every GAN run's summary, newest first (RunError/OSError when the runs folder cannot be listed)."""
    return [r.summary() for r in gan_lab.gan_runs(job_manager().runs(actor(), shared_runs()))]


TABLE_COLUMNS = {
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    "FID": st.column_config.NumberColumn("FID", format="%.1f", help="final FID-style distance (lower is better)"),
    "IS": st.column_config.NumberColumn("IS", format="%.2f", help="final inception-style score (higher is better)"),
    "classes": st.column_config.NumberColumn("classes", format="%d", help="classes the judge finds in the samples"),
}


@st.fragment(run_every=2.0)
def gan_table() -> None:
    """The GAN runs and their final judge scores; a run appearing or changing state redraws the page."""
    try:
        found = gan_summaries()
    except ERRORS as e:
        st.error(f"Cannot list the runs: {md(e)}")
        return
    if signature(found) != st.session_state.get(SIGNATURE_KEY):
        st.rerun()
    rows = [{"id": s["id"], "model": s.get("model"), "state": "damaged" if s.get("damaged") else s.get("state"),
             "step": s.get("step"),
             "progress": min(max(float(s.get("progress") or 0.0), 0.0), 1.0),
             "FID": (s.get("metrics") or {}).get("fid"), "IS": (s.get("metrics") or {}).get("inception_score"),
             "classes": (s.get("metrics") or {}).get("classes_covered"), "damaged": s.get("damaged")} for s in found]
    if rows:
        st.dataframe(rows, hide_index=True, placeholder="–", column_config=TABLE_COLUMNS)


# -- the timeline ----------------------------------------------------------------------------------


def following(active: bool) -> bool:
    """Whether the timeline follows the newest snapshot: while the run trains, unless the toggle is off."""
    return active and st.session_state.get("gan_follow", True)


def timeline_step(steps: list[int], active: bool, run_id: str) -> int:
    """The step to show: the link's, the next one while playing, the newest while following, else the user's.

    The step lives in the page's own state (`gan_at`), not in the slider's: every rerun request carries
    the browser's widget values, and one sent by another fragment's timer before the browser heard of
    the newest step would set the slider back to an older one (issue 10: the timeline stopped following).
    So the slider is only a display while the page moves the step itself (following, playing) — it is
    disabled then, and a disabled widget's reported change is ignored — and its on_change, a person
    moving it, is the one way it sets the step.
    """
    state = st.session_state
    at = state.get("gan_at")
    if at is None:
        at = query_value("step", None, int)
        if at is not None and active:
            state["gan_follow"] = False  # a link to a step: stay there (the toggle turns following back on)
    elif state.get("gan_playing"):
        later = [s for s in steps if s > at]
        if later:
            at = later[0]
        else:
            state["gan_playing"] = False  # the end: the next tick redraws the page, which stops the timer
    elif following(active) or state.get("gan_followed") == run_id:  # or it followed this run, no longer active:
        at = steps[-1]  # its last snapshot, written as it ended
    # Followed to the end: a page run that sees the run inactive leaves this as it was. It is the run's end (the
    # last snapshot shows, until a person moves the slider or presses Play) or a moment the page read the run as
    # not training (CI saw the grid stay on step 391 of 400: one such read had ended following for good).
    if active:
        state["gan_followed"] = run_id if following(active) and not state.get("gan_playing") else None
    at = gan_lab.nearest_step(steps, at)
    state["gan_at"] = state["gan_step"] = at  # the slider shows it
    return at


def moved_slider() -> None:
    """A person moved the step slider: show that step, stop playing, stop landing on the newest."""
    st.session_state.update(gan_at=st.session_state["gan_step"], gan_playing=False, gan_followed=None)


def draw_grid(container, label: str, target: Run, snaps: list, step: int) -> None:
    snap = gan_lab.nearest_snapshot(snaps, step)
    if snap is None:
        container.caption(f"{label} · {target.id}: no sample grid yet")
        return
    png = read_image(snap.path)
    if png is None:
        container.caption(f"{label} · {target.id}: the snapshot at step {snap.step:,} is gone")
        return
    near = "" if snap.step == step else " (nearest snapshot)"
    container.image(png, width="stretch", output_format="PNG",
                    caption=f"{label} · {target.id} · G(z) at step {snap.step:,}{near}")


def timeline(run: Run, compare: Run | None, active: bool = False) -> None:
    """The fixed-z grid at a step (a slider and a play button), beside run B's; the curves; the judge's view.

    active: run A (or B) is training: the timeline then follows its newest snapshot unless told not to.
    """
    if st.session_state.get("gan_timer") == "play" and not st.session_state.get("gan_playing"):
        st.rerun()  # playing stopped (the end, or the slider moved): the page drops the fast timer
    if gone(run):
        return
    shown = {"A": run} if compare is None or not (compare.path / "config.json").is_file() else {"A": run, "B": compare}
    try:
        snaps = {k: r.snapshots("samples") for k, r in shown.items()}
        records = {k: r.metrics() for k, r in shown.items()}
        configs = {k: r.config for k, r in shown.items()}
    except ERRORS as e:
        st.warning(f"A run cannot be read: {md(e)}")
        return
    steps = [s.step for s in snaps["A"]]
    if not steps:
        st.info(f"Run {run.id} has no sample grid yet: the first one is written as training starts.")
        return
    playing = st.session_state.get("gan_playing", False)
    current = timeline_step(steps, active, run.id)
    play, slider, *follow = st.columns([1, 6, 2] if active else [1, 7], vertical_alignment="bottom")
    if play.button("Pause" if playing else "Play", key="gan_play", width="stretch",
                   icon=":material/pause:" if playing else ":material/play_arrow:"):
        st.session_state.update(gan_playing=not playing, gan_followed=None)
        if not playing and current == steps[-1]:
            st.session_state["gan_at"] = steps[0] - 1  # play from the start: the next frame is the first
        st.rerun()  # the page sets the fragment's timer
    if active:
        st.session_state.setdefault("gan_follow", True)
        follow[0].toggle("Follow training", key="gan_follow",
                         help="Show each new snapshot as training writes it; turn off to scrub with the slider")
    moving = st.session_state.get("gan_playing", False) or following(active)  # after timeline_step: play may have ended
    slider.select_slider("Step", options=steps, key="gan_step", format_func=lambda s: f"{int(s):,}",
                         on_change=moved_slider, disabled=moving,
                         help="Pause, or turn off Follow training, to move it" if moving else None)
    # While it follows, the link says nothing of the step: a reload, a reconnect or a link copied then shows the
    # newest snapshot too, where ?step= would be read as a link to that step (and stop following, see above).
    set_query(step=None if following(active) else current)

    cols = st.container(key="gan_timeline_grids").columns(2)
    draw_grid(cols[0], "A", run, snaps["A"], current)
    if "B" in shown:
        draw_grid(cols[1], "B", shown["B"], snaps["B"], current)
    else:
        real = read_image(run.path / "snapshots" / "inputs.png")
        if real:
            cols[1].image(real, width="stretch", output_format="PNG",
                          caption="real images from the training split, for comparison")
    if any(gan_lab.is_conditional(c) for c in configs.values()):
        st.caption("A cGAN's grid: one column per class y, one row per fixed code z.")

    fig = gan_charts.timeline_figure({k: (configs[k]["model"], records[k]) for k in shown}, current)
    if fig is None:
        st.caption("No curves yet: the first log line comes after half a second of training.")
    else:
        st.plotly_chart(fig, key="gan_timeline_chart", config={"displayModeBar": False})
    for col, label in zip(st.columns(len(shown)), shown):
        with col:
            judged(label, configs[label]["dataset"], records[label], current, beside=len(shown) == 1)


def judged(label: str, dataset_name: str, records: list[dict], step: int, beside: bool = False) -> None:
    """The judge's scores nearest the step: FID, IS, the class histogram and a mode-collapse warning.

    beside: the numbers and the warning left of the histogram (one run), rather than above it (two).
    """
    line = gan_lab.judge_at(records, step)
    if line is None:
        st.caption(f"{label}: no judge scores for this run: its training setting `judge` was off, or the judge "
                   "classifier could not be loaded. The FID-style and inception-style curves and the class "
                   "histogram need it.")
        return
    numbers, chart = st.columns([2, 3]) if beside else (st.container(), st.container())
    m1, m2, m3 = numbers.columns(3)
    m1.metric(f"{label}: FID", fmt(line.get("judge/fid"), ".1f"), help="FID-style distance (lower is better)")
    m2.metric(f"{label}: IS", fmt(line.get("judge/inception_score"), ".2f"),
              help="inception-style score (higher is better)")
    m3.metric(f"{label}: classes", fmt(line.get("judge/classes_covered"), ".0f"),
              help="classes with at least a few percent of the samples")
    share = gan_lab.fid_share(records, line)
    warning = gan_lab.collapse_warning(line, share=share)
    if warning:
        numbers.warning(f"{label}: {warning} The generator found a few kinds of image that fool D and stopped "
                        "exploring the others.", icon=":material/warning:")
    elif int(line["step"]) == 0:
        numbers.caption(f"{label}: the untrained generator. Its samples are noise, which the judge files under "
                        "a class or two; the histogram means something once it has learned.")
    elif share is not None and share > gan_lab.LEARNED_FID_SHARE:
        numbers.caption(f"{label}: not learned yet. FID is {share:.0%} of the untrained generator's; until it "
                        f"falls below {gan_lab.LEARNED_FID_SHARE:.0%}, few classes in the histogram mean blurry "
                        "samples, not mode collapse.")
    hist = gan_lab.class_histogram(line)
    if hist:
        title = f"{label}: the judge's classes of the samples, step {int(line['step']):,}"
        chart.plotly_chart(gan_charts.class_hist_figure(hist, class_names(dataset_name, len(hist)), title),
                        key=f"gan_hist_{label}", config={"displayModeBar": False})


# -- slow motion -----------------------------------------------------------------------------------


def slow_motion(run: Run) -> None:
    """Load the checkpoint nearest the timeline's step into a trainer kept in the session; step D, G or both."""
    sm = st.session_state.get("gan_slowmo")
    sm = sm if sm is not None and sm.run_id == run.id else None
    buttons = st.columns(4)
    if buttons[0].button("Load checkpoint" if sm is None else "Reload checkpoint", key="gan_slowmo_load",
                         icon=":material/restart_alt:", width="stretch",
                         help="the checkpoint nearest the timeline's step, with its optimizers' state"):
        if gone(run):
            return
        try:
            job_manager().check(run.id, actor(), SLOW_MOTION, shared=run.id in shared_runs())
            sm = gan_lab.SlowMotion(run, st.session_state.get("gan_at"), dataset_tensors(run.config["dataset"]))
        except ERRORS as e:
            st.error(f"Cannot load a checkpoint of run {run.id}: {md(e)}")
            return
        st.session_state["gan_slowmo"] = sm
    for col, (action, label) in zip(buttons[1:], (("d", "Step D"), ("g", "Step G"), ("both", "Step both"))):
        if col.button(label, key=f"gan_slowmo_{action}", disabled=sm is None, width="stretch"):
            try:
                sm.step(action)
            except Exception as e:
                st.error(f"{label} failed: {type(e).__name__}: {md(e)}")
    if sm is None:
        st.caption("Load the checkpoint nearest the timeline's step, then step the discriminator, the generator, "
                   "or both, one update at a time.")
        return
    frame, before = sm.history[-1], (sm.history[-2] if len(sm.history) > 1 else None)
    real, fake = ("f(x)", "f(G(z))") if sm.wasserstein else ("D(x)", "D(G(z))")
    grid, numbers = st.container(key="gan_slowmo_panel").columns(2)
    grid.image(frame.grid, width="stretch", output_format="PNG",
               caption=f"G(z), the run's fixed z · checkpoint step {sm.checkpoint_step:,} + {sm.d_updates} D and "
                       f"{sm.g_updates} G updates")
    with numbers:
        c = st.columns(4)
        c[0].metric(real, f"{frame.d_real:.3f}", None if before is None else f"{frame.d_real - before.d_real:+.3f}",
                    delta_color="off", help="on 64 real training images (the same ones after every click)")
        c[1].metric(fake, f"{frame.d_fake:.3f}", None if before is None else f"{frame.d_fake - before.d_fake:+.3f}",
                    delta_color="off", help="on 64 fixed codes z")
        c[2].metric("D loss", fmt(frame.d_loss, ".3f"), help="at the last D update, on its batch")
        c[3].metric("G loss", fmt(frame.g_loss, ".3f"), help="at the last G update")
        st.plotly_chart(gan_charts.slow_motion_figure(sm.history, sm.wasserstein), key="gan_slowmo_chart",
                        config={"displayModeBar": False})
        rates = sm.learning_rates
        st.caption(f"η_G = {rates['lr_g']:g}, η_D = {rates['lr_d']:g}; batches of {sm.batch_size} in a fixed order.")


# -- learning rates --------------------------------------------------------------------------------


def learning_rates(run: Run) -> None:
    """Change a training run's learning rates (control.json); the rates its log lines recorded."""
    if gone(run):
        return
    try:
        status, records, train = run.status(), run.metrics(), run.config["train"]
    except ERRORS as e:
        st.warning(f"Run {run.id} cannot be read: {md(e)}")
        return
    history = gan_lab.lr_history(records)
    lr_g = history["lr_g"][1][-1] if history["lr_g"][1] else float(train["lr"])
    lr_d = history["lr_d"][1][-1] if history["lr_d"][1] else float(train.get("lr_d") or train["lr"])
    if status.state in ACTIVE and not job_manager().owns(run, actor()):
        st.info(f"Run {md(run.id)} belongs to another workspace: its owner changes its learning rates; copy it into "
                "your workspace (the run panel's Copy) to train your own.", icon=":material/visibility:")
    elif status.state in ACTIVE:
        keys = (f"gan_lr_g_{run.id}", f"gan_lr_d_{run.id}")
        for key, value in zip(keys, (lr_g, lr_d)):
            st.session_state.setdefault(key, float(value))
        with st.form("gan_lr_form", border=False):
            c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
            new_g = c1.number_input("η_G, the generator's learning rate", min_value=1e-7, max_value=1.0,
                                    format="%g", step=1e-5, key=keys[0])
            new_d = c2.number_input("η_D, the discriminator's learning rate", min_value=1e-7, max_value=1.0,
                                    format="%g", step=1e-5, key=keys[1])
            if c3.form_submit_button("Apply", type="primary", width="stretch"):
                try:
                    job_manager().set_control(run.id, actor(), lr=new_g, lr_d=new_d)
                except ERRORS as e:
                    st.error(f"Could not send the new rates: {md(e)}")
                else:
                    st.success(f"Sent η_G = {new_g:g}, η_D = {new_d:g}: the trainer applies them within a second, "
                               "and the curve shows them from its next log line.")
    else:
        st.info(f"Run {run.id} is {status.state}: learning rates can be changed while a run trains "
                "(resume it above, or start one).")
    applied = status.control
    if applied:
        st.caption("Last change applied by the trainer: "
                   + ", ".join(f"{k} = {fmt(v, 'g')}" for k, v in applied.items()))
    fig = gan_charts.lr_figure(history, st.session_state.get("gan_at"))
    if fig is None:
        st.caption("No learning rates logged yet.")
    else:
        st.plotly_chart(fig, key="gan_lr_chart", config={"displayModeBar": False})


# -- memorisation ----------------------------------------------------------------------------------


def memorisation(run: Run, n: int = 8) -> None:
    """n samples of the newest checkpoint, each above its nearest training image, with the distances."""
    if st.button("Compare samples with the training set", key="gan_memo_go", icon=":material/search:"):
        if gone(run):
            return
        try:
            loaded = gan_at(run)
            judge, why = judge_for(loaded.config["dataset"], str(job_manager().runs_dir))
            memo = gan_lab.memorisation(loaded, dataset_tensors(loaded.config["dataset"]), n=n, seed=0, judge=judge)
        except ERRORS as e:
            st.error(f"Cannot compare run {run.id}'s samples: {md(e)}")
            return
        st.session_state["gan_memo"] = (run.id, loaded.step, memo, why)
    saved = st.session_state.get("gan_memo")
    if not saved or saved[0] != run.id:
        st.caption(f"{n} samples of the newest checkpoint, each above the training image nearest to it.")
        return
    _, step, memo, why = saved
    st.caption(f"Checkpoint step {step:,}: each sample (top) above its nearest training image (bottom), with the "
               f"L2 distance in pixels. Unseen real test images lie at {fmt(memo.reference, '.2f')} on average from "
               "their nearest training image; a sample at less than half that is marked *suspect*."
               + (f" (No judge: {why}; the same distances were computed here.)" if why else ""))
    for i, col in enumerate(st.columns(len(memo.distances))):
        flag = " · suspect" if memo.closer_than_real(i) else ""
        col.image(memo.pair_png(i), width="stretch", output_format="PNG", caption=f"d = {memo.distances[i]:.2f}{flag}")


# -- a cGAN's classes ------------------------------------------------------------------------------


def class_samples(run: Run) -> None:
    """Samples of one class (`?class=K`) and a strip between two codes z with the class fixed."""
    if gone(run):
        return
    try:
        loaded = gan_at(run)
    except ERRORS as e:
        st.info(f"No generator to sample yet: {md(e)}")
        return
    k = loaded.num_classes
    names = class_names(loaded.config["dataset"], k)
    if st.session_state.get("gan_class") not in range(k):
        st.session_state["gan_class"] = query_value("class", 0, int, lambda c: 0 <= c < k)
    c1, c2 = st.columns(2)
    y = c1.selectbox("Class y", list(range(k)), key="gan_class", format_func=lambda c: f"{c}: {names[c]}")
    seed = c2.number_input("Seed of the codes z", min_value=0, max_value=10**6, value=0, key="gan_class_seed")
    set_query(**{"class": y})
    a, b, m = st.columns(3)
    seed0 = a.number_input("z₀ (seed)", min_value=0, max_value=10**6, value=1, key="gan_z0")
    seed1 = b.number_input("z₁ (seed)", min_value=0, max_value=10**6, value=2, key="gan_z1")
    method = m.segmented_control("Path", ["slerp", "linear"], default="slerp", key="gan_path", required=True)
    grid, strip = class_pngs(loaded.path, loaded.token, y, int(seed), int(seed0), int(seed1), method)
    st.image(grid, output_format="PNG", caption=f"32 samples G(z, y = {names[y]}) · checkpoint step {loaded.step:,}")
    st.image(strip, width="stretch", output_format="PNG",
             caption=f"from z₀ to z₁ ({method}), the class fixed to {names[y]}")
