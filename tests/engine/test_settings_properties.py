"""Every setting from outside (the Train form, the CLI, the URL, an imported config.json), for any value:
a clear ValueError (or RunError) or a valid run config — never another exception, a huge allocation or a
half-made run folder (issue 16, items 1 and 4).

Property-based (hypothesis): values are drawn from junk (huge ints, inf, nan, text, lists, None, nested
objects) mixed with values at and around each setting's declared range, so both sides of every bound
are tried.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import resource
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import engine.train
from engine import cli
from engine.lab.train import TRAIN_SETTINGS, model_settings, parse_values, train_settings, trainable_models
from engine.models import MAX_PARAMETERS, MODELS, get_model_class, parameter_count
from engine.models.settings import config_from_dict, describe
from engine.runs import Run, RunError, TrainConfig, make_run_config, split_settings
from engine.runs.transfer import export_run, import_run
from tests.engine.test_transfer import repack, unpack

FAST = settings(max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
TRAIN_NAMES = [s.name for s in describe(TrainConfig)]

# -- values --------------------------------------------------------------------------------------

TRICKY_TEXT = ["", " ", "none", "null", "true", "0", "1", "-1", "1e309", "-1e309", "inf", "-inf", "nan", "1e8",
               "4096", "4097", "256,128", "256,,128", "1,2,3,4,5,6,7,8,9", "99", "3.5", "0x10", "１２",
               "9" * 5000, "[1]", "{}", "cuda:99", "auto", "cpu", "mse", "kl", "gp", "relu", "one_cycle",
               "folder:/etc", "npz:/dev/zero", "\x00", "é" * 100]
atoms = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0, 1, -1, 2, 2**31, 2**63, 10**9, 10**309, 4096, 4097, 1e8, 1e309]),
    st.builds(pow, st.just(10), st.just(5000)),  # repr refuses it (4,300 digits at most), messages must not
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.inf, -math.inf, math.nan, 0.0, 1e-300]),
    st.sampled_from(TRICKY_TEXT), st.text(max_size=12),
)
junk = st.recursive(atoms, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=4), inner,
                                                                                     max_size=3), max_leaves=12)


def near_range(s) -> st.SearchStrategy:
    """Values at and just beyond a setting's declared bounds, its default, and its choices."""
    out = [s.default]
    for bound in (s.low, s.high):
        if bound is not None:
            out += [bound, bound - 1, bound + 1, bound * 2, -bound, bound - 1e-9, bound + 1e-9]
    out += list(s.choices)
    if s.kind == "ints":
        high = int(s.high or 8)
        return st.sampled_from(out) | st.lists(st.integers(-2, high + 2), max_size=(s.max_len or 4) + 2)
    return st.sampled_from(out)


def settings_for(cls) -> st.SearchStrategy:
    """A dict of some of `cls`'s settings: either each near its range (so many are valid and both sides of each
    bound are tried), or each junk or near its range, sometimes with an unknown name."""
    near = {s.name: near_range(s) for s in describe(cls)}
    mixed = {s.name: junk | near_range(s) for s in describe(cls)}
    return (st.fixed_dictionaries({}, optional=near) | st.fixed_dictionaries({}, optional=mixed)
            | st.fixed_dictionaries({"no_such_setting": junk}, optional=near))


# -- checks ----------------------------------------------------------------------------------------


def assert_valid(config: dict) -> None:
    """A run config that a worker can use as it is: checked again, serialisable, and of a bounded size."""
    json.dumps(config, allow_nan=False)
    model_cls = get_model_class(config["model"])
    mcfg = config_from_dict(model_cls.config_cls, config["model_config"])
    config_from_dict(TrainConfig, config["train"])
    assert parameter_count(config["model"], mcfg) <= MAX_PARAMETERS


def assert_clear(e: Exception) -> None:
    assert isinstance(e, ValueError), f"{type(e).__name__}: {e}"
    text = str(e)
    assert text and "Traceback" not in text and len(text) < 2000, text


