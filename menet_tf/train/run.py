"""Training a configuration into a run folder, resumably: the library behind ``menet-tf train``.

    from menet_tf.train.run import train_run
    summary = train_run("MENET-GB", "data/Rain100L", "runs/gb", seed=0, save_every_steps=50)

A run folder holds:

- ``config.json``: exactly what ran; ``run.json``: versions, device, CPU, seed, command line,
  every session's start/end, steps and seconds;
- ``state.npz``: the full training state (weights, BN statistics, Adam slots and iterations,
  epoch, batch within the epoch, data-order seed, history so far), rewritten atomically at the end
  of every epoch and every ``save_every_steps`` steps, so a killed run continues where it stopped;
- ``history.csv`` (one row per epoch: objective, every task loss and weight, PSNR/SSIM, test
  scores, learning rate, steps), ``curves.png``, ``model.keras`` (final model with its optimizer),
  ``eval.json`` (authors' protocol on the test set), ``tensorboard/`` (per step and per epoch).

Why a loop of our own over the compiled ``train_step`` instead of ``fit``: a mid-epoch resume
must skip the batches already seen in the same order, and per-step TensorBoard values are the
step's own (the trackers are reset before every step; the epoch means are kept on the host, so
they survive a restart with the rest of the state).
"""
import contextlib
import copy
import csv
import datetime
import io
import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
import zipfile

import numpy as np

from menet_tf import files
from menet_tf.machine import cpu_info
from menet_tf.train.records import read_run_record, run_finished
from menet_tf.errors import CheckpointError, ConfigError, DataError, MenetError

DEFAULT_DATA = os.path.join("data", "synthetic", "heavy")
STATE_FILE = "state.npz"
STATE_FORMAT = 1
# Files a run writes; --force removes exactly these (never anything else in the folder).
RUN_FILES = ("config.json", "run.json", STATE_FILE, "history.csv", "curves.png", "model.keras",
             "eval.json")
TENSORBOARD_DIR = "tensorboard"
CACHE_DIR = ".cache"
# Configuration fields that may change between sessions of one run: how long to train and how
# the step is compiled do not change what a step computes.
RESUMABLE_CHANGES = ("train.epochs", "train.jit_compile")
# How step logs are combined into the epoch's row: counts are summed, the loss scale is the
# latest, everything else is the mean over the epoch's steps (as Keras' Mean trackers did).
SUM_KEYS = ("skipped_steps",)
LAST_KEYS = ("loss_scale", "learning_rate")
PROTOCOL = ("authors: 10 crops per test image, tf.image PSNR/SSIM, RGB, max_val 255,"
            " averaged per batch then over batches")


class RunFinishedError(MenetError):
    """The run folder already holds a finished run of this configuration (``.summary`` has it)."""

    def __init__(self, message, summary=None):
        super().__init__(message)
        self.summary = summary


# ----------------------------------------------------------------------------------------------
# configuration and data

