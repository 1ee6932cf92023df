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

This module settles what to run and whether the folder may take it; ``loop`` runs it, ``state``
saves and restores it, ``records`` writes what it did.
"""
import contextlib
import copy
import math
import os
import shlex
import shutil
import sys

from menet_tf import files
from menet_tf.files import is_partial
from menet_tf.errors import CheckpointError, ConfigError, DataError, MenetError
from menet_tf.locks import TRAIN_LOCK, FolderLock, is_lock
from menet_tf.train import DEFAULT_DATA, state
from menet_tf.train.distribute import is_chief_process
from menet_tf.train.finetune import init_record, init_weights
from menet_tf.train.loop import RunPlan, train
from menet_tf.train.records import (FINAL_MODEL, HISTORY_FILE, RUN_FILES, RUN_RECORD, STATE_FILE,
                                    TENSORBOARD_DIR, is_run_record, read_run_record, run_finished)

RUNS_DIR = "runs"


class RunFinishedError(MenetError):
    """The run folder already holds a finished run of this configuration (``.summary`` has it)."""

    def __init__(self, message, summary=None):
        super().__init__(message)
        self.summary = summary


# ----------------------------------------------------------------------------------------------
# configuration, run folder and data

def _is_config_file(path):
    return path.endswith(".json") or os.path.isfile(path)


def resolve_config(config):
    """An ExperimentConfig from a config object, a released name/alias or a JSON file."""
    from menet_tf import config as config_lib

    if isinstance(config, config_lib.ExperimentConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if _is_config_file(path):
            return config_lib.load_config(path)
        return config_lib.released_config(path)
    raise ConfigError(f"expected a configuration, a released model name or a JSON file, got {config!r}")


def default_out(config):
    """``runs/<what the user typed>``: a released name or alias as given (``MENET-GB``), a JSON
    file's stem, or the configuration's own name for a configuration object. Why as typed: the
    folder is found again by the name the user knows, not by the released checkpoint's name."""
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        name = os.path.splitext(os.path.basename(path))[0] if _is_config_file(path) else path
    else:
        name = config.name
    return os.path.join(RUNS_DIR, name)


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


# ----------------------------------------------------------------------------------------------
# the run

