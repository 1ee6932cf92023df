"""The port run beside the authors' released graphs: outputs, losses, gradients, steps, speed.

Above infer and bench, whose Derainer and timing loop it uses; nothing but cli imports it.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
