"""The flat module paths of menet-tf 0.1 (``menet_tf.training``, ``menet_tf.tf1``, ...), kept for
one release as aliases of the modules that replaced them, with a DeprecationWarning on import.

Scripts written against 0.1 keep running while they are moved to the new paths; saved models do
not depend on these aliases (Keras finds menet-tf's classes by their registered names).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

REMOVED_IN = "0.3"

# 0.1 module -> the module that holds its code now.
OLD_MODULES = {
    "menet_tf.network": "menet_tf.model.network",
    "menet_tf.losses": "menet_tf.model.losses",
    "menet_tf.weighting": "menet_tf.model.weighting",
    "menet_tf.metrics": "menet_tf.model.metrics",
    "menet_tf.training": "menet_tf.model.multitask",
    "menet_tf.trainer": "menet_tf.train.run",
    "menet_tf.distribute": "menet_tf.train.distribute",
    "menet_tf.inference": "menet_tf.infer.derainer",
    "menet_tf.imageio": "menet_tf.infer.photos",
    "menet_tf.export": "menet_tf.infer.export",
    "menet_tf.experiments": "menet_tf.evaluation.tables",
    "menet_tf.tf1": "menet_tf.authors.checkpoint",
    "menet_tf.data.bench": "menet_tf.bench.pipeline",
    "menet_tf.data.cli": "menet_tf.cli.data",
    "menet_tf.train_cli": "menet_tf.cli.train",
    "menet_tf.tf1_cli": "menet_tf.cli.tf1",
    "menet_tf.compare_cli": "menet_tf.cli.compare",
    "menet_tf.evaluate_cli": "menet_tf.cli.evaluate",
    "menet_tf.table_cli": "menet_tf.cli.table",
    "menet_tf.derain_cli": "menet_tf.cli.derain",
    "menet_tf.export_cli": "menet_tf.cli.export",
    "menet_tf.bench_cli": "menet_tf.cli.bench",
}

# 0.1 modules whose name is now a sub-package: the package answers their old names.
OLD_PACKAGE_FACES = {
    "menet_tf.evaluation": "menet_tf.evaluation.scoring",
    "menet_tf.authors": "menet_tf.authors.graphs",
    "menet_tf.compare": "menet_tf.compare.run",
    "menet_tf.bench": "menet_tf.bench.speed",
}


_WARNED = set()


def _warn(old, new, stacklevel):
    warnings.warn(f"{old} is deprecated and will be removed in menet-tf {REMOVED_IN}; "
                  f"use {new}", DeprecationWarning, stacklevel=stacklevel)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        _warn(spec.name, self.new, stacklevel=4)
        return importlib.import_module(self.new)  # the same module object under both names

    def exec_module(self, module):
        pass


class OldPathFinder(importlib.abc.MetaPathFinder):
    """Finds ``menet_tf.<old name>`` and hands out the module that replaced it."""

    def find_spec(self, fullname, path=None, target=None):
        new = OLD_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install():
    if not any(isinstance(f, OldPathFinder) for f in sys.meta_path):
        sys.meta_path.append(OldPathFinder())


def package_getattr(package):
    """A module ``__getattr__`` for ``package``: its sub-modules on first use, then the 0.1 names
    of the flat module it replaced (with a DeprecationWarning)."""
    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{package}.{name}") is not None:
            return importlib.import_module(f"{package}.{name}")
        old_home = OLD_PACKAGE_FACES.get(package)
        if old_home is not None:
            value = getattr(importlib.import_module(old_home), name, None)
            if value is not None:
                if (package, name) not in _WARNED:  # `from package import name` asks twice
                    _WARNED.add((package, name))
                    _warn(f"{package}.{name}", f"{old_home}.{name}", stacklevel=3)
                return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
