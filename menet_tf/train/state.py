"""The training state of a run (``state.npz``): what a killed run continues from.

One .npz file: every variable a step changes (weights, batch-norm moving statistics, optimizer
slots and iterations) as ``v0000``, ``v0001``, ... and a JSON header under ``state``: the
fingerprint of the run, epoch, batch within the epoch, step count, the epoch's running sums,
history so far, seconds and sessions. Its format is :data:`STATE_FORMAT`; a folder written by an
earlier 0.x version must keep resuming, so neither the keys nor the header's fields change
without a new format number.
"""
import json
import os
import re
import zipfile

import numpy as np

from menet_tf import files, precisions
from menet_tf.errors import CheckpointError

STATE_FORMAT = 1
# Configuration fields that may change between sessions of one run: how long to train and how
# the step is compiled do not change what a step computes.
RESUMABLE_CHANGES = ("train.epochs", "train.jit_compile")
# How step logs are combined into the epoch's row: counts are summed, the loss scale is the
# latest, everything else is the mean over the epoch's steps (as Keras' Mean trackers did).
SUM_KEYS = ("skipped_steps",)
LAST_KEYS = ("loss_scale", "learning_rate")

_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def epoch_seed(seed, epoch):
    """The data-order seed of one epoch: a pure function of (seed, epoch), so the order of any
    epoch can be rebuilt after a restart (31 bits: tf.data takes int64 seeds, numpy int32)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0] >> 1)


# ----------------------------------------------------------------------------------------------
# fingerprint: what must not change between the sessions of one run

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


def data_files(root):
    """[relative name, size] of every file under the training folder: what "the data changed"
    means for a resumed run (a file added, removed or rewritten with another size)."""
    listing = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            listing.append([os.path.relpath(path, root), os.path.getsize(path)])
    return sorted(listing)


def data_changes(saved, current):
    """What changed between two ``data_files`` listings, in words ("" when nothing did)."""
    then, now = dict(map(tuple, saved)), dict(map(tuple, current))
    parts = [f"{len(then)} files then, {len(now)} now"] if len(then) != len(now) else []
    for what, names in (("added", sorted(set(now) - set(then))),
                        ("removed", sorted(set(then) - set(now))),
                        ("resized", sorted(n for n in set(then) & set(now) if then[n] != now[n]))):
        if names:
            parts.append(f"{what}: " + ", ".join(names[:3]) + (" ..." if len(names) > 3 else ""))
    return "; ".join(parts)


def differences(saved, current):
    """One line per field that differs between two fingerprints, for the refusal message.
    (A 0.1/0.2 run spelled its precision as Keras' policy, ``float32``: the same precision.)"""
    saved, current = _same_spellings(saved), _same_spellings(current)
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k, '(absent)')!r} in the run folder, {current.get(k, '(absent)')!r} now"
            for k in keys if saved.get(k) != current.get(k)]


def _same_spellings(prints):
    if "train.precision" not in prints:
        return prints
    return dict(prints, **{"train.precision": precisions.canonical(prints["train.precision"])})


# ----------------------------------------------------------------------------------------------
# the header: where the run is, and the running sums of the epoch in progress

def new_header(prints, seed):
    """The header of a run that has not taken a step yet."""
    return {"fingerprint": prints, "seed": int(seed), "epoch": 0, "batches_done": 0,
            "global_step": 0, "history": [], "sums": {}, "count": 0, "last": {},
            "seconds": 0.0, "sessions": []}


def book_step(header, logs):
    """Count one step and add its logs to the epoch's running sums (kept in the header, so an
    epoch's mean survives a restart in the middle of it)."""
    header["global_step"] += 1
    header["batches_done"] += 1
    sums = header["sums"]
    for key, value in logs.items():
        sums[key] = sums.get(key, 0.0) + value
    header["last"].update(logs)
    header["count"] += 1


def epoch_means(header):
    """The epoch's row from its running sums (see SUM_KEYS and LAST_KEYS)."""
    sums, count, last = header["sums"], header["count"], header["last"]
    row = {}
    for key, value in sums.items():
        if key in SUM_KEYS:
            row[key] = value
        elif key in LAST_KEYS:
            row[key] = last[key]
        else:
            row[key] = value / max(count, 1)
    return row


def book_epoch(header, row, per_epoch):
    """Put the epoch's row into the history (replacing a partial one of the same epoch); after a
    full epoch the next one starts with empty sums."""
    epoch = row["epoch"]
    header["history"] = [r for r in header["history"] if r["epoch"] != epoch] + [row]
    if header["batches_done"] >= per_epoch:
        header.update(epoch=epoch + 1, batches_done=0, sums={}, count=0, last={})


# ----------------------------------------------------------------------------------------------
# the file

def _state_variables(model):
    """Everything a step changes: weights, BN moving statistics, optimizer slots and iterations."""
    return list(model.variables) + list(model.optimizer.variables)


def save_state(path, model, state):
    """Write the full training state to ``path`` (one .npz: variables + a JSON header), atomically."""
    variables = _state_variables(model)
    header = dict(state, format=STATE_FORMAT, variables=[v.path for v in variables])
    arrays = {"state": np.array(json.dumps(header))}
    arrays.update({f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(variables)})
    files.atomic_write(path, lambda f: np.savez(f, **arrays), mode="wb", error=CheckpointError)


def _normal_path(path):
    """A variable path without Keras' per-process suffix of the top name ("adam_1/..." is the
    second Adam built in a process)."""
    head, _, rest = path.partition("/")
    return re.sub(r"_\d+$", "", head) + "/" + rest


def _unreadable(path, err):
    return CheckpointError(f"{path}: unreadable training state ({err}); pass --force to start"
                           " the run over")


def read_state_header(path):
    """The JSON header of a state file (no variables read); CheckpointError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["state"]))
    except _UNREADABLE as err:
        raise _unreadable(path, err) from None
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
    moved = [f"{now} vs {was}" for now, was in zip((_normal_path(v.path) for v in variables), saved)
             if now != was]
    if moved:
        raise CheckpointError(f"{path}: training state does not fit the model (variables differ:"
                              f" {', '.join(moved[:3])}); pass --force to start over")
    try:
        with np.load(path, allow_pickle=False) as data:
            values = [data[f"v{i:04d}"] for i in range(len(variables))]
    except _UNREADABLE as err:
        raise _unreadable(path, err) from None
    bad = [f"{v.path} {tuple(v.shape)} vs {a.shape}" for v, a in zip(variables, values)
           if tuple(v.shape) != a.shape]
    if bad:
        raise CheckpointError(f"{path}: training state does not fit the model (shapes differ:"
                              f" {', '.join(bad[:3])}); pass --force to start over")
    for v, a in zip(variables, values):
        v.assign(a)
    return header


def resume_state(path, model):
    """:func:`restore_state`, then a check that the optimizer counts the steps it was saved with
    (the learning-rate schedule counts them)."""
    header = restore_state(path, model)
    iterations = int(model.optimizer.iterations.numpy())
    saved = header.get("optimizer_iterations", header["global_step"])
    if iterations != saved:
        raise CheckpointError(f"{path}: optimizer iterations {iterations} after restoring,"
                              f" {saved} when saved; pass --force to start over")
    return header
