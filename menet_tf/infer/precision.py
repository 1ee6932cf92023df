"""Inference precision: the one place that says what fp32, bf16 and fp16 mean and how a model
runs in them.

Why one rule: ``derain``, ``evaluate``, ``export``, ``bench`` and ``serve`` take the same
``--precision``, and must mean the same thing by it.

- fp32: the model as trained (float32 everywhere).
- bf16 / fp16: a twin of the network under Keras' ``mixed_bfloat16`` / ``mixed_float16`` policy
  (``half_precision_twin``) holding the model's weights with batch norm folded into the
  convolutions in float32; each folded kernel and bias is then rounded to the half type once:
  the traced function is frozen (variables to constants, ``frozen``), so TensorFlow's graph
  optimiser computes the casts when the graph is first run, not on every call. Images go in
  and come out as float32 0..255; the global residual, the output clip and channel
  attention's image-wide mean (taken by ``menet_tf.infer.derainer``) are float32.

bf16 is fast where the CPU has bfloat16 instructions (AVX512_BF16, AMX) and oneDNN runs
(TensorFlow's default on such CPUs). Elsewhere it still runs, and ``cpu_note`` gives the one
line that says what to expect (measured on an AVX512_BF16 EPYC, docs/speed.md): with oneDNN
but without bfloat16 instructions oneDNN emulates them, about 2.5x slower than fp32; without
oneDNN, TensorFlow's own kernels convert to float32 and run at fp32's speed. fp16 is for GPUs.
"""
import collections

from menet_tf import precisions
from menet_tf.errors import MenetError

PRECISIONS = precisions.NAMES  # fp32, bf16, fp16: the one vocabulary (menet_tf.precisions)

#: name: the --precision value; dtype: the compute dtype's name; policy: the Keras dtype policy
#: of the network twin ("float32" for fp32, which runs the model itself).
Precision = collections.namedtuple("Precision", "name dtype policy")

_TABLE = {name: Precision(name, precisions.DTYPES[name], precisions.POLICIES[name])
          for name in PRECISIONS}


def resolve(precision):
    """The ``Precision`` (name, dtype, policy) of "fp32", "bf16" or "fp16" (or a dtype /
    Keras policy name of one: "bfloat16", "mixed_bfloat16", ...)."""
    if isinstance(precision, Precision):
        return precision
    return _TABLE[precisions.canonical(precision, error=MenetError)]


def tf_dtype(precision):
    """The TensorFlow compute dtype of ``precision``."""
    import tensorflow as tf

    return tf.as_dtype(resolve(precision).dtype)


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _onednn():
    from menet_tf.model.conv_gradient import onednn_enabled

    return onednn_enabled()


def cpu_note(precision, cpu=None, gpu=None, onednn=None):
    """The one line to print when ``precision`` runs slower than fp32 on this CPU, else None.

    ``cpu`` (``menet_tf.machine.cpu_info()``), ``gpu`` (a GPU is visible) and ``onednn``
    (TensorFlow runs oneDNN's kernels) are looked up when not given (tests give them).
    """
    name = resolve(precision).name
    if name == "fp32":
        return None
    if gpu is None:
        gpu = _has_gpu()
    if gpu:
        return None  # a GPU runs the network: bf16 and fp16 are what it is made for
    if name == "fp16":
        return ("note: fp16 is meant for GPUs: on a CPU it runs, but no faster than fp32 (up to"
                " 1.3x slower: TensorFlow has no fast float16 convolutions for CPUs); bf16 is the"
                " fast half precision on CPUs with AVX512_BF16 or AMX")
    if cpu is None:
        from menet_tf.machine import cpu_info

        cpu = cpu_info()
    if onednn is None:
        onednn = _onednn()
    if not onednn:
        return ("note: bf16 runs no faster than fp32 here: oneDNN is off (TensorFlow's default"
                " on CPUs without AVX512_VNNI, AVX512_BF16 or AMX; TF_ENABLE_ONEDNN_OPTS=1 turns"
                " it on), so TensorFlow's own kernels compute it in float32; fp32 is as fast")
    if not (cpu.get("avx512_bf16") or cpu.get("amx")):
        return ("note: this CPU has no bfloat16 instructions (AVX512_BF16 or AMX): bf16 runs,"
                " but about 2.5x slower than fp32 here (oneDNN emulates them); fp32 is faster")
    return None


