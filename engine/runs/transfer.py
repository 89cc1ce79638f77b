"""Download a run as one .zip and upload it back: export_run(run) -> bytes, import_run(runs_dir, data).

The archive holds exactly the run-directory files a run needs to be shown, used and resumed
elsewhere, and nothing that executes on load (no pickle anywhere):

    manifest.json                       format, version, source run id, sha256 of every other member
    config.json  status.json  metrics.jsonl
    checkpoints/step_00001234.safetensors   the newest checkpoint that loads (weights + optimizer state)
    snapshots/inputs.png, recon_*.png, samples_*.png   (thinned to at most MAX_SNAPSHOTS per kind)

An upload is untrusted, so import_run checks everything before it writes anything: the bytes are
a zip within the size limits (compressed, uncompressed, ratio, member count), every member name is
one of the names above (no '..', absolute paths, links or unexpected files such as a pickle), the
manifest's checksums match, config.json names a registered model whose settings validate, every
checkpoint passes engine.runs.read_checkpoint (its own sha256) and loads into the model that
config.json describes. Only then does it write the run, under a new id, never over an existing one.

State of an imported run: a `done` run stays `done` (with its final metrics); a `failed` one stays
`failed` (its error kept, so the reason travels with it); any other state (an export taken while
it was queued, running, cancelled or interrupted) becomes `cancelled`, which the job manager can
resume from the imported checkpoint. Process ids from the exporting machine are dropped, and the
training device becomes `auto`, since the machine that imports it may have another one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import engine
from engine.data import archive, registered_datasets
from engine.data.archive import ArchiveError, ArchiveLimits
from engine.models import build_model, make_config
from engine.models.settings import config_from_dict
from engine.runs.checkpoints import FORMAT_VERSION, load_model_from_checkpoint, read_checkpoint, step_of
from engine.runs.config import TrainConfig, check_classes, run_name
from engine.runs.files import RunError, atomic_write_json
from engine.runs.status import STATES
from engine.runs.store import RUN_ID, Run

EXPORT_FORMAT = "latent-lab-run"
EXPORT_VERSION = 1
MAX_IMPORT_BYTES = 50 * 2**20  # the .zip itself (the app's upload limit, .streamlit/config.toml, matches)
MAX_UNCOMPRESSED_BYTES = 256 * 2**20  # all members together, once unpacked
MAX_MEMBERS = 512
MAX_RATIO = 100  # uncompressed / compressed size of any member over RATIO_FLOOR (a zip bomb is ~1000×)
RATIO_FLOOR = 2**20  # small text files (metrics.jsonl) may compress well: the ratio is checked above 1 MiB
# All members together: an export is mostly a stored checkpoint (ratio ~1) beside deflated text (~5×), so
# unpacking to over MAX_TOTAL_RATIO × the archive is a bomb made of many members each under RATIO_FLOOR,
# refused before any is read (240 members of 1 MiB in a 1 MB zip cost 243 MB before this check). Small
# archives get SMALL_ARCHIVE_BYTES whatever their ratio.
MAX_TOTAL_RATIO = 20
SMALL_ARCHIVE_BYTES = 16 * 2**20
# Per member, by name: what each file of a real export can be (a checkpoint is bounded by the total only)
MAX_MEMBER_BYTES = {".json": 2**20, ".jsonl": 64 * 2**20, ".png": 4 * 2**20}
MAX_SNAPSHOTS = 100  # per kind (recon, samples), evenly spread, the newest always kept
MAX_SNAPSHOT_PIXELS = 4096 * 4096  # a snapshot grid is 8×8 images of 28×28 (a few hundred pixels a side)

MANIFEST = "manifest.json"
# Every name an export may hold. Anything else (a .pkl, a .pt, a script, a second folder) is refused.
_MEMBER = re.compile(r"^(?:config\.json|status\.json|metrics\.jsonl|"
                     r"checkpoints/step_\d{8}\.safetensors|snapshots/(?:inputs|recon_\d{8}|samples_\d{8})\.png)$")
_DIRS = ("checkpoints/", "snapshots/")  # directory entries some zip tools add; carry nothing


# ---------------------------------------------------------------------------------------------
# export


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _newest_checkpoint(run: Run) -> tuple[str, bytes]:
    """(member name, bytes) of the newest checkpoint that passes read_checkpoint.

    The bytes are read first and checked from a private copy, so a checkpoint that a training run
    thins away meanwhile is simply skipped, and what is checked is exactly what gets exported.
    """
    errors = []
    with tempfile.TemporaryDirectory(prefix="latent-lab-export-") as tmp:
        for _, path in reversed(run.checkpoints()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            copy = Path(tmp) / path.name
            copy.write_bytes(data)
            try:
                read_checkpoint(copy)
            except RunError as e:
                errors.append(str(e))
                continue
            return f"checkpoints/{path.name}", data
    if errors:
        raise RunError(f"run {run.id} has no checkpoint that loads, so it cannot be exported: {errors[0]}")
    raise RunError(f"run {run.id} has no checkpoint yet, so there are no weights to export; "
                   "wait until training has saved one")


def _spread(items: list, k: int) -> list:
    """At most k items, evenly spaced, first and last kept."""
    if len(items) <= k:
        return items
    picks = {round(i * (len(items) - 1) / (k - 1)) for i in range(k)}
    return [items[i] for i in sorted(picks)]


def _whole_lines(data: bytes) -> bytes:
    """metrics.jsonl up to its last newline: a line being appended right now is left out."""
    end = data.rfind(b"\n")
    return data[:end + 1] if end >= 0 else b""


def export_run(run: Run) -> bytes:
    """The run as .zip bytes: config, status, metrics, the newest checkpoint and its snapshots."""
    config = run.config  # RunError when config.json is damaged: nothing worth exporting then
    files: dict[str, bytes] = {"config.json": (run.path / "config.json").read_bytes()}
    try:
        files["status.json"] = (run.path / "status.json").read_bytes()
    except FileNotFoundError:
        raise RunError(f"run {run.id} has no status.json; it is not a complete run directory") from None
    try:
        files["metrics.jsonl"] = _whole_lines((run.path / "metrics.jsonl").read_bytes())
    except FileNotFoundError:
        pass
    name, data = _newest_checkpoint(run)
    files[name] = data
    snapshots = [run.path / "snapshots" / "inputs.png"]
    for kind in ("recon", "samples"):
        snapshots += [s.path for s in _spread(run.snapshots(kind), MAX_SNAPSHOTS)]
    for path in snapshots:
        try:
            files[f"snapshots/{path.name}"] = path.read_bytes()
        except FileNotFoundError:
            continue  # not written yet, or thinned by a running resume: snapshots are optional
    manifest = {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "run_id": run.id,
                "model": config["model"], "exported_at": time.time(), "engine": engine.__version__,
                "files": {n: _sha256(b) for n, b in sorted(files.items())}}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True), compress_type=zipfile.ZIP_DEFLATED)
        for n, b in files.items():
            # text compresses well; safetensors and PNG barely do, so they are stored as they are
            method = zipfile.ZIP_DEFLATED if n.endswith((".json", ".jsonl")) else zipfile.ZIP_STORED
            zf.writestr(n, b, compress_type=method)
    return buf.getvalue()


def export_filename(run: Run) -> str:
    return f"{run.id}.zip"


# ---------------------------------------------------------------------------------------------
# import: checks


@contextmanager
def _as_run_error():
    """The shared zip checks (engine/data/archive.py) raise ArchiveError; an import reports a RunError."""
    try:
        yield
    except ArchiveError as e:
        raise RunError(str(e)) from None


def _limits() -> ArchiveLimits:
    # built per call from the module's constants, so a test (or a setting) that changes one is heard
    return ArchiveLimits("a run export", MAX_MEMBERS, MAX_UNCOMPRESSED_BYTES, "a run export is far smaller",
                         max_ratio=MAX_RATIO, ratio_floor=RATIO_FLOOR, max_total_ratio=MAX_TOTAL_RATIO,
                         small_archive_bytes=SMALL_ARCHIVE_BYTES, max_member_bytes=MAX_MEMBER_BYTES)


def _export_member(info: zipfile.ZipInfo) -> bool:
    """Whether to read a member: directory entries carry nothing; any name an export does not have is refused."""
    name = info.filename
    if name in _DIRS:
        return False
    if name != MANIFEST and not _MEMBER.match(name):
        raise RunError(f"the archive holds an unexpected file {name!r}: a run export has only "
                       "manifest.json, config.json, status.json, metrics.jsonl, "
                       "checkpoints/step_N.safetensors and snapshots/*.png")
    return True


def _check_members(zf: zipfile.ZipFile, archive_bytes: int) -> list[zipfile.ZipInfo]:
    """The members to read, after the name, type and size checks (from the zip's directory: nothing is
    decompressed yet, so a bomb costs no memory before it is refused)."""
    with _as_run_error():
        return archive.check_members(zf, archive_bytes, _limits(), select=_export_member)


def _read_members(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> dict[str, bytes]:
    with _as_run_error():
        return archive.read_members(zf, infos)


def _json_object(files: dict[str, bytes], name: str) -> dict:
    if name not in files:
        raise RunError(f"the archive has no {name}; it is not a Latent Lab run export")
    try:
        obj = json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise RunError(f"{name} in the archive is not valid JSON ({type(e).__name__}); the file is damaged") from None
    if not isinstance(obj, dict):
        raise RunError(f"{name} in the archive should hold a JSON object, found {type(obj).__name__}")
    return obj


def _check_manifest(files: dict[str, bytes]) -> dict:
    manifest = _json_object(files, MANIFEST)
    if manifest.get("format") != EXPORT_FORMAT:
        raise RunError(f"the archive is not a Latent Lab run export (format {manifest.get('format')!r})")
    if manifest.get("format_version") != EXPORT_VERSION:
        raise RunError(f"the archive has export format version {manifest.get('format_version')!r}; "
                       f"this Latent Lab reads version {EXPORT_VERSION}")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise RunError("manifest.json lacks its list of files; the archive is damaged")
    present = set(files) - {MANIFEST}
    if set(listed) != present:
        extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
        raise RunError("the archive's files do not match its manifest"
                       + (f"; not listed: {', '.join(extra)}" if extra else "")
                       + (f"; missing: {', '.join(missing)}" if missing else ""))
    for name in sorted(present):
        if listed[name] != _sha256(files[name]):
            raise RunError(f"{name} in the archive fails its checksum: it was changed after the export")
    return manifest


def _check_config(files: dict[str, bytes]) -> dict:
    config = _json_object(files, "config.json")
    for key in ("model", "dataset", "model_config", "train"):
        if key not in config:
            raise RunError(f"config.json in the archive lacks the {key!r} field")
    if not isinstance(config["dataset"], str) or not isinstance(config["model_config"], dict) \
            or not isinstance(config["train"], dict):
        raise RunError("config.json in the archive has fields of the wrong type")
    # A run trains on this server's own data: `folder:` and `npz:` name a path on this machine, and a resume
    # would make the worker read (and show, in snapshots) whatever lies there.
    if config["dataset"] not in registered_datasets():
        name = config["dataset"]
        shown = name.partition(":")[0] + ":…" if ":" in name else name[:40]  # never echo a path back
        raise RunError(f"config.json in the archive names the dataset {shown!r}; an uploaded run must use one "
                       f"of this server's datasets ({', '.join(registered_datasets())}), not a folder or file")
    try:
        mcfg = make_config(config["model"], config["model_config"])  # unknown model, bad settings, too big
        tcfg = config_from_dict(TrainConfig, config["train"])
        check_classes(tcfg, config["dataset"])
        name = run_name(config.get("name"))  # a name is one line of text
    except (ValueError, TypeError) as e:
        raise RunError(f"config.json in the archive cannot be used here: {e}") from None
    # Only what a run's config.json holds, each value as the engine would write it ("16" becomes 16), so
    # the pages that read these fields get the types they expect; anything else the file held is dropped.
    checked = {"model": config["model"], "dataset": config["dataset"], "model_config": _plain(mcfg),
               "train": _plain(tcfg), "seed": tcfg.seed}
    if name:
        checked["name"] = name
    from engine.runs.kit import kit_key  # here: engine.runs.kit builds on this module

    if kit_key(config.get("kit")):  # a workshop kit's run keeps its kit key, so the kit finds it (engine.runs.kit)
        checked["kit"] = kit_key(config["kit"])
    if _number_or_none(config.get("created_at")) is not None:
        checked["created_at"] = _number_or_none(config["created_at"])
    versions = config.get("versions")
    if isinstance(versions, dict) and len(versions) <= 20 and all(
            isinstance(k, str) and isinstance(v, str) and len(k) + len(v) < 100 for k, v in versions.items()):
        checked["versions"] = versions
    if _text_or_none(config.get("id")):
        checked["id"] = _text_or_none(config["id"])
    return checked


def _text_or_none(value) -> str | None:
    return value[:200] if isinstance(value, str) else None


def _number_or_none(value) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e11
    return float(value) if ok else None


def _plain(config) -> dict:
    """A config dataclass as config.json holds it (tuples as lists)."""
    return json.loads(json.dumps(asdict(config)))


def _check_status(files: dict[str, bytes]) -> dict:
    status = _json_object(files, "status.json")
    if status.get("state") not in STATES:
        raise RunError(f"status.json in the archive has an unknown state {status.get('state')!r}")
    return status


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header, without Pillow (see engine.data.archive.png_size)."""
    with _as_run_error():
        return archive.png_size(data)


