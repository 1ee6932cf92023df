"""menet-tf: MENET multi-task single-image de-raining in TensorFlow 2 / Keras 3.

    import menet_tf
    model = menet_tf.build_model(menet_tf.released_config("MENET-GB"))
    menet_tf.tf1.load_checkpoint(model, "ModelShallowNewCaEdgeGramGradBalance/model.final-100")
    logs = model.train_on_batch(rainy, clean, return_dict=True)   # images in 0..255

Names are imported on first use, so ``import menet_tf`` (and ``menet-tf --help``) does not
pay for importing TensorFlow.
"""
import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "menet_tf.config",
    "LossConfig": "menet_tf.config",
    "ModelConfig": "menet_tf.config",
    "OptimizerConfig": "menet_tf.config",
    "TrainConfig": "menet_tf.config",
    "load_config": "menet_tf.config",
    "released_config": "menet_tf.config",
    "save_config": "menet_tf.config",
    "MenetError": "menet_tf.errors",
    "CheckpointError": "menet_tf.errors",
    "ConfigError": "menet_tf.errors",
    "DataError": "menet_tf.errors",
    "MENET": "menet_tf.network",
    "MultiTaskMENET": "menet_tf.training",
    "build_model": "menet_tf.training",
}
_SUBMODULES = ("config", "data", "errors", "losses", "network", "tf1", "training", "weighting")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"menet_tf.{name}")
    raise AttributeError(f"module 'menet_tf' has no attribute {name!r}")
