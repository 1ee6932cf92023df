"""Inference: any model source to a Derainer, photos of any size, exported models.

Imports model, authors.checkpoint (to read the authors' TF1 checkpoints), data and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
