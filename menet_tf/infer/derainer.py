"""THE inference path of menet-tf: a MENET model de-raining images of any size.

Used by ``evaluate``, ``derain``, ``export`` and ``bench``, so every user of a trained model runs
the same arithmetic:

    from menet_tf.infer.load import load_model
    from menet_tf.infer.derainer import Derainer
    derainer = Derainer(load_model("runs/MENET-GB"))
    clean = derainer.derain(rainy_uint8_hw3)            # any size, float32 0..255, same size

``Derainer`` holds a runner (``menet_tf.infer.runner``) and does what every runtime needs
around the network: sizes the network cannot take are padded, resized or tiled
(``menet_tf.infer.tiling``), and tiles of an attention model get the whole image's attention
mean. The runner runs the network: a Keras model in any precision (``KerasRunner``, the
default), an exported SavedModel (``SavedModelDerainer``) or OpenVINO
(``menet_tf.infer.openvino_backend``).
"""
import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.infer.keras_runner import (KerasRunner, in_float32,  # noqa: F401 (re-exported)
                                         real_image_mean, to_uint8_tf)
from menet_tf.infer.runner import Runner, runner_attribute
from menet_tf.infer.saved_model_runner import SavedModelRunner
from menet_tf.infer.tiling import (MODES, RESIZE_MULTIPLE, TILE_OVERLAP, TILE_SIZE, TileLayout,
                                   default_max_pixels, pad_to_multiple, resize_bicubic,
                                   round_up)


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


