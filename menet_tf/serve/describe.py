"""What the page and ``GET /v1/model`` say about the loaded model: its name, one card line,
its configuration and, for a bundled model, the scores its registry entry records.

Everything comes from where the model came from (the bundled registry, a SavedModel's
export.json, the Keras model itself), never typed here, so a new bundled model describes itself.
"""
import os

from menet_tf.bundled import card, registry
from menet_tf.files import read_json
from menet_tf.infer.load import source_kind


def _bundled(name):
    record = registry.entry(name)
    training, scores = record["training"], record["scores"]
    rgb = scores.get("rgb", {})
    line = (f"{card.network_words(record)} trained on {training['data']}, "
            f"{training['epochs']} epochs ({training['steps']} steps)")
    if rgb:
        line += (f"; {scores['data']}: {rgb['psnr']:.2f} dB PSNR (RGB) against"
                 f" {rgb['input_psnr']:.2f} dB for the rainy input")
    return {"name": name, "card": line, "configuration": record["configuration"],
            "alias": record.get("alias"), "scores": scores, "card_file": record.get("card"),
            "bundled": True}


def _network_words(model):
    attention = "channel attention" if getattr(model, "attention", False) else "no attention"
    return f"depth {int(getattr(model, 'depth', 0))}, {attention}"


def _saved_model(path):
    info = read_json(os.path.join(path, "export.json")) or {}
    configuration = info.get("name")
    what = f" of {configuration}" if configuration else ""
    return {"name": os.path.basename(os.path.normpath(path)),
            "card": f"an exported SavedModel{what} ({path})", "configuration": configuration,
            "alias": None, "scores": None, "export": info or None, "bundled": False}


def _keras(path, derainer):
    model = derainer.model
    return {"name": os.path.basename(os.path.normpath(os.path.dirname(path) if
                                                       path.endswith("model.keras") else path)),
            "card": f"{model.name} ({_network_words(model)}) from {path}",
            "configuration": model.name, "alias": None, "scores": None, "bundled": False}


def describe(source, derainer, precision="fp32", backend="tensorflow"):
    """A JSON-ready description of the model ``source`` loaded as ``derainer``."""
    import menet_tf

    kind, path = source_kind(source)
    if kind == "bundled":
        info = _bundled(path)
    elif kind == "savedmodel":
        info = _saved_model(path)
    elif getattr(derainer, "model", None) is not None:
        info = _keras(path, derainer)
    else:  # another backend's own model object
        info = {"name": os.path.basename(os.path.normpath(path)), "card": f"from {path}",
                "configuration": None, "alias": None, "scores": None, "bundled": False}
    return dict(info, source=os.fspath(source), kind=kind, precision=precision,
                backend=backend, multiple=int(getattr(derainer, "multiple", 1)),
                version=menet_tf.__version__)