def resolve_config(config):
    """An ExperimentConfig from a config object, a released name/alias or a JSON file."""
    from menet_tf import config as config_lib

    if isinstance(config, config_lib.ExperimentConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if path.endswith(".json") or os.path.isfile(path):
            return config_lib.load_config(path)
        return config_lib.released_config(path)
    raise ConfigError(f"expected a configuration, a released model name or a JSON file, got {config!r}")


def split_roots(root):
    """(train folder, test folder or None) of a data root with train/ and test/ folders."""
    from menet_tf.data.splits import named_splits

    splits = named_splits(root)
    train, test = splits.train, splits.test
    if train is None:
        if len(splits.found) != 1:
            raise DataError(f"{root}: found {sorted(splits.found)}, but no train/ folder among them")
        train = next(iter(splits.found.values()))
    return train.root, (test.root if test is not None else None)


def epoch_seed(seed, epoch):
    """The data-order seed of one epoch: a pure function of (seed, epoch), so the order of any
    epoch can be rebuilt after a restart (31 bits: tf.data takes int64 seeds, numpy int32)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] >> 1)


def _flatten(d, prefix=""):
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "task_weights":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def fingerprint(config, seed, steps_per_epoch, train_root, test_root):
    """What must be equal for a run folder's state to be continued: the configuration (except
    its length and XLA setting), the seed, the batches per epoch and the data folders."""
    fields = {k: v for k, v in _flatten(config.to_dict()).items() if k not in RESUMABLE_CHANGES}
    fields.update({
        "seed": int(seed),
        "steps_per_epoch": int(steps_per_epoch),
        "data.train": os.path.abspath(train_root),
        "data.test": os.path.abspath(test_root) if test_root else None,
    })
    return json.loads(json.dumps(fields))  # the form it has after a JSON round trip


def _differences(saved, current):
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k, '(absent)')!r} in the run folder, {current.get(k, '(absent)')!r} now"
            for k in keys if saved.get(k) != current.get(k)]


# ----------------------------------------------------------------------------------------------
# atomic files

def atomic_write(path, write, mode="w"):
    """files.atomic_write, failing with a CheckpointError (a run's state and records)."""
    files.atomic_write(path, write, mode, error=CheckpointError)


def _write_json(path, data):
    files.write_json(path, data, error=CheckpointError)


def _write_history(path, rows):
    keys = sorted({k for row in rows for k in row} - {"epoch"})

    def write(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for row in rows:
            writer.writerow([row["epoch"], *(row.get(k, "") for k in keys)])

    atomic_write(path, write)


# ----------------------------------------------------------------------------------------------
# training state

def _state_variables(model):
    """Everything a step changes: weights, BN moving statistics, optimizer slots and iterations."""
    return list(model.variables) + list(model.optimizer.variables)


def save_state(path, model, state):
    """Write the full training state to ``path`` (one .npz: variables + a JSON header), atomically."""
    variables = _state_variables(model)
    header = dict(state, format=STATE_FORMAT, variables=[v.path for v in variables])
    arrays = {"state": np.array(json.dumps(header))}
    arrays.update({f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(variables)})
    atomic_write(path, lambda f: np.savez(f, **arrays), mode="wb")


def _normal_path(path):
    """A variable path without Keras' per-process suffix of the top name ("adam_1/..." is the
    second Adam built in a process)."""
    head, _, rest = path.partition("/")
    return re.sub(r"_\d+$", "", head) + "/" + rest


def _path_of(variable):
    return _normal_path(variable.path)


_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def read_state_header(path):
    """The JSON header of a state file (no variables read); CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["state"]))
    except _UNREADABLE as err:
        raise CheckpointError(f"{path}: unreadable training state ({err}); pass --force to start"
                              " the run over") from None
    if header.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: training state format {header.get('format')!r}, this"
                              f" version reads {STATE_FORMAT}; pass --force to start over")
    return header


def restore_state(path, model):
    """Assign every variable of ``model`` (and its optimizer) from ``path``; returns the header.

    Variables are matched by position and checked by path and shape, so a state from another
    architecture is refused instead of assigned crosswise."""
    header = read_state_header(path)
    variables = _state_variables(model)
    saved = list(map(_normal_path, header.get("variables", [])))
    if len(saved) != len(variables):
        raise CheckpointError(f"{path}: training state has {len(saved)} variables, the model"
                              f" {len(variables)}; pass --force to start over")
    moved = [f"{now} vs {was}" for now, was in zip(map(_path_of, variables), saved) if now != was]
    if moved:
        raise CheckpointError(f"{path}: training state does not fit the model (variables differ:"
                              f" {', '.join(moved[:3])}); pass --force to start over")
    try:
        with np.load(path, allow_pickle=False) as data:
            values = [data[f"v{i:04d}"] for i in range(len(variables))]
    except _UNREADABLE as err:
        raise CheckpointError(f"{path}: unreadable training state ({err}); pass --force to start"
                              " the run over") from None
    bad = [f"{v.path} {tuple(v.shape)} vs {a.shape}" for v, a in zip(variables, values)
           if tuple(v.shape) != a.shape]
    if bad:
        raise CheckpointError(f"{path}: training state does not fit the model (shapes differ:"
                              f" {', '.join(bad[:3])}); pass --force to start over")
    for v, a in zip(variables, values):
        v.assign(a)
    return header


# ----------------------------------------------------------------------------------------------
# run record

def _environment(strategy):
    import keras
    import tensorflow as tf

    import menet_tf

    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or \
        [d.name for d in tf.config.list_logical_devices("CPU")]
    return {
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__,
                     "menet-tf": menet_tf.__version__},
        "device": devices,
        "strategy": type(strategy).__name__ if strategy is not None else "default",
        "replicas": int(strategy.num_replicas_in_sync) if strategy is not None else 1,
        "cpu": cpu_info()["model"],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# the run

def _aggregate(sums, count, last):
    row = {}
    for key, value in sums.items():
        if key in SUM_KEYS:
            row[key] = value
        elif key in LAST_KEYS:
            row[key] = last[key]
        else:
            row[key] = value / max(count, 1)
    return row


def _summary(config, out, header, test_root, seconds):
    history = header["history"]
    last = history[-1] if history else {}
    summary = {"config": config.name, "out": os.path.abspath(out), "steps": header["global_step"],
               "optimizer_steps": header.get("optimizer_iterations"), "epochs": len(history),
               "seconds": seconds}
    if test_root:
        summary.update(psnr=last.get("val_psnr"), ssim=last.get("val_ssim"))
    return summary


def _make_strategy(strategy):
    """None/"default" -> None (no scope); a name -> E's ``menet_tf.train.distribute.make_strategy``."""
    if strategy is None or strategy == "default":
        return None
    if isinstance(strategy, str):
        from menet_tf.train.distribute import make_strategy

        return make_strategy(strategy)
    return strategy


def _is_chief(strategy):
    if strategy is None:
        return True
    try:
        from menet_tf.train.distribute import is_chief
    except ImportError:
        return True
    return is_chief(strategy)


def train_run(config, data=None, out=None, *, seed=0, steps=None, save_every_steps=None,
              tensorboard=True, cache=False, steps_per_epoch=None, resume="auto", progress=True,
              strategy=None, precision=None, sync_bn=None, command=None, log=print):
    """Train ``config`` on ``data`` into the run folder ``out``, continuing a stopped run there.

    Args:
        config: ExperimentConfig, released name/alias, or JSON file. Its ``train.epochs`` is the
            length unless ``steps`` (total optimizer steps) is given.
        data: root with train/ and test/ folders; None: the synthetic heavy set (made if missing).
        out: run folder (default ``runs/<config name>``).
        save_every_steps: also save the state every N optimizer steps (it is always saved at the
            end of every epoch).
        steps_per_epoch: cap on batches per epoch (the LR decay counts epochs of this length).
        tensorboard: write per-step and per-epoch scalars to ``out/tensorboard/{train,test}``.
        cache: decode the training pairs once per session into ``out/.cache`` (deleted at the
            end) instead of every epoch.
        progress: tqdm bars per epoch.
        resume: "auto" continues a run of the same configuration, starts a new one in an empty
            folder, and refuses a different configuration (naming the fields); "require" (or True)
            refuses to start fresh; "restart" (or False) deletes the run's files and starts over.
        strategy: None/"default", "mirrored", "multiworker" or a tf.distribute.Strategy.
        precision, sync_bn: override ``config.train.precision`` / ``sync_batch_norm``.
        command: the command line recorded in run.json (default: ``sys.argv``).
        log: where one-line messages go (``print``; ``None`` for silence).

    Returns the run summary: config, out, steps, epochs, seconds, and with a test set the final
    test ``psnr``/``ssim`` (authors' protocol), as also written to eval.json.
    Raises RunFinishedError if the folder already holds this run, finished.
    """
    from menet_tf.data import count_crops, resolve_pairs, synthesize

    log = log or (lambda *a, **k: None)
    resume = {True: "require", False: "restart"}.get(resume, resume)
    if resume not in ("auto", "require", "restart"):
        raise ConfigError(f"resume must be 'auto', 'require' or 'restart', got {resume!r}")
    config = copy.deepcopy(resolve_config(config))  # overrides below must not leak to the caller
    if precision is not None:
        config.train.precision = precision
    if sync_bn is not None:
        config.train.sync_batch_norm = bool(sync_bn)
    if data is None:
        data = DEFAULT_DATA
        if not os.path.isdir(data):
            log(f"{data} not found: generating the synthetic heavy-rain set there (seed 0)")
            synthesize(data, preset="heavy", seed=0)
    train_root, test_root = split_roots(data)
    out = os.fspath(out or os.path.join("runs", config.name))
    crop, batch = config.train.crop_size, config.train.batch_size
    train_pairs = resolve_pairs(train_root, crop)
    per_epoch = count_crops(len(train_pairs), 10, batch)[1]
    if per_epoch <= 0:
        raise DataError(f"{train_root}: {len(train_pairs)} pairs give fewer crops than one batch of {batch}")
    if steps_per_epoch:
        per_epoch = min(per_epoch, int(steps_per_epoch))
    if steps is not None:
        if int(steps) <= 0:
            raise ConfigError(f"steps must be positive, got {steps}")
        target = int(steps)
        config.train.epochs = math.ceil(target / per_epoch)
    else:
        target = int(config.train.epochs) * per_epoch
    if save_every_steps is not None and int(save_every_steps) <= 0:
        raise ConfigError(f"save_every_steps must be positive, got {save_every_steps}")

    state_path = os.path.join(out, STATE_FILE)
    prints = fingerprint(config, seed, per_epoch, train_root, test_root)
    header = _check_run_folder(out, state_path, prints, target, resume)
    if resume == "restart":
        _clear_run(out)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):  # temporaries of a process killed while writing
        if name.startswith(".") and (name.endswith(".partial") or name.startswith(".partial-")):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(out, name))
    return _train(config, out, state_path, header, prints, train_pairs, test_root, per_epoch,
                  target, seed, save_every_steps, tensorboard, cache, progress, strategy, command, log)


