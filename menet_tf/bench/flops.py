"""MENET's floating-point operations, counted from the model itself: the roofline's numerator.

``menet-tf bench`` divides these counts by its timings to print achieved GFLOP/s. They come
from the traced TensorFlow graph of the very computation that is timed (a forward pass, or a
whole training step with its backward pass, loss networks and gradient balance), not from a
hand formula: change the network or the losses and the count follows.

Only the ops that run are counted: the graph is pruned to what its outputs and its stateful ops
(variable updates) need, as TensorFlow's executor prunes it. "Dense" FLOPs are those of
convolutions (forward, input- and kernel-gradient, depthwise) and matrix products, 2 per
multiply-add: exact from static shapes, and the work the practical peaks of
``menet_tf.bench.roofline`` measure. The other float ops (element-wise, reductions, batch norm)
are an estimate, one per element, kept apart. The forward convolutions are cross-checked against
TensorFlow's own registered FLOP statistics (the TF profiler's table) in ``tf_registered_flops``.
"""
import numpy as np

# FLOPs of one op from static shapes; every function gets (op) and returns an int.
# Forward and gradient convolutions all do 2 * (forward output elements) * kh * kw * c_in.


def _elements(shape):
    return int(np.prod(shape, dtype=np.int64))


def _static(tensor):
    """The fully known shape of ``tensor`` as a list, else None."""
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        return None
    return shape.as_list()


def _const_shape(tensor):
    """The value of a shape operand (a Const, or the known shape a Shape/ShapeN op reads)."""
    from tensorflow.python.framework import tensor_util

    op = tensor.op
    if op.type == "Const":
        return [int(v) for v in tensor_util.MakeNdarray(op.get_attr("value")).ravel()]
    if op.type in ("Shape", "ShapeN"):
        return _static(op.inputs[tensor.value_index])
    return None


def _forward_output(op):
    return _static(op.outputs[0])


def _output_gradient(op):  # dy of a convolution's backprop ops: the forward output's shape
    return _static(op.inputs[2])


def _kernel(op):
    return _static(op.inputs[1])


def _kernel_of_gradient(op):  # a kernel-gradient op gets the kernel's shape as an operand
    return _const_shape(op.inputs[1]) or _static(op.outputs[0])


def _convolution(forward_output, kernel, taps):
    """A convolution op's rule: 2 x (forward output elements) x the product of the kernel's
    first ``taps`` dims (kh, kw, c_in for Conv2D; kh, kw for depthwise)."""
    def flops(op):
        out, k = forward_output(op), kernel(op)
        return None if out is None or k is None else 2 * _elements(out) * _elements(k[:taps])
    return flops


def _matmul(op):
    a, out = _static(op.inputs[0]), _static(op.outputs[0])
    if a is None or out is None:
        return None
    transpose = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    inner = a[-2] if transpose else a[-1]
    return 2 * _elements(out) * inner


DENSE = {
    "Conv2D": _convolution(_forward_output, _kernel, 3),
    "Conv2DBackpropInput": _convolution(_output_gradient, _kernel, 3),
    "Conv2DBackpropFilter": _convolution(_output_gradient, _kernel_of_gradient, 3),
    "DepthwiseConv2dNative": _convolution(_forward_output, _kernel, 2),
    "DepthwiseConv2dNativeBackpropInput": _convolution(_output_gradient, _kernel, 2),
    "DepthwiseConv2dNativeBackpropFilter": _convolution(_output_gradient, _kernel_of_gradient, 2),
    "MatMul": _matmul,
    "BatchMatMul": _matmul,
    "BatchMatMulV2": _matmul,
    "BatchMatMulV3": _matmul,
}
# Float ops estimated at one per output element (reductions: per input element).
ELEMENTWISE = frozenset((
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "DivNoNan", "Neg", "Square", "SquaredDifference",
    "Sqrt", "Rsqrt", "Log", "Exp", "Sigmoid", "SigmoidGrad", "Relu", "ReluGrad", "Maximum",
    "Minimum", "BiasAdd", "BiasAddGrad", "Abs", "Pow", "Tanh", "TanhGrad", "Reciprocal",
    "FusedBatchNormV3", "FusedBatchNormGradV3", "AddN",
))
REDUCTIONS = frozenset(("Sum", "Mean", "Max", "Min", "Prod"))


