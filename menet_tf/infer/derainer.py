"""THE inference path of menet-tf: a MENET model de-raining images of any size.

Used by ``evaluate``, ``derain``, ``export`` and ``bench``, so every user of a trained model runs
the same arithmetic:

    from menet_tf.infer.load import load_model
    from menet_tf.infer.derainer import Derainer
    derainer = Derainer(load_model("runs/MENET-GB"))
    clean = derainer.derain(rainy_uint8_hw3)            # any size, float32 0..255, same size

The network runs in one compiled ``tf.function`` (XLA on GPUs only, as in training), traced once
per padded input size (once in total when XLA is off, since the graph then takes any size), with
batch norm folded into the preceding convolutions: inference then pays for neither the tracer
nor separate BN ops. Sizes the network cannot take are padded, resized or tiled
(``menet_tf.infer.tiling``). ``precision="bf16"`` (or "fp16") runs a half-precision twin of the
network with batch norm folded before its weights are cast, once (``menet_tf.infer.precision``);
images in and out stay float32.
"""
import os

import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.infer import precision as precisions
from menet_tf.infer.tiling import (MODES, RESIZE_MULTIPLE, TILE_OVERLAP, TILE_SIZE, TileLayout,
                                   _round_up, default_max_pixels, pad_to_multiple,
                                   resize_bicubic)


def _image_batch(images):
    """(images as [N, H, W, 3], whether a single [H, W, 3] image was given)."""
    images = np.asarray(images)
    single = images.ndim == 3
    if single:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise MenetError(f"expected an RGB image [H, W, 3] or a batch [N, H, W, 3],"
                         f" got shape {images.shape}")
    return images, single


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


