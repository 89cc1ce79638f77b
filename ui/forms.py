"""A new-run form generated from the registry: one input per setting, each with its help as a tooltip."""

from __future__ import annotations

import math

import streamlit as st

from engine.lab.train import EMPTY_MEANS, TRAIN_SETTINGS, model_settings, parse_values, train_settings
from engine.models.settings import Setting
from engine.runs import Run
from engine.runs.config import MAX_NAME
from ui.escape import md
from ui.resources import job_manager
from ui.session import actor
from ui.sidebar import selected_dataset


def _list_text(value) -> str:
    return ", ".join(str(v) for v in value) if value else ""


def _help(s: Setting) -> str:
    """The tooltip: what the setting does, and the name the CLI and config.json use for it."""
    return f"{s.help}  \n`{s.name}` in config.json and on the command line (`--set {s.name}=…`)"


def _bounds(s: Setting, cast) -> dict:
    """The declared range as a number input's min_value / max_value (inclusive bounds only: a strict one, such as
    lr > 0, is left to the engine's check, which says why)."""
    out = {}
    if s.low is not None and not s.low_open:
        out["min_value"] = cast(s.low)
    if s.high is not None and not s.high_open:
        out["max_value"] = cast(s.high)
    return out


def setting_input(s: Setting, key: str):
    """The widget for one setting (its kind picks it), labelled with its human name, keyed `key`.

    Lists come back as text.
    """
    empty = EMPTY_MEANS.get(s.name, "no limit")
    label, help = s.label, _help(s)
    if s.kind == "ints":
        return st.text_input(label, _list_text(s.default), key=key, help=help,
                             placeholder=empty if s.optional else "none")
    if s.kind == "bool":
        return st.checkbox(label, bool(s.default), key=key, help=help)
    if s.kind == "choice":
        options = list(s.choices)
        return st.selectbox(label, options, index=options.index(s.default) if s.default in options else 0,
                            key=key, help=help)
    if s.kind == "str":
        return st.text_input(label, s.default or "", key=key, help=help)
    if s.kind == "int":
        return st.number_input(label, value=s.default, step=1, key=key, help=help,
                               placeholder=empty if s.optional else None, **_bounds(s, int))
    # float: %g shows 0.001 and 3e-05 as written, not rounded to 0.00
    step = 10 ** math.floor(math.log10(abs(s.default))) if s.default else 0.1
    return st.number_input(label, value=None if s.default is None else float(s.default), step=float(step),
                           format="%g", key=key, help=help, placeholder=empty if s.optional else None,
                           **_bounds(s, float))


def settings_inputs(settings: list[Setting], key: str, ncol: int = 3) -> dict:
    """One input per setting in `ncol` columns, keyed `{key}_{name}`."""
    values, cols = {}, st.columns(ncol)
    for i, s in enumerate(settings):
        with cols[i % ncol]:
            values[s.name] = setting_input(s, f"{key}_{s.name}")
    return values


def new_run_form(model: str, key: str, form_key: str, train_names=TRAIN_SETTINGS, train_defaults: dict | None = None,
                 budget_note: str = "training stops at whichever budget, epochs, steps or seconds, runs out first",
                 ncol: int = 4) -> Run | None:
    """The form that starts a run of `model`: one input per setting of its config and per training setting.

    Inputs are keyed `{key}_{field}` (model settings) and `{key}_t_{field}` (training settings);
    defaults are the config's, then TrainConfig's overridden by the model's `train_defaults`, then
    `train_defaults`. On submit the run goes to the job manager; returns the new Run (None when
    not submitted, or when the settings were refused: the form says why).
    """
    dataset = selected_dataset()
    model_fields, train_fields = model_settings(model), train_settings(model, train_names, train_defaults)
    with st.form(form_key):
        name = st.text_input("Run name (optional)", key=f"{key}_name", max_chars=MAX_NAME,
                             placeholder="e.g. wide conv AE, β = 4",
                             help="shown beside the run's id in every picker and in the gallery")
        st.markdown("**Model settings** (hover **?** for what each one does)")
        model_values = settings_inputs(model_fields, key=key, ncol=ncol)
        st.markdown(f"**Training settings** · {budget_note}")
        train_values = settings_inputs(train_fields, key=f"{key}_t", ncol=ncol)
        submitted = st.form_submit_button("Start training", type="primary", icon=":material/rocket_launch:",
                                          disabled=not dataset.available)
    if not submitted:
        return None
    try:
        return job_manager().submit(model, dataset.name, parse_values(model_fields, model_values),
                                    parse_values(train_fields, train_values), name=name, actor=actor())
    except Exception as e:
        st.error(f"Could not start training: {md(e)}")
        return None
