"""The MENET de-raining network f_w (MENET_SPEC.md, "De-raining network").

A U-Net-like body: desubpixel (space_to_depth) twice, R residual blocks at 1/4 resolution, an
optional channel-attention block, subpixel (depth_to_space) twice, and a global residual so the
network predicts the rain layer to remove. Images go in and come out as float 0..255.

Every convolution and batch norm carries the scope name the authors' TF1 graph gave it
(``tf1_name``), so ``menet_tf.authors.checkpoint`` can map released checkpoints onto this model without a
hand-written table.
"""
import contextlib
import contextvars
import os

import keras
import tensorflow as tf

from menet_tf.errors import MenetError

def _conv(filters, kernel_size, name):
    """Convolution as in the released graph: stride 1, SAME, no bias, fan-in truncated normal."""
    return Conv(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"),
        name=name,
    )


# ------------------------------------------------------------------------------ conv gradients
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
    TensorFlow's own (Eigen) kernels, where its backprop kernels are slower than its forward
    convolution (measured, 2-core AVX2 AMD EPYC, batch 20: input gradient 87 -> 67 ms and
    filter gradient 101 -> 85 ms at 56x56x64, 66 -> 38 and 56 -> 54 ms at 112x112x16), "native"
    on GPUs and with oneDNN, whose backprop kernels are as fast as its forward ones (and whose
    large-kernel forward convolution made the filter gradient 3-3.5x slower this way).
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
        plain = (self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
                 and self.padding == "same" and not self.use_bias and self.kernel_size[0] > 1
                 and self.kernel_size[0] % 2 == 1 and self.kernel_size[0] == self.kernel_size[1])
        if not plain or conv_gradient() == "native":
            return super().call(inputs)
        return _conv_with_convolution_gradients(inputs, tf.cast(self.kernel, inputs.dtype))


