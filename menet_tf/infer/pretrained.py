"""The bundled models as Keras models: the network of a released configuration with a weights
file loaded, after the registry has checked the file.

Kept apart from ``load`` (every source) so that ``Derainer.from_pretrained`` can reach it
without ``load``, which imports the Derainer itself.
"""
from menet_tf.bundled import registry
from menet_tf.errors import CheckpointError, MenetError
from menet_tf.machine import one_line  # also for infer.load: a loader's error in one line


def pretrained(name=None):
    """A bundled model (``None``: the default, see ``menet-tf models``) as a built Keras
    MultiTaskMENET, checksum-checked; no training, no download."""
    return load_bundled(name or registry.default_name(), None, False)


def released_model(config):
    """The MultiTaskMENET of a released configuration (an ExperimentConfig), not yet built, for
    inference: a VGG-task configuration needs no VGG19 weights file here."""
    from menet_tf.model.losses import for_inference
    from menet_tf.model.multitask import MultiTaskMENET

    with for_inference():
        return MultiTaskMENET(depth=config.model.depth, attention=config.model.attention,
                              tasks=config.loss.tasks, weighting=config.loss.weighting,
                              task_weights=config.loss.task_weights,
                              texture_form=config.loss.texture_form, name=config.name)


def weights_model(config, path, what):
    """The network of ``config`` (a released ExperimentConfig) with the Keras weights file
    ``path`` loaded; ``what`` names the weights in the error when they do not fit."""
    model = released_model(config)
    model.ensure_built()
    try:
        model.load_weights(path)
    except Exception as err:  # h5py and Keras raise many kinds
        raise CheckpointError(f"{path}: {what} do not load into {config.name} "
                              f"({one_line(err)})") from None
    return model


def load_bundled(name, model_name, compile):
    """A bundled model: its configuration's MultiTaskMENET with the weights file loaded, after
    the file's checksum was checked. ``compile`` has nothing to restore (weights only)."""
    from menet_tf.config import released_config

    config = released_config(registry.entry(name)["configuration"])
    if model_name and released_config(model_name).name != config.name:
        raise MenetError(f"{name}: is a bundled {config.name}, not {model_name}")
    return weights_model(config, registry.weights_path(name),
                         f"the weights of bundled model {name}")
