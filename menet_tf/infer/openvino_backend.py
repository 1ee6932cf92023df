"""OpenVINO behind the Derainer interface: the optional extra ``pip install menet-tf[openvino]``.

Why a second runtime: on CPUs with AVX512_BF16 (or AMX), OpenVINO's bf16 kernels run MENET about
twice as fast as TensorFlow's float32 graph; at float32 and batch 1 it was slower, so TensorFlow
stays the default (docs/speed.md has the figures).

What runs is the Derainer's own folded float32 graph, converted once (``ov.convert_model`` of a
concrete function; no SavedModel on disk): the padded batch and the real image's size in, so
channel attention averages over the real image exactly as TensorFlow's pad mode does.
``OpenVINORunner`` is a runner (``menet_tf.infer.runner``), so ``derain`` (pad, resize, tile)
is ``Derainer``'s own. Tiles of an attention model get the whole image's attention mean as in
TensorFlow (two more converted graphs, made when first needed). An exported SavedModel or
OpenVINO IR is the any-size serving graph instead (it pads inside, ``multiple`` 1); its tiles,
like ``SavedModelDerainer``'s, use their own mean.

``--precision`` becomes OpenVINO's INFERENCE_PRECISION_HINT (fp32 -> f32, bf16 -> bf16, fp16 ->
f16, which the CPU plugin runs as bf16 where the CPU has no float16 arithmetic); OpenVINO's own
default on such CPUs is bf16, so fp32 is always asked for explicitly. Compiled models are cached
per input shape (a static shape measured faster than one dynamic-shape model, docs/speed.md).

Importing menet_tf never imports OpenVINO; this module does, only when the backend is asked
for, and first keeps ``openvino_telemetry`` from loading, so OpenVINO's converter (and NNCF) use
their no-op telemetry stubs and never try the network.
"""
import collections
import os
import sys

import numpy as np

from menet_tf.errors import MenetError
from menet_tf.infer.derainer import Derainer
from menet_tf.infer.runner import Runner, runner_attribute
from menet_tf.infer.tiling import round_up

#: ``--precision`` -> OpenVINO's inference precision hint.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}

#: Compiled models kept (one per input shape, least recently used dropped first): a folder of
#: photos of many sizes must not keep one compiled network per size in memory.
CACHE_SIZE = 8

INSTALL_HINT = "pip install 'menet-tf[openvino]'"
_TELEMETRY = "openvino_telemetry"


def _block_telemetry():
    """Keep OpenVINO's telemetry package from loading: its importers (the model converter,
    NNCF) fall back to their no-op stubs on ImportError, which a None entry in sys.modules
    gives. Needed before the first ``import openvino``, which loads the converter."""
    if _TELEMETRY not in sys.modules:
        sys.modules[_TELEMETRY] = None


def _stub_loaded_telemetry():
    """When openvino was imported before us (the package was loaded with it), point the
    converter's modules at their stub instead."""
    if sys.modules.get(_TELEMETRY) is None:
        return
    from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils

    convert_impl.tm = telemetry_utils.tm = telemetry_stub


def import_openvino():
    """The ``openvino`` module, telemetry off; one line naming the extra if it is missing."""
    _block_telemetry()
    try:
        import openvino
    except ImportError:
        raise MenetError(f"the OpenVINO backend needs the optional extra: {INSTALL_HINT}") \
            from None
    _stub_loaded_telemetry()
    return openvino


def precision_name(precision):
    """"fp32", "bf16" or "fp16" for ``precision`` (or another spelling of one)."""
    from menet_tf.infer.precision import resolve

    return resolve(precision).name


def precision_hint(precision):
    """OpenVINO's INFERENCE_PRECISION_HINT for ``precision``."""
    return PRECISION_HINTS[precision_name(precision)]


def convert(function, what):
    """An ``ov.Model`` of a concrete tf.function (or a SavedModel folder's serving_default)."""
    ov = import_openvino()
    try:
        return ov.convert_model(function)
    except Exception as err:  # the converter raises its own Error and plain exceptions
        text = str(err).strip().splitlines()
        raise MenetError(f"{what}: OpenVINO could not convert it "
                         f"({type(err).__name__}: {text[0] if text else ''})") from None