@keras.saving.register_keras_serializable(package="menet_tf")
class FusedBatchNorm(keras.layers.Layer):
    """Batch norm over the channels of NHWC images, run by TF's fused kernel (FusedBatchNormV3).

    Why: Keras 3's BatchNormalization computes moments and normalisation as separate ops, which
    made the training step markedly slower than the authors' TF1 graph (tf.layers with
    fused=True); this layer made the MENET-GB step 1.11x faster (interleaved A/B, 2-core CPU).
    On CPUs the training statistics come from tf.nn.moments (see ``precise_statistics``). The
    variables (gamma, beta, moving_mean, moving_variance, all float32), the
    momentum and epsilon and the moving-statistics update are TF1's: moving -= (moving - batch) *
    (1 - momentum), with the UNBIASED batch variance that the fused kernel returns, as
    tf.layers.batch_normalization did. Half-precision inputs (float16/bfloat16) are normalised by
    the same kernel with float32 statistics. A non-trainable layer always uses the moving
    statistics, like Keras' BatchNormalization.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        # --sync-bn: with several replicas, training uses the moments of the global batch.
        self.synchronized = bool(synchronized)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise MenetError(f"FusedBatchNorm needs NHWC inputs with known channels, got {input_shape}")
        shape = (int(input_shape[-1]),)
        # float32 variables (float64 in a float64 model); under tf.distribute the moving
        # statistics are the mean of every replica's update, as in TF1/Keras 2 multi-GPU.
        dtype = "float64" if self.compute_dtype == "float64" else "float32"
        weight = lambda name, init, trainable: self.add_weight(  # noqa: E731
            shape=shape, name=name, initializer=init, trainable=trainable, autocast=False,
            dtype=dtype, aggregation="none" if trainable else "mean",
        )
        self.gamma = weight("gamma", "ones", True)
        self.beta = weight("beta", "zeros", True)
        self.moving_mean = weight("moving_mean", "zeros", False)
        self.moving_variance = weight("moving_variance", "ones", False)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: shape[0]})

    def call(self, x, training=None):
        x = tf.cast(x, self.compute_dtype)
        training = bool(training) and self.trainable
        if x.dtype == tf.float64:
            return self._unfused(x, training)
        if training and self.synchronized:
            ctx = tf.distribute.get_replica_context()
            if ctx is not None and ctx.num_replicas_in_sync > 1:
                return self._synchronized(x, ctx)
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if not training:
            return _fused_batch_norm(
                x, gamma, beta, tf.convert_to_tensor(self.moving_mean),
                tf.convert_to_tensor(self.moving_variance), self.epsilon, is_training=False,
            )[0]
        if self.precise_statistics():
            y, batch_mean, batch_variance = _batch_norm_precise_statistics(x, gamma, beta, self.epsilon)
        else:
            empty = tf.constant([], tf.float32)
            y, batch_mean, batch_variance = _fused_batch_norm(
                x, gamma, beta, empty, empty, self.epsilon, is_training=True
            )[:3]
        decay = 1.0 - self.momentum
        self.moving_mean.assign_sub((self.moving_mean - batch_mean) * decay)
        self.moving_variance.assign_sub((self.moving_variance - batch_variance) * decay)
        return y

    @staticmethod
    def precise_statistics():
        """Training-mode statistics from tf.nn.moments (pairwise sums) rather than the kernel's own.

        On CPUs TF runs FusedBatchNormV3 with oneDNN, whose batch variance is ~3x less accurate
        (measured: 3e-5 against 1e-5 relative on 250k values per channel); through 20 batch
        norms that moved MENET-GB's gradients up to 0.9% off a float64 computation, where
        Keras' BatchNormalization and the authors' TF1 graph stay within 0.4%
        (tests/test_reference_tf1.py). cuDNN keeps its reserve spaces in its own format (inverse
        variance), so GPUs use the kernel's statistics.
        """
        return not tf.config.list_physical_devices("GPU")

    def _unfused(self, x, training):
        """The same batch norm from separate ops, for dtypes the fused kernel lacks (float64:
        the gradient arbiter of menet_tf.compare.run runs the port in float64)."""
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
            count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
            unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
            decay = 1.0 - self.momentum
            self.moving_mean.assign_sub((self.moving_mean - tf.cast(mean, self.moving_mean.dtype)) * decay)
            self.moving_variance.assign_sub(
                (self.moving_variance - tf.cast(unbiased, self.moving_variance.dtype)) * decay
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        cast = lambda v: tf.cast(v, x.dtype)  # noqa: E731
        return tf.nn.batch_normalization(
            x, cast(mean), cast(variance), cast(self.beta), cast(self.gamma), self.epsilon
        )

    def _synchronized(self, x, ctx):
        """Training batch norm with the moments of the GLOBAL batch: sums all-reduced over the
        replicas, in float32, two passes (mean, then squared deviations) for the precision of
        the fused kernel. The all-reduce has a gradient, so the backward pass is global too."""
        sum_op = tf.distribute.ReduceOp.SUM
        x32 = tf.cast(x, tf.float32)
        count = tf.cast(tf.size(x32) // tf.shape(x32)[-1], tf.float32)
        total, count = ctx.all_reduce(sum_op, [tf.reduce_sum(x32, axis=[0, 1, 2]), count])
        mean = total / count
        variance = ctx.all_reduce(sum_op, tf.reduce_sum(tf.square(x32 - mean), axis=[0, 1, 2])) / count
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        decay = 1.0 - self.momentum
        self.moving_mean.assign_sub((self.moving_mean - tf.stop_gradient(mean)) * decay)
        self.moving_variance.assign_sub((self.moving_variance - tf.stop_gradient(unbiased)) * decay)
        y = tf.nn.batch_normalization(x32, mean, variance, self.beta, self.gamma, self.epsilon)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized)
        return config


def _fused_batch_norm(x, scale, offset, mean, variance, epsilon, is_training):
    """FusedBatchNormV3 in NHWC: (y, batch_mean, batch_variance (unbiased), reserve spaces)."""
    return tf.raw_ops.FusedBatchNormV3(
        x=x, scale=scale, offset=offset, mean=mean, variance=variance, epsilon=epsilon,
        data_format="NHWC", is_training=is_training,
    )


def _batch_norm_precise_statistics(x, gamma, beta, epsilon):
    """Training batch norm: moments from tf.nn.moments (float32), normalisation by the fused
    kernel in inference mode, gradient by the fused training-mode gradient kernel fed the same
    moments. Returns (y, batch mean, unbiased batch variance); the statistics carry no gradient."""

    @tf.custom_gradient
    def normalise(x, gamma, beta):
        x32 = x if x.dtype == tf.float32 else tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[0, 1, 2])
        y = _fused_batch_norm(x, gamma, beta, mean, variance, epsilon, is_training=False)[0]

        def gradient(dy, unused_dmean, unused_dvariance):
            dx, dgamma, dbeta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
                y_backprop=dy, x=x, scale=gamma, reserve_space_1=mean, reserve_space_2=variance,
                reserve_space_3=tf.constant([], tf.float32), epsilon=epsilon,
                data_format="NHWC", is_training=True,
            )
            return dx, dgamma, dbeta

        count = tf.cast(tf.size(x32) // tf.shape(x32)[-1], tf.float32)
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        return (y, tf.stop_gradient(mean), tf.stop_gradient(unbiased)), gradient

    return normalise(x, gamma, beta)


def _batch_norm(name):
    """tf.layers.batch_normalization defaults of TF1 (momentum 0.99, epsilon 1e-3), fused."""
    return FusedBatchNorm(
        momentum=0.99, epsilon=1e-3, synchronized=_SYNC_BATCH_NORM.get(), name=name
    )


# Set while MENET.__init__ creates its layers: every batch norm of the model is synchronized.
_SYNC_BATCH_NORM = contextvars.ContextVar("menet_sync_batch_norm", default=False)


@contextlib.contextmanager
def _sublayer_settings(policy, sync_batch_norm):
    """Sublayers created in this block get ``policy`` (Keras gives new layers the global policy,
    not their parent's, so a mixed-precision MENET also reloads from model.keras as mixed) and
    synchronized batch norms if asked, without threading both through every block's signature."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    token = _SYNC_BATCH_NORM.set(bool(sync_batch_norm))
    try:
        yield
    finally:
        _SYNC_BATCH_NORM.reset(token)
        keras.config.set_dtype_policy(previous)


class _TF1Names:
    """Hands out TF1 scope names in the order the authors' graph created its layers."""

    def __init__(self, scope):
        self.scope = scope
        self.bn_count = 0

    def conv(self, layer_name):
        return f"{self.scope}/{layer_name}/{layer_name}_conv"

    def batch_norm(self):
        suffix = "" if self.bn_count == 0 else f"_{self.bn_count}"
        self.bn_count += 1
        return f"{self.scope}/batch_normalization{suffix}"


class ConvBN(keras.layers.Layer):
    """conv -> batch norm (no activation): the unit every MENET stage is made of."""

    def __init__(self, filters, kernel_size=3, conv_tf1_name=None, bn_tf1_name=None, **kwargs):
        super().__init__(**kwargs)
        self.conv = _conv(filters, kernel_size, name="conv")
        self.bn = _batch_norm(name="bn")
        self.conv.tf1_name = conv_tf1_name
        self.bn.tf1_name = bn_tf1_name

    def call(self, x, training=None):
        if not training and _FOLD_BATCH_NORM.get():
            kernel, bias = self.folded_weights()
            y = tf.nn.conv2d(x, tf.cast(kernel, x.dtype), 1, "SAME")
            return tf.nn.bias_add(y, tf.cast(bias, x.dtype))
        return self.bn(self.conv(x), training=training)

    def folded_weights(self):
        """(kernel, bias) of one conv equal to conv -> BN with moving statistics (inference).

        BN parameters are read by attribute so any BN layer with gamma/beta/moving_mean/
        moving_variance/epsilon works; a missing gamma or beta (center/scale off) counts as 1 / 0.
        """
        bn = self.bn
        mean = tf.cast(bn.moving_mean, tf.float32)
        scale = tf.math.rsqrt(tf.cast(bn.moving_variance, tf.float32) + bn.epsilon)
        if getattr(bn, "gamma", None) is not None:
            scale = scale * tf.cast(bn.gamma, tf.float32)
        bias = -mean * scale
        if getattr(self.conv, "bias", None) is not None:
            bias = bias + tf.cast(self.conv.bias, tf.float32) * scale
        if getattr(bn, "beta", None) is not None:
            bias = bias + tf.cast(bn.beta, tf.float32)
        return tf.cast(self.conv.kernel, tf.float32) * scale, bias


# Set inside menet_tf.infer.derainer's traced function only: ConvBN layers then run as one
# convolution with BN folded in (fewer ops per stage); training and model(x) are unaffected.
_FOLD_BATCH_NORM = contextvars.ContextVar("menet_fold_batch_norm", default=False)


@contextlib.contextmanager
def folded_batch_norm(enabled=True):
    """Within this block, inference-mode ConvBN calls use folded conv+BN weights."""
    token = _FOLD_BATCH_NORM.set(bool(enabled))
    try:
        yield
    finally:
        _FOLD_BATCH_NORM.reset(token)


class ResidualBlock(keras.layers.Layer):
    """t = BN(conv(relu(BN(conv(h))))); h + t, relu'd unless it is the last block."""

    def __init__(self, index, names, final, **kwargs):
        super().__init__(**kwargs)
        self.final = final
        self.a = ConvBN(64, 3, names.conv(f"res_{index}_a"), names.batch_norm(), name="a")
        self.b = ConvBN(64, 3, names.conv(f"res_{index}_b"), names.batch_norm(), name="b")

    def call(self, h, training=None):
        t = tf.nn.relu(self.a(h, training=training))
        h = self.b(t, training=training) + h
        return h if self.final else tf.nn.relu(h)


class ChannelAttention(keras.layers.Layer):
    """The "Ca" block: h + h * sigmoid(mean_HW(e)), e from a small desubpixel encoder of h.

    Two more desubpixel steps are why attention models need inputs in multiples of 16.
    """

    tf1_scope = "derain/ca"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        names = _TF1Names(self.tf1_scope)
        self.squeeze_1 = ConvBN(64, 1, names.conv("squeeze_1"), names.batch_norm(), name="squeeze_1")
        self.layer_1 = ConvBN(64, 3, names.conv("layer_1"), names.batch_norm(), name="layer_1")
        self.squeeze_2 = ConvBN(64, 1, names.conv("squeeze_2"), names.batch_norm(), name="squeeze_2")
        self.layer_2 = ConvBN(64, 3, names.conv("layer_2"), names.batch_norm(), name="layer_2")
        self.excitation_1 = ConvBN(
            64, 3, names.conv("excitation_1"), names.batch_norm(), name="excitation_1"
        )

    def call(self, h, training=None):
        s = tf.nn.relu(self.squeeze_1(tf.nn.space_to_depth(h, 2), training=training))
        s = tf.nn.relu(self.layer_1(s, training=training))
        s = tf.nn.relu(self.squeeze_2(tf.nn.space_to_depth(s, 2), training=training))
        s = tf.nn.relu(self.layer_2(s, training=training))
        e = self.excitation_1(s, training=training)
        hook = _ATTENTION_MEAN_HOOK.get()
        mean = tf.reduce_mean(e, axis=[1, 2], keepdims=True) if hook is None else hook(e)
        scale = tf.sigmoid(mean)
        return self.combine(h, scale)

    def combine(self, h, scale):
        return h + h * scale


class CaformerAttention(ChannelAttention):
    """The attention of the ``ModelShallowNewCaformer*`` graphs (Rain100H release only).

    Read off their training graphs: the same encoder, layers and variable shapes as the "Ca"
    block, under the scope ``derain/channel_att``, but the features are only rescaled,
    h * sigmoid(mean_HW(e)), without the residual ``h +``; every later op is the same.
    """

    tf1_scope = "derain/channel_att"

    def combine(self, h, scale):
        return h * scale


ATTENTION_BLOCKS = {"ca": ChannelAttention, "caformer": CaformerAttention}


def attention_block(attention):
    """None, "ca" or "caformer" for an ``attention`` setting (False/True or a block name)."""
    if attention is None or attention is False:
        return None
    if attention is True:
        return "ca"
    if isinstance(attention, str) and attention.lower() in ATTENTION_BLOCKS:
        return attention.lower()
    raise MenetError(
        f"attention must be true/false or one of {sorted(ATTENTION_BLOCKS)}, got {attention!r}"
    )


# Set inside menet_tf.infer.derainer's tiled inference only: lets it read e and supply the image-wide
# mean_HW(e), so a tile gets the attention scale of the whole image, not of the tile alone.
_ATTENTION_MEAN_HOOK = contextvars.ContextVar("menet_attention_mean_hook", default=None)


@contextlib.contextmanager
def attention_mean_hook(hook):
    """Within this block, channel attention uses ``hook(e)`` instead of mean_HW(e)."""
    token = _ATTENTION_MEAN_HOOK.set(hook)
    try:
        yield
    finally:
        _ATTENTION_MEAN_HOOK.reset(token)


# Set by the training step (menet_tf.model.multitask) only: MENET.call appends (input, output) of the
# shared layer5 conv, so the per-task gradients on its kernel need only the ops after layer5.
_SHARED_LAYER_RECORDER = contextvars.ContextVar("menet_shared_layer_recorder", default=None)


@contextlib.contextmanager
def record_shared_layer():
    """Within this block, MENET calls append (layer5 input, layer5 output) to the list yielded."""
    seen = []
    token = _SHARED_LAYER_RECORDER.set(seen)
    try:
        yield seen
    finally:
        _SHARED_LAYER_RECORDER.reset(token)


@tf.custom_gradient
def brelu(x):
    """clip(x, 0, 255) with the gradient of tf.clip_by_value (passed where 0 <= x <= 255) as ONE
    multiplication by a mask made in the forward pass. tf.clip_by_value's own gradient (two
    broadcasting selects) cost ~4% of a MENET-GB training step, which runs it four times (three
    per-task gradients for GB, one for the objective)."""
    mask = tf.cast(tf.logical_and(x >= 0.0, x <= 255.0), x.dtype)

    def gradient(dy):
        return dy * mask

    return tf.clip_by_value(x, 0.0, 255.0), gradient


@keras.saving.register_keras_serializable(package="menet_tf")
class MENET(keras.Model):
    """De-raining network b = clip(O + f_w(O), 0, 255) on float images in 0..255.

    Args:
        depth: number of residual blocks (8 in the "Shallow" models, 16 in the "Deep" ones).
        attention: add the channel-attention block: True or "ca" (the "Ca" models), "caformer"
            (the Rain100H release's "Caformer" models), False for none.
        sync_batch_norm: under tf.distribute, batch norms use the moments of the global batch
            (all-reduced) instead of each replica's.
        dtype: a Keras dtype policy, e.g. "mixed_bfloat16"; the output is float32 regardless.
    """

    def __init__(self, depth=8, attention=False, sync_batch_norm=False, **kwargs):
        kwargs.setdefault("name", "menet")
        super().__init__(**kwargs)
        if int(depth) < 1:
            raise MenetError(f"depth must be a positive number of residual blocks, got {depth}")
        self.depth = int(depth)
        self.attention_block = attention_block(attention)
        self.attention = self.attention_block is not None
        self.sync_batch_norm = bool(sync_batch_norm)
        with _sublayer_settings(self.dtype_policy, self.sync_batch_norm):
            self._create_layers()

    def _create_layers(self):
        """The layers, under the model's dtype policy (``MENET(dtype="mixed_bfloat16")``)."""
        names = _TF1Names("derain")
        # Created in the order of the TF1 graph, so the batch-norm numbering comes out the same.
        self.layer1 = ConvBN(16, 3, names.conv("layer1"), names.batch_norm(), name="layer1")
        self.layer2 = ConvBN(64, 3, names.conv("layer2"), names.batch_norm(), name="layer2")
        self.ca = None
        if self.attention_block:
            block = ATTENTION_BLOCKS[self.attention_block]
            self.ca = block(name=block.tf1_scope.split("/")[-1])
        self.res_blocks = [
            ResidualBlock(i, names, final=(i == self.depth - 1), name=f"res_{i}")
            for i in range(self.depth)
        ]
        self.layer3 = ConvBN(64, 3, names.conv("layer3"), names.batch_norm(), name="layer3")
        self.layer4 = ConvBN(16, 3, names.conv("layer4"), names.batch_norm(), name="layer4")
        self.layer5 = _conv(12, 3, name="layer5")
        self.layer5.tf1_name = names.conv("layer5")

    @property
    def input_dtype(self):
        """Images come in as float32 whatever the compute dtype (Keras would cast them to it):
        the global residual and the output stay float32."""
        return "float64" if self.compute_dtype == "float64" else "float32"

    @property
    def multiple(self):
        """Height and width must be multiples of this (2 or 4 desubpixel steps of 2)."""
        return 16 if self.attention else 4

    @property
    def shared_kernel(self):
        """The layer5 kernel: the shared layer whose per-task gradients drive gradient balance."""
        return self.layer5.kernel

    def check_input_shape(self, shape):
        """Refuse, with a clear message, images the desubpixel steps cannot divide."""
        shape = tf.TensorShape(shape)
        if shape.rank is not None and shape.rank != 4:
            raise MenetError(f"MENET expects a batch of images [N, H, W, 3], got shape {shape}")
        if shape.rank is None:
            return
        if shape[-1] is not None and shape[-1] != 3:
            raise MenetError(f"MENET expects RGB images (3 channels), got {shape[-1]} channels")
        for axis, size in (("height", shape[1]), ("width", shape[2])):
            if size is not None and size % self.multiple:
                raise MenetError(
                    f"image {axis} {size} is not a multiple of {self.multiple}"
                    f" (required by {'channel attention' if self.attention else 'the network'});"
                    " crop or pad the image, or use menet_tf's resize-to-multiple inference"
                )

    def call(self, rainy, training=None):
        self.check_input_shape(rainy.shape)
        image = tf.convert_to_tensor(rainy)
        rainy = tf.cast(image, self.compute_dtype)
        if None in rainy.shape[1:3]:
            size = tf.shape(rainy)[1:3]
            check = tf.debugging.assert_equal(
                size % self.multiple,
                tf.zeros_like(size),
                message=f"MENET: image height and width must be multiples of {self.multiple}",
            )
            with tf.control_dependencies([check]):  # checked before the first desubpixel step
                rainy = tf.identity(rainy)
        n1 = self.layer1(tf.nn.space_to_depth(rainy, 2), training=training)
        n2 = self.layer2(tf.nn.space_to_depth(tf.nn.relu(n1), 2), training=training)
        h = tf.nn.relu(n2)
        if self.ca is not None:
            h = self.ca(h, training=training)
        for block in self.res_blocks:
            h = block(h, training=training)
        t = self.layer3(n2 + h, training=training)
        t = tf.nn.depth_to_space(t, 2)
        t = self.layer4(n1 + t, training=training)
        y5 = self.layer5(t)
        recorder = _SHARED_LAYER_RECORDER.get()
        if recorder is not None:
            recorder.append((t, y5))
        t = tf.nn.depth_to_space(y5, 2)
        # The paper's "BReLU": keep the de-rained image inside the valid range. Residual and
        # output in float32 whatever the compute dtype: the losses (texture ~1e14) need float32.
        out_dtype = tf.float64 if self.compute_dtype == "float64" else tf.float32
        image = tf.cast(image, out_dtype)
        return brelu(image + tf.cast(t, out_dtype))

    def build(self, input_shape=None):
        """Create every variable with a call on a tiny image (no shape depends on the size)."""
        if not self.layer5.built:
            self.call(tf.zeros([1, self.multiple, self.multiple, 3]), training=False)
        self.built = True

    def ensure_built(self):
        """Build now, e.g. before loading weights into the model."""
        if not self.built:
            self.build()
        return self

    def get_config(self):
        config = super().get_config()
        attention = "caformer" if self.attention_block == "caformer" else self.attention
        config.update(depth=self.depth, attention=attention, sync_batch_norm=self.sync_batch_norm)
        return config
