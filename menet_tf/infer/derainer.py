"""THE inference path of menet-tf: load a model, de-rain images of any size, fast.

Used by ``evaluate``, ``derain``, ``export`` and ``bench``, so every user of a trained model runs
the same arithmetic:

    from menet_tf.infer.derainer import load_model, Derainer
    derainer = Derainer(load_model("runs/MENET-GB"))
    clean = derainer.derain(rainy_uint8_hw3)            # any size, float32 0..255, same size

MENET's desubpixel steps need sides in multiples of 4 (16 with channel attention); ``derain``
takes any size in one of three modes:

* ``pad`` (default): reflection-pad bottom/right to the multiple, de-rain, crop back. No
  resampling, so the output pixels of the original area are the network's own.
* ``resize``: the authors' released inference script: bicubic resize up to the next multiple of
  16, de-rain, bicubic resize back (MENET_SPEC.md, Evaluation).
* ``tile``: overlapping tiles blended with raised-cosine weights, for images too large for
  memory; chosen automatically for images above ``max_pixels``.

Speed: the network runs in one compiled ``tf.function`` (XLA on GPUs only, as in training),
traced once per padded input size (once in total when XLA is off, since the graph then takes any
size), with batch norm folded into the preceding convolutions.
"""
import os
import re

import numpy as np
import tensorflow as tf

from menet_tf.errors import CheckpointError, MenetError

MODES = ("pad", "resize", "tile")

#: The released inference script resizes to multiples of this (MENET_SPEC.md, Evaluation).
RESIZE_MULTIPLE = 16

#: Default tile side and overlap of ``tile`` mode (pixels; the tile is rounded to the multiple).
TILE_SIZE = 512
TILE_OVERLAP = 128

#: Largest image run in one piece by default. Measured peak host memory of an inference-mode
#: MENET-GB pass on CPU is about 105 MB per megapixel (2048x2048: +435 MB), so 16 MP stays under
#: 2 GB of RAM; a GPU also needs convolution workspace and TF's allocator slack, so 8 MP keeps an
#: 8 GB card safe. Larger photos (a 24 MP camera image) are tiled.
MAX_PIXELS_GPU = 8_000_000
MAX_PIXELS_CPU = 16_000_000


def default_max_pixels():
    """The size above which ``derain`` switches to tiles on this machine."""
    return MAX_PIXELS_GPU if tf.config.list_physical_devices("GPU") else MAX_PIXELS_CPU


# ------------------------------------------------------------------------------------- loading
def _is_saved_model(path):
    return os.path.isdir(path) and (
        os.path.exists(os.path.join(path, "saved_model.pb"))
        or os.path.exists(os.path.join(path, "saved_model.pbtxt"))
    )


def _released_name_in(path):
    """A released model name among the path's components (the authors' folder layout)."""
    from menet_tf.config import RELEASED

    for part in reversed(os.path.normpath(os.path.abspath(path)).split(os.sep)):
        if part in RELEASED:
            return part
    return None


