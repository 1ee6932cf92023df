"""The MENET de-raining network f_w (MENET_SPEC.md, "De-raining network").

A U-Net-like body: desubpixel (space_to_depth) twice, R residual blocks at 1/4 resolution, an
optional channel-attention block, subpixel (depth_to_space) twice, and a global residual so the
network predicts the rain layer to remove. Images go in and come out as float 0..255. The blocks
are in ``menet_tf.model.layers``; layers are created in the order of the authors' TF1 graph, so
their TF1 names (and released checkpoints) line up.
"""
import contextvars

import keras
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.model.layers import (
    ATTENTION_BLOCKS,
    ConvBN,
    ResidualBlock,
    TF1Names,
    attention_block,
    context_value,
    conv_layer,
    sublayer_settings,
)

# Set by the training step (menet_tf.model.multitask) only: MENET.call appends (input, output) of the
# shared layer5 conv, so the per-task gradients on its kernel need only the ops after layer5.
_SHARED_LAYER_RECORDER = contextvars.ContextVar("menet_shared_layer_recorder", default=None)


def record_shared_layer():
    """Within this block, MENET calls append (layer5 input, layer5 output) to the list yielded."""
    return context_value(_SHARED_LAYER_RECORDER, [])


@tf.custom_gradient
def brelu(x):
    """clip(x, 0, 255) with the gradient of tf.clip_by_value (passed where 0 <= x <= 255) as ONE
    multiplication by a mask made in the forward pass. tf.clip_by_value's own gradient is two
    broadcasting selects, and a MENET-GB training step runs it four times (three per-task
    gradients for GB, one for the objective)."""
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
        with sublayer_settings(self.dtype_policy, self.sync_batch_norm):
            self._create_layers()

    def _create_layers(self):
        """The layers, under the model's dtype policy (``MENET(dtype="mixed_bfloat16")``)."""
        names = TF1Names("derain")
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
        self.layer5 = conv_layer(12, 3, name="layer5")
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
        rainy = self._checked_size(tf.cast(image, self.compute_dtype))
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
        out_dtype = tf.as_dtype(self.input_dtype)
        return brelu(tf.cast(image, out_dtype) + tf.cast(t, out_dtype))

    def _checked_size(self, rainy):
        """``rainy``, checked in the graph (before the first desubpixel step) for multiples of
        ``multiple`` when its height or width was unknown at tracing."""
        if None not in rainy.shape[1:3]:
            return rainy
        size = tf.shape(rainy)[1:3]
        check = tf.debugging.assert_equal(
            size % self.multiple,
            tf.zeros_like(size),
            message=f"MENET: image height and width must be multiples of {self.multiple}",
        )
        with tf.control_dependencies([check]):
            return tf.identity(rainy)

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