def _check_text_and_images(files: dict[str, bytes]) -> None:
    if "metrics.jsonl" in files:
        try:
            files["metrics.jsonl"].decode("utf-8")
        except UnicodeDecodeError:
            raise RunError("metrics.jsonl in the archive is not text; the file is damaged") from None
    from PIL import Image, UnidentifiedImageError

    for name, data in files.items():
        if not name.endswith(".png"):
            continue
        if not data.startswith(archive.PNG_MAGIC):
            raise RunError(f"{name} in the archive is not a PNG image")
        width, height = png_size(data)
        if width * height > MAX_SNAPSHOT_PIXELS:  # a few bytes claiming a gigapixel image: a PNG bomb
            raise RunError(f"{name} in the archive is {width}×{height} pixels, far larger than a "
                           "snapshot grid; refused")
        try:  # reads the chunks and checks their CRCs; decodes no pixels
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise RunError(f"{name} in the archive is not a readable PNG ({e})") from None


def _check_checkpoints(config: dict, paths: list[Path]) -> None:
    """Each checkpoint passes its own checksum and loads into the model config.json describes.

    The model is first built on the meta device (shapes, no memory), so settings forged to ask for
    a gigantic model are refused by a shape mismatch before any real allocation.
    """
    import torch

    for path in paths:
        header, tensors = read_checkpoint(path)  # structure, version, sha256
        if header.get("model") != config["model"]:
            raise RunError(f"{path.name} holds a {header.get('model')!r} model but config.json says "
                           f"{config['model']!r}; the archive is inconsistent")
        try:
            saved_config = _plain(make_config(config["model"], header.get("model_config")))
        except (ValueError, TypeError):
            saved_config = None
        if saved_config != config["model_config"]:
            raise RunError(f"{path.name} was saved with other model settings than config.json holds; "
                           "the archive is inconsistent")
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(config["model"], config["model_config"])
                      .state_dict().items()}
        saved = {k[len("model."):]: tuple(v.shape) for k, v in tensors.items() if k.startswith("model.")}
        if shapes != saved:
            wrong = sorted(set(shapes) ^ set(saved)) or sorted(k for k in shapes if shapes[k] != saved[k])
            raise RunError(f"{path.name} does not fit a {config['model']!r} model with these settings "
                           f"(first difference: {wrong[0]}); the archive is inconsistent")
        load_model_from_checkpoint(path)  # the real build and a strict load, now bounded by the file's size


