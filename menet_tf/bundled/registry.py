"""The registry of bundled models: ``registry.json`` beside this file lists each trained model
that ships inside menet-tf, with its weights file, checksum, configuration, training and the
scores measured when it was added (``menet-tf models add``; never typed by hand).

Basics only (no TensorFlow): every ``--model`` asks here whether a word is a bundled name, and
``menet-tf models`` lists the registry, so both must stay instant. The weights are checked
against the registry's sha256 before they are loaded, so a damaged file is reported as such
instead of failing somewhere inside Keras.

``MENET_BUNDLED_DIR`` points the registry elsewhere (a copy to damage in the tests, a folder of
one's own models); unset, it is this package's folder.
"""
import json
import os

from menet_tf.errors import CheckpointError, MenetError
from menet_tf.files import sha256_of  # one home; registry.sha256_of as before

REGISTRY_FILE = "registry.json"
FOLDER_VARIABLE = "MENET_BUNDLED_DIR"
RESTORE = ("restore it by reinstalling menet-tf (pip install --force-reinstall menet-tf) or, in"
           " a git checkout, with `git restore menet_tf/bundled/`")


def folder():
    """The folder of ``registry.json`` and the weights files."""
    return os.environ.get(FOLDER_VARIABLE) or os.path.dirname(os.path.abspath(__file__))


def registry_path():
    return os.path.join(folder(), REGISTRY_FILE)


def empty_registry():
    return {"default": None, "models": {}}


def load_registry(missing_ok=False):
    """The registry as a dict ``{"default": name, "models": {name: entry}}``.

    ``missing_ok``: a missing file is an empty registry (the first ``models add``); otherwise a
    missing or unreadable registry is a damaged installation, reported in one line."""
    path = registry_path()
    if missing_ok and not os.path.exists(path):
        return empty_registry()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: the registry of bundled models cannot be read "
                              f"({type(err).__name__}: {err}); {RESTORE}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise CheckpointError(f"{path}: not a registry of bundled models (no \"models\" "
                              f"object); {RESTORE}")
    return data


def names():
    return sorted(load_registry()["models"])


def names_text():
    """The bundled names for a message: "a, b" or "none"."""
    return ", ".join(names()) or "none"


def default_name():
    """The model ``menet-tf derain`` and ``menet_tf.pretrained()`` use when none is named."""
    name = load_registry().get("default")
    if not name:
        raise MenetError(f"{registry_path()}: no default bundled model; add one with "
                         f"`menet-tf models add SOURCE --name NAME --data DIR --default`")
    return name


#: The kinds of rain a bundled model can be for; each is also a name: ``--model heavy``.
RAINS = ("light", "heavy")


def rain_names(reg=None):
    """{rain: bundled name} from the entries' ``rain`` fields: ``--model light|heavy``."""
    models = (reg or load_registry())["models"]
    return {e["rain"]: name for name, e in sorted(models.items()) if e.get("rain") in RAINS}


def resolve(name):
    """A bundled name for ``name``: itself, or the model a rain word (light, heavy) names."""
    reg = load_registry()
    if name in reg["models"]:
        return name
    return rain_names(reg).get(name, name)


def entry(name):
    """The registry entry of ``name``, a bundled model or a rain word (light, heavy)."""
    models = load_registry()["models"]
    found = resolve(name)
    if found not in models:
        words = ", ".join(rain_names()) or "none"
        raise MenetError(f"{name}: no bundled model of that name (bundled: {names_text()}; "
                         f"rain words: {words})")
    return models[found]


def is_bundled_name(text):
    return isinstance(text, str) and resolve(text) in load_registry()["models"]


def weights_path(name, verify=True):
    """The path of ``name``'s weights file, checked (size, then sha256) against the registry."""
    record = entry(name)
    name = record["name"]
    path = os.path.join(folder(), record["file"])
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: the weights of bundled model {name} are missing; "
                              f"{RESTORE}")
    if verify:
        _verify(path, name, record)
    return path


def _verify(path, name, record):
    size = os.path.getsize(path)
    found = sha256_of(path) if size == record["bytes"] else None
    if found != record["sha256"]:
        what = (f"sha256 {found[:12]}..., the registry says {record['sha256'][:12]}..." if found
                else f"{size} bytes, the registry says {record['bytes']}")
        raise CheckpointError(f"{path}: the weights of bundled model {name} are damaged "
                              f"({what}); {RESTORE}")