def half_precision_twin(model, precision):
    """The network of ``model`` (a built MENET / MultiTaskMENET) under ``precision``'s Keras
    policy, holding its weights with batch norm already folded (a plain MENET: inference needs
    no tasks). The copy is taken now: later changes to ``model``'s weights do not reach it.

    Why folded here: under a mixed policy Keras hands a layer its kernel already cast to the
    compute dtype, so folding inside the twin would round each kernel twice (before and after
    the batch-norm scale). Each conv -> BN pair of the twin instead gets the folded float32
    kernel and a batch norm that only adds the folded bias (scale 1, mean 0), so every kernel
    and bias is rounded to bfloat16/float16 once.
    """
    import numpy as np
    import tensorflow as tf

    from menet_tf.model.network import MENET

    policy = resolve(precision).policy
    if not isinstance(model, MENET):
        raise MenetError(f"{getattr(model, 'name', type(model).__name__)}: only a MENET network"
                         f" can run in {precision} (got a {type(model).__name__})")
    twin = MENET(depth=model.depth, attention=model.attention_block or False, dtype=policy,
                 name=model.name)
    twin.ensure_built()
    source = {v.path: v for v in model.weights}
    missing = [v.path for v in twin.weights if v.path not in source]
    if missing:
        raise MenetError(f"{model.name}: cannot run in {precision}: its weights do not match"
                         f" the network's (no {missing[0]})")
    for v in twin.weights:
        v.assign(tf.cast(source[v.path], v.dtype))
    originals = {layer.conv.kernel.path: layer for layer in _conv_bn_layers(model)}
    for layer in _conv_bn_layers(twin):
        kernel, bias = originals[layer.conv.kernel.path].folded_weights()
        layer.conv.kernel.assign(kernel)
        if getattr(layer.conv, "bias", None) is not None:
            layer.conv.bias.assign(tf.zeros_like(layer.conv.bias))
        bn = layer.bn
        bn.gamma.assign(tf.ones_like(bn.gamma))
        bn.beta.assign(bias)
        bn.moving_mean.assign(tf.zeros_like(bn.moving_mean))
        # rsqrt(variance + epsilon) is 1 to a float32 rounding, which cannot move a value
        # already rounded to bfloat16/float16.
        bn.moving_variance.assign(tf.fill(bn.moving_variance.shape,
                                          np.float32(1.0) - np.float32(bn.epsilon)))
    return twin


def _conv_bn_layers(model):
    from menet_tf.model.layers import ConvBN

    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, ConvBN)]


def frozen(concrete_function, exportable=False):
    """``concrete_function`` with every variable turned into a constant, as a function of its
    inputs returning the list of its outputs.

    Why: with constant weights, TensorFlow's graph optimiser computes the batch-norm fold and the
    cast of each kernel and bias to bfloat16/float16 once, when the graph is first run; read
    from variables they would be recomputed on every call. ``exportable``: also drop the
    custom-gradient marks (the output clip's), which a SavedModel could not save without the
    variables they were traced with (inference needs no gradient); this re-imports the graph,
    which takes a second or two, so only ``export`` asks for it.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    constant = convert_variables_to_constants_v2(concrete_function)
    return _without_gradient_marks(constant) if exportable else constant


def _without_gradient_marks(function):
    import tensorflow as tf

    graph_def = function.graph.as_graph_def()
    nodes = list(graph_def.node)
    for library_function in graph_def.library.function:
        nodes += library_function.node_def
    for node in nodes:
        node.attr.pop("_gradient_op_type", None)
    wrapped = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    element = wrapped.graph.as_graph_element
    return wrapped.prune([element(t.name) for t in function.inputs],
                         [element(t.name) for t in function.outputs])