def read_ir(path):
    """An OpenVINO IR (.xml beside its .bin) as an ``ov.Model``."""
    ov = import_openvino()
    if not os.path.isfile(path):
        raise MenetError(f"{path}: file does not exist")
    bin_path = os.path.splitext(path)[0] + ".bin"
    if not os.path.isfile(bin_path):
        raise MenetError(f"{path}: its weights file {os.path.basename(bin_path)} is missing")
    try:
        return ov.Core().read_model(path)
    except Exception as err:
        text = str(err).strip().splitlines()
        raise MenetError(f"{path}: not a readable OpenVINO IR ({text[0] if text else ''})") \
            from None


def tf_network(derainer, kind="real_mean"):
    """The float32 TensorFlow graph of ``kind`` (see ``Derainer.concrete_function``), any size,
    returning {"derained": ...}: converted as it is, OpenVINO also made outputs of the dangling
    nodes Keras leaves in the graph (and would compute them); a named output is the only one."""
    import tensorflow as tf

    function = derainer.concrete_function(None, None, kind=kind)
    specs = function.structured_input_signature[0]
    return tf.function(lambda *inputs: {"derained": function(*inputs)},
                       autograph=False).get_concrete_function(*specs)


def float32_derainer(derainer):
    """The Derainer's float32 graph without XLA (what OpenVINO converts): ``derainer`` itself
    when it already is one, else a new one of the same model."""
    if not derainer.jit_compile and getattr(derainer, "precision", "fp32") == "fp32":
        return derainer
    return Derainer(derainer.model, fold_batch_norm=derainer.fold_batch_norm, jit_compile=False)


class OpenVINORunner(Runner):
    """A MENET network compiled by OpenVINO's CPU plugin (``OpenVINODerainer``'s arguments)."""

    cannot_serve = "already an OpenVINO model; export from the Keras model"

    def __init__(self, network, precision="fp32", multiple=1, tf_derainer=None, name="model",
                 static_shapes=True):
        ov = import_openvino()
        super().__init__(name, multiple, precision_name(precision))
        self.hint = precision_hint(precision)
        self.network = network
        self.static_shapes = bool(static_shapes)
        self.tf_derainer = tf_derainer
        self.fold_batch_norm = tf_derainer.fold_batch_norm if tf_derainer else False
        self.compile_count = 0  # compiled models made (a test checks the cache)
        self.compiled = collections.OrderedDict()  # (graph, shape key) -> compiled model
        self._core = ov.Core()
        self._graphs = {"network": network}
        self._takes_size = len(network.inputs) == 2
        if len(network.inputs) not in (1, 2) or len(network.outputs) != 1:
            raise MenetError(f"{name}: not a MENET network (expected 1 or 2 inputs and one"
                             f" output, got {len(network.inputs)} and {len(network.outputs)})")
        shape = network.inputs[0].get_partial_shape()
        if shape.rank.is_static and (shape.rank.get_length() != 4 or
                                     not shape[3].compatible(ov.Dimension(3))):
            raise MenetError(f"{name}: not a MENET network (input shape {shape}, expected"
                             " [N, H, W, 3])")

    def _compiled_for(self, graph, shapes):
        """The compiled ``graph`` for inputs of ``shapes``: one per shape (reshaped to it,
        static) or one dynamic-shape model for all."""
        key = (graph, tuple(shapes) if self.static_shapes else None)
        compiled = self.compiled.get(key)
        if compiled is not None:
            self.compiled.move_to_end(key)
            return compiled
        model = self._graphs[graph]
        if self.static_shapes:
            model = model.clone()
            model.reshape({i: list(s) for i, s in enumerate(shapes)})
        try:
            compiled = self._core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": self.hint})
        except Exception as err:
            text = str(err).strip().splitlines()
            raise MenetError(f"{self.name}: OpenVINO could not compile it for input shape"
                             f" {shapes[0]} ({text[0] if text else ''})") from None
        self.compile_count += 1
        self.compiled[key] = compiled
        while len(self.compiled) > CACHE_SIZE:
            self.compiled.popitem(last=False)
        return compiled

    def _run(self, graph, *inputs):
        inputs = [np.ascontiguousarray(x) for x in inputs]
        compiled = self._compiled_for(graph, [np.shape(x) for x in inputs])
        return compiled(inputs)[0].astype(np.float32, copy=False)

    def _graph(self, kind):
        if kind not in self._graphs:
            self._graphs[kind] = convert(tf_network(self.tf_derainer, kind), self.name)
        return kind

    # -- the runner protocol -------------------------------------------------------------------
    def run(self, batch):
        if self._takes_size:
            return self._run("network", batch, np.asarray(batch.shape[1:3], np.int32))
        return self._run("network", batch)

    def run_padded(self, batch, size):
        if not self._takes_size:
            return self.run(batch)
        return self._run("network", batch, np.asarray(size, np.int32))

    def has_attention(self):
        """Known only for a network converted from a Keras model; the serving graph of an
        IR or SavedModel cannot take an image-wide mean, so its tiles use their own."""
        return self.tf_derainer is not None and self.tf_derainer.has_attention()

    def excitation(self, tiles):
        return self._run(self._graph("excitation"), tiles)

    def run_with_mean(self, tiles, mean):
        return self._run(self._graph("with_mean"), tiles, np.asarray(mean, np.float32))

    def warm_up(self, height=None, width=None):
        """Compile for [1, height, width, 3] (rounded up to the multiple) and run once."""
        m = self.multiple
        h, w = (round_up(height or m, m), round_up(width or m, m))
        self.run(np.zeros((1, h, w, 3), np.float32))


