"""The building blocks of MENET: fused batch norm, conv -> BN, residual and attention blocks.

Every convolution and batch norm carries the scope name the authors' TF1 graph gave it
(``tf1_name``, handed out by ``TF1Names`` in the graph's order), so ``menet_tf.authors.checkpoint``
can map released checkpoints onto the model without a hand-written table.

Three switches reach every block without passing through their signatures (context variables,
set by a ``with`` block): synchronized batch norm (``sublayer_settings``, while MENET creates its
layers), conv+BN folding (``folded_batch_norm``, in inference's traced function) and the channel
attention's mean (``attention_mean_hook``, in tiled inference).
"""
import contextlib
import contextvars

import keras
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.model.conv_gradient import Conv


def conv_layer(filters, kernel_size, name):
    """Convolution as in the released graph: stride 1, SAME, no bias, fan-in truncated normal."""
    return Conv(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"),
        name=name,
    )


# ---------------------------------------------------------------------------------- batch norm
@keras.saving.register_keras_serializable(package="menet_tf")
class FusedBatchNorm(keras.layers.Layer):
    """Batch norm over the channels of NHWC images, run by TF's fused kernel (FusedBatchNormV3).

    Why: Keras 3's BatchNormalization computes moments and normalisation as separate ops, which
    made the training step slower than the authors' TF1 graph (tf.layers with fused=True).
    On CPUs the training statistics come from tf.nn.moments (see ``precise_statistics``). The
    variables (gamma, beta, moving_mean, moving_variance, all float32), the momentum and epsilon
    and the moving-statistics update are TF1's: moving -= (moving - batch) * (1 - momentum), with
    the UNBIASED batch variance that the fused kernel returns, as tf.layers.batch_normalization
    did. Half-precision inputs (float16/bfloat16) are normalised by the same kernel with float32
    statistics. A non-trainable layer always uses the moving statistics, like Keras'
    BatchNormalization.
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
        self._update_moving_statistics(batch_mean, batch_variance)
        return y

    @staticmethod
    def precise_statistics():
        """Training-mode statistics from tf.nn.moments (pairwise sums) rather than the kernel's own.

        On CPUs TF runs FusedBatchNormV3 with oneDNN, whose batch variance is ~3x less accurate
        (3e-5 against 1e-5 relative on 250k values per channel); through 20 batch norms that
        moved MENET-GB's gradients up to 0.9% off a float64 computation, where Keras'
        BatchNormalization and the authors' TF1 graph stay within 0.4%
        (tests/authors/test_reference_tf1.py). cuDNN keeps its reserve spaces in its own format
        (inverse variance), so GPUs use the kernel's statistics.
        """
        return not tf.config.list_physical_devices("GPU")

    def _update_moving_statistics(self, mean, unbiased_variance):
        """TF1's update, moving -= (moving - batch) * (1 - momentum), in the variables' dtype."""
        decay = 1.0 - self.momentum
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased_variance)):
            moving.assign_sub((moving - tf.cast(tf.stop_gradient(batch), moving.dtype)) * decay)

    def _unfused(self, x, training):
        """The same batch norm from separate ops, for dtypes the fused kernel lacks (float64:
        the gradient arbiter of menet_tf.compare.numerics runs the port in float64)."""
        if training:
            mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
            self._update_moving_statistics(mean, _unbiased(variance, _values_per_channel(x)))
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
        total, count = ctx.all_reduce(
            sum_op, [tf.reduce_sum(x32, axis=[0, 1, 2]), _values_per_channel(x32)])
        mean = total / count
        variance = ctx.all_reduce(sum_op, tf.reduce_sum(tf.square(x32 - mean), axis=[0, 1, 2])) / count
        self._update_moving_statistics(mean, _unbiased(variance, count))
        y = tf.nn.batch_normalization(x32, mean, variance, self.beta, self.gamma, self.epsilon)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(momentum=self.momentum, epsilon=self.epsilon, synchronized=self.synchronized)
        return config


def _values_per_channel(x):
    """N * H * W of an NHWC batch, in x's dtype: the count behind each channel's moments."""
    return tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)


def _unbiased(variance, count):
    """The batch variance with Bessel's correction, as FusedBatchNormV3 returns it."""
    return variance * count / tf.maximum(count - 1.0, 1.0)


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

        unbiased = _unbiased(variance, _values_per_channel(x32))
        return (y, tf.stop_gradient(mean), tf.stop_gradient(unbiased)), gradient

    return normalise(x, gamma, beta)


def batch_norm_layer(name):
    """tf.layers.batch_normalization defaults of TF1 (momentum 0.99, epsilon 1e-3), fused."""
    return FusedBatchNorm(
        momentum=0.99, epsilon=1e-3, synchronized=_SYNC_BATCH_NORM.get(), name=name
    )


# Set while MENET.__init__ creates its layers: every batch norm of the model is synchronized.
_SYNC_BATCH_NORM = contextvars.ContextVar("menet_sync_batch_norm", default=False)


@contextlib.contextmanager
def sublayer_settings(policy, sync_batch_norm):
    """Sublayers created in this block get ``policy`` (Keras gives new layers the global policy,
    not their parent's, so a mixed-precision MENET also reloads from model.keras as mixed) and
    synchronized batch norms if asked, without threading both through every block's signature."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with context_value(_SYNC_BATCH_NORM, bool(sync_batch_norm)):
            yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def context_value(variable, value):
    """``variable`` holds ``value`` within this block, its previous value afterwards."""
    token = variable.set(value)
    try:
        yield value
    finally:
        variable.reset(token)


class TF1Names:
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


# ------------------------------------------------------------------------------- conv -> BN
class ConvBN(keras.layers.Layer):
    """conv -> batch norm (no activation): the unit every MENET stage is made of."""

    def __init__(self, filters, kernel_size=3, conv_tf1_name=None, bn_tf1_name=None, **kwargs):
        super().__init__(**kwargs)
        self.conv = conv_layer(filters, kernel_size, name="conv")
        self.bn = batch_norm_layer(name="bn")
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


def folded_batch_norm(enabled=True):
    """Within this block, inference-mode ConvBN calls use folded conv+BN weights."""
    return context_value(_FOLD_BATCH_NORM, bool(enabled))


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


# ---------------------------------------------------------------------------- channel attention
class ChannelAttention(keras.layers.Layer):
    """The "Ca" block: h + h * sigmoid(mean_HW(e)), e from a small desubpixel encoder of h.

    Two more desubpixel steps are why attention models need inputs in multiples of 16.
    """

    tf1_scope = "derain/ca"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        names = TF1Names(self.tf1_scope)
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


# Set inside menet_tf.infer.derainer's tiled inference only: lets it read e and supply the
# image-wide mean_HW(e), so a tile gets the attention scale of the whole image, not of the tile.
_ATTENTION_MEAN_HOOK = contextvars.ContextVar("menet_attention_mean_hook", default=None)


def attention_mean_hook(hook):
    """Within this block, channel attention uses ``hook(e)`` instead of mean_HW(e)."""
    return context_value(_ATTENTION_MEAN_HOOK, hook)