class Derainer:
    """Compiled inference of a MENET model on images of any size.

    Args:
        model: a built MENET / MultiTaskMENET.
        fold_batch_norm: run each conv -> BN pair as one convolution with BN folded in (same
            result up to float rounding, ~1e-4 on 0..255). Off runs the model's own BN ops.
            Either way the compiled graph matches ``model(x, training=False)`` to ~1e-4 (graph
            and eager execution fuse ops differently), not bit for bit.
        jit_compile: "auto" (XLA on GPUs only, see menet_tf.model.multitask.resolve_jit_compile),
            True or False.
        precision: "fp32" (the model as trained), "bf16" or "fp16": a twin of the network in
            that precision, its weights copied now (batch norm folded in float32, then cast
            once; ``menet_tf.infer.precision``). Outputs are float32 either way; on a Rain100L
            image bf16 moved them by 0.04 grey level on average (at most 1), fp16 by 0.004.
    """

    def __init__(self, model, fold_batch_norm=True, jit_compile="auto", precision="fp32"):
        from menet_tf.model.multitask import resolve_jit_compile

        if not hasattr(model, "multiple"):
            raise MenetError(f"Derainer needs a MENET model, got {type(model).__name__}")
        model.ensure_built()
        self.model = model
        self.multiple = int(model.multiple)
        self.fold_batch_norm = bool(fold_batch_norm)
        self.jit_compile = resolve_jit_compile(jit_compile)
        self.precision = precisions.resolve(precision).name
        # The network the traced functions run: the model itself in fp32, else its twin.
        self.network = (model if self.precision == "fp32"
                        else precisions.half_precision_twin(model, self.precision))
        #: How often the network function was traced (a test checks: once per shape key).
        self.trace_count = 0
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

    @classmethod
    def from_pretrained(cls, name=None, **options):
        """A Derainer of a bundled model (``None``: the default; ``menet-tf models`` lists
        them); ``options`` are the constructor's (``fold_batch_norm``, ``jit_compile``,
        ``precision``)."""
        from menet_tf.infer.pretrained import pretrained

        return cls(pretrained(name), **options)

    # The traced computations. Python in them runs only while tracing.
    def _forward(self, batch):
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        self.trace_count += 1
        # In half precision the attention mean is taken in float32; fp32 runs the model as is.
        hook = None if self.precision == "fp32" else in_float32(_image_mean)
        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(hook):
            out = self.network(batch, training=False)
        return tf.cast(out, tf.float32)

    def _excitation(self, batch):
        """The channel attention's e map only (later layers are pruned from the graph)."""
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        seen = []

        def record(e):
            seen.append(e)
            return _image_mean(e)

        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(record):
            self.network(batch, training=False)
        self._attention_found = len(seen) == 1
        return tf.cast(seen[0], tf.float32) if seen else tf.zeros([0], tf.float32)

    def _forward_with_mean(self, batch, mean):
        """The network with mean_HW(e) of channel attention given (the whole image's)."""
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(
                lambda e: tf.cast(mean, e.dtype)):
            out = self.network(batch, training=False)
        return tf.cast(out, tf.float32)

    def _forward_real_mean(self, batch, size):
        """The network on a padded batch whose real image is ``size`` [2] (rows, cols): channel
        attention averages over the real image, so the padding cannot change the output."""
        from menet_tf.model.layers import attention_mean_hook, folded_batch_norm

        height = tf.shape(batch)[1]
        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(
                in_float32(lambda e: real_image_mean(e, height, size))):
            out = self.network(batch, training=False)
        return tf.cast(out, tf.float32)

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

    def warm_up(self, height=None, width=None):
        """Trace and run the network once, so timings that follow are the network's, not the
        tracer's and graph optimiser's (a tiny image suffices when the graph takes any size)."""
        if self.model is None:
            return
        m = self.multiple
        h, w = (_round_up(height, m), _round_up(width, m)) if self.jit_compile else (m, m)
        self.predict(np.zeros((1, h, w, 3), np.float32))

    def _check(self, batch):
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise MenetError(f"expected images [N, H, W, 3], got shape {batch.shape}")
        h, w = batch.shape[1:3]
        if h % self.multiple or w % self.multiple:
            raise MenetError(f"image size {h}x{w} is not a multiple of {self.multiple}; use"
                             " derain(), which pads, resizes or tiles")

    def predict(self, batch):
        """float32 [N, H, W, 3] in 0..255, H and W multiples of ``.multiple`` -> np.ndarray."""
        batch = np.asarray(batch, dtype=np.float32)
        self._check(batch)
        fn = self.concrete_function(*batch.shape[1:3])
        return fn(tf.constant(batch)).numpy()

    def predict_padded(self, batch, size):
        """Like predict, for a batch padded around a real image of ``size`` (rows, cols) at its
        top left: an attention model takes its mean over the real image (docs/derain.md)."""
        batch = np.asarray(batch, dtype=np.float32)
        if tuple(size) == batch.shape[1:3] or not self._has_attention():
            return self.predict(batch)
        self._check(batch)
        fn = self.concrete_function(*batch.shape[1:3], kind="real_mean")
        return fn(tf.constant(batch), tf.constant(size, tf.int32)).numpy()

    def predict_tensor(self, batch):
        """Like predict, for a float32 tensor, returning a tensor (no host copy)."""
        return self.concrete_function(*batch.shape[1:3])(batch)

    # -- any size ------------------------------------------------------------------------------
    def derain(self, images, mode="pad", *, batch_size=8, max_pixels="auto",
               tile_size=TILE_SIZE, overlap=TILE_OVERLAP):
        """De-rain [H, W, 3] or [N, H, W, 3] images (uint8 or float 0..255) of any size.

        Returns float32 0..255 of the input's shape. ``mode``: "pad", "resize" or "tile" (see
        ``menet_tf.infer.tiling``). Images with more than ``max_pixels`` pixels ("auto": 8 MP
        on a GPU, 16 MP on a CPU; None: no limit) are run in tiles whatever the mode, so a large
        photo never exhausts memory; ``tile_size``/``overlap`` set the tiles.
        """
        if mode not in MODES:
            raise MenetError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        images, single = _image_batch(images)
        if max_pixels == "auto":
            max_pixels = default_max_pixels()
        h, w = images.shape[1:3]
        if mode == "tile" or (max_pixels is not None and h * w > max_pixels):
            def run(x, size):
                return self._tiled(x, tile_size, overlap, batch_size, size)
        else:
            def run(x, size):
                return self._batched(x, batch_size, size)
        images = images.astype(np.float32, copy=False)
        out = (self._resized if mode == "resize" else self._padded)(images, run)
        return out[0] if single else out

    def _padded(self, images, run):
        """Reflection-pad to the multiple, ``run`` (told the real size), crop back."""
        h, w = images.shape[1:3]
        padded, _ = pad_to_multiple(images, self.multiple)
        return run(padded.numpy(), (h, w))[:, :h, :w, :]

    def _resized(self, images, run):
        """The released script's way: bicubic up to multiples of 16, ``run``, bicubic back."""
        h, w = images.shape[1:3]
        size = (_round_up(h, RESIZE_MULTIPLE), _round_up(w, RESIZE_MULTIPLE))
        if size == (h, w):
            return run(images, size)
        out = run(resize_bicubic(images, size).numpy(), size)
        return np.clip(resize_bicubic(out, (h, w)).numpy(), 0.0, 255.0)

    def _batched(self, batch, batch_size, size):
        return np.concatenate([self.predict_padded(batch[i:i + batch_size], size)
                               for i in range(0, len(batch), batch_size)])

    def _has_attention(self):
        if self._attention_found is None:  # learnt by tracing (not compiling) the excitation
            key = self._shape_key(self.multiple, self.multiple)
            self._functions["excitation"].get_concrete_function(*self._specs("excitation", key))
        return self._attention_found

    def _tiled(self, batch, tile_size, overlap, batch_size, size):
        """Overlapping tiles blended as ``TileLayout.blend`` does (sizes already multiples;
        ``size``: the real image inside the padded batch)."""
        n, h, w, _ = batch.shape
        layout = TileLayout(h, w, tile_size, overlap, self.multiple)
        attention = self._has_attention()
        out = np.empty_like(batch)
        for k in range(n):
            if attention:
                result = self._tiled_with_image_mean(batch[k], layout, batch_size, size)
            else:
                result = layout.blend(batch[k], self.predict, batch_size)
            out[k] = np.clip(result, 0.0, 255.0)
        return out

    def _tiled_with_image_mean(self, image, layout, batch_size, size):
        """Tiles of an attention model, each scaled by the whole image's attention mean.

        Channel attention scales features by sigmoid(mean_HW(e)), an image-wide mean a tile
        cannot see. So a first, cheap pass computes e tile by tile (only the layers up to e
        run), blends it like the output, and every tile then uses the whole image's mean: tiles
        then reproduce the untiled output instead of each tile's own scale. The mean is over
        the real image (``size``), not its padding, as untiled.
        """
        th, tw = layout.tile
        excitation = self.concrete_function(th, tw, kind="excitation")
        e = layout.blend(image, lambda t: excitation(tf.constant(t)).numpy(), batch_size)
        mean = real_image_mean(tf.constant(e[None]), image.shape[0], size)
        with_mean = self.concrete_function(th, tw, kind="with_mean")
        return layout.blend(image, lambda t: with_mean(tf.constant(t), mean).numpy(), batch_size)

    # -- the graph for export -----------------------------------------------------------------
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


