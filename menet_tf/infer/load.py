"""Any model source to a Keras model or a Derainer: a bundled model's name, run folder,
``.keras`` file, the authors' TF1 checkpoint (prefix or folder), an exported SavedModel or an
OpenVINO IR (run by ``menet_tf.infer.openvino_backend``).

``source_kind`` is the one place that tells the sources apart; a new kind of source is a branch
there and a loader in ``_LOADERS``.
"""
import os
import re

from menet_tf.bundled import registry
from menet_tf.errors import CheckpointError, MenetError
from menet_tf.infer.derainer import Derainer, SavedModelDerainer
from menet_tf.infer.pretrained import load_bundled, one_line, released_model

# A file of a TF1 checkpoint given where its prefix belongs.
_CHECKPOINT_FILE = re.compile(r"\.(index|data-\d+-of-\d+|meta)$")


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


def _looks_like_name(text):
    """A word rather than a path: no folder separator, no file ending."""
    return not any(sep and sep in text for sep in (os.sep, os.altsep, "/")) and \
        not os.path.splitext(text)[1]


def source_kind(source):
    """(kind, path) of a model source: kind "bundled" (path is then the name), "savedmodel",
    "openvino" (an IR's .xml, or a folder ``export --format openvino`` wrote), "keras" or "tf1",
    and the path to load (a run folder's model.keras; a TF1 checkpoint's prefix or folder; an
    IR's .xml). A path on disk wins over a bundled model of the same name."""
    path = os.fspath(source)
    if _looks_like_name(path) and not os.path.exists(path) and registry.is_bundled_name(path):
        return "bundled", path
    if _is_saved_model(path):
        return "savedmodel", path
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "model.xml")):
        return "openvino", os.path.join(path, "model.xml")
    if path.endswith(".xml") and not os.path.isdir(path):
        if not os.path.isfile(path):
            raise MenetError(f"{path}: file does not exist")
        return "openvino", path
    if os.path.isdir(path):
        keras_file = os.path.join(path, "model.keras")
        if os.path.isfile(keras_file):
            return "keras", keras_file
        if any(f.endswith(".index") for f in os.listdir(path)) or os.path.exists(
                os.path.join(path, "checkpoint")):
            return "tf1", path
        raise MenetError(f"{path}: folder holds neither model.keras (a run folder) nor a TF1"
                         " checkpoint (*.index) nor saved_model.pb nor model.xml (OpenVINO)")
    if path.endswith(".keras"):
        if not os.path.isfile(path):
            raise MenetError(f"{path}: file does not exist")
        return "keras", path
    if os.path.exists(path + ".index"):
        return "tf1", path
    if _CHECKPOINT_FILE.search(path):
        raise CheckpointError(f"{path}: give the checkpoint prefix without the file ending,"
                              f" e.g. {_CHECKPOINT_FILE.sub('', path)}")
    raise MenetError(f"{path}: not a run folder, .keras file, TF1 checkpoint prefix,"
                     " SavedModel or OpenVINO .xml"
                     + ("" if os.path.exists(path) else " (it does not exist)")
                     + (f"; bundled models: {registry.names_text()}" if _looks_like_name(path)
                        else ""))


def _load_keras(path, model_name, compile):
    import keras

    import menet_tf.model.multitask  # noqa: F401  registers the classes for deserialisation
    from menet_tf.model.losses import for_inference

    try:
        with for_inference():  # a VGG-trained model loads without the VGG19 weights file
            model = keras.saving.load_model(path, compile=compile)
    except Exception as err:  # Keras raises many kinds (ValueError, TypeError, zip errors)
        raise MenetError(f"{path}: cannot be loaded as a Keras model ({one_line(err)})") \
            from None
    if not hasattr(model, "multiple"):
        raise MenetError(f"{path}: holds a {type(model).__name__}, not a MENET model")
    model.ensure_built()
    return model


def _load_tf1(path, model_name, compile):
    """The checkpoint's network; with a released name (given, or a folder on the path) the
    MultiTaskMENET of that configuration, checked against the checkpoint's architecture."""
    from menet_tf.authors import checkpoint as tf1
    from menet_tf.config import released_config
    from menet_tf.model.layers import attention_block
    from menet_tf.model.network import MENET

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
        model = released_model(config)
    else:
        model = MENET(depth=depth, attention=attention)
    model.ensure_built()
    tf1.load_checkpoint(model, prefix)
    return model


