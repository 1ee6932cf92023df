"""Trained models that ship inside menet-tf, so de-raining works right after install.

- ``registry.json``: each bundled model's weights file, checksum, configuration, training and
  measured scores; ``<name>.weights.h5``: its weights (no optimizer);
- ``registry``: reading the registry, checking a weights file before it is loaded;
- ``card``: a model card (markdown) rendered from a registry entry.

It imports only the basics: ``infer`` loads bundled models through it. What writes the registry
and the weights (``menet-tf models add``) sits high, in ``menet_tf.publish``.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
