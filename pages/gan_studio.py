"""GAN studio: train GANs, replay their fixed-z samples along a timeline, step one in slow motion.

Link state: `?run=ID` (the run shown), `?compare=ID` (a second run side by side), `?step=N` (the
timeline's step; absent while it follows a training run), `?class=K` (a cGAN's class). The panels are in
ui/panels/gan_studio.py, the charts in ui/charts/gan_studio.py, the work in engine/lab/gan_studio.py, the
explanations in assets/pages/gan_studio*.md.
"""

from __future__ import annotations

import streamlit as st

from engine.lab import gan_studio as gan_lab
from engine.lab.demos import DEMOS, demo_scale
from engine.models import formulas, get_model_class, models
from engine.runs import ACTIVE, Run
from ui.entry import ensure_app
from ui.forms import new_run_form
from ui.lessons import shown
from ui.panels import gan_studio as gan_ui
from ui.resources import job_manager
from ui.session import actor, shared_runs
from ui.run_panel import ERRORS, live_run_panel, signature
from ui.sidebar import selected_dataset
from ui.text import explain
from ui.urlstate import set_query
from ui.escape import md, md_quote

ensure_app()  # a deep link on a fresh server runs app.py first (see ui/entry.py)

GAN_MODELS = models(adversarial=True)
GAN_SETTINGS = ("steps", "seconds", "epochs", "batch_size", "lr", "lr_d", "schedule", "beta1", "beta2", "seed",
                "judge")
GAN_STEPS = 1000  # the form's default budget: steps give the same GAN on a busy machine (seconds give fewer)
PLAY_EVERY_S = 0.8  # seconds between frames while the timeline plays
VIEW_KEYS = ("gan_at", "gan_step", "gan_follow", "gan_playing", "gan_slowmo", "gan_memo")

jm = job_manager()
dataset = selected_dataset()

st.title(":material/auto_awesome: GAN studio")
explain("gan_studio")


def show_new(run: Run) -> None:
    """Show a run just submitted, from its first snapshot on."""
    for key in VIEW_KEYS:
        st.session_state.pop(key, None)
    st.session_state["gan_run"] = run.id
    st.query_params.pop("step", None)
    st.rerun()


with st.expander("Start a GAN run", icon=":material/rocket_launch:"):
    model = st.selectbox("Model", GAN_MODELS, key="gan_model", help="Every GAN in the registry")
    st.markdown(f"**{model}** · {get_model_class(model).description}")
    for formula in formulas(model):
        st.latex(formula)
    new = new_run_form(model, key=f"gan_{model}", form_key="gan_form", train_names=GAN_SETTINGS,
                       train_defaults={"steps": GAN_STEPS, "epochs": None},
                       budget_note="lr is the generator's learning rate, lr_d the discriminator's (empty: the same); "
                                   "training stops at whichever budget, steps, seconds or epochs, runs out first")
    if new is not None:
        show_new(new)

try:
    runs = gan_lab.gan_runs(jm.runs(actor(), shared_runs()))
except ERRORS as e:
    st.error(f"Cannot list the runs: {md(e)}")
    st.stop()
summaries = [r.summary() for r in runs]
st.session_state[gan_ui.SIGNATURE_KEY] = signature(summaries)

if not runs:
    for key in ("run", "compare", "step", "class"):
        st.query_params.pop(key, None)
    try:
        scale = demo_scale()
    except ValueError as e:
        st.warning(str(e))
        scale = 1.0
    demo = DEMOS["dcgan"]
    model, model_config, train = demo.settings(scale)
    st.info("**No GAN has been trained yet.** Open **Start a GAN run** above, or train a small DCGAN in one click: "
            f"{train['steps']:,} steps in the background, then replay its samples here. The first GAN on a dataset "
            "also trains the judge classifier that scores the samples (once; its progress shows). Runs started "
            f"from the CLI (`python -m engine train dcgan --steps {train['steps']}`) show up too.",
            icon=":material/auto_awesome:")
    if st.button(f"Train a short DCGAN ({train['steps']:,} steps)", key="gan_starter", type="primary",
                 icon=":material/rocket_launch:", disabled=not dataset.available,
                 help=f"Trains {demo.what}; a step budget gives the same GAN on a busy machine, only later"):
        try:
            starter = jm.submit(model, dataset.name, model_config, train, name="short DCGAN", actor=actor())
        except Exception as e:
            st.error(f"Could not start training: {md(e)}")
        else:
            show_new(starter)
    gan_ui.gan_table()  # drawn anyway: its poll notices a run started elsewhere
    st.stop()