def _exported_precision(path):
    """The precision an export recorded in its export.json ("fp32" when it says none)."""
    from menet_tf.files import read_json

    info = read_json(os.path.join(path, "export.json"))
    recorded = info.get("precision", "fp32") if isinstance(info, dict) else "fp32"
    try:
        return precisions.resolve(recorded).name
    except MenetError:
        raise MenetError(f"{path}: export.json names an unknown precision {recorded!r}") \
            from None


class SavedModelDerainer(Derainer):
    """An exported SavedModel behind the Derainer interface (``derain`` with any mode).

    The SavedModel pads inside its graph, so ``multiple`` is 1 here; tiles are still rounded to
    16 pixels. It runs in the precision it was exported in (``export.json``'s "precision",
    fp32 when absent): ``precision`` may name that one, or be left at "fp32"; asking a float32
    export for bf16 is refused (re-export with ``menet-tf export --precision bf16``).
    """

    def __init__(self, path, precision="fp32"):  # noqa: super().__init__ needs a Keras model
        self.path = os.fspath(path)
        self.precision = _exported_precision(self.path)
        asked = precisions.resolve(precision).name
        if asked not in ("fp32", self.precision):
            raise MenetError(f"{self.path}: an exported SavedModel runs in the precision it was"
                             f" exported in ({self.precision}), not {asked}; export it again"
                             f" with `menet-tf export --precision {asked}`")
        try:
            self.module = tf.saved_model.load(self.path)
        except Exception as err:
            raise MenetError(f"{self.path}: cannot be loaded as a SavedModel "
                             f"({type(err).__name__})") from None
        signatures = getattr(self.module, "signatures", {})
        if "serving_default" not in signatures:
            raise MenetError(f"{self.path}: SavedModel has no serving_default signature")
        self._signature = signatures["serving_default"]
        self._input_name = next(iter(self._signature.structured_input_signature[1]))
        self._output_name = next(iter(self._signature.structured_outputs))
        self.model = None
        self.multiple = 1
        self.fold_batch_norm = False
        self.jit_compile = False
        self.trace_count = 0

    def _tiled(self, batch, tile_size, overlap, batch_size, size):
        return super()._tiled(batch, _round_up(tile_size, 16), overlap, batch_size, size)

    def _has_attention(self):
        """The exported graph cannot take an image-wide attention mean, so tiles of an
        attention model use their own (with the default 128-pixel overlap the Keras model's
        tiles are exact; an exported attention model's tiles are not)."""
        return False

    def predict(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        self._check(batch)
        out = self._signature(**{self._input_name: tf.constant(batch)})[self._output_name]
        return out.numpy().astype(np.float32, copy=False)

    def serving_function(self, images):
        raise MenetError(f"{self.path}: already an exported SavedModel")