def _check_run_folder(out, state_path, prints, target, resume):
    """The state to continue from (None: start fresh), or a clear refusal."""
    if resume == "restart":
        return None
    if os.path.exists(state_path):
        header = read_state_header(state_path)
        diff = _differences(header["fingerprint"], prints)
        if diff:
            raise ConfigError(f"{out} holds a run of a different configuration ("
                              + "; ".join(diff) + "); use another --out, or --force to start over")
        if header["global_step"] > target:
            raise ConfigError(f"{state_path}: the run already has {header['global_step']} steps, more"
                              f" than the {target} asked; ask for more epochs/steps, or --force")
        if header["global_step"] == target and run_finished(out):
            raise RunFinishedError(
                f"{out} already holds a run, finished after {target} steps; choose another --out,"
                " pass --force to start over, or ask for more --epochs/--steps to continue it",
                summary=read_run_record(out).get("summary"))
        return header
    if resume == "require":
        raise CheckpointError(f"{state_path}: no training state to resume from")
    if any(os.path.exists(os.path.join(out, f)) for f in ("history.csv", "model.keras")):
        raise MenetError(f"{out} already holds a run (without {STATE_FILE} to continue it from);"
                         " choose another --out or pass --force")
    return None


def _clear_run(out):
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
    shutil.rmtree(os.path.join(out, TENSORBOARD_DIR), ignore_errors=True)


