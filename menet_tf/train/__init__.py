"""The training run: folders, saved state, records, time and devices around model.multitask.

The model knows how to take one step; this package knows where a run lives, how it resumes,
what it records and on which devices it runs. Imports model, data and the basics.

    run.py         train_run: what to run, and whether the run folder may take it
    loop.py        one session's epoch/step loop, from build or restore to the final model
    state.py       state.npz: save, restore, fingerprint, data-order seeds
    records.py     run.json, history.csv, curves.png, eval.json, TensorBoard scalars
    distribute.py  the tf.distribute strategies of --strategy
"""
import os

from menet_tf import _compat

# Where a run without data trains (the synthetic heavy-rain set, generated there if missing).
# Here, not in run.py, so that `menet-tf --help` can name it without importing numpy.
DEFAULT_DATA = os.path.join("data", "synthetic", "heavy")

__getattr__ = _compat.package_getattr(__name__)