def train_run(config, data=None, out=None, *, seed=0, steps=None, save_every_steps=None,
              tensorboard=True, cache=False, steps_per_epoch=None, resume="auto", progress=True,
              strategy=None, precision=None, sync_bn=None, command=None, accept_data_change=False,
              log=print, init=None, stop=None):
    """Train ``config`` on ``data`` into the run folder ``out``, continuing a stopped run there.

    Args:
        config: ExperimentConfig, released name/alias, or JSON file. Its ``train.epochs`` is the
            length unless ``steps`` (total optimizer steps) is given.
        data: root with train/ and test/ folders; None: the synthetic heavy set (made if missing).
        out: run folder (default :func:`default_out`: ``runs/MENET-GB`` for ``"MENET-GB"``).
        save_every_steps: also save the state every N optimizer steps (it is always saved at the
            end of every epoch).
        steps_per_epoch: cap on batches per epoch (the LR decay counts epochs of this length).
        tensorboard: write per-step and per-epoch scalars to ``out/tensorboard/{train,test}``.
        cache: decode the training pairs once per session into ``out/.menet-train-cache``
            (deleted at the end) instead of every epoch.
        progress: tqdm bars per epoch.
        resume: "auto" continues a run of the same configuration, starts a new one in an empty
            folder, and refuses a different configuration (naming the fields); "require" (or True)
            refuses to start fresh; "restart" (or False) deletes the run's files and starts over.
        strategy: None/"default", "mirrored", "multiworker" or a tf.distribute.Strategy.
        precision, sync_bn: override ``config.train.precision`` / ``sync_batch_norm``.
        command: the command line recorded in run.json (default: ``sys.argv``).
        accept_data_change: continue a run although its training folder's files changed since
            it started (otherwise refused, saying what changed).
        log: where one-line messages go (``print``; ``None`` for silence).
        init: fine-tune: start from this model source's weights (a bundled model's name, run
            folder, ``.keras`` file or TF1 checkpoint; same architecture as ``config``) with a
            fresh optimizer and the configuration's learning rate and schedule. Recorded in
            run.json with the sha256 of its weights. A stopped run continues from its state (the
            source is not applied again); a folder holding a run that did not start from these
            weights is refused unless ``resume="restart"``.
        stop: ``stop(global_step) -> bool``, asked before the first step and after every step;
            True saves the state as an interrupt does and returns normally, the summary marked
            ``stopped`` (see :func:`menet_tf.train.stop_after`); the same call continues it.

    Returns the run summary: config, out, steps, epochs, seconds, ``stopped``, and with a test
    set the last epoch's test ``psnr``/``ssim`` (authors' protocol), as also written to eval.json.
    Raises RunFinishedError if the folder already holds this run, finished. While it trains, the
    run folder is locked (``menet_tf.locks``): a second ``train_run`` on it is refused.
    """
    log = log or (lambda *a, **k: None)
    resume = {True: "require", False: "restart"}.get(resume, resume)
    if resume not in ("auto", "require", "restart"):
        raise ConfigError(f"resume must be 'auto', 'require' or 'restart', got {resume!r}")
    typed, config = config, copy.deepcopy(resolve_config(config))  # overrides must not leak out
    if precision is not None:
        config.train.precision = precision
    if sync_bn is not None:
        config.train.sync_batch_norm = bool(sync_bn)
    validate_lengths(config, steps, save_every_steps)
    settled = _data_and_length(config, data, seed, steps, steps_per_epoch, log)
    plan = RunPlan(
        config=config, out=os.fspath(out or default_out(typed)), **settled, seed=seed,
        save_every_steps=save_every_steps, tensorboard=tensorboard, cache=cache, progress=progress,
        strategy=strategy, log=log,
        command=command if command is not None else " ".join(map(shlex.quote, sys.argv)),
        init=init_record(init) if init is not None else None, stop=stop)
    chief = is_chief_process(strategy)
    with _locked(plan.out, chief):
        header = _check_run_folder(plan, resume, accept_data_change)
        _check_init(plan, header)
        _prepare_run_folder(plan.out, resume, chief=chief)
        return train(plan, header)


