"""Deploy a trained MENET without menet-tf: a SavedModel (TF Serving), a TFLite file or an
OpenVINO IR.

Both run ``Derainer.serving_function`` (``menet_tf.infer.derainer``): images in 0..255, reflection
padding to the model's multiple inside the graph, the network in inference mode (BN folded),
crop back. So any height and width works, and the exported arithmetic is the one ``derain`` runs.

SavedModel: written with Keras 3's export machinery, ``keras.export.ExportArchive`` (what
``model.export()`` uses internally). ``model.export()`` itself can only export ``model.call``
with one input signature, and ``call`` refuses sizes that are not multiples of 4/16; the archive
takes our own endpoint functions, so the graph pads, and a second signature takes uint8.
Signatures:

* ``serving_default``: float32 [N, H, W, 3] "images" in 0..255 -> {"derained": float32}
* ``serve_uint8``: uint8 [N, H, W, 3] "images" -> {"derained": uint8} (rounded)

TFLite: ``tf.lite.TFLiteConverter`` from the same function with a fixed input [1, H, W, 3]
(``size``), float32, or with dynamic-range quantisation (int8 weights, float activations).

OpenVINO IR (the optional extra ``menet-tf[openvino]``): ``model.xml`` + ``model.bin`` converted
from the same function with float32 input "images" [N, H, W, 3] of any size in 0..255 and output
"derained". An IR carries no inference precision, so ``precision`` bf16/fp16 stores the weights
in float16 (half the file; what a bf16/f16 run rounds them to anyway) and is recorded in
export.json; the runtime's hint (``INFERENCE_PRECISION_HINT``, or ``--precision`` when menet-tf
runs it) decides the arithmetic. OpenVINO's CPU plugin runs bf16 by default on CPUs with
AVX512_BF16 or AMX: ask for "f32" there to get float32.
"""
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.files import atomic_write, read_json, write_json

MARKER = "export.json"


def _is_export(folder):
    """A folder an earlier ``export`` wrote: it carries export.json with the export's format."""
    info = read_json(os.path.join(folder, MARKER))
    return isinstance(info, dict) and "format" in info


def _prepare_target(path, force, fmt):  # fmt: "savedmodel"/"openvino" folder, else a file
    """Refuse to replace anything but a previous export, and that only with --force.

    --force reaches no further than the command's own outputs: a SavedModel folder must carry
    the export's marker, a TFLite target must be a file; a run folder, ``.`` or a folder of a
    user's files is never replaced, whatever the flags.
    """
    if not os.path.lexists(path):
        return
    if not force:
        raise MenetError(f"{path} exists; use --force to replace an earlier export")
    if fmt in ("savedmodel", "openvino"):
        ours = os.path.isdir(path) and not os.path.islink(path) and _is_export(path)
    else:
        ours = os.path.isfile(path)
    if not ours:
        what = {"savedmodel": "a SavedModel export (no export.json)",
                "openvino": "an OpenVINO export (no export.json)"}.get(fmt, "a file")
        raise MenetError(f"{path} is not {what}; refusing to replace it even with --force")


def _readable_by_umask(folder):
    """mkdtemp makes 0700 folders; give the export the mode the user's umask asks for."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)


def _replace(tmp, path):
    """Move a finished export into place (an interrupted export never leaves half a model):
    the previous export (checked by ``_prepare_target``) is moved aside first and removed
    only once the new one is in place."""
    old = None
    if os.path.isdir(path) and not os.path.islink(path):
        old = tempfile.mkdtemp(prefix=".export-old-", dir=os.path.dirname(tmp))
        os.rmdir(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _require_keras_model(derainer, what):
    if derainer.model is None:
        raise MenetError(f"{what} needs a Keras model (run folder, .keras or TF1 checkpoint),"
                         " not an exported SavedModel")


def _archive(derainer, specs):
    """A Keras export archive with one endpoint per {name: input spec}, each running
    ``derainer.serving_function`` (so the graph pads and crops like ``derain``)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(derainer.model)
    for name, spec in specs.items():
        archive.add_endpoint(name, lambda images: {"derained": derainer.serving_function(images)},
                             input_signature=[spec])
    return archive


def export_saved_model(derainer, path, force=False):
    """Write a SavedModel of ``derainer`` (a ``Derainer``) to the folder ``path``."""
    path = os.fspath(path)
    _prepare_target(path, force, "savedmodel")
    _require_keras_model(derainer, "export")
    archive = _archive(derainer, {
        name: tf.TensorSpec([None, None, None, 3], dtype, name="images")
        for name, dtype in (("serving_default", tf.float32), ("serve_uint8", tf.uint8))})
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        archive.write_out(tmp, verbose=False)
        _readable_by_umask(tmp)
        _write_info(tmp, derainer, format="savedmodel", signatures={
            "serving_default": "float32 images [N,H,W,3] 0..255 -> derained float32",
            "serve_uint8": "uint8 images [N,H,W,3] -> derained uint8"})
        _replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return path


