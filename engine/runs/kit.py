"""The workshop kit: a named set of runs trained in one go before a workshop, shown to every visitor.

A kit is a small TOML file a presenter can copy and edit (assets/kits/workshop.toml is the default):

    name = "workshop"                      # the kit's name (default: the file's name); part of every run's kit key
    description = "…"                      # optional
    dataset = "mnist-5k"                   # optional: the entries' dataset unless an entry names its own

    [runs.conv_ae]                         # an entry: its key (letters, digits, '_', '-') …
    name = "conv AE · latent 32"           # … the run's readable name, shown in every picker
    model = "conv_ae"                      # a registered model (python -m engine models)
    model_config = { latent_dim = 32 }     # the model's settings, as config.json holds them
    train = { steps = 4000 }               # TrainConfig settings; a step budget gives the same model anywhere

`train_kit` makes the runs folder hold one finished run per entry, and no more: each run's config.json
carries the kit key {"name": KIT, "entry": KEY}, so a second call finds them. A finished run with the
entry's settings is kept; an interrupted, cancelled or failed one is resumed from its checkpoint; a
queued or running one (another call's, or a server's job manager's) is waited for; only a missing entry
trains a new run. The runs belong to no workspace (they are the server's, as the CLI's runs are) and
are pinned to the gallery, so every visitor of a hosted server sees them, read-only.

`export_kit` writes the kit's finished runs as one .zip (a kit.json manifest beside one run export per
entry, engine/runs/transfer.py's format), and `import_kit` checks such an archive as strictly as a single
run's upload (engine/data/archive.py's checks on the outer zip, then import_run on every run inside)
before it adds the runs a runs folder does not hold yet.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.data import archive
from engine.data.archive import ArchiveError, ArchiveLimits
from engine.models import make_config
from engine.models.settings import config_from_dict
from engine.runs import workspace as ws
from engine.runs.config import TrainConfig, make_run_config
from engine.runs.files import RunError
from engine.runs.jobs import JobManager, default_max_jobs
from engine.runs.status import ACTIVE, RESUMABLE
from engine.runs.store import Run, list_runs
from engine.runs.transfer import MAX_IMPORT_BYTES, export_run, import_run
from engine.runs.workspace import Limits

KITS_DIR = Path(__file__).resolve().parents[2] / "assets" / "kits"
DEFAULT_KIT = "workshop"
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")  # a kit's name and an entry's key
MAX_ENTRIES = 50
MAX_KIT_FILE_BYTES = 64 * 2**10
ENTRY_FIELDS = {"name", "model", "dataset", "model_config", "train"}
KIT_FIELDS = {"name", "description", "dataset", "runs"}
# Settings that say where a run trains, not what it is: a kit trained on a GPU at home is the same kit on a server.
PLACE_SETTINGS = ("device", "threads")
# Each model's headline score in its final metrics (engine.eval: metrics.evaluate, roc, judge), in this order.
HEADLINES = (("class_agreement", "class agreement"), ("fid_ratio", "Fréchet ratio"),
             ("anomaly_auroc", "AUROC"), ("elbo", "ELBO"), ("mse_vs_pca", "test MSE ÷ PCA"), ("mse", "test MSE"))


class KitError(ValueError):
    """A kit file or kit archive that cannot be used; the message (one line) says which and what to do."""


# ---------------------------------------------------------------------------------------------
# the kit file


@dataclass(frozen=True)
class Entry:
    key: str  # the entry's key in the kit file ([runs.KEY])
    name: str  # the run's readable name
    model: str
    dataset: str
    model_config: dict
    train: dict

    def run_config(self, kit: str, device: str | None = None) -> dict:
        """config.json of a new run of this entry (checked by make_run_config), with its kit key."""
        train = dict(self.train) if device is None else {**self.train, "device": device}
        config = make_run_config(self.model, self.dataset, self.model_config, train, name=self.name)
        return {**config, "kit": {"name": kit, "entry": self.key}}


@dataclass(frozen=True)
class Kit:
    name: str
    description: str
    entries: tuple[Entry, ...]
    source: str  # the file it was read from, as the user named it

    def entry(self, key: str) -> Entry:
        for e in self.entries:
            if e.key == key:
                return e
        raise KitError(f"kit {self.name} has no entry {key!r}; its entries: {', '.join(e.key for e in self.entries)}")


def kit_path(ref: str | Path | None = None) -> Path:
    """The file of kit `ref`: None is the default kit, a NAME is assets/kits/NAME.toml, anything else a path."""
    ref = DEFAULT_KIT if ref is None else str(ref)
    if KEY.fullmatch(ref) and not Path(ref).is_file():
        path = KITS_DIR / f"{ref}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in KITS_DIR.glob("*.toml"))) or "none"
            raise KitError(f"there is no kit named {ref!r} (kits in assets/kits: {known}); give a kit's name "
                           "or the path of a .toml file")
        return path
    path = Path(ref)
    if not path.is_file():
        raise KitError(f"kit file {ref} does not exist; give a kit's name (assets/kits/NAME.toml) or a .toml file")
    return path


def load_kit(ref: str | Path | None = None) -> Kit:
    """The kit `ref` names (kit_path), read and checked: every entry's settings validate now, before any run."""
    path = kit_path(ref)
    data = path.read_bytes()
    if len(data) > MAX_KIT_FILE_BYTES:
        raise KitError(f"kit file {path} is {len(data):,} bytes; a kit file is a few lines of TOML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise KitError(f"kit file {path} is not UTF-8 text") from None
    stem = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")[:40] or "kit"  # "My Kit" → "my-kit"
    return parse_kit(text, DEFAULT_KIT if ref is None else str(ref), default_name=stem)


def parse_kit(text: str, source: str = "kit", default_name: str = DEFAULT_KIT) -> Kit:
    """A kit from the TOML text of a kit file (see the module docstring); KitError says what is wrong, in one line."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise KitError(f"kit file {source} is not valid TOML: {' '.join(str(e).split())}") from None
    unknown = sorted(set(doc) - KIT_FIELDS)
    if unknown:
        raise KitError(f"kit file {source}: unknown field {unknown[0]!r}; a kit has {', '.join(sorted(KIT_FIELDS))}")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not KEY.fullmatch(name):
        raise KitError(f"kit file {source}: name must be 1-40 lower-case letters, digits, '_' or '-', not {name!r}")
    description = doc.get("description", "")
    dataset = doc.get("dataset", "mnist-5k")
    if not isinstance(description, str) or not isinstance(dataset, str):
        raise KitError(f"kit file {source}: description and dataset must be text")
    runs = doc.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise KitError(f"kit file {source} has no entries: add at least one [runs.KEY] table with name and model")
    if len(runs) > MAX_ENTRIES:
        raise KitError(f"kit file {source} has {len(runs)} entries; a kit holds at most {MAX_ENTRIES}")
    entries, names = [], set()
    for key, spec in runs.items():
        where = f"kit file {source}, [runs.{key}]"
        if not KEY.fullmatch(key):
            raise KitError(f"{where}: an entry's key must be 1-40 lower-case letters, digits, '_' or '-'")
        if not isinstance(spec, dict):
            raise KitError(f"{where}: an entry is a table with name, model, model_config and train")
        unknown = sorted(set(spec) - ENTRY_FIELDS)
        if unknown:
            raise KitError(f"{where}: unknown field {unknown[0]!r}; an entry has {', '.join(sorted(ENTRY_FIELDS))}")
        for field_, kind in (("name", str), ("model", str)):
            if not isinstance(spec.get(field_), kind) or not spec[field_].strip():
                raise KitError(f"{where}: {field_} is missing (it must be text)")
        if spec["name"] in names:
            raise KitError(f"{where}: the name {spec['name']!r} is another entry's too; names tell runs apart")
        names.add(spec["name"])
        entry = Entry(key, spec["name"], spec["model"], spec.get("dataset", dataset), spec.get("model_config", {}),
                      spec.get("train", {}))
        try:
            entry.run_config(name)  # every setting checked now (the model, the dataset, ranges, the classes)
        except (ValueError, TypeError) as e:
            raise KitError(f"{where}: {' '.join(str(e).split())}") from None
        entries.append(entry)
    return Kit(name, description, tuple(entries), source)


def kit_key(value) -> dict | None:
    """A config.json's `kit` field, {"name": KIT, "entry": KEY}, when it is one (else None): what transfer keeps."""
    if not isinstance(value, dict) or set(value) != {"name", "entry"}:
        return None
    name, entry = value["name"], value["entry"]
    ok = isinstance(name, str) and isinstance(entry, str) and KEY.fullmatch(name) and KEY.fullmatch(entry)
    return {"name": name, "entry": entry} if ok else None


# ---------------------------------------------------------------------------------------------
# which run serves an entry


def _what_it_is(config: dict) -> tuple:
    """A run's model, dataset and settings, normalised (defaults filled in), without where it trains."""
    train = asdict(config_from_dict(TrainConfig, config["train"]))
    for key in PLACE_SETTINGS:
        train.pop(key, None)
    return (config["model"], config["dataset"], asdict(make_config(config["model"], config["model_config"])), train)


def _same_settings(run_config: dict, entry_config: dict) -> bool:
    try:
        return _what_it_is(run_config) == _what_it_is(entry_config)
    except (ValueError, TypeError, KeyError):  # a run whose settings no longer validate serves no entry
        return False


# the run that serves an entry, best first: a finished one, then one that is training, then one to resume
_RANK = {"done": 0, "running": 1, "queued": 2, "interrupted": 3, "cancelled": 3, "failed": 4}


def kit_runs(kit: Kit, runs_dir: Path | str) -> dict[str, list[Run]]:
    """entry key → the runs with its kit key, best first (see _RANK; then the newest). A run whose settings
    differ from the entry's (the kit file was edited since) is listed under the key "" (stale)."""
    out: dict[str, list[Run]] = {e.key: [] for e in kit.entries}
    out[""] = []
    entries = {e.key: e.run_config(kit.name) for e in kit.entries}
    for run in list_runs(runs_dir):
        try:
            config = run.config
        except (RunError, OSError):
            continue
        key = kit_key(config.get("kit"))
        if key is None or key["name"] != kit.name or ws.owner(config) != ws.SERVER:  # a visitor's copy is theirs
            continue
        entry = entries.get(key["entry"])
        out[key["entry"] if entry is not None and _same_settings(config, entry) else ""].append(run)
    for runs in out.values():
        runs.sort(key=lambda r: (_RANK.get(r.mark_if_dead(), 5), -float(r.config.get("created_at") or 0)))
    return out


def headline(metrics: dict) -> str:
    """The final metrics' headline score in words ("test MSE ÷ PCA 0.31"), or "" when none is there."""
    for key, words in HEADLINES:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{words} {value:.4g}"
    return ""


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class Outcome:
    entry: str
    name: str
    action: str  # "ready" (was done), "trained", "resumed", "waited"
    run: str | None = None
    state: str | None = None
    seconds: float | None = None
    metrics: dict | None = None

    def summary(self, kit: str) -> dict:
        return {"kit": kit, "entry": self.entry, "name": self.name, "action": self.action, "run": self.run,
                "state": self.state, "seconds": self.seconds, "headline": headline(self.metrics or {}),
                "metrics": self.metrics or {}}


def train_kit(kit: Kit, runs_dir: Path | str, *, jobs: int | None = None, device: str | None = None,
              on_event: Callable[[str], None] | None = None, poll_s: float = 0.5,
              progress_every_s: float = 10.0) -> list[Outcome]:
    """Make `runs_dir` hold one finished, pinned run of every entry of `kit`; returns what happened to each.

    jobs: entries training at once (default LATENT_LAB_MAX_JOBS or 2; the job manager gives each its share of
    the cores); device: where new runs train (default: each entry's own, else auto). A Ctrl-C cancels the
    runs this call started or resumed, so the next call resumes them.
    """
    say = on_event or (lambda line: None)
    jobs = max(1, jobs or default_max_jobs())
    jm = JobManager(runs_dir, max_concurrent=jobs, poll_interval=None, limits=Limits())
    found = kit_runs(kit, runs_dir)
    outcomes: dict[str, Outcome] = {}
    todo: list[tuple[Entry, Run | None]] = []  # entries to resume or train, in the kit's order
    waiting: dict[str, tuple[Entry, Run, float]] = {}  # entry key → a run training (ours or another's)
    for entry in kit.entries:
        best = found[entry.key][0] if found[entry.key] else None
        state = best.status().state if best else None
        if state == "done":
            outcomes[entry.key] = Outcome(entry.key, entry.name, "ready", best.id, state,
                                          metrics=best.status().final_metrics)
            _pin(jm, best)
        elif state in ACTIVE:
            waiting[entry.key] = (entry, best, time.monotonic())
            outcomes[entry.key] = Outcome(entry.key, entry.name, "waited", best.id, state)
            _pin(jm, best)
        else:
            todo.append((entry, best if state in RESUMABLE else None))
    n_ready = sum(o.action == "ready" for o in outcomes.values())
    say(f"kit {kit.name}: {len(kit.entries)} entries; {n_ready} finished already, {len(waiting)} training "
        f"elsewhere (waited for), {sum(r is not None for _, r in todo)} to resume, "
        f"{sum(r is None for _, r in todo)} to train, {jobs} at a time, in {jm.runs_dir}")
    mine: dict[str, Run] = {}  # entry key → a run this call started or resumed, until it finishes
    last_said: dict[str, float] = {}
    try:
        while todo or waiting:
            jm.poll()
            for key, (entry, run, started) in list(waiting.items()):
                status = run.status()
                if status.state in ACTIVE:
                    if time.monotonic() - last_said.get(key, started) >= progress_every_s:
                        last_said[key] = time.monotonic()
                        say(f"  {entry.name}: {_progress(status)}")
                    continue
                del waiting[key]
                mine.pop(key, None)
                out = outcomes[key]
                out.state, out.seconds = status.state, round(time.monotonic() - started, 1)
                out.metrics = status.final_metrics
                if status.state == "done":
                    say(f"  {entry.name}: done in {out.seconds:.0f} s ({run.id})"
                        + (f": {headline(out.metrics)}" if headline(out.metrics) else ""))
                else:
                    error = (status.error or "no reason given").strip().splitlines()
                    say(f"  {entry.name}: {status.state} ({run.id}): {error[-1] if error else ''}")
            while todo and len(mine) < jobs:
                entry, run = todo.pop(0)
                if run is None:
                    # JobManager.submit's config plus the kit key, queued: jm.poll() starts it like any job (a
                    # kit run is the server's, so submit's workspace and quota steps have nothing to do)
                    run = Run.create(jm.runs_dir, entry.run_config(kit.name, device))
                    action, verb = "trained", "training"
                    for stale in found[""]:  # an older version of this entry (other settings) leaves the gallery
                        if kit_key(stale.config.get("kit")) == {"name": kit.name, "entry": entry.key}:
                            ws.set_pinned(jm.runs_dir, stale.id, False)
                else:
                    jm.resume(run.id)
                    action, verb = "resumed", f"resuming from step {run.status().step:,}"
                _pin(jm, run)
                mine[entry.key] = run
                waiting[entry.key] = (entry, run, time.monotonic())
                outcomes[entry.key] = Outcome(entry.key, entry.name, action, run.id, "queued")
                say(f"  {entry.name}: {verb} as {run.id}")
                jm.poll()
            if todo or waiting:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        for run in mine.values():  # cancelled, not killed: the next call resumes them from their checkpoints
            jm.cancel(run.id)
        for run in mine.values():
            jm.wait(run.id, timeout=10)
        say(f"kit {kit.name}: stopped; {len(mine)} run(s) cancelled, the next call resumes them")
        raise
    finally:
        jm.shutdown()
    done = sum(o.state == "done" for o in outcomes.values())
    say(f"kit {kit.name}: {done} of {len(kit.entries)} runs finished")
    return [outcomes[e.key] for e in kit.entries]


def _pin(jm: JobManager, run: Run) -> None:
    if run.id not in ws.pinned(jm.runs_dir):
        jm.pin(run.id, actor=None)


def _progress(status) -> str:
    left = status.seconds_left()
    return (f"{status.state} {status.progress:.0%}, step {status.step:,}"
            + (f", about {left:.0f} s left" if left is not None else "")
            + (f" ({status.phase})" if status.phase and status.phase != "training" else ""))


# ---------------------------------------------------------------------------------------------
# one archive for the whole kit

KIT_FORMAT = "latent-lab-kit"
KIT_FORMAT_VERSION = 1
KIT_MANIFEST = "kit.json"
MAX_KIT_IMPORT_BYTES = 1024 * 2**20  # a kit's runs are each at most MAX_IMPORT_BYTES, and there are few of them
_RUN_MEMBER = re.compile(r"^runs/([a-z0-9][a-z0-9_-]{0,39})\.zip$")


def _limits() -> ArchiveLimits:
    # run exports are stored (not deflated) in the kit's zip: their own members are compressed already
    return ArchiveLimits("a kit export", MAX_ENTRIES + 1, MAX_KIT_IMPORT_BYTES, "a kit export is far smaller",
                         max_member_bytes={".json": 2**20, ".zip": MAX_IMPORT_BYTES})


def export_kit(kit: Kit, runs_dir: Path | str) -> bytes:
    """The kit's finished runs as one .zip: kit.json (the kit's name, each entry's run file and sha256) and
    runs/KEY.zip, one run export each. Every entry needs a finished run (train the kit first)."""
    found = kit_runs(kit, runs_dir)
    missing = [e.key for e in kit.entries if not found[e.key] or found[e.key][0].status().state != "done"]
    if missing:
        raise KitError(f"kit {kit.name} has no finished run for {', '.join(missing)} in {runs_dir}; train it first "
                       f"(python -m engine kit {kit.source})")
    files, listed = {}, []
    for entry in kit.entries:
        data = export_run(found[entry.key][0])
        member = f"runs/{entry.key}.zip"
        files[member] = data
        listed.append({"entry": entry.key, "name": entry.name, "file": member,
                       "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format": KIT_FORMAT, "format_version": KIT_FORMAT_VERSION, "kit": kit.name,
                "description": kit.description, "exported_at": time.time(), "runs": listed}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(KIT_MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False),
                    compress_type=zipfile.ZIP_DEFLATED)
        for member, data in files.items():
            zf.writestr(member, data, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def _select(info: zipfile.ZipInfo) -> bool:
    if info.filename == "runs/":
        return False
    if info.filename != KIT_MANIFEST and not _RUN_MEMBER.fullmatch(info.filename):
        raise KitError(f"the archive holds an unexpected file {info.filename[:200]!r}: a kit export has only "
                       "kit.json and runs/KEY.zip")
    return True


def _check_kit_manifest(files: dict[str, bytes]) -> tuple[str, list[dict]]:
    if KIT_MANIFEST not in files:
        raise KitError("the archive has no kit.json; it is not a Latent Lab kit export (a single run's .zip goes to "
                       "python -m engine import)")
    try:
        manifest = json.loads(files[KIT_MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise KitError("kit.json in the archive is not valid JSON; the file is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != KIT_FORMAT:
        raise KitError("the archive is not a Latent Lab kit export (kit.json has another format)")
    if manifest.get("format_version") != KIT_FORMAT_VERSION:
        raise KitError(f"the archive has kit format version {manifest.get('format_version')!r}; this Latent Lab "
                       f"reads version {KIT_FORMAT_VERSION}")
    name, runs = manifest.get("kit"), manifest.get("runs")
    if not isinstance(name, str) or not KEY.fullmatch(name):
        raise KitError("kit.json names no valid kit (1-40 lower-case letters, digits, '_' or '-')")
    if not isinstance(runs, list) or not runs or len(runs) > MAX_ENTRIES:
        raise KitError(f"kit.json must list 1 to {MAX_ENTRIES} runs")
    seen = set()
    for item in runs:
        if not isinstance(item, dict) or not isinstance(item.get("entry"), str) or not KEY.fullmatch(item["entry"]):
            raise KitError("kit.json lists a run without a valid entry key")
        if item.get("file") != f"runs/{item['entry']}.zip" or item["entry"] in seen:
            raise KitError(f"kit.json lists entry {item['entry']!r} twice or under another file name")
        seen.add(item["entry"])
        if item["file"] not in files:
            raise KitError(f"the archive lacks {item['file']}, which kit.json lists")
        if item.get("sha256") != hashlib.sha256(files[item["file"]]).hexdigest():
            raise KitError(f"{item['file']} in the archive fails its checksum: it was changed after the export")
    extra = sorted(set(files) - {KIT_MANIFEST} - {i["file"] for i in runs})
    if extra:
        raise KitError(f"the archive holds {extra[0]}, which kit.json does not list; the archive is damaged")
    return name, runs


def import_kit(runs_dir: Path | str, data: bytes) -> list[dict]:
    """Check a kit export and add its runs to `runs_dir` (the server's, pinned), each under a new id, keeping its
    kit key and name. An entry the folder holds a finished run of already is left out, so importing twice adds
    nothing. All or nothing: when any run fails its checks, the runs this call added are removed again."""
    runs_dir = Path(runs_dir)
    if len(data) > MAX_KIT_IMPORT_BYTES:
        raise KitError(f"the file is {len(data) / 2**20:.0f} MiB, over the {MAX_KIT_IMPORT_BYTES // 2**20} MiB "
                       "limit for a kit export")
    try:
        zf = archive.open_zip(data, "the file is not a zip archive; a kit export is the .zip that "
                                    "python -m engine kit --export writes")
        with zf:
            files = archive.read_members(zf, archive.check_members(zf, len(data), _limits(), select=_select))
    except ArchiveError as e:
        raise KitError(str(e)) from None
    name, listed = _check_kit_manifest(files)
    held = {}
    for run in list_runs(runs_dir):
        try:
            key = kit_key(run.config.get("kit"))
        except (RunError, OSError):
            continue
        if key and key["name"] == name and ws.owner(run.config) == ws.SERVER and run.status().state == "done":
            held.setdefault(key["entry"], run.id)
    added: list[Run] = []
    out = []
    try:
        for item in listed:
            entry = item["entry"]
            if entry in held:
                out.append({"kit": name, "entry": entry, "run": held[entry], "action": "present"})
                continue
            try:
                run = import_run(runs_dir, files[item["file"]])
            except RunError as e:
                raise KitError(f"{item['file']} in the archive: {e}") from None
            added.append(run)
            if kit_key(run.config.get("kit")) != {"name": name, "entry": entry}:
                raise KitError(f"{item['file']} in the archive is not the run of kit {name}'s entry {entry!r} "
                               "that kit.json says it is; the archive is inconsistent")
            ws.set_pinned(runs_dir, run.id, True)
            out.append({"kit": name, "entry": entry, "run": run.id, "action": "imported",
                        "name": run.config.get("name"), "state": run.status().state})
    except BaseException:
        for run in added:
            ws.set_pinned(runs_dir, run.id, False)
            run.delete()
        raise
    return out
