"""Fine-tuning: a run that starts from another model's weights (``train_run(init=...)``,
``menet-tf train --init SOURCE``).

The source is anything ``menet_tf.infer.load.load_model`` takes (a bundled model's name, a run
folder, a ``.keras`` file, a TF1 checkpoint): that module is the one home of what a model source
is. Only the network's variables (weights and batch-norm statistics) are taken; the optimizer
starts fresh, with the run's configured learning rate and schedule, as the authors' scripts do
when they restore weights. A run records the source and the sha256 of its weights files, so a
resumed run can tell whether it is still fine-tuning from the same weights.
"""
import os

from menet_tf.errors import CheckpointError, ConfigError
from menet_tf.files import sha256_of


def init_record(source):
    """``{source, kind, files, sha256}`` of a model source, read before any model is built.

    ``sha256`` is that of the weights file, or of a TF1 checkpoint's files (``.index`` and
    ``.data-*``, in name order) read one after the other. A missing or unknown source is one
    line naming it."""
    from menet_tf.infer.load import weights_files

    kind, paths = weights_files(source)
    try:
        digest = sha256_of(*paths)
    except OSError as err:
        raise CheckpointError(f"{err.filename}: cannot be read ({err.strerror})") from None
    return {"source": os.fspath(source), "kind": kind,
            "files": [os.path.abspath(p) for p in paths], "sha256": digest}


def _below_top(path):
    """A variable's path without the model's own name ("menet/layer1/conv/kernel" ->
    "layer1/conv/kernel"): a released model and a run's model name their top differently."""
    return path.partition("/")[2]


def _architecture(depth, attention):
    from menet_tf.model.layers import attention_block

    return int(depth), attention_block(attention)


def _words(architecture):
    depth, attention = architecture
    return f"depth {depth}, attention {attention or 'none'}"


def init_weights(source, config):
    """{variable path below the model's name: array} of ``source``'s network, after checking that
    it has the architecture (depth, attention block) of ``config``; one-line errors otherwise."""
    from menet_tf.infer.load import load_model

    source = os.fspath(source)
    model = load_model(source, compile=False)
    found = _architecture(model.depth, model.attention_block)
    wanted = _architecture(config.model.depth, config.model.attention)
    if found != wanted:
        raise ConfigError(f"{source}: a MENET of {_words(found)}, but {config.name} is a MENET of"
                          f" {_words(wanted)}; fine-tune from a model of the same architecture")
    return {_below_top(v.path): v.numpy() for v in model.variables}


def apply_init(model, weights, source):
    """Assign every variable of ``model`` (the network: weights and batch-norm statistics; not
    the optimizer) from ``weights`` (:func:`init_weights`). Every variable must be there with its
    shape: a partial start is refused, not trained."""
    variables = {_below_top(v.path): v for v in model.variables}
    missing = sorted(set(variables) - set(weights))
    misfit = [f"{k} {tuple(v.shape)} vs {weights[k].shape}" for k, v in variables.items()
              if k in weights and tuple(v.shape) != weights[k].shape]
    if missing or misfit:
        raise CheckpointError(f"{source}: its weights do not fit the model ("
                              + ", ".join((missing + misfit)[:3]) + ")")
    for key, variable in variables.items():
        variable.assign(weights[key])
