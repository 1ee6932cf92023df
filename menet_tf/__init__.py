"""menet-tf: MENET multi-task single-image de-raining in TensorFlow 2 / Keras 3.

    import menet_tf
    model = menet_tf.build_model(menet_tf.released_config("MENET-GB"))
    logs = model.train_on_batch(rainy, clean, return_dict=True)   # images in 0..255
"""
from menet_tf.config import (
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    TrainConfig,
    load_config,
    released_config,
    save_config,
)
from menet_tf.errors import CheckpointError, ConfigError, DataError, MenetError
from menet_tf.network import MENET
from menet_tf.training import MultiTaskMENET, build_model

from menet_tf import tf1  # noqa: E402  (menet_tf.tf1.load_checkpoint)

__version__ = "0.1.0"

__all__ = [
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "TrainConfig",
    "load_config",
    "released_config",
    "save_config",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MenetError",
    "MENET",
    "MultiTaskMENET",
    "build_model",
    "tf1",
]