# ---------------------------------------------------------------------------------------------
# import: writing


def _imported_status(status: dict, step: int) -> dict:
    """The status the imported run starts with (see the module docstring)."""
    keep = {k: v for k, v in status.items()
            if k not in ("pid", "pid_start", "threads", "resume", "updated_at")}
    state = status["state"]
    if state in ("done", "failed"):
        return {**keep, "state": state}
    return {**keep, "state": "cancelled", "resume": False,
            "error": f"imported while it was {state}; Resume continues from its checkpoint at step {step:,}"}


def _new_run_id(runs_dir: Path, model: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model = model if RUN_ID.match(model) else "run"
    while True:
        run_id = f"{stamp}-{model}-imported-{secrets.token_hex(2)}"
        if not (runs_dir / run_id).exists():
            return run_id


def import_run(runs_dir: Path | str, data: bytes, max_bytes: int = MAX_IMPORT_BYTES,
               workspace: str | None = None) -> Run:
    """Check an uploaded export and write it as a new run under runs_dir; RunError says what is wrong.

    The new run belongs to `workspace` (None: to the server); whatever workspace the archive names is dropped.

    Nothing is left in runs_dir when a check fails: the files are staged in a hidden folder there
    (no config.json, so no listing shows it) and renamed into place only after every check passed.
    """
    runs_dir = Path(runs_dir)
    if len(data) > max_bytes:
        raise RunError(f"the file is {len(data) / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} MiB "
                       "limit for a run export")
    with _as_run_error():
        zf = archive.open_zip(data, "the file is not a zip archive; a run export is the .zip that Download run "
                                    "(or python -m engine export) writes")
    with zf:
        files = _read_members(zf, _check_members(zf, len(data)))
    manifest = _check_manifest(files)
    config = _check_config(files)
    status = _check_status(files)
    _check_text_and_images(files)
    ckpts = sorted(n for n in files if n.startswith("checkpoints/"))
    if not ckpts:
        raise RunError("the archive holds no checkpoint (checkpoints/step_N.safetensors): there are no weights")

    runs_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".import-", dir=runs_dir))
    try:
        (stage / "checkpoints").mkdir()
        (stage / "snapshots").mkdir()
        for name, blob in files.items():
            if name not in (MANIFEST, "config.json", "status.json"):
                (stage / name).write_bytes(blob)  # name matched _MEMBER: a fixed folder and file pattern
        _check_checkpoints(config, [stage / n for n in ckpts])
        step = step_of(stage / ckpts[-1])
        run_id = _new_run_id(runs_dir, config["model"])
        train = dict(config["train"])
        if train.get("device", "auto") != "auto":
            train["device"] = "auto"
        now = time.time()
        new_config = {**config, "id": run_id, "train": train, "format_version": FORMAT_VERSION,
                      "imported": {"from": _text_or_none(manifest.get("run_id", config.get("id"))), "at": now,
                                   "exported_at": _number_or_none(manifest.get("exported_at")),
                                   "device": config["train"].get("device"), "state": status["state"]}}
        new_config.pop("workspace", None)
        if workspace:  # a visitor's copy or upload is theirs, no longer a run of the server's kit
            new_config["workspace"] = workspace
            new_config.pop("kit", None)
        atomic_write_json(stage / "status.json", {**_imported_status(status, step), "updated_at": now})
        final = runs_dir / run_id
        os.rename(stage, final)  # atomic; refuses a non-empty target, so no run is ever overwritten
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        atomic_write_json(final / "config.json", new_config)  # last: its presence marks a complete run
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    return Run(final)