def _load_keras(path, compile):
    import keras

    import menet_tf.model.multitask  # noqa: F401  registers MENET / MultiTaskMENET for deserialisation

    try:
        model = keras.saving.load_model(path, compile=compile)
    except Exception as err:  # Keras raises many kinds (ValueError, TypeError, zip errors)
        raise MenetError(f"{path}: cannot be loaded as a Keras model ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not hasattr(model, "multiple"):
        raise MenetError(f"{path}: holds a {type(model).__name__}, not a MENET model")
    model.ensure_built()
    return model


def _load_tf1(path, model_name):
    from menet_tf.authors import checkpoint as tf1
    from menet_tf.config import released_config
    from menet_tf.model.network import MENET, attention_block
    from menet_tf.model.multitask import MultiTaskMENET

    prefix, _, shapes = tf1.read_checkpoint(path)
    depth, attention = tf1.architecture_of(shapes)
    if depth == 0:
        raise CheckpointError(f"{prefix}: no MENET network in this checkpoint "
                              "(no derain/res_* variables)")
    name = model_name or _released_name_in(prefix)
    if name:
        config = released_config(name)
        if (config.model.depth, attention_block(config.model.attention)) != (
                depth, attention_block(attention)):
            raise CheckpointError(
                f"{prefix}: the checkpoint has depth {depth}, attention "
                f"{tf1.attention_words(attention)}, but {name} has depth {config.model.depth},"
                f" attention {tf1.attention_words(config.model.attention)}")
        model = MultiTaskMENET(depth=depth, attention=attention, tasks=config.loss.tasks,
                               weighting=config.loss.weighting,
                               task_weights=config.loss.task_weights,
                               texture_form=config.loss.texture_form, name=config.name)
    else:
        model = MENET(depth=depth, attention=attention)
    model.ensure_built()
    tf1.load_checkpoint(model, prefix)
    return model


def load_model(source, model_name=None, compile=False):
    """A built MENET / MultiTaskMENET from a run folder, a ``.keras`` file or a TF1 checkpoint.

    Args:
        source: run folder holding ``model.keras``; a ``.keras`` file; an authors' TF1 checkpoint
            prefix (``.../model.final-100``) or a folder holding one. The TF1 architecture
            (depth, attention) is read off the checkpoint's variables.
        model_name: released name (``ModelShallowNewCaEdgeGramGradBalance``, ``MENET-GB``, ...)
            giving a TF1 checkpoint its tasks; guessed from the path when a folder on it has a
            released name, else a plain MENET is built (enough for inference).
        compile: restore the optimiser/compile state of a ``.keras`` file (needed only to train
            or ``model.evaluate`` further); off by default because inference does not need it.
    """
    path = os.fspath(source)
    if _is_saved_model(path):
        raise MenetError(f"{path}: is an exported SavedModel, not a Keras model; use"
                         " menet_tf.infer.derainer.load_derainer (or `menet-tf derain`) to run it")
    if os.path.isdir(path):
        keras_file = os.path.join(path, "model.keras")
        if os.path.isfile(keras_file):
            return _load_keras(keras_file, compile)
        if any(f.endswith(".index") for f in os.listdir(path)) or os.path.exists(
                os.path.join(path, "checkpoint")):
            return _load_tf1(path, model_name)
        raise MenetError(f"{path}: folder holds neither model.keras (a run folder) nor a TF1"
                         " checkpoint (*.index) nor saved_model.pb")
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise MenetError(f"{path}: file does not exist")
        return _load_keras(path, compile)
    if os.path.exists(path + ".index"):
        return _load_tf1(path, model_name)
    if re.search(r"\.(index|data-\d+-of-\d+|meta)$", path):
        stem = re.sub(r"\.(index|data-\d+-of-\d+|meta)$", "", path)
        raise CheckpointError(f"{path}: give the checkpoint prefix without the file ending,"
                              f" e.g. {stem}")
    raise MenetError(f"{path}: not a run folder, .keras file, TF1 checkpoint prefix or"
                     " SavedModel" + ("" if os.path.exists(path) else " (it does not exist)"))


def load_derainer(source, model_name=None, fold_batch_norm=True, jit_compile="auto"):
    """A Derainer for anything ``load_model`` takes, or for an exported SavedModel."""
    path = os.fspath(source)
    if _is_saved_model(path):
        return SavedModelDerainer(path)
    return Derainer(load_model(path, model_name), fold_batch_norm, jit_compile)


# ------------------------------------------------------------------------------------- padding
def _reflect_indices(size, padded_size):
    """Source index of each output index when mirroring [0, size) without repeating the edge.

    Periodic with period 2 (size - 1), so pads longer than the image keep mirroring (tf.pad's
    REFLECT refuses them); a 1-pixel side repeats its pixel.
    """
    i = tf.range(padded_size)
    period = tf.maximum(2 * (size - 1), 1)
    j = i % period
    return tf.where(j < size, j, period - j)


def pad_to_multiple(x, multiple):
    """Reflection-pad images at the bottom and right so both sides are multiples of ``multiple``.

    ``x``: [H, W, C] or [N, H, W, C] (array or tensor; works inside a tf.function with unknown
    sizes). Returns (padded tensor, (h, w)) where (h, w) is the original size for cropping back:
    ``padded[..., :h, :w, :]``.
    """
    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise MenetError(f"pad_to_multiple expects [H, W, C] or [N, H, W, C], got shape {x.shape}")
    axis = rank - 3
    static = x.shape[axis:axis + 2]
    h, w = (static[0] if static[0] is not None else tf.shape(x)[axis],
            static[1] if static[1] is not None else tf.shape(x)[axis + 1])
    multiple = int(multiple)
    if isinstance(h, int) and isinstance(w, int) and h % multiple == 0 and w % multiple == 0:
        return x, (h, w)
    ph = (h + multiple - 1) // multiple * multiple
    pw = (w + multiple - 1) // multiple * multiple
    x = tf.gather(x, _reflect_indices(h, ph), axis=axis)
    x = tf.gather(x, _reflect_indices(w, pw), axis=axis + 1)
    return x, (h, w)


def _round_up(n, multiple):
    return -(-int(n) // multiple) * multiple


def resize_bicubic(images, size):
    """Bicubic resize as the released script does it (float result, no antialiasing)."""
    return tf.image.resize(images, size, method="bicubic", antialias=False)


# ------------------------------------------------------------------------------------- tiling
def tile_starts(size, tile, overlap):
    """Start offsets of tiles of side ``tile`` covering [0, size), consecutive tiles overlapping
    by at least ``overlap``; the last one ends exactly at ``size`` so every tile is full."""
    if tile >= size:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def _ramp(length, overlap, ramp_start, ramp_end):
    """Per-axis blend weight of one tile, 1 except on sides that overlap another tile.

    On such a side the outer 3/8 of the overlap is (almost) ignored, the middle quarter ramps up
    with a raised cosine and the inner 3/8 counts fully. Why: a tile's outputs near its edge
    differ from the untiled output (the convolutions there saw zero padding instead of image),
    and this error decays with the distance from the edge, so seams are placed as far from both
    tiles' edges as possible while staying smooth. Measured on Rain100L (README): overlap 128
    gives at most 0.01 difference from untiled output against 0.65 for a cosine ramp over the
    whole overlap. Weights stay strictly positive, so the normalised blend is defined everywhere.
    """
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        margin = (3 * n) // 8
        k = n - 2 * margin
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k, dtype=np.float64) + 0.5) / k)
        r = np.concatenate([np.full(margin, 1e-4), ramp, np.ones(margin)]).astype(np.float32)
        if ramp_start:
            w[:n] = r
        if ramp_end:
            w[length - n:] = r[::-1]
    return w