# -- which runs: A, and B side by side -------------------------------------------------------------

by_id = {r.id: r for r in runs}
states = {s["id"]: s.get("state", "failed") for s in summaries}
for param, what, instead in (("run", "run", "the newest GAN run"), ("compare", "run to compare", "run A alone")):
    linked = st.query_params.get(param)
    if linked and linked not in by_id and f"gan_{param}_warned" not in st.session_state:
        st.session_state[f"gan_{param}_warned"] = True  # once: the picker takes over from the link
        st.warning(f"There is no GAN {what} {md_quote(linked)} in this server's runs folder: it was deleted, or the "
                   f"link comes from another server. Showing {instead} instead.")
# Plain ids as labels: a keyed selectbox keeps its value by label, and a label with the state would change.
left, right = st.columns(2)
if st.session_state.get("gan_run") not in by_id:
    linked = st.query_params.get("run")
    st.session_state["gan_run"] = linked if linked in by_id else runs[0].id
run = by_id[left.selectbox("Run A", list(by_id), key="gan_run", help="Every GAN run, newest first")]
others = [""] + [rid for rid in by_id if rid != run.id]
if st.session_state.get("gan_compare") not in others:
    linked = st.query_params.get("compare", "")
    st.session_state["gan_compare"] = linked if linked in others else ""
compare_id = right.selectbox("Run B, side by side", others, key="gan_compare", format_func=lambda i: i or "none",
                             help="e.g. gan against dcgan, or minimax against non-saturating: the same timeline "
                                  "position shows both")
set_query(run=run.id, compare=compare_id or None)
compare = by_id.get(compare_id)
try:
    config = run.config
except ERRORS as e:  # deleted or damaged since the listing
    st.warning(f"Run {run.id} cannot be read: {md(e)}")
    st.stop()
conditional = gan_lab.is_conditional(config)
if not conditional:
    st.query_params.pop("class", None)
active = states.get(run.id) in ACTIVE or (compare is not None and states.get(compare.id) in ACTIVE)

st.subheader("Live")
live_run_panel(run.id, states.get(run.id, "failed"))
gan_ui.gan_table()

# -- the timeline ----------------------------------------------------------------------------------

st.subheader("Timeline")
g_loss = config["model_config"].get("g_loss", "")
explain("gan_studio", "timeline")
st.markdown(f"Run A is a {md(config['model'])} with the **{md(str(g_loss).replace('_', '-'))}** generator loss:")
for formula in formulas(config["model"]):
    st.latex(formula)
explain("gan_studio", "judge")
playing = st.session_state.get("gan_playing", False)
st.session_state["gan_timer"] = "play" if playing else "poll"
st.fragment(run_every=PLAY_EVERY_S if playing else (2.0 if active else None))(gan_ui.timeline)(run, compare, active)

# -- tools -----------------------------------------------------------------------------------------

# title → (key: a lesson may hide it, its explanation, its panel)
tools = {"Slow motion": ("gan_slow_motion", "slow_motion", st.fragment(gan_ui.slow_motion)),
         "Learning rates": ("gan_learning_rates", "learning_rates", st.fragment(
             run_every=2.0 if states.get(run.id) in ACTIVE else None)(gan_ui.learning_rates)),
         "Memorisation": ("gan_memorisation", "memorisation", st.fragment(gan_ui.memorisation))}
if conditional:
    tools["Class samples"] = ("gan_class_samples", "class_samples", st.fragment(gan_ui.class_samples))
tools = {title: tool for title, tool in tools.items() if shown(tool[0])}
for tab, (key, section, panel) in zip(st.tabs(list(tools)) if tools else [], tools.values()):
    with tab, st.container(key=key):
        explain("gan_studio", section)
        panel(run)
