"""Experiment configurations as plain dataclasses, and the configuration of every released model.

A configuration says everything needed to rebuild an experiment: network, tasks and their
weighting, optimiser and schedule, training length. It round-trips through JSON
(``save_config`` / ``load_config``); ``experiments/*.json`` holds one file per released model.
"""
import copy
import dataclasses
import json
import os
from typing import Dict, Optional, Tuple, Union

from menet_tf import precisions
from menet_tf.errors import ConfigError
from menet_tf.files import write_json

PRECISIONS = precisions.NAMES  # fp32, bf16, fp16 (menet_tf.precisions)


@dataclasses.dataclass
class ModelConfig:
    depth: int = 8  # residual blocks: 8 "Shallow", 16 "Deep"
    # the channel-attention block: true = "ca" (the "Ca" models), "caformer" (the Rain100H
    # release's "Caformer" models: features rescaled without the residual), false = none
    attention: Union[bool, str] = False


@dataclasses.dataclass
class LossConfig:
    # Task order matters only for float rounding; the released graphs use (mse, texture, edge).
    tasks: Tuple[str, ...] = ("mse",)
    weighting: str = "fixed"  # "fixed", "gb" (gradient balance), "lb" (loss balance)
    task_weights: Dict[str, float] = dataclasses.field(default_factory=dict)  # fixed only
    texture_form: str = "released"  # "released" (default) or "paper" (Eq. 7)
    vgg_weights: Optional[str] = None  # Keras VGG19 ImageNet weights file, for the vgg task


@dataclasses.dataclass
class OptimizerConfig:
    """Adam with the staircase decay of the released scripts: lr * 0.1 ** floor(step / 36000)."""

    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-8  # TF1's default; Keras' is 1e-7
    decay_rate: float = 0.1
    # (18000 RainTrainH crops // batch 20) * 40 epochs; runners derive it from decay_epochs and
    # the training set's size when they know it.
    decay_steps: int = 36000
    decay_epochs: int = 40
    staircase: bool = True


@dataclasses.dataclass
class TrainConfig:
    batch_size: int = 20
    epochs: int = 100
    crop_size: int = 224
    jit_compile: Union[bool, str] = "auto"  # XLA: "auto" = on with a GPU, off on a CPU
    # "fp32", "bf16", "fp16" (loss-scaled): mixed precision, the network's layers compute in
    # the half type; variables, losses, Gram matrices and GB norms stay float32. The 0.1/0.2
    # policy names ("mixed_bfloat16", ...) of older config.json files are read as these.
    precision: str = "fp32"
    # With several replicas: batch-norm moments all-reduced over the global batch (else per replica).
    sync_batch_norm: bool = False

    def __setattr__(self, name, value):
        if name == "precision":  # one spelling, however it was given (a file, code, the CLI)
            value = precisions.canonical(value)
        object.__setattr__(self, name, value)


@dataclasses.dataclass
class ExperimentConfig:
    name: str = "MENET"
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, source="configuration"):
        """Build from a dict, refusing unknown keys (a typo must not silently become a default)."""
        return _from_dict(cls, data, source)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _from_dict(cls, data, where):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known keys are {sorted(fields)}")
    values = {}
    for key, value in data.items():
        nested = _NESTED.get((cls, key))
        if nested is not None:
            value = _from_dict(nested, value, f"{where}.{key}")
        elif key == "tasks":
            value = tuple(value)
        values[key] = value
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


_NESTED = {
    (ExperimentConfig, "model"): ModelConfig,
    (ExperimentConfig, "loss"): LossConfig,
    (ExperimentConfig, "optimizer"): OptimizerConfig,
    (ExperimentConfig, "train"): TrainConfig,
}


def load_config(path):
    """Read an ExperimentConfig from a JSON file (as written by ``save_config``)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read configuration ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    return ExperimentConfig.from_dict(data, source=os.fspath(path))


def save_config(config, path):
    """Write ``config`` to ``path`` atomically: a run folder never holds half a config.json."""
    write_json(path, config.to_dict(), error=ConfigError)


def _released(name, depth=8, attention=False, tasks=("mse",), weighting="fixed", **weights):
    return ExperimentConfig(
        name=name,
        model=ModelConfig(depth=depth, attention=attention),
        loss=LossConfig(tasks=tasks, weighting=weighting, task_weights=dict(weights)),
    )


_THREE = ("mse", "texture", "edge")
_CF = "caformer"
RELEASED = {
    c.name: c
    for c in (
        _released("ModelShallowNew"),
        _released("ModelShallowNewCa", attention=True),
        _released("ModelShallowNewEdgeFixed", tasks=("mse", "edge"), mse=1.0, edge=1e-2),
        _released("ModelShallowNewEdgeGradBalance", tasks=("mse", "edge"), weighting="gb"),
        _released("ModelShallowNewEdgeLossBalance", tasks=("mse", "edge"), weighting="lb"),
        _released("ModelShallowNewEdgeGramGradBalance", tasks=_THREE, weighting="gb"),
        _released("ModelShallowNewEdgeGramLossBalance", tasks=_THREE, weighting="lb"),
        _released("ModelShallowNewCaEdgeGramGradBalance", attention=True, tasks=_THREE, weighting="gb"),
        _released("ModelShallowNewCaEdgeGramLossBalance", attention=True, tasks=_THREE, weighting="lb"),
        _released("ModelDeepNewCaEdgeGramGradBalance", 16, True, _THREE, "gb"),
        _released("ModelDeepNewCaEdgeGramLossBalance", 16, True, _THREE, "lb"),
        _released("ModelShallowNewVGGFixed", tasks=("mse", "vgg"), mse=1.0, vgg=1e-3),
        # Rain100H release only; not in the paper (see network.CaformerAttention).
        _released("ModelShallowNewCaformer", attention=_CF),
        _released("ModelShallowNewCaformerEdgeGradBalance", 8, _CF, ("mse", "edge"), "gb"),
        _released("ModelShallowNewCaformerEdgeLossBalance", 8, _CF, ("mse", "edge"), "lb"),
        _released("ModelShallowNewCaformerEdgeGramGradBalance", 8, _CF, _THREE, "gb"),
        _released("ModelShallowNewCaformerEdgeGramLossBalance", 8, _CF, _THREE, "lb"),
    )
}
# The paper's names for the released models.
ALIASES = {
    "MENET-GB": "ModelShallowNewCaEdgeGramGradBalance",
    "MENET-LB": "ModelShallowNewCaEdgeGramLossBalance",
    "MENET-GB-deep": "ModelDeepNewCaEdgeGramGradBalance",
    "MENET-LB-deep": "ModelDeepNewCaEdgeGramLossBalance",
}


def released_config(name):
    """The ExperimentConfig of a released model, by its released name or paper alias."""
    key = ALIASES.get(name, name)
    if key not in RELEASED:
        raise ConfigError(
            f"unknown released model {name!r}; known: {sorted(RELEASED)} and aliases {sorted(ALIASES)}"
        )
    return copy.deepcopy(RELEASED[key])
