"""Deploy a trained MENET without menet-tf: a SavedModel (TF Serving) or a TFLite file.

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
"""
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.files import atomic_write

def _prepare_target(path, force):
    if os.path.exists(path) and not force:
        raise MenetError(f"{path} exists; use --force to replace it")


def _replace(tmp, path):
    """Move a finished export into place (an interrupted export never leaves half a model)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    os.replace(tmp, path)


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
    _prepare_target(path, force)
    _require_keras_model(derainer, "export")
    archive = _archive(derainer, {
        name: tf.TensorSpec([None, None, None, 3], dtype, name="images")
        for name, dtype in (("serving_default", tf.float32), ("serve_uint8", tf.uint8))})
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        archive.write_out(tmp, verbose=False)
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
        "value_range": "0..255 RGB", **extra,
    }
    with open(os.path.join(folder, "export.json"), "w") as fh:
        json.dump(info, fh, indent=2)


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
    _prepare_target(path, force)
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
