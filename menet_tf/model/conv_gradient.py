"""How MENET's convolutions are differentiated: TensorFlow's backprop kernels, or the same sums
as forward convolutions.

On a CPU running TensorFlow's own (Eigen) kernels, Conv2DBackpropInput and Conv2DBackpropFilter
are slower than the forward convolution, so there both gradients of a 3x3 SAME convolution are
computed as forward convolutions; with oneDNN or on a GPU the backprop kernels are as fast, and
stay. The choice is read when a step is traced (``set_conv_gradient``); ``Conv`` is the layer
that applies it, with the variables and checkpoints of keras' Conv2D.
"""
import contextlib
import os

import keras
import tensorflow as tf

from menet_tf.errors import MenetError

CONV_GRADIENTS = ("auto", "native", "convolution")
_conv_gradient_setting = "auto"


def onednn_enabled():
    """Whether this process runs TensorFlow's oneDNN kernels on the CPU (TF_ENABLE_ONEDNN_OPTS;
    TensorFlow's default is on only for x86 CPUs with AVX-512 VNNI/BF16 or AMX)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # pragma: no cover - a TensorFlow without the probe
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("1", "true")


def set_conv_gradient(mode):
    """How the 3x3 convolutions are differentiated; read when a step is traced. Returns the
    previous setting.

    "native": TensorFlow's Conv2DBackpropInput / Conv2DBackpropFilter kernels. "convolution":
    both gradients as FORWARD convolutions (``conv_input_gradient``, ``conv_filter_gradient``),
    the same sums in another order. "auto" (default): "convolution" on a CPU running
    TensorFlow's own (Eigen) kernels, whose backprop kernels are slower than its forward
    convolution; "native" on GPUs and with oneDNN, whose backprop kernels are as fast as its
    forward ones (and whose large-kernel forward convolution would make the filter gradient
    slower this way).
    """
    global _conv_gradient_setting
    if mode not in CONV_GRADIENTS:
        raise MenetError(f"conv gradient must be one of {CONV_GRADIENTS}, got {mode!r}")
    previous, _conv_gradient_setting = _conv_gradient_setting, mode
    return previous


@contextlib.contextmanager
def conv_gradients(mode):
    """Within this block, ``set_conv_gradient(mode)``; the previous setting afterwards."""
    previous = set_conv_gradient(mode)
    try:
        yield
    finally:
        set_conv_gradient(previous)


def conv_gradient():
    """The conv gradient in force: "native" or "convolution" (``set_conv_gradient``)."""
    if _conv_gradient_setting != "auto":
        return _conv_gradient_setting
    if tf.config.list_physical_devices("GPU") or onednn_enabled():
        return "native"
    return "convolution"


def conv_input_gradient(dy, kernel):
    """d(conv2d(x, kernel, SAME))/dx for an odd square kernel at stride 1: the convolution of
    the output gradient with the kernel turned by 180 degrees and its channels swapped."""
    flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
    return tf.nn.conv2d(dy, flipped, 1, "SAME")


def conv_filter_gradient(x, dy, kernel_shape):
    """d(conv2d(x, kernel, SAME))/dkernel at stride 1 (``kernel_shape`` static [k, k, C, D]).

    "convolution": sum_nhw x[n, h+i, w+j, c] dy[n, h, w, d] is a VALID convolution of the
    padded input with channels and batch swapped ([C, H+2p, W+2p, N]) by the output gradient
    as a kernel ([H, W, N, D]); "native": TensorFlow's Conv2DBackpropFilter.
    """
    k = int(kernel_shape[0])
    if conv_gradient() == "native" or k % 2 == 0:
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[int(d) for d in kernel_shape], out_backprop=dy,
            strides=[1, 1, 1, 1], padding="SAME", data_format="NHWC")
    p = k // 2
    padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
    gradient = tf.nn.conv2d(tf.transpose(padded, [3, 1, 2, 0]), tf.transpose(dy, [1, 2, 0, 3]),
                            1, "VALID")
    return tf.transpose(gradient, [1, 2, 0, 3])


@tf.custom_gradient
def _conv_with_convolution_gradients(x, kernel):
    def gradient(dy):
        return conv_input_gradient(dy, kernel), conv_filter_gradient(x, dy, kernel.shape)

    return tf.nn.conv2d(x, kernel, 1, "SAME"), gradient


class Conv(keras.layers.Conv2D):
    """keras Conv2D (same variables and checkpoints) whose 3x3 gradients are forward
    convolutions where that is faster (``set_conv_gradient``); the forward pass is unchanged."""

    def call(self, inputs):
        if not self._has_convolution_gradients() or conv_gradient() == "native":
            return super().call(inputs)
        return _conv_with_convolution_gradients(inputs, tf.cast(self.kernel, inputs.dtype))

    def _has_convolution_gradients(self):
        """The convolutions ``conv_input_gradient`` covers: odd square kernel, stride 1, SAME,
        no dilation, groups or bias."""
        return (self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
                and self.padding == "same" and not self.use_bias and self.kernel_size[0] > 1
                and self.kernel_size[0] % 2 == 1 and self.kernel_size[0] == self.kernel_size[1])
