"""The runner protocol: what ``Derainer`` needs from whatever runs the network.

``Derainer`` (``menet_tf.infer.derainer``) does the work around the network, the same for every
runtime: padding, the released script's resize, tiles and the attention mean of a tiled image.
A runner only runs a batch whose sides are multiples of its ``multiple``. The runners:

* ``KerasRunner`` (``menet_tf.infer.keras_runner``): a Keras MENET in fp32, bf16 or fp16;
* ``SavedModelRunner`` (``menet_tf.infer.saved_model_runner``): an exported SavedModel;
* ``OpenVINORunner`` (``menet_tf.infer.openvino_backend``): OpenVINO's CPU plugin.

Why a protocol rather than subclasses of ``Derainer`` overriding its internals: each runtime then
states the few things it can do (run a batch, take the real image's size, give channel
attention's e map, serve a graph for export) and says plainly what it cannot, and the
arithmetic around the network has one home. (The Keras task/backbone split and the TF Model
Garden's one ``serve()`` plus signature builders are the models.)
"""
import numpy as np

from menet_tf.errors import MenetError


class Runner:
    """Runs MENET on batches whose sides are multiples of ``multiple``.

    Attributes every runner has: ``name`` (what errors call it), ``multiple``, ``precision``
    ("fp32", "bf16" or "fp16"), ``tile_multiple`` (tile sides are rounded up to it), and
    ``model``, ``network``, ``fold_batch_norm``, ``jit_compile``, ``trace_count`` (the Keras
    model and its settings; None/False/0 for a runner without one).

    A subclass implements ``run``; it overrides ``run_padded`` when its network can take the
    real image's size, ``has_attention``/``excitation``/``run_with_mean`` when it can give tiles
    the whole image's attention mean, and ``serving_function`` when it can be exported.
    """

    #: Why ``serving_function`` refuses (a subclass that can serve overrides the method).
    cannot_serve = "cannot be exported"

    def __init__(self, name, multiple, precision="fp32", tile_multiple=None):
        self.name = name
        self.multiple = int(multiple)
        self.precision = precision
        self.tile_multiple = int(tile_multiple or self.multiple)
        self.model = None
        self.network = None
        self.fold_batch_norm = False
        self.jit_compile = False
        self.trace_count = 0

    def run(self, batch):
        """float32 [N, H, W, 3] in 0..255 (H and W multiples of ``multiple``, checked by the
        caller) -> float32 np.ndarray of the same shape."""
        raise NotImplementedError

    def run_padded(self, batch, size):
        """``run`` for a batch padded around a real image of ``size`` (rows, cols) at its top
        left. A runner that cannot take the size runs the padded batch as it is."""
        return self.run(batch)

    def run_tensor(self, batch):
        """``run`` of a float32 tensor, returning a tensor."""
        import tensorflow as tf

        return tf.constant(self.run(np.asarray(batch)))

    def has_attention(self):
        """Whether tiles need the whole image's attention mean (``excitation`` and
        ``run_with_mean`` work). False for a runner that cannot give it: its tiles then use
        their own mean."""
        return False

    def excitation(self, tiles):
        """Channel attention's e map of ``tiles`` [N, h, w, 3] (at 1/16 of their size)."""
        raise MenetError(f"{self.name}: cannot give channel attention's e map")

    def run_with_mean(self, tiles, mean):
        """``run`` with channel attention's image-wide mean given ([1, 1, 1, C] float32)."""
        raise MenetError(f"{self.name}: cannot take channel attention's mean from outside")

    def warm_up(self, height=None, width=None):
        """Prepare for images of ``height`` x ``width`` (trace, compile, run once)."""

    def concrete_function(self, height=None, width=None, kind="forward"):
        """The TensorFlow function of the network (only a Keras runner has one)."""
        raise MenetError(f"{self.name}: has no TensorFlow function of the network")

    def serving_function(self, images):
        """In-graph de-raining of a batch of any size, for export; this runner cannot."""
        raise MenetError(f"{self.name}: {self.cannot_serve}")


def runner_attribute(name, doc=None):
    """A read-only property of an object holding a runner (``self.runner``): the runner's
    ``name``, so the holder never copies state that the runner changes (``trace_count``)."""
    return property(lambda self: getattr(self.runner, name),
                    doc=doc or f"The runner's ``{name}``.")
