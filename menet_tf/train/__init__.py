"""The training run: folders, saved state, records, time and devices around model.multitask.

The model knows how to take one step; this package knows where a run lives, how it resumes,
what it records and on which devices it runs. Imports model, data and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
