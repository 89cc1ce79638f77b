"""Runs: the run directory every part of Latent Lab writes and reads, and the jobs that fill it.

    config.py       a run's config.json: model, settings, dataset, TrainConfig (checked before it starts)
    store.py        Run: config.json, status.json, metrics.jsonl, checkpoints/, snapshots/, control
    status.py       the typed readers of status.json (RunStatus) and metrics.jsonl (MetricsLog)
    checkpoints.py  safetensors + a JSON header, checked on every read; never a pickle
    files.py        atomic writes, the lock file, the checked JSON reader
    loaded.py       a run's model loaded at one checkpoint (LoadedRun)
    jobs.py         the job manager: worker processes, the queue, cancel and resume
    transfer.py     a run as a .zip (download) and its checked import (upload)
    kit.py          the workshop kit: a TOML list of runs trained in one go, pinned, shipped as one .zip
"""

from engine.runs.checkpoints import (FORMAT_VERSION, load_model_from_checkpoint, load_optimizer_state,
                                     model_from_tensors, model_state, read_checkpoint, save_checkpoint, step_of)
from engine.runs.config import DEFAULT_EPOCHS, TrainConfig, is_denoising, is_plain, make_run_config, split_settings
from engine.runs.files import RunError, atomic_write_bytes, atomic_write_json, file_lock, read_json
from engine.runs.status import ACTIVE, FINISHED, RESUMABLE, STATES, MetricsLog, RunStatus, finite
from engine.runs.store import (RUN_ID, Run, Snapshot, default_runs_dir, find_run, list_runs, process_alive,
                               process_start_time)

__all__ = ["ACTIVE", "DEFAULT_EPOCHS", "FINISHED", "FORMAT_VERSION", "RESUMABLE", "RUN_ID", "STATES", "MetricsLog",
           "Run", "RunError", "RunStatus", "Snapshot", "TrainConfig", "atomic_write_bytes", "atomic_write_json",
           "default_runs_dir", "file_lock", "find_run", "finite", "is_denoising", "is_plain", "list_runs",
           "load_model_from_checkpoint", "load_optimizer_state", "make_run_config", "model_from_tensors",
           "model_state", "process_alive", "process_start_time", "read_checkpoint", "read_json", "save_checkpoint",
           "split_settings", "step_of"]