@pytest.fixture(scope="module")
def peak_memory():
    """The process's peak resident memory must not grow by a huge allocation across a property test."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    yield
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**10
    assert grown < 1024, f"peak memory grew by {grown:.0f} MiB while checking settings"


def create(runs_dir: Path, model: str, dataset: str, model_part, train_part) -> Run | None:
    """What JobManager.submit does: validate, then make the run folder; None when refused."""
    try:
        config = make_run_config(model, dataset, model_part, train_part)
    except Exception as e:
        assert_clear(e)
        return None
    assert_valid(config)
    return Run.create(runs_dir, config)


def assert_no_half_folders(runs_dir: Path) -> None:
    for path in runs_dir.iterdir():
        assert (path / "config.json").is_file() and (path / "status.json").is_file(), \
            f"{path.name} was left without its config.json"


# -- every model, every setting (what the form and --set reach) ---------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
@FAST
@given(data=st.data())
def test_any_model_and_training_settings_give_a_clear_error_or_a_valid_run(model, data, peak_memory):
    model_part = data.draw(settings_for(get_model_class(model).config_cls), label="model settings")
    train_part = data.draw(settings_for(TrainConfig), label="training settings")
    with tempfile.TemporaryDirectory() as tmp:
        create(Path(tmp), model, "mnist-5k", model_part, train_part)
        assert_no_half_folders(Path(tmp))


@FAST
@given(model=st.sampled_from(list(MODELS)) | junk, dataset=st.sampled_from(["mnist-5k", "npz:/dev/zero",
                                                                         "folder:/nonexistent", "nope"]) | junk,
       model_part=junk, train_part=junk)
def test_junk_in_place_of_the_whole_settings_objects_is_refused_clearly(model, dataset, model_part, train_part,
                                                                       peak_memory):
    with tempfile.TemporaryDirectory() as tmp:
        create(Path(tmp), model, dataset, model_part, train_part)
        assert_no_half_folders(Path(tmp))


# -- the Train form -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", trainable_models())
@settings(max_examples=15, deadline=None, database=None)
@given(data=st.data())
def test_the_train_forms_values_give_a_clear_error_or_a_valid_run(model, data, peak_memory):
    """What a form (or a forged widget message) can send: numbers, text for lists, any choice."""
    model_fields, train_fields = model_settings(model), train_settings(model, TRAIN_SETTINGS)

    def widget_value(s):
        if s.kind == "ints":
            return st.sampled_from(TRICKY_TEXT) | st.text(alphabet="0123456789, -", max_size=20)
        if s.kind in ("int", "float"):
            return near_range(s) | st.none() | st.integers() | st.floats()
        return junk | near_range(s)

    model_values = data.draw(st.fixed_dictionaries({s.name: widget_value(s) for s in model_fields}))
    train_values = data.draw(st.fixed_dictionaries({s.name: widget_value(s) for s in train_fields}))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            parts = parse_values(model_fields, model_values), parse_values(train_fields, train_values)
        except ValueError as e:
            assert_clear(e)
            return
        create(Path(tmp), model, "mnist-5k", *parts)
        assert_no_half_folders(Path(tmp))


# -- the command line, in-process ------------------------------------------------------------------------


FLAG_VALUES = st.sampled_from(TRICKY_TEXT) | st.integers().map(str) | st.floats().map(str) | st.text(max_size=8)


@FAST
@given(model=st.sampled_from(list(MODELS)), data=st.data())
def test_the_cli_gives_one_error_line_or_a_complete_run(model, data, monkeypatch, peak_memory):
    trained = []
    monkeypatch.setattr(engine.train, "train_run", lambda run, **kw: trained.append(run) or {})
    names = [s.name for s in describe(get_model_class(model).config_cls)] + TRAIN_NAMES + ["bogus", ""]
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(names), FLAG_VALUES), max_size=5), label="--set")
    flags = data.draw(st.lists(st.tuples(st.sampled_from(["--epochs", "--steps", "--seconds", "--latent-dim", "--seed",
                                                          "--batch-size", "--lr", "--device"]), FLAG_VALUES),
                               max_size=3, unique_by=lambda t: t[0]), label="flags")
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["train", model, "--runs-dir", tmp, "--quiet"]
        for key, value in pairs:
            argv += ["--set", f"{key}={value}"]
        for flag, value in flags:
            argv.append(f"{flag}={value}")  # one token, so a value such as "-1" is not read as a flag
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli.main(argv)
            except SystemExit as e:  # argparse: a wrong flag type or two budgets at once
                rc = e.code
        assert_no_half_folders(Path(tmp))
        runs = list(Path(tmp).iterdir())
        event("accepted" if runs else "refused")
        if runs:  # accepted: exactly one complete run, handed to training
            assert len(runs) == 1 and len(trained) == 1
            assert_valid(json.loads((runs[0] / "config.json").read_text()))
        else:
            assert rc in (1, 2) and err.getvalue().startswith("error: "), err.getvalue()
            assert err.getvalue().count("\n") == 1, err.getvalue()


def test_cli_settings_from_the_issue_are_refused_before_a_folder_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(engine.train, "train_run", lambda run, **kw: pytest.fail("training started"))
    cases = [(["--set", "classes=99"], "classes must be indices of mnist-5k's 10 classes"),
             (["--latent-dim", "1000000000"], "latent_dim must be at most 4,096"),
             (["--set", "lr=inf"], "lr must be a finite number"),
             (["--set", "weight_decay=nan"], "weight_decay must be a finite number"),
             (["--set", "eval_batch=0"], "eval_batch must be at least 1"),
             (["--set", "keep_checkpoints=-1"], "keep_checkpoints must be at least 1"),
             (["--set", "keep_checkpoints=0"], "keep_checkpoints must be at least 1"),
             (["--set", "checkpoint_every_s=0.001"], "checkpoint_every_s must be at least 0.2"),
             (["--set", "threads=-4"], "threads must be at least 0"),
             (["--set", "batch_size=1e8"], "batch_size must be a whole number|batch_size must be at most"),
             (["--batch-size", "100000000"], "batch_size must be at most 4,096"),
             (["--set", "hidden=4096,4096,4096"], "parameters, over the limit"),
             (["--data", "npz:/dev/zero"], "/dev/zero is not a regular file")]
    for args, message in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = cli.main(["train", "ae", "--runs-dir", str(tmp_path), "--quiet", *args])
        assert rc == 1 and err.getvalue().startswith("error: "), (args, err.getvalue())
        assert any(m in err.getvalue() for m in message.split("|")), (args, err.getvalue())
        assert list(tmp_path.iterdir()) == [], f"{args} left a run folder"


# -- the URL -------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.sampled_from(TRICKY_TEXT) | st.text(max_size=30) | st.integers().map(str) | st.floats().map(str))
def test_a_link_value_is_used_only_when_it_is_valid(raw, monkeypatch):
    """Every page reads its link through query_value: a bad value gives the default, never an exception."""
    import ui.urlstate as urlstate

    monkeypatch.setattr(urlstate, "st", SimpleNamespace(query_params={"v": raw}))
    models = trainable_models()
    assert urlstate.query_value("v", "conv_ae", str, lambda m: m in models) in models  # the Train page's ?model=
    n = urlstate.query_value("v", 0, int, lambda i: 0 <= i < 1000)
    assert isinstance(n, int) and 0 <= n < 1000
    x = urlstate.query_value("v", 0.5, float, lambda v: 0 <= v <= 1)
    assert isinstance(x, float) and math.isfinite(x) and 0 <= x <= 1
    z = urlstate.query_value("v", None, lambda s: [float(v) for v in s.split(",")],
                             lambda zs: len(zs) == 2 and all(math.isfinite(v) for v in zs))
    assert z is None or (len(z) == 2 and all(math.isfinite(v) for v in z))


# -- an imported run's config.json ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pca_export(finished_pca_run) -> dict[str, bytes]:
    return unpack(export_run(Run(finished_pca_run)))


def crafted(files: dict[str, bytes], **changes) -> bytes:
    config = json.loads(files["config.json"])
    for key, value in changes.items():
        config[key] = value
    try:
        text = json.dumps(config)
    except ValueError:  # an int of over 4,300 digits: no JSON text holds one (json.loads refuses it too)
        assume(False)
    return repack({**files, "config.json": text.encode()})


@FAST
@given(train=settings_for(TrainConfig), dataset=st.sampled_from(["mnist-5k", "mnist", "fashion-mnist", "folder:/etc",
                                                                 "npz:/dev/zero", "folder:", "npz:x"]) | junk)
def test_an_imported_config_gives_a_clear_refusal_or_a_complete_run(pca_export, train, dataset, peak_memory):
    with tempfile.TemporaryDirectory() as tmp:
        config = json.loads(pca_export["config.json"])
        try:
            run = import_run(tmp, crafted(pca_export, train={**config["train"], **train}, dataset=dataset))
        except RunError as e:
            assert_clear(e)
            assert list(Path(tmp).iterdir()) == [], "a refused import must write nothing"
            event("refused")
            return
        event("accepted")
        assert run.config["dataset"] in ("mnist-5k", "mnist", "fashion-mnist")
        assert_valid(run.config)
        assert_no_half_folders(Path(tmp))


@settings(max_examples=30, deadline=None, database=None)
@given(model_config=settings_for(get_model_class("pca").config_cls) | junk, name=junk)
def test_an_imported_model_config_or_name_gives_a_clear_refusal_or_a_complete_run(pca_export, model_config, name):
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run = import_run(tmp, crafted(pca_export, model_config=model_config, name=name))
        except RunError as e:
            assert_clear(e)
            assert list(Path(tmp).iterdir()) == []
            return
        assert_valid(run.config)


def test_json_numbers_beyond_a_float_are_refused_as_settings(pca_export, tmp_path):
    """1e309 in config.json reads as inf, 10**309 as an int no float holds (an OverflowError before)."""
    text = pca_export["config.json"].decode()
    for field, literal in (("epochs", "1e309"), ("epochs", "1" + "0" * 309), ("seconds", "1" + "0" * 309),
                           ("lr", "1e309"), ("batch_size", "-1e309")):
        config = json.loads(text)
        config["train"][field] = "@@"
        data = json.dumps(config).replace('"@@"', literal).encode()
        with pytest.raises(RunError, match=f"cannot be used here: {field} must be"):
            import_run(tmp_path, repack({**pca_export, "config.json": data}))
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_set_name_says_which_names_exist():
    with pytest.raises(ValueError, match="training settings: .*batch_size"):
        split_settings("ae", {"nope": "1"})