# Source kind -> loader(path, model_name, compile) of a Keras model.
_LOADERS = {"keras": _load_keras, "tf1": _load_tf1, "bundled": load_bundled}


def load_model(source, model_name=None, compile=False):
    """A built MENET / MultiTaskMENET from a run folder, a ``.keras`` file or a TF1 checkpoint.

    Args:
        source: a bundled model's name (``menet-gb-rain100l``, see ``menet-tf models``); a run
            folder holding ``model.keras``; a ``.keras`` file; an authors' TF1 checkpoint
            prefix (``.../model.final-100``) or a folder holding one. The TF1 architecture
            (depth, attention) is read off the checkpoint's variables.
        model_name: released name (``ModelShallowNewCaEdgeGramGradBalance``, ``MENET-GB``, ...)
            giving a TF1 checkpoint its tasks; guessed from the path when a folder on it has a
            released name, else a plain MENET is built (enough for inference).
        compile: restore the optimiser/compile state of a ``.keras`` file (needed only to train
            or ``model.evaluate`` further); off by default because inference does not need it.
    """
    kind, path = source_kind(source)
    if kind == "savedmodel":
        raise MenetError(f"{path}: is an exported SavedModel, not a Keras model; use"
                         " menet_tf.infer.load.load_derainer (or `menet-tf derain`) to run it")
    if kind == "openvino":
        raise MenetError(f"{path}: is an OpenVINO IR, not a Keras model; run it with"
                         " --backend openvino")
    return _LOADERS[kind](path, model_name, compile)


def weights_files(source):
    """(kind, [paths]) of the files a source's weights are read from, for ``load_model``'s
    sources: what a run fine-tuned from it records the sha256 of (``menet-tf train --init``)."""
    kind, path = source_kind(source)
    if kind == "bundled":
        return kind, [registry.weights_path(path)]
    if kind == "tf1":
        import glob

        from menet_tf.authors.checkpoint import resolve_prefix

        prefix = glob.escape(resolve_prefix(path))
        return kind, sorted(glob.glob(prefix + ".index") + glob.glob(prefix + ".data-*"))
    return kind, [path]


def load_derainer(source, model_name=None, fold_batch_norm=True, jit_compile="auto",
                  precision="fp32", backend="tensorflow"):
    """A Derainer for anything ``load_model`` takes, or for an exported SavedModel or OpenVINO
    IR.

    ``precision`` ("fp32", "bf16", "fp16"; see ``menet_tf.infer.precision``) and ``backend``
    ("tensorflow" or "openvino", the optional extra) choose how the network runs; every
    combination has the same ``derain``/``predict`` interface.
    """
    kind, path = source_kind(source)
    _check_backend(backend, precision)
    if kind in ("savedmodel", "openvino"):  # exported: run as it is
        if backend == "openvino":
            from menet_tf.infer.openvino_backend import OpenVINODerainer

            return OpenVINODerainer.from_file(kind, path, precision)
        if kind == "openvino":
            raise MenetError(f"{path}: is an OpenVINO IR; run it with --backend openvino")
        return SavedModelDerainer(path, precision=precision)
    model = _LOADERS[kind](path, model_name, False)
    return derainer_of(model, fold_batch_norm, jit_compile, precision, backend)


def derainer_of(model, fold_batch_norm=True, jit_compile="auto", precision="fp32",
                backend="tensorflow"):
    """A Derainer of a built Keras MENET in ``precision`` on ``backend``: TensorFlow's own, or
    OpenVINO converting its float32 graph (batch norm folded) with ``precision`` as the hint."""
    _check_backend(backend, precision)
    if backend == "openvino":
        from menet_tf.infer.openvino_backend import OpenVINODerainer

        return OpenVINODerainer.from_derainer(
            Derainer(model, fold_batch_norm, jit_compile=False), precision)
    return Derainer(model, fold_batch_norm, jit_compile, precision=precision)


def _check_backend(backend, precision):
    """An unknown backend or precision, or a missing OpenVINO extra, is one line before any
    model loads."""
    if backend == "openvino":
        from menet_tf.infer.openvino_backend import import_openvino, precision_hint

        precision_hint(precision)
        import_openvino()
    elif backend != "tensorflow":
        raise MenetError(f"unknown backend {backend!r}; choose tensorflow or openvino")