def _train(config, out, state_path, header, prints, train_pairs, test_root, per_epoch, target,
           seed, save_every_steps, tensorboard, cache, progress, strategy, command, log):
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    from menet_tf.config import save_config
    from menet_tf.data import eval_dataset, train_dataset
    from menet_tf.model.multitask import build_model

    started, t_session = _now(), time.perf_counter()
    strategy = _make_strategy(strategy)
    chief = _is_chief(strategy)
    keras.utils.set_random_seed(int(seed))
    crop, batch = config.train.crop_size, config.train.batch_size
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        # The LR decay counts epochs of this training set (every decay_epochs * per_epoch steps).
        model = build_model(config, steps_per_epoch=per_epoch)
    if header is not None:
        header = restore_state(state_path, model)
        iterations = int(model.optimizer.iterations.numpy())
        saved = header.get("optimizer_iterations", header["global_step"])
        if iterations != saved:
            raise CheckpointError(f"{state_path}: optimizer iterations {iterations} after restoring,"
                                  f" {saved} when saved; pass --force to start over")
        log(f"resuming {out} at step {header['global_step']} (epoch {header['epoch'] + 1},"
            f" batch {header['batches_done']} of {per_epoch})")
    else:
        header = {"fingerprint": prints, "seed": int(seed), "epoch": 0, "batches_done": 0,
                  "global_step": 0, "history": [], "sums": {}, "count": 0, "last": {},
                  "seconds": 0.0, "sessions": []}
    header["target_steps"] = target
    if chief:
        save_config(config, os.path.join(out, "config.json"))

    run_record = {"config": config.name, "status": "running", "seed": int(seed),
                  "command": command if command is not None else " ".join(map(shlex.quote, sys.argv)),
                  "data": {"train": os.path.abspath(prints["data.train"]),
                           "test": prints["data.test"]},
                  "steps_per_epoch": per_epoch, "target_steps": target,
                  **_environment(strategy)}
    session = {"start": started, "from_step": header["global_step"]}
    prior_sessions = list(header["sessions"])

    def sessions():
        """Every session of the run; a killed one ends at its last saved state."""
        return prior_sessions + [dict(session, end=_now(), to_step=header["global_step"])]

    def write_run(status):
        if not chief:
            return
        every = sessions()
        run_record.update(status=status, start=every[0]["start"], end=every[-1]["end"],
                          steps=header["global_step"], seconds=round(header["seconds"], 3),
                          sessions=every)
        _write_json(os.path.join(out, "run.json"), run_record)

    write_run("running")

    def distribute(ds):
        return strategy.experimental_distribute_dataset(ds) if strategy is not None else ds

    test_ds = eval_dataset(test_root, batch_size=batch, crop_size=crop, cache=True) if test_root else None
    train_cache = _train_cache(out, cache, strategy)
    model.make_train_function()
    model.make_test_function()
    train_fn, test_fn = model.train_function, model.test_function
    schedule = _schedule_of(model.optimizer)

    writers = {}
    if tensorboard and chief:
        tb = os.path.join(out, TENSORBOARD_DIR)
        writers = {"train": tf.summary.create_file_writer(os.path.join(tb, "train")),
                   "test": tf.summary.create_file_writer(os.path.join(tb, "test"))}

    def scalars(writer, prefix, values, step):
        if writer is None:
            return
        with writer.as_default(step=int(step)):
            for key, value in values.items():
                write_scalar(f"{prefix}/{key}", value)

    def checkpoint():
        """State on disk = state in memory; summaries up to here flushed with it."""
        header["seconds"] = seconds_before + (time.perf_counter() - t_session)
        header["sessions"] = sessions()
        header["optimizer_iterations"] = int(model.optimizer.iterations.numpy())
        if chief:
            save_state(state_path, model, header)
            for w in writers.values():
                w.flush()

    seconds_before = header["seconds"]
    consistent = [True]  # False while the header is being updated (no state may be saved then)
    n_epochs = math.ceil(target / per_epoch)
    if header["global_step"] < target:
        log(f"training {config.name} on {prints['data.train']} ({per_epoch} batches of {batch}"
            f" crops {crop}x{crop} per epoch, {target} steps = {target / per_epoch:g} epochs);"
            f" results in {out}")
    try:
        while header["global_step"] < target:
            epoch, done = header["epoch"], header["batches_done"]
            n_batches = min(per_epoch, target - epoch * per_epoch)
            ds = train_dataset(train_pairs, batch_size=batch, crop_size=crop,
                               seed=epoch_seed(seed, epoch), cache=train_cache)
            ds = ds.take(n_batches).skip(done)
            iterator = iter(distribute(ds))
            bar = tqdm(total=n_batches, initial=done, desc=f"epoch {epoch + 1}/{n_epochs}",
                       unit="step", disable=not progress, dynamic_ncols=True, leave=True)
            sums, count, last = header["sums"], header["count"], header["last"]
            for _ in range(done, n_batches):
                # The rate this step applies: the schedule counts applied updates
                # (optimizer.iterations), which a skipped non-finite step does not advance.
                lr = float(schedule(int(model.optimizer.iterations.numpy()))) if schedule else None
                model.reset_metrics()
                consistent[0] = False
                logs = {k: float(v) for k, v in train_fn(iterator).items()}
                if lr is not None:
                    logs["learning_rate"] = lr
                header["global_step"] += 1
                header["batches_done"] += 1
                count += 1
                for key, value in logs.items():
                    sums[key] = sums.get(key, 0.0) + value
                last.update(logs)
                header["count"] = count
                consistent[0] = True
                scalars(writers.get("train"), "step", logs, header["global_step"])
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.4g}", psnr=f"{logs['psnr']:.2f}")
                if (save_every_steps and header["global_step"] % int(save_every_steps) == 0
                        and header["batches_done"] < n_batches):
                    checkpoint()
            bar.close()
            row = {"epoch": epoch, **_aggregate(sums, count, last), "steps": header["global_step"]}
            if test_ds is not None:
                model.reset_metrics()
                test_iter = iter(distribute(test_ds))
                val = None
                for _ in range(int(test_ds.cardinality())):
                    val = test_fn(test_iter)
                row.update({f"val_{k}": float(v) for k, v in val.items()})
            consistent[0] = False
            history = [r for r in header["history"] if r["epoch"] != epoch] + [row]
            header["history"] = history
            if header["batches_done"] >= per_epoch:  # a full epoch: the next one starts clean
                header.update(epoch=epoch + 1, batches_done=0, sums={}, count=0, last={})
            consistent[0] = True
            scalars(writers.get("train"), "epoch", {k: v for k, v in row.items()
                                                     if k != "epoch" and not k.startswith("val_")}, epoch + 1)
            scalars(writers.get("test"), "epoch", {k[4:]: v for k, v in row.items()
                                                    if k.startswith("val_")}, epoch + 1)
            checkpoint()
            if chief:
                _write_history(os.path.join(out, "history.csv"), history)
                plot_history(history, os.path.join(out, "curves.png"))
            log(f"epoch {epoch + 1}/{n_epochs}: " + ", ".join(
                f"{k} {row[k]:.4g}" for k in ("loss", "psnr", "val_psnr", "val_ssim") if k in row))
    except KeyboardInterrupt:
        # Ctrl-C: save, unless it landed while a step or an epoch was being booked.
        if consistent[0]:
            checkpoint()
            log(f"interrupted: state saved at step {header['global_step']}; run the same command"
                " again to continue")
        raise
    finally:
        for w in writers.values():
            w.close()

    # Finish: final model (with its optimizer), test scores, run record.
    shutil.rmtree(os.path.join(out, CACHE_DIR), ignore_errors=True)
    seconds = header["seconds"]
    header["optimizer_iterations"] = int(model.optimizer.iterations.numpy())
    if chief:
        _save_model(model, os.path.join(out, "model.keras"))
    else:  # saving is collective under MultiWorkerMirroredStrategy: workers save aside, then drop it
        from menet_tf.train.distribute import worker_out_dir

        aside = worker_out_dir(out, strategy)
        os.makedirs(aside, exist_ok=True)
        model.save(os.path.join(aside, "model.keras"))
        shutil.rmtree(aside, ignore_errors=True)
    if chief:
        # Again: a run killed between its last checkpoint and these files continues here.
        _write_history(os.path.join(out, "history.csv"), header["history"])
        plot_history(header["history"], os.path.join(out, "curves.png"))
    summary = _summary(config, out, header, test_root, seconds)
    if test_root and chief:
        last = header["history"][-1]
        _write_json(os.path.join(out, "eval.json"), {
            "config": config.name, "data": os.path.abspath(test_root), "protocol": PROTOCOL,
            "crop_size": crop, "epochs": len(header["history"]), "steps": header["global_step"],
            "psnr": last["val_psnr"], "ssim": last["val_ssim"]})
        log(f"test: PSNR {last['val_psnr']:.4f} dB, SSIM {last['val_ssim']:.4f} ({test_root})")
    run_record["summary"] = summary
    write_run("finished")
    log(f"wrote {out}/" + ", ".join(n for n in RUN_FILES if os.path.exists(os.path.join(out, n)))
        + (f", {TENSORBOARD_DIR}/" if writers else ""))
    return summary


