"""The training run: folders, saved state, records, time and devices around model.multitask.

The model knows how to take one step; this package knows where a run lives, how it resumes,
what it records and on which devices it runs. Imports model, data and the basics.

    run.py         train_run: what to run, and whether the run folder may take it
    loop.py        one session's epoch/step loop, from build or restore to the final model
    state.py       state.npz: save, restore, fingerprint, data-order seeds
    records.py     run.json, history.csv, curves.png, eval.json, TensorBoard scalars
    distribute.py  the tf.distribute strategies of --strategy
    finetune.py    --init: starting from another model's weights (checked, recorded)
"""
import os
import time

from menet_tf.errors import ConfigError

from menet_tf import _compat

# Where a run without data trains (the synthetic heavy-rain set, generated there if missing).
# Here, not in run.py, so that `menet-tf --help` can name it without importing numpy.
DEFAULT_DATA = os.path.join("data", "synthetic", "heavy")


def stop_after(seconds):
    """A ``stop`` hook for ``train_run``: True once ``seconds`` of wall-clock time have passed
    since this call. The run then stops after the step in progress, with its state saved, and
    continues when run again (why a budget: a machine or a job slot shared for a fixed time)."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise ConfigError(f"a time budget is a number of seconds, got {seconds!r}") from None
    if not seconds >= 0:
        raise ConfigError(f"a time budget must be zero or more seconds, got {seconds:g}")
    deadline = time.monotonic() + seconds

    def stop(global_step):
        return time.monotonic() >= deadline

    return stop


_package_getattr = _compat.package_getattr(__name__)


def __getattr__(name):
    """``menet_tf.train.train_run`` on first use (``import menet_tf.train`` stays light), then
    the sub-modules and 0.1's names."""
    if name == "train_run":
        from menet_tf.train.run import train_run

        return train_run
    return _package_getattr(name)
