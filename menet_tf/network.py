"""The MENET de-raining network f_w (MENET_SPEC.md, "De-raining network").

A U-Net-like body: desubpixel (space_to_depth) twice, R residual blocks at 1/4 resolution, an
optional channel-attention block, subpixel (depth_to_space) twice, and a global residual so the
network predicts the rain layer to remove. Images go in and come out as float 0..255.

Every convolution and batch norm carries the scope name the authors' TF1 graph gave it
(``tf1_name``), so ``menet_tf.tf1`` can map released checkpoints onto this model without a
hand-written table.
"""
import keras
import tensorflow as tf

from menet_tf.errors import MenetError

def _conv(filters, kernel_size, name):
    """Convolution as in the released graph: stride 1, SAME, no bias, fan-in truncated normal."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=False,
        kernel_initializer=keras.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"),
        name=name,
    )


def _batch_norm(name):
    """tf.layers.batch_normalization defaults of TF1: momentum 0.99, epsilon 1e-3."""
    return keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=name)


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
        return self.bn(self.conv(x), training=training)


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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        names = _TF1Names("derain/ca")
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
        scale = tf.sigmoid(tf.reduce_mean(e, axis=[1, 2], keepdims=True))
        return h + h * scale


@keras.saving.register_keras_serializable(package="menet_tf")
class MENET(keras.Model):
    """De-raining network b = clip(O + f_w(O), 0, 255) on float images in 0..255.

    Args:
        depth: number of residual blocks (8 in the "Shallow" models, 16 in the "Deep" ones).
        attention: add the channel-attention block (the "Ca" models).
    """

    def __init__(self, depth=8, attention=False, **kwargs):
        kwargs.setdefault("name", "menet")
        super().__init__(**kwargs)
        if int(depth) < 1:
            raise MenetError(f"depth must be a positive number of residual blocks, got {depth}")
        self.depth = int(depth)
        self.attention = bool(attention)
        names = _TF1Names("derain")
        # Created in the order of the TF1 graph, so the batch-norm numbering comes out the same.
        self.layer1 = ConvBN(16, 3, names.conv("layer1"), names.batch_norm(), name="layer1")
        self.layer2 = ConvBN(64, 3, names.conv("layer2"), names.batch_norm(), name="layer2")
        self.ca = ChannelAttention(name="ca") if self.attention else None
        self.res_blocks = [
            ResidualBlock(i, names, final=(i == self.depth - 1), name=f"res_{i}")
            for i in range(self.depth)
        ]
        self.layer3 = ConvBN(64, 3, names.conv("layer3"), names.batch_norm(), name="layer3")
        self.layer4 = ConvBN(16, 3, names.conv("layer4"), names.batch_norm(), name="layer4")
        self.layer5 = _conv(12, 3, name="layer5")
        self.layer5.tf1_name = names.conv("layer5")

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
        rainy = tf.cast(rainy, self.compute_dtype)
        if None in rainy.shape[1:3]:
            size = tf.shape(rainy)[1:3]
            tf.debugging.assert_equal(
                size % self.multiple,
                tf.zeros_like(size),
                message=f"MENET: image height and width must be multiples of {self.multiple}",
            )
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
        t = tf.nn.depth_to_space(self.layer5(t), 2)
        # The paper's "BReLU": keep the de-rained image inside the valid range.
        return tf.clip_by_value(rainy + t, 0.0, 255.0)

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
        config.update(depth=self.depth, attention=self.attention)
        return config
