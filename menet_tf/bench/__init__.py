"""Speed: the port's inference and training step, the authors' graph, the input pipeline.

timing holds the one interleaved timing loop (compare uses it too). Imports infer, model, data,
authors and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
