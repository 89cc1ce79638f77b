"""The command line: python -m engine COMMAND …

Every command prints JSON on stdout (one object, or one per line for lists) so scripts and tests
can read it; progress goes to stderr. Errors print one line, `error: …`, and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _print_json(obj) -> None:
    print(json.dumps(obj, default=str))


def _parse_settings(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value, not {pair!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _progress_line(rec: dict) -> str:
    if not any(k.startswith(("eval/", "train/", "judge/", "test/")) for k in rec):
        return f"final  step {rec['step']}: nothing to evaluate"
    if any(k.startswith("eval/") for k in rec):
        parts = [f"{k[5:]} {v:.4g}" for k, v in rec.items() if k.startswith("eval/") and _num(v)]
        return f"final  step {rec['step']}: " + ", ".join(parts)
    head = f"step {rec['step']:>6}  epoch {rec['epoch']:>6.2f}  {rec['elapsed']:>6.1f}s  "
    if any(k.startswith("judge/") for k in rec):  # a GAN's samples scored by the judge classifier
        return head + "judge: " + ", ".join(f"{k[6:]} {v:.4g}" for k, v in rec.items()
                                             if k.startswith("judge/") and _num(v))
    if "train/d_loss" in rec:  # a GAN
        parts = [f"{name} {rec[key]:.4g}" for name, key in
                 (("D loss", "train/d_loss"), ("G loss", "train/g_loss"), ("D(x)", "train/d_real"),
                  ("D(G(z))", "train/d_fake"), ("W", "train/wasserstein")) if _num(rec.get(key))]
        return head + "  ".join(parts) + f"  {rec.get('images_per_s', 0):.0f} img/s"
    test = rec.get("test/mse")
    test = test if test is None else f"{test:.4g}"
    return (head + f"loss {rec.get('train/loss', float('nan')):.4g}  test mse {test}  "
            f"{rec.get('images_per_s', 0):.0f} img/s")


# ---------------------------------------------------------------------------------------------
# commands


def cmd_datasets(args) -> int:
    from engine.data.catalogue import catalogue_rows

    for row in catalogue_rows():  # images, then series: name, kind, shape, classes, sizes, description
        _print_json(row)
    return 0


def cmd_models(args) -> int:
    from engine.models import describe_models

    for m in describe_models():
        _print_json(m)
    return 0


def _model_and_train(args) -> tuple[dict, dict]:
    """The model and training settings that `train` and `submit` read from their shared options."""
    from engine.runs import split_settings

    settings = _parse_settings(args.set or [])
    model_part, train_part = split_settings(args.model, settings)
    for key, value in (("epochs", args.epochs), ("steps", args.steps), ("seconds", args.seconds), ("seed", args.seed),
                       ("device", args.device), ("batch_size", args.batch_size), ("lr", args.lr)):
        if value is not None:
            train_part[key] = value
    if args.latent_dim is not None:
        model_part["latent_dim"] = args.latent_dim
    from engine.models import data_settings  # a sequence model's T and C come from its dataset

    return {**data_settings(args.model, args.data), **model_part}, train_part


def cmd_train(args) -> int:
    from engine.runs import Run, default_runs_dir, make_run_config
    from engine.train import train_run

    model_part, train_part = _model_and_train(args)
    config = make_run_config(args.model, args.data, model_part, train_part, name=args.name)
    run = Run.create(args.runs_dir or default_runs_dir(), config, run_id=args.id)
    print(f"run {run.id} in {run.path}", file=sys.stderr)
    on_log = None if args.quiet else (lambda rec: print(_progress_line(rec), file=sys.stderr, flush=True))
    metrics = train_run(run, resume=False, on_log=on_log)
    status = run.status()
    _print_json({"run": run.id, "path": str(run.path), "state": status.state, "step": status.step,
                 "metrics": metrics})
    return 0 if status.state == "done" else 1


def _manager(args):
    """The job manager of the runs folder, over the configured backend (LATENT_LAB_BACKEND: local or ray); says so
    at once when a Ray cluster cannot be reached and no local fallback is set."""
    from engine.runs.jobs import JobManager

    jm = JobManager(args.runs_dir, poll_interval=None)
    if jm.backend == "ray" and not jm.slots() and jm.backend_error:
        raise ConnectionError(jm.backend_error)
    return jm


def _follow(jm, run, quiet: bool) -> int:
    """Print a background run's new progress lines until it ends (Ctrl-C leaves it training); 0 when done."""
    shown = 0
    try:
        while True:
            state = jm.wait(run.id, timeout=1.0)
            records = run.metrics()
            if not quiet:
                for rec in records[shown:]:
                    print(_progress_line(rec), file=sys.stderr, flush=True)
            shown = len(records)
            if state not in ("queued", "running"):
                break
    except KeyboardInterrupt:
        print(f"still training in the background: python -m engine cancel {run.id}", file=sys.stderr)
        return 130
    status = run.status()
    _print_json({"run": run.id, "state": status.state, "backend": status.raw.get("backend"),
                 "metrics": status.final_metrics, "error": status.error})
    return 0 if status.state == "done" else 1