def write_scalar(tag, value):
    """``tf.summary.scalar`` without the tensorboard package: the same tensor summary, marked
    for TensorBoard's scalars plugin. Why: writing logs should not need the viewer installed
    (``pip install tensorboard`` to look at them). Uses the default writer and step."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    return tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=metadata)


def _train_cache(out, cache, strategy):
    """What ``cache=True`` hands the training pipeline.

    Each epoch builds its own pipeline (its own data-order seed), so an in-memory cache would die
    with the epoch; decoded pairs go to files under OUT/.cache instead, which every epoch of the
    session reads (Rain100L at 96x96: 0.36 s an epoch instead of 2.5 s of PNG decoding; 177 MB).
    Cleared at the start of each session (no stale lock or content after a kill) and at the end.
    A multi-worker run keeps the per-epoch memory cache (workers would share the folder).
    """
    folder = os.path.join(out, CACHE_DIR)
    shutil.rmtree(folder, ignore_errors=True)
    if not cache:
        return False
    if strategy is not None and type(strategy).__name__.startswith("MultiWorker"):
        return True
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "train")


def _schedule_of(optimizer):
    """The learning rate as a function of the step (schedule or constant), for the logs."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer wraps Adam
    lr = getattr(inner, "_learning_rate", None)
    if lr is None:
        return None
    if callable(lr):
        return lambda step: lr(step)
    return lambda step: lr


