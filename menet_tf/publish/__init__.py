"""Publishing a trained model: bundling it with menet-tf (weights, measured scores, registry
entry, model card).

It sits high, beside compare: it loads models (infer), scores them (evaluation) and reads run
records (train); what it writes, the registry and the weights, is read by the low
``menet_tf.bundled``. Nothing but cli imports it.
"""
from menet_tf import _compat

__getattr__ = _compat.package_getattr(__name__)
