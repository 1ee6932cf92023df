"""What a table run will do, before it does anything: the table file, each row's configuration,
the data it needs and the state each row's run folder is in.

A table file (``experiments/table1.json``, ``table2.json``, ``table4.json``, ``menet.json``) lists
its rows: an id, the paper's label, the row's configuration (a JSON file such as
``released/ModelShallowNew.json``, relative to the table file) and the paper's PSNR/SSIM on
Rain100H and Rain100L. Everything here is checked up front, so that a table of many hours of
training stops at once, with advice, when a file or the data is missing.
"""
import json
import os

from menet_tf.errors import ConfigError, DataError
from menet_tf.train.records import FINAL_MODEL, run_finished

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def experiments_dir():
    """The folder of the table files: in an installed package, its copy of ``experiments/``
    (the wheel carries it as ``menet_tf/evaluation/experiments``, setup.py); in a checkout
    (or an editable install), the top-level ``experiments/`` itself. The same files either way."""
    from importlib import resources

    packaged = resources.files("menet_tf.evaluation").joinpath("experiments")
    if packaged.is_dir():
        return str(packaged)
    return os.path.join(REPO, "experiments")


EXPERIMENTS_DIR = experiments_dir()
TRAIN_SETS = {"Rain100H": ("RainTrainH", "1800 pairs, or 1254 without the Rain100H overlaps"),
              "Rain100L": ("RainTrainL", "200 pairs")}
DEFAULT_QUICK = {"crop_size": 64, "batch_size": 20, "steps": 300, "eval_crop_size": 64}


# ----------------------------------------------------------------------------------------------
# table files

def _table_path(name):
    """``name`` itself when it is a file, else ``experiments/<name>.json``."""
    path = os.fspath(name)
    if os.path.isfile(path):
        return path
    candidates = [os.path.join(d, f"{path}.json") for d in (EXPERIMENTS_DIR, "experiments")]
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
        known = sorted(f[:-5] for f in os.listdir(EXPERIMENTS_DIR) if f.endswith(".json")) \
            if os.path.isdir(EXPERIMENTS_DIR) else []
        raise ConfigError(f"unknown experiment {name!r}: no such file and no "
                          f"experiments/{name}.json (known: {', '.join(known)})")
    return found


def _resolve_rows(path, rows):
    """Check each row's keys and unique id; resolve its configuration path."""
    base = os.path.dirname(os.path.abspath(path))
    ids = set()
    for i, row in enumerate(rows):
        for key in ("id", "label", "config"):
            if key not in row:
                raise ConfigError(f"{path}: row {i + 1} has no {key!r}")
        if row["id"] in ids:
            raise ConfigError(f"{path}: row id {row['id']!r} appears twice")
        ids.add(row["id"])
        row["config_path"] = os.path.normpath(os.path.join(base, row["config"]))
        if not os.path.isfile(row["config_path"]):
            raise ConfigError(f"{path}: row {row['id']!r}: configuration {row['config_path']} "
                              f"not found")


def load_table(name):
    """The table spec of ``name`` (``table1`` or a path to a JSON file), with each row's
    configuration path resolved. Raises ConfigError naming the file on anything malformed."""
    if isinstance(name, dict):  # already loaded (e.g. by subset)
        return name
    path = _table_path(name)
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the table file ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list) or not spec["rows"]:
        raise ConfigError(f"{path}: a table file needs a non-empty 'rows' list")
    spec["path"] = os.path.abspath(path)
    _resolve_rows(path, spec["rows"])
    spec.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    spec.setdefault("title", spec["name"])
    spec["quick"] = {**DEFAULT_QUICK, **spec.get("quick", {})}
    return spec


def subset(name, ids):
    """The table ``name`` with only the rows ``ids`` (in the table's order)."""
    spec = load_table(name)
    known = [r["id"] for r in spec["rows"]]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(f"{spec['path']}: no row(s) {', '.join(unknown)}; "
                          f"rows are {', '.join(known)}")
    spec["rows"] = [r for r in spec["rows"] if r["id"] in ids]
    return spec


def row_config(row, *, quick=None, overrides=None, vgg_weights=None):
    """The ExperimentConfig of a row with the quick settings and command-line overrides.

    ``overrides``: crop_size, batch_size, epochs, depth (None: the configuration's), and
    jit_compile ("auto", True, False); ``no_jit`` (True) is the 0.1 spelling of jit_compile False.
    """
    from menet_tf.config import load_config

    config = load_config(row["config_path"])
    changes = dict(overrides or {})
    if quick:
        for key in ("crop_size", "batch_size"):
            if changes.get(key) is None:
                changes[key] = quick[key]
    for key in ("crop_size", "batch_size", "epochs"):
        if changes.get(key) is not None:
            setattr(config.train, key, int(changes[key]))
    if changes.get("depth") is not None:
        config.model.depth = int(changes["depth"])
    jit_compile = False if changes.get("no_jit") else changes.get("jit_compile")
    if jit_compile is not None:
        config.train.jit_compile = jit_compile
    if vgg_weights and "vgg" in config.loss.tasks:
        config.loss.vgg_weights = os.path.abspath(vgg_weights)
    return config


