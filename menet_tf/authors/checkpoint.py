"""Compatibility with the authors' TF1 code: read their checkpoints into the Keras model.

The released checkpoints name variables by TF1 scope (``derain/layer1/layer1_conv/kernel``,
``derain/batch_normalization_3/moving_mean``, ...). Each layer of ``menet_tf.model.network`` knows its
TF1 scope, so the mapping is derived from the model itself and covers every released variant.
Optimiser state (Adam slots, ``beta1_power``, ``beta2_power``, ``global_step``) is not imported:
a fine-tune starts a fresh optimiser, as the authors' scripts do when they restore weights.
"""
import dataclasses
import glob
import os
import re

import tensorflow as tf

from menet_tf.errors import CheckpointError

_BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
_OPTIMIZER_STATE = re.compile(r"(/Adam(_1)?$)|^(global_step|beta1_power|beta2_power)$")
ADAM_SLOT = re.compile(r"/Adam(_1)?$")
MOVING_STATISTIC = re.compile(r"/moving_(mean|variance)$")
WEIGHTS_ELSEWHERE = "the trained weights ship in the authors' repository, github SumiHui/MENET"


def variable_map(model):
    """{TF1 variable name: Keras variable} for every weight and BN statistic of ``model``."""
    model.ensure_built()
    mapping = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        scope = getattr(layer, "tf1_name", None)
        if scope is None:
            continue
        if all(hasattr(layer, attr) for attr in _BN_VARIABLES):  # Keras' or our fused BN
            for attr in _BN_VARIABLES:
                mapping[f"{scope}/{attr}"] = getattr(layer, attr)
        else:
            mapping[f"{scope}/kernel"] = layer.kernel
    return mapping


def resolve_prefix(path):
    """Accept a checkpoint prefix, or a folder holding exactly one checkpoint."""
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        prefixes = sorted(f[: -len(".index")] for f in os.listdir(path) if f.endswith(".index"))
        if len(prefixes) == 1:
            return os.path.join(path, prefixes[0])
        if not prefixes:
            raise CheckpointError(f"{path}: no TF1 checkpoint (*.index file) in this folder")
        raise CheckpointError(
            f"{path}: several checkpoints in this folder ({', '.join(prefixes)}); name one prefix"
        )
    if not os.path.exists(path + ".index"):
        raise CheckpointError(
            f"{path}: not a TF1 checkpoint prefix ({path}.index does not exist); give the path"
            " without the .index / .data-* ending, e.g. .../model.final-100"
        )
    return path


def read_checkpoint(path):
    """{name: shape} of a TF1 checkpoint and its reader, with a clear error for unreadable files."""
    prefix = resolve_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        raise CheckpointError(f"{prefix}: cannot be read as a TF1 checkpoint ({err})") from None
    return prefix, reader, reader.get_variable_to_shape_map()


def has_data(prefix):
    """Whether the values of a checkpoint are there (an .index alone gives names and shapes)."""
    return bool(glob.glob(glob.escape(os.fspath(prefix)) + ".data-*"))


@dataclasses.dataclass
class ImportReport:
    """What ``load_checkpoint`` did: which variables it loaded and which it left aside."""

    prefix: str
    loaded: list
    ignored: list


def load_checkpoint(model, prefix):
    """Load weights and BN moving statistics of an authors' TF1 checkpoint into ``model``.

    A checkpoint that does not fit (another variant, missing or extra ``derain/`` variables,
    wrong shapes) is refused with a CheckpointError that lists every misfit; nothing is
    assigned in that case. Returns an ImportReport.
    """
    prefix, reader, shapes = read_checkpoint(prefix)
    mapping = variable_map(model)
    weights = {
        n: s for n, s in shapes.items() if not _OPTIMIZER_STATE.search(n) and n.startswith("derain/")
    }
    problems = _misfits(mapping, weights)
    if problems:
        attention = getattr(model, "attention_block", None) or model.attention
        raise CheckpointError(
            f"{prefix} does not fit this model (depth {model.depth}, attention "
            f"{attention_words(attention)}; the checkpoint looks like"
            f" {describe_architecture(shapes)}):\n" + "\n".join(problems)
        )
    if not has_data(prefix):
        raise CheckpointError(
            f"{prefix}: only the checkpoint index is here, no .data file with the values"
            f" ({WEIGHTS_ELSEWHERE})")
    for name, variable in mapping.items():
        variable.assign(reader.get_tensor(name).astype(variable.dtype))
    ignored = sorted(n for n in shapes if n not in weights)
    return ImportReport(prefix=prefix, loaded=sorted(mapping), ignored=ignored)


def _misfits(mapping, weights):
    """The lines listing every model variable the checkpoint lacks, every checkpoint variable
    the model lacks and every shape that differs (none when the checkpoint fits)."""
    missing = sorted(set(mapping) - set(weights))
    extra = sorted(set(weights) - set(mapping))
    wrong = [
        f"{n}: checkpoint {list(weights[n])}, model {list(mapping[n].shape)}"
        for n in sorted(set(mapping) & set(weights))
        if list(weights[n]) != list(mapping[n].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model variables missing from the checkpoint:")
        problems += [f"  - {n}" for n in missing]
    if extra:
        problems.append(f"{len(extra)} checkpoint variables the model does not have:")
        problems += [f"  - {n}" for n in extra]
    if wrong:
        problems.append(f"{len(wrong)} variables with the wrong shape:")
        problems += [f"  - {w}" for w in wrong]
    return problems


def architecture_of(shapes):
    """(depth, attention) of the network a checkpoint's variables describe; attention is
    False, True (the "Ca" block, ``derain/ca/``) or "caformer" (``derain/channel_att/``)."""
    blocks = {int(m.group(1)) for n in shapes if (m := re.match(r"derain/res_(\d+)_a/", n))}
    if any(n.startswith("derain/channel_att/") for n in shapes):
        attention = "caformer"
    else:
        attention = any(n.startswith("derain/ca/") for n in shapes)
    return len(blocks), attention


def attention_words(attention):
    """How messages name an attention setting: "on", "off" or "caformer"."""
    if attention == "caformer":
        return "caformer"
    return "on" if attention else "off"


def describe_architecture(shapes):
    """What a refused checkpoint looks like, for the message that refuses it."""
    depth, attention = architecture_of(shapes)
    if depth == 0:
        return "no MENET network (no derain/res_* variables)"
    return f"depth {depth}, attention {attention_words(attention)}"
