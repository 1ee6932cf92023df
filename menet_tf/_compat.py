"""The flat module paths of menet-tf 0.1 (``menet_tf.training``, ``menet_tf.tf1``, ...), kept for
one release as aliases of the modules that replaced them, with a DeprecationWarning on import.

Scripts written against 0.1 keep running while they are moved to the new paths; saved models do
not depend on these aliases (Keras finds menet-tf's classes by their registered names).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

REMOVED_IN = "0.3"

# 0.1 module -> the module that holds its code now, or the modules it was split into (a tuple:
# the old path then answers every name of each of them, looked up in that order).
OLD_MODULES = {
    "menet_tf.network": ("menet_tf.model.network", "menet_tf.model.layers",
                         "menet_tf.model.conv_gradient"),
    "menet_tf.losses": "menet_tf.model.losses",
    "menet_tf.weighting": "menet_tf.model.weighting",
    "menet_tf.metrics": "menet_tf.model.metrics",
    "menet_tf.training": "menet_tf.model.multitask",
    "menet_tf.trainer": ("menet_tf.train.run", "menet_tf.train.state", "menet_tf.train.records",
                         "menet_tf.train.loop"),
    "menet_tf.distribute": "menet_tf.train.distribute",
    "menet_tf.inference": ("menet_tf.infer.derainer", "menet_tf.infer.load",
                           "menet_tf.infer.tiling", "menet_tf.infer.batch"),
    "menet_tf.imageio": "menet_tf.infer.photos",
    "menet_tf.export": "menet_tf.infer.export",
    "menet_tf.experiments": ("menet_tf.evaluation.table_run", "menet_tf.evaluation.table_plan",
                             "menet_tf.evaluation.tabulate", "menet_tf.evaluation.figures"),
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
    "menet_tf.evaluation": ("menet_tf.evaluation.scoring", "menet_tf.evaluation.protocols"),
    "menet_tf.authors": ("menet_tf.authors.graphs", "menet_tf.authors.session"),
    "menet_tf.compare": ("menet_tf.compare.run", "menet_tf.compare.numerics",
                         "menet_tf.compare.report"),
    "menet_tf.bench": ("menet_tf.bench.speed", "menet_tf.bench.timing", "menet_tf.bench.report"),
}


_WARNED = set()


def _warn(old, new, stacklevel):
    warnings.warn(f"{old} is deprecated and will be removed in menet-tf {REMOVED_IN}; "
                  f"use {new}", DeprecationWarning, stacklevel=stacklevel)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new):
        self.new = (new,) if isinstance(new, str) else tuple(new)

    def create_module(self, spec):
        _warn(spec.name, " / ".join(self.new), stacklevel=4)
        if len(self.new) == 1:
            module = importlib.import_module(self.new[0])  # one module under both names
            self.real_spec = module.__spec__
            return module
        return _union_module(spec.name, self.new)

    def exec_module(self, module):
        if len(self.new) == 1:  # the import system has just given the module the alias's spec
            module.__spec__ = self.real_spec


def _union_module(name, homes):
    """A module that answers each name from the first of ``homes`` that defines it."""
    module = types.ModuleType(name, f"0.1 alias of {', '.join(homes)}")

    def __getattr__(attr):
        for home in homes:
            value = getattr(importlib.import_module(home), attr, _MISSING)
            if value is not _MISSING:
                return value
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    module.__getattr__ = __getattr__
    return module


_MISSING = object()


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
        homes = OLD_PACKAGE_FACES.get(package, ())
        for home in (homes,) if isinstance(homes, str) else homes:
            value = getattr(importlib.import_module(home), name, _MISSING)
            if value is not _MISSING:
                if (package, name) not in _WARNED:  # `from package import name` asks twice
                    _WARNED.add((package, name))
                    _warn(f"{package}.{name}", f"{home}.{name}", stacklevel=3)
                return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