class OpenVINODerainer(Derainer):
    """A MENET network compiled by OpenVINO's CPU plugin, with the Derainer interface: a
    Derainer of an ``OpenVINORunner``.

    Args:
        network: the ``ov.Model``: either the network (inputs ``batch`` [N, H, W, 3] float32
            0..255, H and W multiples of ``multiple``, and ``size`` [2] int32, the real image
            inside the padded batch) or an any-size serving graph (one input; ``multiple`` 1).
        precision: "fp32", "bf16" or "fp16" (OpenVINO's inference precision hint).
        multiple: what the network's sides must be multiples of.
        tf_derainer: the float32 TensorFlow Derainer the network came from (None for an IR or
            SavedModel): it provides the graphs of exact tiling for attention models.
        name: what the errors call the model.
        static_shapes: compile one model per input shape (faster) rather than one for all.
    """

    name = runner_attribute("name")
    hint = runner_attribute("hint", "OpenVINO's inference precision hint.")
    static_shapes = runner_attribute("static_shapes")
    tf_derainer = runner_attribute("tf_derainer")
    compile_count = runner_attribute("compile_count", "Compiled models made so far.")

    def __init__(self, network, precision="fp32", multiple=1, tf_derainer=None, name="model",
                 static_shapes=True):
        super().__init__(OpenVINORunner(network, precision, multiple, tf_derainer, name,
                                        static_shapes))

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_derainer(cls, derainer, precision="fp32", **options):
        """The network of a TensorFlow ``Derainer`` (its Keras model) compiled by OpenVINO."""
        if getattr(derainer, "model", None) is None:
            raise MenetError("OpenVINODerainer.from_derainer needs a Derainer of a Keras model")
        base = float32_derainer(derainer)
        network = convert(tf_network(base), derainer.model.name)
        return cls(network, precision, base.multiple, tf_derainer=base,
                   name=derainer.model.name, **options)

    @classmethod
    def from_file(cls, kind, path, precision="fp32", **options):
        """An exported model run as it is: ``kind`` "openvino" (an IR .xml) or "savedmodel"
        (its serving_default), as ``menet_tf.infer.load.source_kind`` tells them apart."""
        precision_hint(precision)
        import_openvino()
        if kind == "openvino":
            return cls(read_ir(path), precision, name=path, **options)
        if kind == "savedmodel":
            return cls(convert(path, path), precision, name=path, **options)
        raise MenetError(f"{path}: not an exported model ({kind}); use from_derainer")