# ------------------------------------------------------------------------------------- derainer
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
    """

    def __init__(self, model, fold_batch_norm=True, jit_compile="auto"):
        from menet_tf.model.multitask import resolve_jit_compile

        if not hasattr(model, "multiple"):
            raise MenetError(f"Derainer needs a MENET model, got {type(model).__name__}")
        model.ensure_built()
        self.model = model
        self.multiple = int(model.multiple)
        self.fold_batch_norm = bool(fold_batch_norm)
        self.jit_compile = resolve_jit_compile(jit_compile)
        #: How often the network function was traced (a test checks: once per shape key).
        self.trace_count = 0
        self._concrete = {}
        self._attention_found = None  # learnt when the excitation function is first traced
        compile_ = dict(jit_compile=self.jit_compile, autograph=False)
        self._functions = {
            "forward": tf.function(self._forward, **compile_),
            "excitation": tf.function(self._excitation, **compile_),
            "with_mean": tf.function(self._forward_with_mean, **compile_),
        }

    # The traced computations. Python in them runs only while tracing.
    def _forward(self, batch):
        from menet_tf.model.network import folded_batch_norm

        self.trace_count += 1
        with folded_batch_norm(self.fold_batch_norm):
            out = self.model(batch, training=False)
        return tf.cast(out, tf.float32)

    def _excitation(self, batch):
        """The channel attention's e map only (later layers are pruned from the graph)."""
        from menet_tf.model.network import attention_mean_hook, folded_batch_norm

        seen = []

        def record(e):
            seen.append(e)
            return tf.reduce_mean(e, axis=[1, 2], keepdims=True)

        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(record):
            self.model(batch, training=False)
        self._attention_found = len(seen) == 1
        return tf.cast(seen[0], tf.float32) if seen else tf.zeros([0], tf.float32)

    def _forward_with_mean(self, batch, mean):
        """The network with mean_HW(e) of channel attention given (the whole image's)."""
        from menet_tf.model.network import attention_mean_hook, folded_batch_norm

        with folded_batch_norm(self.fold_batch_norm), attention_mean_hook(
                lambda e: tf.cast(mean, e.dtype)):
            out = self.model(batch, training=False)
        return tf.cast(out, tf.float32)

    def _shape_key(self, height, width):
        """XLA compiles per shape anyway; the plain graph takes any size, so trace it once."""
        return (height, width) if self.jit_compile else None

    def concrete_function(self, height=None, width=None, kind="forward"):
        """The compiled network for [N, height, width, 3] float32 (sizes multiples of .multiple).

        ``kind``: "forward" (the network), "excitation" (channel attention's e map) or
        "with_mean" (network taking a second input, the [1, 1, 1, C] mean of e to use).
        """
        key = self._shape_key(height, width)
        fn = self._concrete.get((kind, key))
        if fn is None:
            specs = [tf.TensorSpec([None, *(key or (None, None)), 3], tf.float32)]
            if kind == "with_mean":
                specs.append(tf.TensorSpec([1, 1, 1, None], tf.float32))
            fn = self._functions[kind].get_concrete_function(*specs)
            self._concrete[(kind, key)] = fn
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

    def predict_tensor(self, batch):
        """Like predict, for a float32 tensor, returning a tensor (no host copy)."""
        return self.concrete_function(*batch.shape[1:3])(batch)

    # -- any size ------------------------------------------------------------------------------
    def derain(self, images, mode="pad", *, batch_size=8, max_pixels="auto",
               tile_size=TILE_SIZE, overlap=TILE_OVERLAP):
        """De-rain [H, W, 3] or [N, H, W, 3] images (uint8 or float 0..255) of any size.

        Returns float32 0..255 of the input's shape. ``mode``: "pad", "resize" or "tile" (see
        the module docstring). Images with more than ``max_pixels`` pixels ("auto": 8 MP on a
        GPU, 16 MP on a CPU; None: no limit) are run in tiles whatever the mode, so a large photo
        never exhausts memory; ``tile_size``/``overlap`` set the tiles.
        """
        if mode not in MODES:
            raise MenetError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        images = np.asarray(images)
        single = images.ndim == 3
        if single:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise MenetError(f"expected an RGB image [H, W, 3] or a batch [N, H, W, 3],"
                             f" got shape {images.shape}")
        if max_pixels == "auto":
            max_pixels = default_max_pixels()
        n, h, w, _ = images.shape
        tiled = mode == "tile" or (max_pixels is not None and h * w > max_pixels)
        run = (lambda x: self._tiled(x, tile_size, overlap, batch_size)) if tiled else (
            lambda x: self._batched(x, batch_size))
        x = tf.convert_to_tensor(images.astype(np.float32, copy=False))
        if mode == "resize":
            size = (_round_up(h, RESIZE_MULTIPLE), _round_up(w, RESIZE_MULTIPLE))
            resized = size != (h, w)
            if resized:
                x = resize_bicubic(x, size)
            out = run(x.numpy() if resized else images.astype(np.float32, copy=False))
            if resized:
                out = np.clip(resize_bicubic(out, (h, w)).numpy(), 0.0, 255.0)
        else:
            padded, _ = pad_to_multiple(x, self.multiple)
            out = run(padded.numpy())[:, :h, :w, :]
        return out[0] if single else out

    def _batched(self, batch, batch_size):
        if len(batch) <= batch_size:
            return self.predict(batch)
        return np.concatenate([self.predict(batch[i:i + batch_size])
                               for i in range(0, len(batch), batch_size)])

    def _has_attention(self):
        if self._attention_found is None:
            self.concrete_function(self.multiple, self.multiple, kind="excitation")
        return self._attention_found

    def _tiled(self, batch, tile_size, overlap, batch_size):
        """Overlapping tiles, blended with the weights of ``_ramp`` (sizes already multiples).

        Channel attention scales features by sigmoid(mean_HW(e)), an image-wide mean a tile
        cannot see. So for attention models a first, cheap pass computes e tile by tile (only
        the layers up to e run), blends it like the output, and every tile then uses the whole
        image's mean: tiles then reproduce the untiled output instead of each tile's own scale.
        """
        n, h, w, _ = batch.shape
        m = self.multiple
        tile = max(_round_up(tile_size, m), m)
        th, tw = min(tile, h), min(tile, w)
        overlap = _round_up(max(int(overlap), 0), m)  # keeps tiles on the 1/16 grid of e
        ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
        boxes = [(y, x) for y in ys for x in xs]
        weights = {}
        for y, x in boxes:
            wy = _ramp(th, overlap, y > 0, y + th < h)
            wx = _ramp(tw, overlap, x > 0, x + tw < w)
            weights[y, x] = (wy[:, None] * wx[None, :])[..., None]
        attention = self._has_attention()

        def blend(k, run):
            """Weighted blend over tiles of ``run(tiles)``, which may return a coarser grid
            (e is at 1/16 resolution): tile weights are then sampled at each cell's centre."""
            num = den = None
            for i in range(0, len(boxes), batch_size):
                chunk = boxes[i:i + batch_size]
                results = run(np.stack([batch[k, y:y + th, x:x + tw] for y, x in chunk]))
                scale = th // results.shape[1]
                if num is None:
                    num = np.zeros((h // scale, w // scale, results.shape[-1]), np.float32)
                    den = np.zeros((h // scale, w // scale, 1), np.float32)
                for (y, x), r in zip(chunk, results):
                    weight = weights[y, x][scale // 2::scale, scale // 2::scale]
                    box = (slice(y // scale, (y + th) // scale),
                           slice(x // scale, (x + tw) // scale))
                    num[box] += weight * r
                    den[box] += weight
            return num / den

        out = np.empty_like(batch)
        for k in range(n):
            if attention:
                excitation = self.concrete_function(th, tw, kind="excitation")
                e = blend(k, lambda t: excitation(tf.constant(t)).numpy())
                mean = tf.constant(e.mean(axis=(0, 1)).reshape(1, 1, 1, -1))
                with_mean = self.concrete_function(th, tw, kind="with_mean")
                result = blend(k, lambda t: with_mean(tf.constant(t), mean).numpy())
            else:
                result = blend(k, self.predict)
            out[k] = np.clip(result, 0.0, 255.0)
        return out

    # -- the graph for export -----------------------------------------------------------------
    def serving_function(self, images):
        """In-graph de-raining of a batch of any size: uint8 or float 0..255 in, same dtype out.

        Pads by reflection to the multiple, runs the network, crops back. Used by ``export``.
        """
        from menet_tf.model.network import folded_batch_norm

        dtype = images.dtype
        x = tf.cast(images, tf.float32)
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        with folded_batch_norm(self.fold_batch_norm):
            out = tf.cast(self.model(padded, training=False), tf.float32)[:, :h, :w, :]
        if dtype == tf.uint8:
            return tf.cast(tf.round(out), tf.uint8)
        return tf.cast(out, dtype)


class SavedModelDerainer(Derainer):
    """An exported SavedModel behind the Derainer interface (``derain`` with any mode).

    The SavedModel pads inside its graph, so ``multiple`` is 1 here; tiles are still rounded to
    16 pixels.
    """

    def __init__(self, path):  # noqa: super().__init__ needs a Keras model; this has none
        self.path = os.fspath(path)
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

    def _tiled(self, batch, tile_size, overlap, batch_size):
        return super()._tiled(batch, _round_up(tile_size, 16), overlap, batch_size)

    def _has_attention(self):
        """The exported graph cannot take an image-wide attention mean, so tiles of an
        attention model use their own (with the default 128-pixel overlap the Keras model's
        tiles are exact; an exported attention model's tiles are not)."""
        return False

    def predict(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise MenetError(f"expected images [N, H, W, 3], got shape {batch.shape}")
        out = self._signature(**{self._input_name: tf.constant(batch)})[self._output_name]
        return out.numpy().astype(np.float32, copy=False)

    def serving_function(self, images):
        raise MenetError(f"{self.path}: already an exported SavedModel")


# ------------------------------------------------------------------------------------- files
def _output_paths(files, out, fmt):
    """(output path, format) of each input: OUT/<relative name with the format's extension>, or OUT
    itself for a single input when OUT names an image file. Clashing names (a.jpg, a.png) get
    the source extension appended to the stem."""
    from menet_tf.infer import photos as imageio

    if len(files) == 1 and imageio.is_photo(out) and not os.path.isdir(out):
        return [(out, imageio.output_format("same", out))]
    paths, used = [], set()
    for source, rel in files:
        file_fmt = imageio.output_format(fmt, source)
        ext = imageio.OUTPUT_FORMATS[file_fmt][1]
        stem, source_ext = os.path.splitext(rel)
        path = os.path.join(out, stem + ext)
        if path in used:
            path = os.path.join(out, f"{stem}_{source_ext.lstrip('.').lower()}{ext}")
        used.add(path)
        paths.append((path, file_fmt))
    return paths


def _compare_path(path):
    stem, ext = os.path.splitext(path)
    return f"{stem}_compare{ext}"


def derain_files(derainer, inputs, out, *, recursive=False, mode="pad", fmt="png", force=False,
                 compare=False, batch_size=4, max_pixels="auto", tile_size=TILE_SIZE,
                 overlap=TILE_OVERLAP, progress=True, log=print):
    """De-rain photos (files, folders, globs) into ``out``; what ``menet-tf derain`` does.

    Images of the same size go through the network together, ``batch_size`` at a time. A file
    that cannot be read is reported by name and skipped; the others are still processed.
    Existing outputs are refused unless ``force``. Returns a summary dict with ``failed``
    [(path, message)], ``written`` paths, ``megapixels``, ``network_seconds`` and
    ``seconds_per_megapixel`` (network time: inference, padding, tiling; not file I/O).
    """
    import time
    import warnings

    from tqdm import tqdm

    from menet_tf.infer import photos as imageio
    from menet_tf.errors import DataError

    out = os.fspath(out)
    files = imageio.list_photos(inputs, recursive=recursive)
    if not files:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}"
                        + ("" if recursive else " (use --recursive for sub-folders)"))
    targets = _output_paths(files, out, fmt)
    if not force:
        existing = [p for p, _ in targets if os.path.exists(p)]
        existing += [_compare_path(p) for p, _ in targets if compare and os.path.exists(
            _compare_path(p))]
        if existing:
            shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more"
                                               if len(existing) > 5 else "")
            raise MenetError(f"would overwrite {shown}; use --force to replace")

    failed, written, groups = [], [], {}
    for (source, _), target in zip(files, targets):
        try:
            groups.setdefault(imageio.photo_size(source), []).append((source, target))
        except DataError as err:
            failed.append((source, str(err)))
    bar = tqdm(total=len(files), unit="img", disable=not progress, dynamic_ncols=True)
    bar.update(len(failed))
    for source, message in failed:
        bar.write(f"skipped: {message}")
    pixels, seconds = 0, 0.0
    if groups:
        derainer.warm_up(*next(iter(groups)))
    for size, members in groups.items():
        for i in range(0, len(members), batch_size):
            chunk, images = [], []
            for source, target in members[i:i + batch_size]:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        image = imageio.read_photo(source)
                    except DataError as err:
                        failed.append((source, str(err)))
                        bar.write(f"skipped: {err}")
                        bar.update(1)
                        continue
                for w in caught:
                    bar.write(f"warning: {w.message}")
                chunk.append((source, target))
                images.append(image)
            if not images:
                continue
            start = time.perf_counter()
            result = derainer.derain(np.stack(images), mode=mode, batch_size=batch_size,
                                     max_pixels=max_pixels, tile_size=tile_size,
                                     overlap=overlap)
            seconds += time.perf_counter() - start
            pixels += size[0] * size[1] * len(images)
            for (source, (target, target_fmt)), image, clean in zip(chunk, images, result):
                imageio.write_photo(clean, target, target_fmt)
                written.append(target)
                if compare:
                    imageio.write_photo(imageio.side_by_side(image, clean),
                                        _compare_path(target), target_fmt)
                bar.update(1)
    bar.close()
    megapixels = pixels / 1e6
    return {
        "images": len(files),
        "written": written,
        "failed": failed,
        "megapixels": megapixels,
        "network_seconds": seconds,
        "seconds_per_megapixel": seconds / megapixels if megapixels else None,
        "mode": mode,
    }
