"""The SavedModel runner: an exported SavedModel's ``serving_default`` signature.

The SavedModel pads inside its graph, so its ``multiple`` is 1; tiles are still rounded to 16
pixels. It runs in the precision it was exported in (``export.json``'s "precision", fp32 when
absent). The exported graph cannot take an image-wide attention mean from outside, so tiles of
an attention model use their own (with the default 128-pixel overlap the Keras model's tiles are
exact; an exported attention model's tiles are not).
"""
import os

import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.infer import precision as precisions
from menet_tf.infer.runner import Runner


def exported_precision(path):
    """The precision an export recorded in its export.json ("fp32" when it says none)."""
    from menet_tf.files import read_json

    info = read_json(os.path.join(path, "export.json"))
    recorded = info.get("precision", "fp32") if isinstance(info, dict) else "fp32"
    try:
        return precisions.resolve(recorded).name
    except MenetError:
        raise MenetError(f"{path}: export.json names an unknown precision {recorded!r}") \
            from None


class SavedModelRunner(Runner):
    """An exported SavedModel folder ``path``. ``precision`` may name the one it was exported
    in, or be left at "fp32"; asking a float32 export for bf16 is refused (re-export with
    ``menet-tf export --precision bf16``)."""

    cannot_serve = "already an exported SavedModel"

    def __init__(self, path, precision="fp32"):
        path = os.fspath(path)
        # multiple 1: the graph pads inside; tiles still on the 1/16 grid of channel attention
        super().__init__(path, 1, exported_precision(path), tile_multiple=16)
        self.path = path
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

    def run(self, batch):
        out = self._signature(**{self._input_name: tf.constant(batch)})[self._output_name]
        return out.numpy().astype(np.float32, copy=False)
