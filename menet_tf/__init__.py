"""menet-tf: MENET multi-task single-image de-raining in TensorFlow 2 / Keras 3.

    import menet_tf
    model = menet_tf.build_model(menet_tf.released_config("MENET-GB"))
    menet_tf.load_checkpoint(model, "ModelShallowNewCaEdgeGramGradBalance/model.final-100")
    logs = model.train_on_batch(rainy, clean, return_dict=True)   # images in 0..255
    derainer = menet_tf.Derainer(menet_tf.load_model("runs/MENET-GB"))
    model = menet_tf.pretrained()            # the bundled MENET-GB: no training, no download

The package, by concern (each imports only what is listed below it, never upwards):

    cli/         the ``menet-tf`` command: one thin module per command
    serve/       ``menet-tf serve``: the local de-raining page and HTTP API (optional extra)
    publish/     making a trained model a bundled one
    compare/     the port run beside the authors' released graphs
    evaluation/  the three scoring protocols, ``evaluate`` and the paper's tables and figures
    bench/       speed of the port, of the authors' graph and of the input pipeline
    train/       the run loop: folders, state, records, time, distribution
    infer/       loading any model source, de-raining photos of any size, export
    model/       the network, its layers, the tasks, their weighting, the training step
    data/        paired-image discovery, the five-crop pipeline, synthetic rain
    authors/     the authors' TF1 checkpoints and released graphs
    bundled/     the trained models that ship in the package
    config, errors, files, interrupts, locks, machine, precisions, progress, tf_logging:
                 small shared basics (configurations, errors, atomic writes, SIGINT/SIGTERM as a
                 flag, one process per folder, what a result ran on, the precision vocabulary,
                 progress bars, TensorFlow's C++ lines)

Names are imported on first use, so ``import menet_tf`` (and ``menet-tf --help``) does not
pay for importing TensorFlow. Models saved by menet-tf still load with a plain
``keras.saving.load_model(path)`` after ``import menet_tf``: see :func:`_register_with_keras`.
"""
import importlib
import sys

from menet_tf import _compat

__version__ = "0.2.0"

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
    "MENET": "menet_tf.model.network",
    "MultiTaskMENET": "menet_tf.model.multitask",
    "build_model": "menet_tf.model.multitask",
    "train_run": "menet_tf.train.run",
    "load_checkpoint": "menet_tf.authors.checkpoint",
    "load_model": "menet_tf.infer.load",
    "pretrained": "menet_tf.infer.pretrained",
    "Derainer": "menet_tf.infer.derainer",
    "evaluate": "menet_tf.evaluation.scoring",
}
_SUBPACKAGES = ("authors", "bench", "bundled", "cli", "compare", "config", "data", "errors",
                "evaluation", "files", "infer", "interrupts", "locks", "machine", "model",
                "precisions", "progress", "publish", "serve", "tf_logging", "train")

__all__ = sorted([*_EXPORTS, *_SUBPACKAGES])

_compat.install()


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES or f"menet_tf.{name}" in _compat.OLD_MODULES:
        return importlib.import_module(f"menet_tf.{name}")
    raise AttributeError(f"module 'menet_tf' has no attribute {name!r}")


# ----------------------------------------------------------------------------------------------
# Keras deserialisation without importing TensorFlow up front.
#
# Keras finds a saved model's class in its registry ("menet_tf>MultiTaskMENET"), filled when the
# decorated class is defined, i.e. when menet_tf.model.multitask is imported, and with it
# TensorFlow. So instead, as soon as Keras itself is imported (or now, if it already is), the
# registry gets a
# light stand-in per class; loading a model imports the real module, which replaces the stand-in.
# Cost for `menet-tf --help`: one entry in sys.meta_path.

# Registered name -> module defining the class. tests/compat/test_load_model.py checks this is complete.
KERAS_CLASSES = {
    "menet_tf>FusedBatchNorm": "menet_tf.model.layers",
    "menet_tf>MENET": "menet_tf.model.network",
    "menet_tf>MultiTaskMENET": "menet_tf.model.multitask",
}


class _Deferred:
    """Stands in for a menet_tf Keras class in Keras' registry until a saved model needs it."""

    def __init__(self, registered_name, module):
        self.registered_name, self.module = registered_name, module

    def resolve(self):
        importlib.import_module(self.module)  # its decorator replaces this stand-in
        from keras.saving import get_custom_objects

        # The global registry itself: during a load Keras looks in a snapshot of it first.
        cls = get_custom_objects().get(self.registered_name)
        if cls is self or cls is None:
            raise TypeError(f"{self.module} does not define {self.registered_name}")
        return cls

    def from_config(self, config, *args, **kwargs):
        return self.resolve().from_config(config, *args, **kwargs)

    def __getattr__(self, name):  # anything else Keras may ask of the class
        return getattr(self.resolve(), name)

    def __repr__(self):
        return f"<deferred {self.registered_name} from {self.module}>"


def _register_with_keras():
    try:
        from keras.saving import get_custom_objects

        registry = get_custom_objects()
        for name, module in KERAS_CLASSES.items():
            registry.setdefault(name, _Deferred(name, module))
    except Exception as err:  # never break `import keras` for this
        import warnings

        warnings.warn(f"menet_tf could not register its classes with Keras ({err}); "
                      "import menet_tf.model.multitask before keras.saving.load_model")


class _AfterKerasImport:
    """A sys.meta_path finder that runs :func:`_register_with_keras` once Keras has imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        import importlib.util

        with _suppress(ValueError):
            sys.meta_path.remove(self)  # once; and not for the lookup just below
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # Put the real loader back first, so nothing downstream sees this wrapper.
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _register_with_keras()

    def __getattr__(self, name):
        return getattr(self.loader, name)


def _suppress(*errors):
    import contextlib

    return contextlib.suppress(*errors)


if "keras" in sys.modules:
    _register_with_keras()
elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterKerasImport())
