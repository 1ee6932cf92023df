"""Scoring: the three protocols (authors, Y, RGB), ``evaluate``, the paper's tables and figures.

Named ``evaluation`` so that ``menet_tf.evaluate`` stays the function. Imports infer, train,
data, model and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