def _save_model(model, path):
    """``model.save`` into a temporary .keras file, then rename (Keras insists on the suffix)."""
    with files.replacing(path, suffix=".keras", what=" the model", error=CheckpointError) as tmp:
        model.save(tmp)


def plot_history(history, path):
    """Loss, PSNR and task weights per epoch, one panel each (``history``: rows or columns)."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(history, list):
        history = {k: [row.get(k, float("nan")) for row in history] for k in history[0]} if history else {}
    epochs = range(1, len(history["loss"]) + 1)
    weights = sorted(k for k in history if k.startswith("weight_"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    axes[0].plot(epochs, history["loss"], label="train")
    if "val_loss" in history:
        axes[0].plot(epochs, history["val_loss"], label="test")
    axes[0].set(title="objective", xlabel="epoch", yscale="log")
    axes[1].plot(epochs, history["psnr"], label="train")
    if "val_psnr" in history:
        axes[1].plot(epochs, history["val_psnr"], label="test")
    axes[1].set(title="PSNR (dB, RGB)", xlabel="epoch")
    for key in weights:
        axes[2].plot(epochs, history[key], label=key[len("weight_"):])
    axes[2].set(title="task weights (epoch mean)", xlabel="epoch")
    for ax in axes:
        ax.legend()
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), mode="wb")