def _write_info(folder, derainer, **extra):
    """export.json beside the model: what was exported, so the artifact explains itself."""
    model = derainer.model
    info = {
        "model": type(model).__name__, "name": model.name, "depth": int(model.depth),
        "attention": getattr(model, "attention_block", None) or bool(model.attention),
        "multiple": derainer.multiple, "fold_batch_norm": derainer.fold_batch_norm,
        "precision": getattr(derainer, "precision", "fp32"), "value_range": "0..255 RGB",
        **extra,
    }
    write_json(os.path.join(folder, MARKER), info)


def tflite_bytes(derainer, size, quantize=None):
    """The TFLite flatbuffer of ``derainer`` for float32 input [1, H, W, 3] (``size`` = (H, W))."""
    _require_keras_model(derainer, "TFLite export")
    if quantize not in (None, "dynamic"):
        raise MenetError(f"unknown quantisation {quantize!r}; only 'dynamic' is supported")
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise MenetError(f"--size must be positive, got {height} {width}")
    # Through a fixed-size SavedModel: converting the concrete function directly does not
    # freeze Keras 3 variables (the flatbuffer came out without weights and returned NaN).
    archive = _archive(derainer, {
        "serving_default": tf.TensorSpec([1, height, width, 3], tf.float32, name="images")})
    with tempfile.TemporaryDirectory(prefix="menet-tflite-") as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, ["serving_default"])
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            return converter.convert()
        except Exception as err:  # the converter raises ConverterError and plain exceptions
            raise MenetError(f"TFLite conversion failed: {str(err).splitlines()[0]}") from None


def export_tflite(derainer, path, size, quantize=None, force=False):
    """Write ``path`` (a .tflite file, or a folder that gets model.tflite + export.json)."""
    path = os.fspath(path)
    if not path.endswith(".tflite"):
        folder, path = path, os.path.join(path, "model.tflite")
    else:
        folder = os.path.dirname(os.path.abspath(path))
    _prepare_target(path, force, "tflite")
    marker = os.path.join(folder, MARKER)
    if os.path.basename(path) == "model.tflite" and os.path.exists(marker):
        _prepare_target(marker, force, "tflite")
    data = tflite_bytes(derainer, size, quantize)
    os.makedirs(folder, exist_ok=True)
    atomic_write(path, lambda f: f.write(data), mode="wb")
    if os.path.basename(path) == "model.tflite":
        _write_info(folder, derainer, format="tflite", input_shape=[1, *map(int, size), 3],
                    quantize=quantize or "none", bytes=len(data))
    return path


def run_tflite(model_path_or_bytes, images):
    """Run a TFLite export on float32 [1, H, W, 3] (for tests and comparisons)."""
    import warnings

    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (still shipped)
        warnings.simplefilter("ignore")
        if isinstance(model_path_or_bytes, (bytes, bytearray)):
            interpreter = tf.lite.Interpreter(model_content=bytes(model_path_or_bytes))
        else:
            interpreter = tf.lite.Interpreter(model_path=os.fspath(model_path_or_bytes))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], np.asarray(images, np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def openvino_model(derainer):
    """The ``ov.Model`` of ``derainer.serving_function`` (float32 [N, H, W, 3] "images", any
    size, 0..255 -> "derained"), converted from its float32 graph whatever its precision."""
    from menet_tf.infer.openvino_backend import convert, float32_derainer

    _require_keras_model(derainer, "OpenVINO export")
    base = float32_derainer(derainer)
    function = tf.function(lambda images: {"derained": base.serving_function(images)},
                           autograph=False).get_concrete_function(
        tf.TensorSpec([None, None, None, 3], tf.float32, name="images"))
    model = convert(function, derainer.model.name)
    model.inputs[0].get_tensor().set_names({"images"})
    return model


def export_openvino(derainer, path, precision="fp32", force=False):
    """Write an OpenVINO IR of ``derainer``: ``path`` a folder (model.xml, model.bin and
    export.json inside) or an ``.xml`` file name (its ``.bin`` beside it). Returns the .xml."""
    from menet_tf import interrupts
    from menet_tf.infer.openvino_backend import import_openvino, precision_hint

    precision_hint(precision)
    path = os.fspath(path)
    as_file = path.endswith(".xml")
    targets = [path, path[:-4] + ".bin"] if as_file else [path]
    for target in targets:
        _prepare_target(target, force, "file" if as_file else "openvino")
    ov = import_openvino()
    model = openvino_model(derainer)
    model.set_rt_info(precision, ["menet_tf", "precision"])
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        ov.save_model(model, os.path.join(tmp, "model.xml"), compress_to_fp16=precision != "fp32")
        if as_file:
            with interrupts.deferred():  # the pair moves together: no new .bin beside an old .xml
                os.replace(os.path.join(tmp, "model.bin"), targets[1])
                os.replace(os.path.join(tmp, "model.xml"), path)
                interrupts.check()
            return path
        _readable_by_umask(tmp)
        _write_info(tmp, derainer, format="openvino", precision=precision,
                    files=["model.xml", "model.bin"],
                    weights="float32" if precision == "fp32" else "float16",
                    inputs={"images": "float32 [N,H,W,3] 0..255, any size"},
                    outputs={"derained": "float32 [N,H,W,3] 0..255"},
                    inference_precision_hint=precision_hint(precision))
        _replace(tmp, path)
        return os.path.join(path, "model.xml")
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
