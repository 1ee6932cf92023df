"""Inference: any model source to a Derainer (``load``), the network on images of any size
(``derainer``, ``tiling``) over a runner (``runner``: ``keras_runner`` in fp32, bf16 or fp16, see
``precision``; ``saved_model_runner``; the optional OpenVINO runtime, ``openvino_backend``),
users' photo files (``photos``, ``batch``) and video files (``video``, ``video_io``,
``video_files``; the optional extra), exported models (``export``).

Imports model, authors.checkpoint (to read the authors' TF1 checkpoints), data and the basics.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