def executed_ops(graph, outputs=None):
    """The ops of ``graph`` that run when its outputs are fetched: every ancestor (data or
    control) of ``outputs`` (default: the function graph's outputs and control outputs, which
    hold its variable updates)."""
    if outputs is None:
        outputs = list(graph.outputs) + list(getattr(graph, "control_outputs", []))
    stack = [t.op if hasattr(t, "op") else t for t in outputs]
    seen = {}
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return list(seen.values())


def _float(op):
    return bool(op.outputs) and op.outputs[0].dtype.is_floating


def count_ops(ops):
    """{"dense": FLOPs of convolutions and matrix products (exact), "elementwise": estimate,
    "by_type": {op type: dense FLOPs}, "unknown": dense ops whose shapes are not static}."""
    dense, elementwise, by_type, unknown = 0, 0, {}, []
    for op in ops:
        rule = DENSE.get(op.type)
        if rule is not None:
            flops = rule(op)
            if flops is None:
                unknown.append(op.name)
                continue
            dense += flops
            by_type[op.type] = by_type.get(op.type, 0) + flops
        elif _float(op) and (op.type in ELEMENTWISE or op.type in REDUCTIONS):
            shape = _static(op.inputs[0] if op.type in REDUCTIONS else op.outputs[0])
            if shape is not None:
                n = _elements(shape)
                elementwise += n * (len(op.inputs) - 1) if op.type == "AddN" else n
    return {"dense": int(dense), "elementwise": int(elementwise),
            "by_type": {k: int(v) for k, v in sorted(by_type.items())}, "unknown": unknown}


def tf_registered_flops(ops):
    """TensorFlow's own FLOP statistics (``ops.RegisterStatistics(..., "flops")``, what the TF
    profiler sums) of the ops it has one for: {op type: FLOPs}. A cross-check of ``count_ops``
    on forward convolutions (TensorFlow registers none for the gradient ones)."""
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.util import deprecation

    out = {}
    for op in ops:
        if op.type not in DENSE:
            continue
        try:
            with deprecation.silence():  # the statistics call a TF1 shape helper, which warns
                stats = tf_ops.get_stats_for_node_def(op.graph, op.node_def, "flops")
        except (ValueError, LookupError):
            continue
        if stats.value is not None:
            out[op.type] = out.get(op.type, 0) + int(stats.value)
    return out


def _graph_flops(graph, what):
    ops = executed_ops(graph)
    counted = count_ops(ops)
    counted["tf_registered"] = tf_registered_flops(ops)
    counted["what"] = what
    return counted


def forward_flops(model, batch, height, width):
    """FLOPs of one inference pass of ``model`` on [batch, height, width, 3] (moving statistics,
    batch norm unfolded: folding changes no convolution)."""
    import tensorflow as tf

    model.ensure_built()
    spec = tf.TensorSpec([batch, height, width, 3], tf.float32)
    graph = tf.function(lambda x: model(x, training=False), autograph=False) \
        .get_concrete_function(spec).graph
    return _graph_flops(graph, f"forward pass, [{batch}, {height}, {width}, 3]")


def train_step_flops(model, batch, height, width):
    """FLOPs of one training step of ``model`` (``model.train_step``: forward, task losses,
    gradient balance, backward pass, optimizer update) on [batch, height, width, 3] pairs.

    The optimizer update runs inside a conditional (skipped on a non-finite gradient); its few
    element-wise ops per weight are not counted."""
    import tensorflow as tf

    model.ensure_built()
    spec = tf.TensorSpec([batch, height, width, 3], tf.float32)
    graph = tf.function(model.train_step).get_concrete_function((spec, spec)).graph
    return _graph_flops(graph, f"training step, batches of [{batch}, {height}, {width}, 3]")