def vgg_problem(config):
    """Why a VGG row cannot run (no weights file given, or it does not exist), else None."""
    if "vgg" not in config.loss.tasks:
        return None
    path = config.loss.vgg_weights
    if not path:
        return ("needs the ImageNet VGG19 weights file you provide (Keras "
                "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5): pass --vgg-weights FILE "
                "(make ... VGG_WEIGHTS=FILE); menet-tf downloads nothing")
    if not os.path.isfile(path):
        return f"VGG19 weights file {path} not found"
    return None


# ----------------------------------------------------------------------------------------------
# data

def dataset_name(data, given=None):
    """Rain100H / Rain100L (the test set the paper's numbers are for), or None if unknown."""
    if given:
        for known in TRAIN_SETS:
            if given.lower() == known.lower():
                return known
        raise ConfigError(f"unknown --dataset {given!r}; choose Rain100H or Rain100L")
    from menet_tf.data import guess_known_set

    known = guess_known_set(data) if data else None
    if known is None:
        return None
    return known.name.replace("RainTrain", "Rain100")


def missing_data_message(data, dataset, what):
    """What to get, where to put it and how to check it, for a data root that is not there."""
    dataset = dataset or "Rain100H"
    train, count = TRAIN_SETS.get(dataset, ("its training set", ""))
    return (f"{data}: {what} needs {dataset} data that is not there. Get {train} ({count}) and "
            f"{dataset} (100 pairs) from Yang et al., JORDER, CVPR 2017 (also re-distributed "
            f"with PReNet; menet-tf downloads nothing) and put them as {data}/train/ ({train}) "
            f"and {data}/test/ ({dataset}), e.g. {data}/train/rain/ + {data}/train/norain/ "
            f"(layouts: data/README.md). Then check with `menet-tf data check {data} --expect "
            f"{dataset}`, or point the command at another folder (make: "
            f"{'RAIN100H' if dataset == 'Rain100H' else 'RAIN100L'}=DIR, or ABLATION_DATA=DIR).")


def data_splits(data, dataset, what):
    """(train root, test root, the test split described: "test/", or "val/ (the validation
    split: ...)") of a data root; DataError with the full advice when missing."""
    from menet_tf.data.splits import named_splits

    if data is None or not os.path.isdir(data):
        raise DataError(missing_data_message(data or "data/Rain100H", dataset, what))
    try:
        splits = named_splits(data)
    except DataError as err:
        raise DataError(f"{missing_data_message(data, dataset, what)} ({err})") from None
    train = splits.train.root if splits.train else None
    test = splits.test.root if splits.test else None
    if not train or not test:
        missing = " and ".join(n for n, v in (("train/", train), ("test/", test)) if not v)
        raise DataError(f"{data}: no {missing} folder with rainy/clean pairs (found "
                        f"{', '.join(sorted(splits.found)) or 'nothing'}). "
                        + missing_data_message(data, dataset, what))
    return train, test, splits.describe_test()


def quick_data(data, message=print):
    """The data of the quick form: ``data`` when it exists, else the synthetic light set
    (generated if needed) with a message saying so."""
    if data and os.path.isdir(data):
        return data, False
    from menet_tf.data import ensure_synthetic

    synthetic = os.path.join("data", "synthetic", "light")
    message(f"{data or 'the real Rain100L copy'} not found: the quick run uses the synthetic "
            f"light-rain set in {synthetic} instead (its numbers are not comparable with the "
            f"paper's; put RainTrainL/Rain100L in {data or 'data/Rain100L'} for real ones)")
    ensure_synthetic(synthetic, preset="light", seed=0, log=message, progress=False)
    return synthetic, True


def table_data(data, dataset, quick, message=print):
    """(data root, paper column, synthetic?) of a table run: the quick form falls back to the
    synthetic set, whose numbers no paper column applies to."""
    if quick:
        data, synthetic = quick_data(data, message)
        if synthetic:
            return data, None, True
    if data:
        return data, dataset_name(data, dataset), False
    return data, dataset_name(None, dataset) if dataset else None, False


# ----------------------------------------------------------------------------------------------
# state of the rows

def row_state(folder, skip_reason=None):
    """'skipped', 'evaluated', 'trained', 'half done' or 'missing'."""
    if skip_reason:
        return "skipped"
    summary = os.path.join(folder, "evaluation", "summary.json")
    if run_finished(folder):
        if os.path.isfile(summary) and os.path.getmtime(summary) >= os.path.getmtime(
                os.path.join(folder, FINAL_MODEL)):
            return "evaluated"
        return "trained"
    if os.path.isdir(folder) and os.listdir(folder):
        return "half done"
    return "missing"


def plan_table(spec, runs, *, quick=False, overrides=None, vgg_weights=None):
    """[(row, config, state, skip reason)] for every row of the table."""
    plan = []
    for row in spec["rows"]:
        config = row_config(row, quick=spec["quick"] if quick else None, overrides=overrides,
                            vgg_weights=vgg_weights)
        reason = vgg_problem(config)
        plan.append((row, config, row_state(os.path.join(runs, row["id"]), reason), reason))
    return plan
