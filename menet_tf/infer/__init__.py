"""Inference: any model source to a Derainer (``load``), the network on images of any size
(``derainer``, ``tiling``) in fp32, bf16 or fp16 (``precision``), the optional OpenVINO runtime
(``openvino_backend``), users' photo files (``photos``, ``batch``), exported models (``export``).

Imports model, authors.checkpoint (to read the authors' TF1 checkpoints), data and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
