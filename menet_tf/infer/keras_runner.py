"""The Keras runner: a MENET model in one compiled ``tf.function``, in fp32, bf16 or fp16.

The network runs in one compiled ``tf.function`` (XLA on GPUs only, as in training), traced once
per padded input size (once in total when XLA is off, since the graph then takes any size), with
batch norm folded into the preceding convolutions: inference then pays for neither the tracer
nor separate BN ops. ``precision="bf16"`` (or "fp16") runs a half-precision twin of the network
with batch norm folded before its weights are cast, once (``menet_tf.infer.precision``); images
in and out stay float32. It is the one runner that serves a graph for export.
"""
import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.infer import precision as precisions
from menet_tf.infer.runner import Runner
from menet_tf.infer.tiling import pad_to_multiple, round_up


def to_uint8_tf(images):
    """``menet_tf.infer.photos.to_uint8`` in TensorFlow, the same rule and arithmetic: round
    half up (``floor(x) + (x - floor(x) >= 0.5)`` in float32), clip to 0..255."""
    x = tf.cast(images, tf.float32)
    whole = tf.floor(x)
    rounded = whole + tf.cast(x - whole >= 0.5, tf.float32)
    return tf.cast(tf.clip_by_value(rounded, 0.0, 255.0), tf.uint8)


def real_image_mean(e, padded_height, size):
    """mean_HW of channel attention's ``e`` over the real image, not its padding.

    ``e`` is at 1/16 of the padded batch's resolution (``padded_height`` rows); the real image
    is its top-left ``size`` (rows, cols). Each cell counts by the share of real pixels it
    covers: cells of padding only count nothing, a cell straddling the border counts its real
    share. Over the padded image the mean would change with the padding, and with it every
    output pixel (an image-wide scale). Works eagerly too (the tiled path's blended e).
    """
    scale = padded_height // tf.shape(e)[1]

    def share(real, cells):
        covered = real - tf.range(cells) * scale
        return tf.cast(tf.clip_by_value(covered, 0, scale), e.dtype) / tf.cast(scale, e.dtype)

    weight = share(size[0], tf.shape(e)[1])[:, None] * share(size[1], tf.shape(e)[2])[None, :]
    total = tf.reduce_sum(e * weight[None, :, :, None], axis=[1, 2], keepdims=True)
    return total / tf.reduce_sum(weight)


def in_float32(mean):
    """An attention-mean hook taking its mean in float32 whatever e's dtype (a bfloat16 sum of
    thousands of values would lose the digits the mean needs); identical for float32 e."""
    return lambda e: tf.cast(mean(tf.cast(e, tf.float32)), e.dtype)


def _image_mean(e):
    return tf.reduce_mean(e, axis=[1, 2], keepdims=True)