@contextlib.contextmanager
def _locked(out, chief):
    """The run folder (created if missing) held by this process while it trains; a folder this
    created is removed again if the run stopped before writing anything into it. Only the chief
    locks: the workers of a cluster share the folder."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"{out}: not a folder; the run folder must be a folder")
    if not chief:
        yield
        return
    created = not os.path.exists(out)
    os.makedirs(out, exist_ok=True)
    try:
        with FolderLock(out, TRAIN_LOCK, "`menet-tf train`",
                        "wait for it to end, or choose another --out"):
            yield
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # only if empty


def _check_init(plan, header):
    """Fine-tuning: on a fresh start, the source's weights (checked against the configuration's
    architecture); on a resume, only a run that started from the same weights continues."""
    if plan.init is None:
        return
    if header is None:
        plan.init_weights = init_weights(plan.init["source"], plan.config)
        return
    saved, source = header.get("init"), plan.init["source"]
    if saved is None:
        raise ConfigError(f"{plan.out} holds a run that did not start from {source}; choose"
                          f" another --out, or --force to start it over from {source}")
    if saved.get("sha256") != plan.init["sha256"]:
        raise ConfigError(f"{plan.out} holds a run fine-tuned from {saved.get('source')} (sha256"
                          f" {str(saved.get('sha256'))[:12]}...), not from {source} (sha256"
                          f" {plan.init['sha256'][:12]}...); choose another --out, or --force to"
                          " start it over")


def validate_lengths(config, steps, save_every_steps):
    """Refuse sizes and lengths no run can have, before anything is built or written."""
    train = config.train
    for name, value in (("batch size", train.batch_size), ("crop size", train.crop_size),
                        ("steps", steps), ("--save-every-steps", save_every_steps),
                        ("epochs", None if steps is not None else train.epochs)):
        if value is not None and int(value) <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    multiple = 16 if config.model.attention else 4
    if int(train.crop_size) % multiple:
        raise ConfigError(f"crop size {train.crop_size} must be a multiple of {multiple}"
                          + (" with channel attention" if config.model.attention else "")
                          + " (the network halves it twice" + (", then twice more" if multiple == 16
                                                                 else "") + ")")


def _data_and_length(config, data, seed, steps, steps_per_epoch, log):
    """The run's data, its batches per epoch, the target step and the fingerprint (RunPlan
    fields); sets ``config.train.epochs`` when the length is given in ``steps``."""
    from menet_tf.data import count_crops, ensure_synthetic, resolve_pairs

    if data is None:
        data = DEFAULT_DATA
        ensure_synthetic(data, preset="heavy", seed=0, log=log)
    train_root, test_root = split_roots(data)
    crop, batch = config.train.crop_size, config.train.batch_size
    train_pairs = resolve_pairs(train_root, crop)
    per_epoch = count_crops(len(train_pairs), 10, batch)[1]
    if per_epoch <= 0:
        raise DataError(f"{train_root}: {len(train_pairs)} pairs give fewer crops than one batch of {batch}")
    if steps_per_epoch:
        per_epoch = min(per_epoch, int(steps_per_epoch))
    if steps is not None:
        target = int(steps)
        config.train.epochs = math.ceil(target / per_epoch)
    else:
        target = int(config.train.epochs) * per_epoch
    prints = state.fingerprint(config, seed, per_epoch, train_root, test_root)
    return dict(train_pairs=train_pairs, test_root=test_root, prints=prints, per_epoch=per_epoch,
                target=target, data_files=state.data_files(train_root))


def _check_run_folder(plan, resume, accept_data_change=False):
    """The state to continue from (None: start fresh), or a clear refusal."""
    out, state_path, target = plan.out, plan.state_path, plan.target
    if resume == "restart":
        return None
    if os.path.exists(state_path):
        header = state.read_state_header(state_path)
        diff = state.differences(header["fingerprint"], plan.prints)
        if diff:
            raise ConfigError(f"{out} holds a run of a different configuration ("
                              + "; ".join(diff) + "); use another --out, or --force to start over")
        _check_data_unchanged(plan, header, accept_data_change)
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
    if any(os.path.exists(os.path.join(out, f)) for f in (HISTORY_FILE, FINAL_MODEL)):
        raise MenetError(f"{out} already holds a run (without {STATE_FILE} to continue it from);"
                         " choose another --out or pass --force")
    foreign = _files_not_of_a_run(out)
    if foreign:
        raise MenetError(f"{out} holds files that are not a run ({', '.join(foreign[:3])}"
                         + (", ..." if len(foreign) > 3 else "") + "); choose another --out, or"
                         " --force to write the run's files beside them")
    return None


def _files_not_of_a_run(out):
    """The entries of an existing folder that is neither empty nor a run (none for a run)."""
    if not os.path.isdir(out):
        return []
    if os.path.exists(os.path.join(out, STATE_FILE)):
        return []
    if is_run_record(files.read_json(os.path.join(out, RUN_RECORD))):
        return []
    return sorted(n for n in os.listdir(out) if not is_partial(n) and not is_lock(n))


def _check_data_unchanged(plan, header, accept):
    """Refuse to continue on a training folder whose files changed since the run started (runs
    of menet-tf 0.1.0 have no listing: nothing to compare, they continue)."""
    saved = header.get("data_files")
    if saved is None or accept:
        return
    changed = state.data_changes(saved, plan.data_files)
    if changed:
        raise ConfigError(f"{plan.prints['data.train']}: the training files changed since the run"
                          f" in {plan.out} started ({changed}); pass --accept-data-change to"
                          " continue on them, or --force to start over")


def _prepare_run_folder(out, resume, chief=True):
    """With "restart", remove the run's files (only those); drop temporaries of a process killed
    while writing. Only the chief deletes: the other workers of a cluster share the folder."""
    os.makedirs(out, exist_ok=True)
    if not chief:
        return
    if resume == "restart":
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))
        shutil.rmtree(os.path.join(out, TENSORBOARD_DIR), ignore_errors=True)
    for name in os.listdir(out):
        if is_partial(name):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(out, name))
