"""Running a table of the paper: train every row that is missing or half done, score each model,
write the table and the figures.

:func:`run_table` goes through ``menet_tf.train.run.train_run`` for every row, which resumes, so
re-running the same command continues a table where it stopped; a row is scored again only when
its model is newer than its scores or the scoring crop changed. The ``quick`` form runs the same
rows with small crops and few steps, sized for a CPU; its numbers say so wherever they are
written.
"""
import csv
import os

from menet_tf.evaluation.figures import GRID_IMAGES, figures
from menet_tf.evaluation.scoring import evaluate
from menet_tf.evaluation.table_plan import (
    data_splits, load_table, plan_table, row_state, table_data)
from menet_tf.evaluation.tabulate import write_table
from menet_tf.files import read_json
from menet_tf.locks import TABLE_LOCK as LOCK_FILE, FolderLock
from menet_tf.train.records import read_run_record



def run_table(experiment, runs, data=None, *, quick=False, dataset=None, steps=None,
              overrides=None, vgg_weights=None, seed=0, cache=False, steps_per_epoch=None,
              save_every_steps=200, grid_images=GRID_IMAGES, eval_crop_size=None, progress=True,
              message=print):
    """Train what is missing, resume what is half done, evaluate, write the table and figures.

    Returns the list of result dicts (one per row). ``overrides``: crop_size, batch_size,
    epochs, depth, jit_compile (as ``menet-tf train`` takes them; see ``row_config``).
    ``cache``: each row's training images decoded once per session on disk (as ``train_run``).
    """
    spec = load_table(experiment)
    data, dataset, synthetic = table_data(data, dataset, quick, message)
    what = f"{spec['title'].split(':')[0]}{' (quick form)' if quick else ''}"
    train_root, test_root, test_split = data_splits(data, dataset, what)
    if quick and steps is None:
        steps = spec["quick"]["steps"]
    meta = {"spec": spec, "data": os.path.abspath(data), "train": train_root, "test": test_root,
            "test_split": test_split,
            "dataset": dataset, "quick": quick, "synthetic": synthetic, "steps": steps,
            "eval_crop": eval_crop_size or (spec["quick"]["eval_crop_size"] if quick else 224)}
    training = {"data": data, "seed": seed, "steps": steps, "save_every_steps": save_every_steps,
                "tensorboard": not quick, "cache": cache, "steps_per_epoch": steps_per_epoch,
                "progress": progress, "log": message}
    os.makedirs(runs, exist_ok=True)
    with RunsLock(runs):
        plan = plan_table(spec, runs, quick=quick, overrides=overrides, vgg_weights=vgg_weights)
        _say_plan(plan, f"{spec['title']} on {data}" + (" (quick form)" if quick else "")
                  + f"; runs in {runs}", message)
        results = [_run_row(row, config, state, reason, os.path.join(runs, row["id"]), training,
                            meta, grid_images, progress, message)
                   for row, config, state, reason in plan]
        write_table(results, meta, runs)
        figures(results, meta, runs, grid_images)
    return results


def RunsLock(runs):
    """One `menet-tf table` per runs folder: a second one on the same rows would train them
    twice over each other's state (``menet_tf.locks``: a stale lock is taken over)."""
    return FolderLock(runs, LOCK_FILE, "`menet-tf table`", "wait for it, or use another -o/--out")


def _say_plan(plan, heading, message):
    message(heading)
    for row, config, state, reason in plan:
        message(f"  {row['id']:<16} {config.name:<38} {state}" + (f": {reason}" if reason else ""))


def _run_row(row, config, state, reason, folder, training, meta, grid_images, progress, message):
    """Train (or resume) and score one row; its result dict (summary, per-image metrics, run)."""
    result = {"row": row, "config": config, "state": state, "skip": reason, "folder": folder}
    if reason:
        message(f"skipped {row['id']}: {reason}")
        return result
    _train_row(row, config, state, folder, training, message)
    eval_dir = os.path.join(folder, "evaluation")
    _evaluate_row(row, folder, eval_dir, meta, grid_images, progress, message)
    result["summary"] = read_json(os.path.join(eval_dir, "summary.json"))
    result["metrics"] = _read_metrics(os.path.join(eval_dir, "metrics.csv"))
    result["run"] = _run_info(folder)
    return result


def _train_row(row, config, state, folder, training, message):
    # Always through train_run: it continues a half-done run, extends a finished one when
    # more steps/epochs are asked, refuses a folder of another configuration, and says
    # RunFinishedError (at once) when there is nothing to do.
    from menet_tf.train import run as trainer

    if state in ("missing", "half done"):
        message(f"training {row['id']} ({config.name})"
                + (" - resuming" if state == "half done" else ""))
    try:
        trainer.train_run(config, out=folder, resume="auto", **training)
    except trainer.RunFinishedError:
        pass  # trained already: keep it


def _evaluate_row(row, folder, eval_dir, meta, grid_images, progress, message):
    """Score the row's model unless its scores are newer than it and of the same crop."""
    previous = read_json(os.path.join(eval_dir, "summary.json")) or {}
    if row_state(folder) == "evaluated" and (previous.get("authors") or {}).get(
            "crop_size") == meta["eval_crop"]:
        return
    message(f"evaluating {row['id']} on {meta['test']}")
    evaluate(folder, meta["test"], eval_dir, crop_size=meta["eval_crop"],
             save_images=grid_images, progress=progress)


def _read_metrics(path):
    try:
        with open(path) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _run_info(folder):
    """Training steps and seconds of a run, from its record (run.json)."""
    info = read_run_record(folder)
    flat = dict(info)
    for value in info.values():
        if isinstance(value, dict):
            flat = {**value, **flat}
    steps = next((flat[k] for k in ("steps", "global_step", "step", "steps_done") if
                  isinstance(flat.get(k), (int, float))), None)
    seconds = next((flat[k] for k in ("seconds", "train_seconds", "training_seconds",
                                      "elapsed_seconds") if isinstance(flat.get(k), (int, float))),
                   None)
    return {"steps": steps, "seconds": seconds}