class KerasRunner(Runner):
    """A built MENET / MultiTaskMENET run by TensorFlow (``Derainer``'s arguments)."""

    def __init__(self, model, fold_batch_norm=True, jit_compile="auto", precision="fp32"):
        from menet_tf.model.multitask import resolve_jit_compile

        if not hasattr(model, "multiple"):
            raise MenetError(f"Derainer needs a MENET model, got {type(model).__name__}")
        model.ensure_built()
        super().__init__(getattr(model, "name", type(model).__name__), model.multiple,
                         precisions.resolve(precision).name)
        self.model = model
        self.fold_batch_norm = bool(fold_batch_norm)
        self.jit_compile = resolve_jit_compile(jit_compile)
        # The network the traced functions run: the model itself in fp32, else its twin.
        self.network = (model if self.precision == "fp32"
                        else precisions.half_precision_twin(model, self.precision))
        self._concrete = {}
        self._attention_found = None  # learnt when the excitation function is first traced
        # Half precision is traced without XLA, frozen, then compiled (``concrete_function``).
        compile_ = dict(jit_compile=self.jit_compile and self.precision == "fp32",
                        autograph=False)
        self._functions = {
            "forward": tf.function(self._forward, **compile_),
            "excitation": tf.function(self._excitation, **compile_),
            "with_mean": tf.function(self._forward_with_mean, **compile_),
            "real_mean": tf.function(self._forward_real_mean, **compile_),
        }

    # The traced computations. Python in them runs only while tracing.
    def _network(self, batch, hook):
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(hook):
            return self.network(batch, training=False)

    def _forward(self, batch):
        self.trace_count += 1
        # In half precision the attention mean is taken in float32; fp32 runs the model as is.
        hook = None if self.precision == "fp32" else in_float32(_image_mean)
        return tf.cast(self._network(batch, hook), tf.float32)

    def _excitation(self, batch):
        """The channel attention's e map only (later layers are pruned from the graph)."""
        seen = []

        def record(e):
            seen.append(e)
            return _image_mean(e)

        self._network(batch, record)
        self._attention_found = len(seen) == 1
        return tf.cast(seen[0], tf.float32) if seen else tf.zeros([0], tf.float32)

    def _forward_with_mean(self, batch, mean):
        """The network with mean_HW(e) of channel attention given (the whole image's)."""
        return tf.cast(self._network(batch, lambda e: tf.cast(mean, e.dtype)), tf.float32)

    def _forward_real_mean(self, batch, size):
        """The network on a padded batch whose real image is ``size`` [2] (rows, cols): channel
        attention averages over the real image, so the padding cannot change the output."""
        height = tf.shape(batch)[1]
        hook = in_float32(lambda e: real_image_mean(e, height, size))
        return tf.cast(self._network(batch, hook), tf.float32)

    def _shape_key(self, height, width):
        """XLA compiles per shape anyway; the plain graph takes any size, so trace it once."""
        return (height, width) if self.jit_compile else None

    def concrete_function(self, height=None, width=None, kind="forward"):
        """The compiled network for [N, height, width, 3] float32 (sizes multiples of .multiple).

        ``kind``: "forward" (the network), "excitation" (channel attention's e map),
        "with_mean" (network taking a second input, the [1, 1, 1, C] mean of e to use) or
        "real_mean" (a second input, the [2] size of the real image inside the padded batch).
        """
        key = self._shape_key(height, width)
        fn = self._concrete.get((kind, key))
        if fn is None:
            specs = self._specs(kind, key)
            if self.precision == "fp32":
                fn = self._functions[kind].get_concrete_function(*specs)
            else:
                frozen = self._frozen(kind, key)
                fn = tf.function(lambda *inputs: frozen(*inputs)[0],
                                 jit_compile=self.jit_compile,
                                 autograph=False).get_concrete_function(*specs)
            self._concrete[(kind, key)] = fn
        return fn

    @staticmethod
    def _specs(kind, key):
        specs = [tf.TensorSpec([None, *(key or (None, None)), 3], tf.float32)]
        if kind == "with_mean":
            specs.append(tf.TensorSpec([1, 1, 1, None], tf.float32))
        if kind == "real_mean":
            specs.append(tf.TensorSpec([2], tf.int32))
        return specs

    def _frozen(self, kind, key, exportable=False):
        """The half-precision network of ``kind`` traced without XLA and frozen (weights as
        constants, so fold and cast happen once; ``menet_tf.infer.precision.frozen``); it
        returns a list of its outputs."""
        fn = self._concrete.get(("frozen", kind, key, exportable))
        if fn is None:
            with tf.init_scope():  # freezing reads the weights: eagerly, even inside a trace
                fn = precisions.frozen(self._functions[kind].get_concrete_function(
                    *self._specs(kind, key)), exportable)
            self._concrete[("frozen", kind, key, exportable)] = fn
        return fn

    # -- the runner protocol -------------------------------------------------------------------
    def run(self, batch):
        return self.concrete_function(*batch.shape[1:3])(tf.constant(batch)).numpy()

    def run_padded(self, batch, size):
        if tuple(size) == batch.shape[1:3] or not self.has_attention():
            return self.run(batch)
        fn = self.concrete_function(*batch.shape[1:3], kind="real_mean")
        return fn(tf.constant(batch), tf.constant(size, tf.int32)).numpy()

    def run_tensor(self, batch):
        return self.concrete_function(*batch.shape[1:3])(batch)

    def has_attention(self):
        if self._attention_found is None:  # learnt by tracing (not compiling) the excitation
            key = self._shape_key(self.multiple, self.multiple)
            self._functions["excitation"].get_concrete_function(*self._specs("excitation", key))
        return self._attention_found

    def excitation(self, tiles):
        fn = self.concrete_function(*tiles.shape[1:3], kind="excitation")
        return fn(tf.constant(tiles)).numpy()

    def run_with_mean(self, tiles, mean):
        fn = self.concrete_function(*tiles.shape[1:3], kind="with_mean")
        return fn(tf.constant(tiles), mean).numpy()

    def warm_up(self, height=None, width=None):
        """Trace and run the network once, so timings that follow are the network's, not the
        tracer's and graph optimiser's (a tiny image suffices when the graph takes any size)."""
        m = self.multiple
        h, w = (round_up(height, m), round_up(width, m)) if self.jit_compile else (m, m)
        self.run(np.zeros((1, h, w, 3), np.float32))

    def serving_function(self, images):
        """In-graph de-raining of a batch of any size: uint8 or float 0..255 in, same dtype out.

        Pads by reflection to the multiple, runs the network (attention's mean over the real
        image, as ``derain``), crops back. Used by ``export``. In bf16/fp16 the network is the
        frozen half-precision graph (weights folded and cast once, as constants).
        """
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        dtype = images.dtype
        x = tf.cast(images, tf.float32)
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        height = tf.shape(padded)[1]
        if self.precision != "fp32":  # the frozen half-precision graph: no variables exported
            network = self._frozen("real_mean", None, exportable=True)
            out = network(padded, tf.stack([h, w]))[0][:, :h, :w, :]
        else:
            with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(
                    lambda e: real_image_mean(e, height, (h, w))):
                out = tf.cast(self.model(padded, training=False), tf.float32)[:, :h, :w, :]
        if dtype == tf.uint8:
            return to_uint8_tf(out)
        return tf.cast(out, dtype)