class Derainer:
    """De-raining of images of any size by a MENET network.

    Args:
        model: a built MENET / MultiTaskMENET, run by a ``KerasRunner`` with the options below;
            or a ``Runner`` (``menet_tf.infer.runner``), which brings its own options.
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

    ``multiple`` is what ``derain`` pads and checks sizes to: the runner's, or a multiple of it.
    """

    model = runner_attribute("model", "The Keras model (None when the runner has none).")
    network = runner_attribute("network")
    precision = runner_attribute("precision")
    fold_batch_norm = runner_attribute("fold_batch_norm")
    jit_compile = runner_attribute("jit_compile")
    trace_count = runner_attribute(
        "trace_count", "How often the network function was traced (a test checks: once per"
        " shape key).")

    def __init__(self, model, fold_batch_norm=True, jit_compile="auto", precision="fp32"):
        if isinstance(model, Runner):
            if (fold_batch_norm, jit_compile, precision) != (True, "auto", "fp32"):
                raise MenetError(f"{model.name}: a runner brings its own options; give them"
                                 " to the runner")
            self.runner = model
        else:
            self.runner = KerasRunner(model, fold_batch_norm, jit_compile, precision)
        self.multiple = self.runner.multiple

    @classmethod
    def from_pretrained(cls, name=None, **options):
        """A Derainer of a bundled model (``None``: the default; ``menet-tf models`` lists
        them); ``options`` are the constructor's (``fold_batch_norm``, ``jit_compile``,
        ``precision``)."""
        from menet_tf.infer.pretrained import pretrained

        return cls(pretrained(name), **options)

    def concrete_function(self, height=None, width=None, kind="forward"):
        """The compiled network for [N, height, width, 3] float32 (sizes multiples of .multiple).

        ``kind``: "forward" (the network), "excitation" (channel attention's e map),
        "with_mean" (network taking a second input, the [1, 1, 1, C] mean of e to use) or
        "real_mean" (a second input, the [2] size of the real image inside the padded batch).
        Only a Keras model has one.
        """
        return self.runner.concrete_function(height, width, kind)

    def warm_up(self, height=None, width=None):
        """Trace and run the network once, so timings that follow are the network's, not the
        tracer's and graph optimiser's (a tiny image suffices when the graph takes any size)."""
        self.runner.warm_up(height, width)

    def _check(self, batch):
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise MenetError(f"expected images [N, H, W, 3], got shape {batch.shape}")
        h, w = batch.shape[1:3]
        if h % self.multiple or w % self.multiple:
            raise MenetError(f"image size {h}x{w} is not a multiple of {self.multiple}; use"
                             " derain(), which pads, resizes or tiles")

    def predict(self, batch):
        """float32 [N, H, W, 3] in 0..255, H and W multiples of ``.multiple`` -> np.ndarray."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._check(batch)
        return self.runner.run(batch)

    def predict_padded(self, batch, size):
        """Like predict, for a batch padded around a real image of ``size`` (rows, cols) at its
        top left: an attention model takes its mean over the real image (docs/derain.md)."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self._check(batch)
        return self.runner.run_padded(batch, size)

    def predict_tensor(self, batch):
        """Like predict, for a float32 tensor, returning a tensor (no host copy)."""
        return self.runner.run_tensor(batch)

    def has_attention(self):
        """Whether tiles take the whole image's channel-attention mean (exact tiles)."""
        return self.runner.has_attention()

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
        size = (round_up(h, RESIZE_MULTIPLE), round_up(w, RESIZE_MULTIPLE))
        if size == (h, w):
            return run(images, size)
        out = run(resize_bicubic(images, size).numpy(), size)
        return np.clip(resize_bicubic(out, (h, w)).numpy(), 0.0, 255.0)

    def _batched(self, batch, batch_size, size):
        return np.concatenate([self.predict_padded(batch[i:i + batch_size], size)
                               for i in range(0, len(batch), batch_size)])

    def _tiled(self, batch, tile_size, overlap, batch_size, size):
        """Overlapping tiles blended as ``TileLayout.blend`` does (sizes already multiples;
        ``size``: the real image inside the padded batch). Tile sides are rounded to the
        runner's ``tile_multiple``."""
        n, h, w, _ = batch.shape
        tile_size = round_up(tile_size, self.runner.tile_multiple)
        layout = TileLayout(h, w, tile_size, overlap, self.multiple)
        attention = self.has_attention()
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
        runner = self.runner
        e = layout.blend(image, runner.excitation, batch_size)
        mean = real_image_mean(tf.constant(e[None]), image.shape[0], size)
        return layout.blend(image, lambda t: runner.run_with_mean(t, mean), batch_size)

    def derain_video(self, src, dst, **options):
        """De-rain the clip ``src`` into the file ``dst`` frame by frame, keeping its timing,
        sound and metadata (``menet_tf.infer.video.derain_video``; needs the ``video`` extra).
        Returns the clip's record, as derain.json holds it."""
        from menet_tf.infer.video import derain_video

        return derain_video(self, src, dst, **options)

    # -- the graph for export -----------------------------------------------------------------
    def serving_function(self, images):
        """In-graph de-raining of a batch of any size: uint8 or float 0..255 in, same dtype out.

        Pads by reflection to the multiple, runs the network (attention's mean over the real
        image, as ``derain``), crops back. Used by ``export``. In bf16/fp16 the network is the
        frozen half-precision graph (weights folded and cast once, as constants). A runner that
        cannot be exported (a SavedModel, OpenVINO) says so in one line.
        """
        return self.runner.serving_function(images)


class SavedModelDerainer(Derainer):
    """An exported SavedModel behind the Derainer interface (``derain`` with any mode): a
    Derainer of a ``SavedModelRunner`` (``menet_tf.infer.saved_model_runner``).

    The SavedModel pads inside its graph, so ``multiple`` is 1 here; tiles are still rounded to
    16 pixels. It runs in the precision it was exported in (``export.json``'s "precision",
    fp32 when absent): ``precision`` may name that one, or be left at "fp32"; asking a float32
    export for bf16 is refused (re-export with ``menet-tf export --precision bf16``).
    """

    def __init__(self, path, precision="fp32"):
        runner = SavedModelRunner(path, precision)
        super().__init__(runner)
        self.path, self.module = runner.path, runner.module