def cmd_submit(args) -> int:
    from engine.runs import default_runs_dir

    args.runs_dir = args.runs_dir or default_runs_dir()
    jm = _manager(args)
    model_part, train_part = _model_and_train(args)
    run = jm.submit(args.model, args.data, model_part, train_part, run_id=args.id, name=args.name)
    place = jm.queue().get(run.id)
    _print_json({"run": run.id, "path": str(run.path), "state": run.status().state, "backend": jm.backend,
                 "place_in_line": place.position if place else None})
    return _follow(jm, run, args.quiet) if args.wait else 0


def cmd_cancel(args) -> int:
    from engine.runs import find_run

    jm = _manager(args)
    run = find_run(args.run, jm.runs_dir)
    state = jm.cancel(run.id)
    if args.wait and state not in ("cancelled", "done", "failed", "interrupted"):
        state = jm.wait(run.id, timeout=30)
    _print_json({"run": run.id, "state": state})
    return 0


def cmd_backend(args) -> int:
    from engine.runs.jobs import JobManager

    jm = JobManager(args.runs_dir, poll_interval=None)
    info = jm.backend_info()
    info["active"] = jm.active()
    info["queued"] = len(jm.queue())
    _print_json(info)
    if info.get("error"):
        print(f"error: {info['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_resume(args) -> int:
    from engine.runs import RESUMABLE, find_run
    from engine.train import train_run

    if args.background:  # through the job manager: the configured backend (local workers or the Ray cluster)
        jm = _manager(args)
        run = jm.resume(args.run)
        if args.wait:
            return _follow(jm, run, args.quiet)
        _print_json({"run": run.id, "state": run.status().state, "backend": jm.backend})
        return 0
    run = find_run(args.run, args.runs_dir)
    _ = run.config  # a damaged config.json: say so before touching the run
    state = run.mark_if_dead()
    if state not in RESUMABLE:
        raise ValueError(f"run {run.id} is {state}; only {', '.join(RESUMABLE)} runs can be resumed")
    run.clear_cancel()
    on_log = None if args.quiet else (lambda rec: print(_progress_line(rec), file=sys.stderr, flush=True))
    metrics = train_run(run, resume=True, on_log=on_log)
    _print_json({"run": run.id, "path": str(run.path), "state": run.status().state, "metrics": metrics})
    return 0


def cmd_eval(args) -> int:
    from engine.data import load_dataset
    from engine.device import resolve_device
    from engine.eval.metrics import evaluate
    from engine.runs import find_run

    run = find_run(args.run, args.runs_dir)
    device = resolve_device(args.device)
    model, header = run.load_model(step=args.step, device=device)
    dataset = load_dataset(args.data or run.config["dataset"])
    t = time.perf_counter()
    if model.capabilities.adversarial:  # no reconstructions: the judge scores samples
        from engine.eval.judge import evaluate_generator

        # the judge lives beside the run (RUNS/.judges), trained on first use
        metrics = evaluate_generator(model, dataset.name, run.path.parent, n=args.n, seed=args.seed, device=device)
    elif model.trainer == "sequence":  # series (T, C): their own scores (engine.eval.sequences)
        from engine.eval.sequences import evaluate_sequences

        metrics = evaluate_sequences(model, dataset, device=device)
    else:
        metrics = evaluate(model, dataset, device=device)
    _print_json({"run": run.id, "step": header["step"], "dataset": dataset.name, "model": header["model"],
                 "metrics": metrics, "seconds": round(time.perf_counter() - t, 2)})
    return 0


def cmd_judge(args) -> int:
    from engine.eval.judge import judge_path, load_judge, train_judge

    def on_log(rec):
        print(f"judge epoch {rec['epoch']}  {rec['elapsed']:>5.1f}s  loss {rec['train/loss']:.4g}  "
              f"test accuracy {rec['test/accuracy']:.4f}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    if args.retrain:
        judge = train_judge(args.dataset, args.runs_dir, device=args.device, on_log=on_log)
    else:
        judge = load_judge(args.dataset, args.runs_dir, device=args.device, on_log=on_log)
        if judge is None:
            raise ValueError(f"dataset {args.dataset!r} has no labels or fewer than 2 classes; "
                             "a judge (a classifier) needs labelled images")
    _print_json({"dataset": judge.dataset, "path": str(judge_path(args.dataset, args.runs_dir)),
                 "test_accuracy": judge.test_accuracy, "seconds": round(time.perf_counter() - t, 2)})
    return 0


def cmd_runs(args) -> int:
    from engine.runs import list_runs

    for run in list_runs(args.runs_dir):
        try:
            run.mark_if_dead()
        except (ValueError, OSError):  # a damaged status.json that cannot be rewritten: summary says why
            pass
        _print_json(run.summary())
    return 0


def cmd_sample(args) -> int:
    import torch

    from engine.data.images import grid_png
    from engine.runs import atomic_write_bytes, find_run

    run = find_run(args.run, args.runs_dir)
    model, header = run.load_model(step=args.step)
    y = torch.full((args.n,), args.label, dtype=torch.long) if args.label is not None else None
    x = model.sample(args.n, y=y, generator=torch.Generator().manual_seed(args.seed))
    atomic_write_bytes(args.out, grid_png(x, scale=args.scale))
    _print_json({"run": run.id, "step": header["step"], "out": str(args.out), "n": args.n,
                 "prior": "N(0, I)" if model.capabilities.prior else "Gaussian fitted to training codes"})
    return 0


def cmd_export(args) -> int:
    from engine.runs import atomic_write_bytes, find_run
    from engine.runs.transfer import export_filename, export_run

    run = find_run(args.run, args.runs_dir)
    data = export_run(run)
    out = args.out or export_filename(run)
    atomic_write_bytes(out, data)
    _print_json({"run": run.id, "out": str(out), "bytes": len(data)})
    return 0


def cmd_import(args) -> int:
    from pathlib import Path

    from engine.runs import default_runs_dir
    from engine.runs.transfer import MAX_IMPORT_BYTES, import_run

    path = Path(args.file)
    if path.stat().st_size > MAX_IMPORT_BYTES:  # before reading it all into memory
        raise ValueError(f"{path} is {path.stat().st_size / 2**20:.1f} MiB, over the "
                         f"{MAX_IMPORT_BYTES // 2**20} MiB limit for a run export")
    run = import_run(args.runs_dir or default_runs_dir(), path.read_bytes())
    _print_json({"run": run.id, "path": str(run.path), "state": run.status().state,
                 "imported_from": run.config["imported"]["from"]})
    return 0


def cmd_kit(args) -> int:
    from pathlib import Path

    from engine.runs import atomic_write_bytes, default_runs_dir
    from engine.runs.kit import MAX_KIT_IMPORT_BYTES, export_kit, import_kit, load_kit, train_kit

    runs_dir = args.runs_dir or default_runs_dir()
    if args.import_file:
        if args.kit:
            raise ValueError("--import takes the archive alone: the kit's name is inside it")
        path = Path(args.import_file)
        if path.stat().st_size > MAX_KIT_IMPORT_BYTES:  # before reading it all into memory
            raise ValueError(f"{path} is {path.stat().st_size / 2**20:.0f} MiB, over the "
                             f"{MAX_KIT_IMPORT_BYTES // 2**20} MiB limit for a kit export")
        for row in import_kit(runs_dir, path.read_bytes()):
            if not args.quiet:
                print(f"{row['entry']}: {'imported as' if row['action'] == 'imported' else 'already here:'} "
                      f"{row['run']}", file=sys.stderr)
            _print_json(row)
        return 0
    kit = load_kit(args.kit)
    if args.export:
        data = export_kit(kit, runs_dir)
        atomic_write_bytes(args.export, data)
        _print_json({"kit": kit.name, "out": str(args.export), "runs": len(kit.entries), "bytes": len(data)})
        return 0
    say = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    outcomes = train_kit(kit, runs_dir, jobs=args.jobs, device=args.device, on_event=say)
    for outcome in outcomes:
        _print_json(outcome.summary(kit.name))
    return 0 if all(o.state == "done" for o in outcomes) else 1


def cmd_fetch_mnist(args) -> int:
    from engine.data import MNIST_BASE_URL, fetch_mnist, mnist_dir

    dest = args.dest or mnist_dir()
    paths = fetch_mnist(dest, args.url or MNIST_BASE_URL)
    _print_json({"dest": str(dest), "files": [str(p) for p in paths]})
    return 0


def cmd_worker(args) -> int:
    import os
    import socket
    from pathlib import Path

    if not (Path(args.run) / "config.json").is_file():
        # A job placed on a node that does not mount the runs folder (the Ray backend): say so, in its log.
        print(f"error: no run folder at {args.run} on {socket.gethostname()}: the runs folder must be on a "
              f"filesystem every node mounts at the same path", file=sys.stderr)
        return 3
    if args.log:  # a worker the job manager did not start itself (a Ray job) writes its output to the run's log
        fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    from engine.runs import Run
    from engine.train import train_run

    from engine.runs.store import Superseded

    try:
        train_run(Run(args.run), resume=args.resume)
    except Superseded as e:
        print(f"worker: {e}", file=sys.stderr)
        return 4
    return 0


# ---------------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m engine", description="Latent Lab's engine: datasets, models, training runs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name, fn, help_, runs_dir=True):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        if runs_dir:
            sp.add_argument("--runs-dir", help="folder of run directories (default: $LATENT_LAB_RUNS or ./runs)")
        return sp

    add("datasets", cmd_datasets, "list datasets, available or not (one JSON object per line)", runs_dir=False)
    add("models", cmd_models, "list registered models and their settings (one JSON object per line)",
        runs_dir=False)

    def training_options(sp):
        sp.add_argument("model", help="a registered model name (see: python -m engine models)")
        sp.add_argument("--data", default="mnist-5k", help="dataset name, folder:PATH or npz:PATH (default mnist-5k)")
        budget = sp.add_mutually_exclusive_group()
        budget.add_argument("--epochs", type=int, help="passes over the train split")
        budget.add_argument("--steps", type=int, help="gradient steps (the same model on a busy machine, only later)")
        budget.add_argument("--seconds", type=float, help="wall-clock budget")
        sp.add_argument("--latent-dim", type=int, help="size of the code z")
        sp.add_argument("--seed", type=int, help="seed for weights, batch order and noise (default 0)")
        sp.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
        sp.add_argument("--batch-size", type=int, help="images per step (default 128)")
        sp.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
        sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="any model or training setting, e.g. --set beta=4 --set hidden=512,256")
        sp.add_argument("--name", help="a name for the run, shown beside its id in the app's pickers")
        sp.add_argument("--id", help="run id to use instead of a generated one")
        sp.add_argument("--quiet", action="store_true", help="no progress lines")

    training_options(add("train", cmd_train, "train a model in the foreground; writes a run directory"))
    sp = add("submit", cmd_submit, "queue a training job on the configured backend (LATENT_LAB_BACKEND: local "
                                   "workers or a Ray cluster), as the app does; --wait follows it to the end")
    training_options(sp)
    sp.add_argument("--wait", action="store_true", help="print its progress until it ends (exit 0 when done)")

    sp = add("cancel", cmd_cancel, "stop a queued or training job (through the job manager, any backend)")
    sp.add_argument("run", help="run id (or unique prefix) or path")
    sp.add_argument("--wait", action="store_true", help="wait until it has stopped")

    add("backend", cmd_backend, "where jobs train: the backend, its address and capacity, jobs active and queued "
                                "(exit 1 with the reason when a Ray cluster cannot be reached)")

    sp = add("resume", cmd_resume, "continue an interrupted, cancelled or failed run from its last checkpoint")
    sp.add_argument("run", help="run id (or unique prefix) or path")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")
    sp.add_argument("--background", action="store_true",
                    help="queue it on the configured backend (local workers or a Ray cluster) instead")
    sp.add_argument("--wait", action="store_true", help="with --background: follow it to the end")

    sp = add("eval", cmd_eval, "score a run's checkpoint on its dataset's test split, or a GAN's samples "
                               "with the dataset's judge (JSON)")
    sp.add_argument("run", help="run id (or unique prefix) or path")
    sp.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    sp.add_argument("--data", help="evaluate on another dataset instead")
    sp.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    sp.add_argument("-n", "--n", type=int, default=2000, help="GANs: samples the judge scores (default 2000)")
    sp.add_argument("--seed", type=int, default=0, help="GANs: seed of the samples' z draw (default 0)")

    sp = add("judge", cmd_judge, "train (once) or load the classifier that scores a dataset's generated images")
    sp.add_argument("--dataset", default="mnist-5k", help="a labelled dataset (default mnist-5k)")
    sp.add_argument("--retrain", action="store_true", help="train it again even if it exists")
    sp.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, mps")

    add("runs", cmd_runs, "list runs, newest first (one JSON object per line)")

    sp = add("sample", cmd_sample, "decode samples from a run's prior into a PNG grid")
    sp.add_argument("run", help="run id (or unique prefix) or path")
    sp.add_argument("--out", required=True, help="PNG file to write")
    sp.add_argument("-n", "--n", type=int, default=64, help="number of samples (default 64)")
    sp.add_argument("--label", type=int, help="class to sample (conditional models)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the z draw")
    sp.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    sp.add_argument("--scale", type=int, default=2, help="pixel scale of the PNG (default 2)")

    sp = add("export", cmd_export, "write a run (config, status, metrics, newest checkpoint, snapshots) as a .zip")
    sp.add_argument("run", help="run id (or unique prefix) or path")
    sp.add_argument("--out", help="zip file to write (default: RUN_ID.zip in the current folder)")

    sp = add("import", cmd_import, "check a run .zip from export and add it as a new run (never overwrites)")
    sp.add_argument("file", help="a .zip written by export or the app's Download run button")

    sp = add("kit", cmd_kit, "train a workshop kit's runs (what is missing only), pinned to the gallery; or export "
                             "or import the whole kit as one .zip")
    sp.add_argument("kit", nargs="?", help="a kit's name (assets/kits/NAME.toml) or a kit file (default: workshop)")
    move = sp.add_mutually_exclusive_group()
    move.add_argument("--export", metavar="FILE.zip", help="write the kit's finished runs as one archive")
    move.add_argument("--import", dest="import_file", metavar="FILE.zip",
                      help="check a kit archive and add the runs this folder lacks (pinned, never twice)")
    sp.add_argument("--jobs", type=int, help="runs training at once (default $LATENT_LAB_MAX_JOBS or 2)")
    sp.add_argument("--device", help="where new runs train: auto (default), cpu, cuda, cuda:N or mps")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")

    sp = add("fetch-mnist", cmd_fetch_mnist, "download full MNIST's IDX files (online machines only)",
             runs_dir=False)
    sp.add_argument("--dest", help="folder to write (default: $LATENT_LAB_MNIST or the data cache's mnist/)")
    sp.add_argument("--url", help="base URL serving the four .gz files (default: a public MNIST mirror)")

    sp = add("worker", cmd_worker, "internal: train one run directory (the job manager starts this)",
             runs_dir=False)
    sp.add_argument("run", help="run directory")
    sp.add_argument("--resume", action="store_true")
    sp.add_argument("--log", help="append stdout and stderr to this file (the run's worker.log)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except ValueError as e:  # DataError, RunError and bad settings: a message for the user
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into head
        return 0
    except OSError as e:  # a wrong path, a full disk, a refused connection
        print(f"error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
