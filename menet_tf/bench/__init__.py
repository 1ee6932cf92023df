"""Speed: the port's inference and training step, the authors' graph, the input pipeline.

timing holds the one interleaved timing loop (compare uses it too); roofline measures the
machine's practical peaks and flops counts the network's FLOPs from its traced graph, for the
bench's GFLOP/s and share-of-peak columns. sections, gpu and gpu_sections are the library half
of ``make gpu-check``. Imports infer, model, data, authors and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
