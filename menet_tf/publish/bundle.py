"""``menet-tf models add``: make a trained model a bundled one, as a data change only.

From a ``.keras`` file or a run folder it writes the network's weights (no optimizer) into the
package, loads them back into the configuration's network (the way every user will load them),
scores that on the data set it was trained for under the three protocols, on five fixed test
images and on a small synthetic heavy-rain set, and rewrites the registry entry and the model
card. Nothing in the registry is typed by hand, so replacing the model file by a later epoch
changes data, never code.

Sits high, like ``compare``: it imports bundled, infer, evaluation, data and train's run
records; only ``cli`` imports it.
"""
import contextlib
import csv
import datetime
import os
import re
import shutil
import tempfile

from menet_tf.bundled import card, registry
from menet_tf.errors import MenetError
from menet_tf.files import replacing, write_json, write_text

CHECK_IMAGES = 5
CHECK_PROTOCOL = "y"
CHECK_TOLERANCE_DB = 0.01
HEAVY_SEED = 0
CROPS_PER_IMAGE = 10  # five crops and their flips (menet_tf.data.crops)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def add_model(source, name, data, *, default=False, heavy_count=10, model_name=None, work=None,
              progress=True, log=print, rain=None, train_data=None, heavy_data=None):
    """Bundle the model at ``source`` (a ``.keras`` file or run folder) as ``name``, scored on
    ``data``'s ``test/`` (and, unless ``train_data`` names another root, described by its
    ``train/``). ``rain``: "light" or "heavy", the word ``--model`` also takes for it (moved
    from any other model). ``heavy_data``: a heavy-rain root whose ``test/`` is scored too
    (default: ``heavy_count`` synthetic heavy pairs made here). ``work``: a new folder to keep
    the evaluation outputs in (default: a temporary one, deleted). Returns the entry written."""
    _check_name(name)
    _check_rain(rain)
    keras_file = _keras_source(source)
    model, config = _load_source(keras_file, model_name)
    training = training_facts(keras_file, config, train_data or data)
    weights_file = os.path.join(registry.folder(), f"{name}.weights.h5")
    with _work_folder(work) as folder, replacing(weights_file, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
        bundled = _reloaded(tmp, config, model)
        log(f"saved the weights ({os.path.getsize(tmp) / 1e6:.1f} MB); scoring them on {data}")
        measured = measure(bundled, data, folder, heavy_count, progress, heavy_data)
        entry = _entry(name, tmp, config, training, measured)
    entry["rain"] = rain
    _write_registry(entry, default)
    _write_card(entry, log)
    _write_readme_summary(log)
    return entry


def _check_name(name):
    if not _NAME.match(name or ""):
        raise MenetError(f"{name!r}: a bundled model's name is letters, digits, '-' and '_' "
                         f"(no dots or folders), e.g. menet-gb-rain100l")


def _check_rain(rain):
    if rain is not None and rain not in registry.RAINS:
        raise MenetError(f"{rain!r}: a bundled model is for {' or '.join(registry.RAINS)} rain")


def _keras_source(source):
    """The ``.keras`` file of ``source``: the file itself, or a run folder's model.keras."""
    from menet_tf.infer.load import source_kind

    kind, path = source_kind(source)
    if kind != "keras":
        raise MenetError(f"{source}: models add takes a .keras file or a run folder holding "
                         f"model.keras (this is a {kind} source)")
    return path


def _load_source(keras_file, model_name):
    """(the Keras model, the released configuration its weights will load into)."""
    from menet_tf.config import released_config
    from menet_tf.infer.load import load_model

    model = load_model(keras_file)
    config = released_config(model_name) if model_name else _released_config_of(model)
    return model, config


def _released_config_of(model):
    """The released configuration with the model's network and tasks (there is at most one)."""
    from menet_tf.config import RELEASED
    from menet_tf.model.layers import attention_block

    got = model.get_config()
    if "tasks" not in got:
        raise MenetError(f"{model.name}: a plain MENET without tasks; name the released "
                         f"configuration its weights belong to with --model-name")

    def fits(c):
        return (c.model.depth == got["depth"]
                and attention_block(c.model.attention) == attention_block(got["attention"])
                and list(c.loss.tasks) == list(got["tasks"])
                and c.loss.weighting == got["weighting"]
                and dict(c.loss.task_weights) == dict(got["task_weights"] or {})
                and c.loss.texture_form == got["texture_form"])

    found = [c for c in RELEASED.values() if fits(c)]
    if len(found) != 1:
        raise MenetError(f"{model.name}: its network and tasks match {len(found)} released "
                         f"configurations; name one with --model-name")
    return found[0]


def _reloaded(weights_file, config, source_model):
    """The weights file loaded into a fresh network of ``config``, as users will load it;
    refused unless it holds the source model's weights and computes what the source computes
    (a source trained in mixed precision computes in bf16/fp16: only its weights can agree)."""
    import numpy as np

    from menet_tf.infer.pretrained import weights_model

    model = weights_model(config, weights_file, "the saved weights")
    ours, theirs = model.weights, source_model.weights  # in the order the network makes them
    differ = [t.path for o, t in zip(ours, theirs) if o.shape != t.shape
              or not np.array_equal(np.asarray(o.numpy(), np.float32),
                                    np.asarray(t.numpy(), np.float32))]
    if differ or len(ours) != len(theirs):
        raise MenetError(f"{weights_file}: the saved weights are not the source model's "
                         f"({(differ or ['their number'])[0]} differs); nothing was bundled")
    if getattr(source_model.dtype_policy, "compute_dtype", "float32") == "float32":
        probe = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
        gap = float(np.max(np.abs(np.asarray(model(probe, training=False))
                                  - np.asarray(source_model(probe, training=False)))))
        if gap > 1e-3:
            raise MenetError(f"{weights_file}: the saved weights do not reproduce the source "
                             f"model (outputs differ by {gap:.3g}); nothing was bundled")
    return model


@contextlib.contextmanager
def _work_folder(work):
    """``work`` (new or empty, kept) or a temporary folder (deleted afterwards)."""
    if work is None:
        folder = tempfile.mkdtemp(prefix="menet-models-add-")
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if os.path.exists(work) and (not os.path.isdir(work) or os.listdir(work)):
        raise MenetError(f"{work}: --work must be a new or empty folder")
    os.makedirs(work, exist_ok=True)
    yield work


# ----------------------------------------------------------------------------------------------
# what the model was trained on, and for how long

def training_facts(keras_file, config, data):
    """The training record of the model in ``keras_file``: the run folder's config.json and
    run.json where they sit beside it, else the configuration's settings; the epochs from the
    history.csv beside it; the pairs from ``data``'s train split."""
    from menet_tf.config import load_config
    from menet_tf.train.records import CONFIG_FILE, read_run_record

    folder = os.path.dirname(os.path.abspath(keras_file))
    run = read_run_record(folder)
    has_config = os.path.isfile(os.path.join(folder, CONFIG_FILE))
    used = load_config(os.path.join(folder, CONFIG_FILE)) if has_config else config
    train = _train_split(data)
    epochs = _epochs(folder, run)
    steps, steps_from = _steps(run, epochs, len(train.pairs), used.train.batch_size)
    synthetic = _synthetic_words(train.root)
    return {
        "data": _data_words(train, synthetic),
        "data_folder": _relative_name(train.root, levels=2),
        "pairs": len(train.pairs), "crop_size": used.train.crop_size,
        "crops_per_image": CROPS_PER_IMAGE, "batch_size": used.train.batch_size,
        "optimizer": _optimizer_words(used.optimizer), "precision": used.train.precision,
        "epochs": epochs, "steps": steps,
        "steps_from": steps_from, "seed": run.get("seed", 0),
        "settings_from": _settings_words(has_config, bool(run)),
        "source": _relative_name(keras_file, levels=2),
        "source_sha256": registry.sha256_of(keras_file),
        "init": _init_words(run.get("init")),
        "synthetic": synthetic,
    }


def _data_words(train, synthetic):
    """The training set's name: a known set's, or what menet-tf drew its rain on."""
    if train.known:
        return train.known.name
    if synthetic and synthetic.get("clean"):
        return f"synthetic {synthetic['preset']} rain on the clean images of {synthetic['clean']}"
    return _relative_name(train.root, levels=2)


def _init_words(init):
    """Where a fine-tuned model started: its source and sha256 (no machine's folders)."""
    return {"source": init["source"], "sha256": init["sha256"]} if init else None


def _synthetic_words(train_root):
    """How menet-tf drew the training rain (from the synth.json beside ``train/``), or None
    for a real data set: the card says which a model has seen."""
    from menet_tf.files import read_json

    marker = read_json(os.path.join(os.path.dirname(os.path.normpath(train_root)), "synth.json"))
    if not isinstance(marker, dict):
        return None
    renderer = marker.get("renderer")  # nested in the renderer's first files of 0.3.0.dev
    version = marker.get("renderer_version",
                         renderer.get("renderer") if isinstance(renderer, dict) else None)
    clean = (marker.get("clean_source") or {}).get("train")
    folder = clean.get("folder") if isinstance(clean, dict) else None
    return {"preset": marker.get("preset"), "seed": marker.get("seed"),
            "variants": marker.get("variants"), "renderer_version": version,
            "clean": _relative_name(folder, levels=3) if folder else None}


def _train_split(data):
    from menet_tf.data.splits import named_splits

    splits = named_splits(os.fspath(data))
    if splits.train is None or not splits.train.pairs:
        raise MenetError(f"{data}: no train/ split with pairs; --data is the root the model "
                         f"was trained on (train/) and is scored on (test/)")
    return splits.train


def _relative_name(path, levels):
    """The last ``levels`` components of ``path`` (no machine's folders in the registry)."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    return "/".join(parts[-levels:])


def _epochs(folder, run):
    """Epochs trained: steps over steps an epoch from run.json (a fraction where the run ended
    mid-epoch), else the history.csv beside the model (0.3 counts epochs from 0, 0.2 from 1)."""
    if run.get("steps") and run.get("steps_per_epoch"):
        return round(run["steps"] / run["steps_per_epoch"], 2)
    path = os.path.join(folder, "history.csv")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return int(rows[-1]["epoch"]) + (int(rows[0]["epoch"]) == 0)
    except (OSError, IndexError, KeyError, ValueError) as err:
        raise MenetError(f"{path}: the epochs trained are read from the history.csv beside the "
                         f"model, and it cannot be read ({type(err).__name__}: {err})") from None


def _steps(run, epochs, pairs, batch_size):
    """(steps, where the figure comes from)."""
    if run.get("steps") is not None:
        return int(run["steps"]), "run.json"
    from menet_tf.data.pipeline import count_crops

    per_epoch = count_crops(pairs, CROPS_PER_IMAGE, batch_size)[1]
    return epochs * per_epoch, (f"{epochs} epochs x {per_epoch} steps an epoch: {pairs} pairs "
                                f"x {CROPS_PER_IMAGE} crops / batch {batch_size}")


def _optimizer_words(opt):
    return (f"Adam {opt.learning_rate:g} (beta {opt.beta_1:g}/{opt.beta_2:g}, epsilon "
            f"{opt.epsilon:g}), x{opt.decay_rate:g} every {opt.decay_epochs} epochs")


def _settings_words(has_config, has_run):
    if has_config and has_run:
        return "the run folder's config.json and run.json"
    if has_config:
        return "the run folder's config.json (no run.json: seed 0, menet-tf train's default)"
    return ("the released configuration and menet-tf train's defaults (seed 0): no run folder "
            "beside the model")


# ----------------------------------------------------------------------------------------------
# scores

def measure(model, data, folder, heavy_count, progress, heavy_data=None):
    """Scores of ``model`` on ``data``'s test set (three protocols, the five-image check) and on
    heavy rain: ``heavy_data``'s test set, or a synthetic heavy set made in ``folder``;
    evaluation outputs go to ``folder``."""
    from menet_tf.evaluation.scoring import evaluate

    summary = evaluate(model, data, os.path.join(folder, "test-scores"), progress=progress)
    if heavy_data:
        heavy = _heavy_set_scores(model, heavy_data, folder, progress)
    else:
        heavy = _heavy_scores(model, folder, heavy_count, progress) if heavy_count else None
    return {"scores": _protocol_scores(summary, data),
            "check": _five_image_check(summary["images_scored"], data), "heavy": heavy}


def _data_name(data):
    from menet_tf.evaluation.table_plan import dataset_name

    return dataset_name(os.fspath(data)) or os.path.basename(os.path.normpath(data))


def _means(summary, protocols):
    """The registry's figures of an evaluation summary: each protocol's means, to 4 places."""
    keys = ("psnr", "ssim", "input_psnr", "input_ssim")
    return {p: {k: round(summary[p][k], 4) for k in keys} for p in protocols}


def _protocol_scores(summary, data):
    scores = _means(summary, ("authors", "y", "rgb"))
    scores["authors"]["crop_size"] = summary["authors"]["crop_size"]
    return {"data": _data_name(data), "images": summary["images"], **scores}


def _five_image_check(rows, data):
    """Per-image PSNR of the first test images, which the tests recompute from the file."""
    return {"data": _data_name(data), "protocol": CHECK_PROTOCOL,
            "tolerance_db": CHECK_TOLERANCE_DB,
            "psnr": {r["name"]: round(r[f"{CHECK_PROTOCOL}_psnr"], 4)
                     for r in rows[:CHECK_IMAGES]}}


def _heavy_scores(model, folder, count, progress):
    """Y and RGB scores on ``count`` test pairs of menet-tf's synthetic heavy rain."""
    from menet_tf.data.synth import synthesize
    from menet_tf.evaluation.scoring import evaluate

    heavy = os.path.join(folder, "heavy-data")
    synthesize(heavy, preset="heavy", seed=HEAVY_SEED, count=0, test_count=count,
               progress=progress)
    summary = evaluate(model, heavy, os.path.join(folder, "heavy-scores"), protocols=("y", "rgb"),
                       progress=progress)
    return {"data": f"menet-tf synth --preset heavy --seed {HEAVY_SEED} --count 0 "
                    f"--test-count {count}",
            "images": summary["images"],
            **_means(summary, ("y", "rgb"))}


def _heavy_set_scores(model, heavy_data, folder, progress):
    """Authors', Y and RGB scores on the test split of a heavy-rain root (``make data-heavy``)."""
    from menet_tf.evaluation.scoring import evaluate

    summary = evaluate(model, heavy_data, os.path.join(folder, "heavy-scores"),
                       protocols=("authors", "y", "rgb"), progress=progress)
    synthetic = _synthetic_words(os.path.join(os.fspath(heavy_data), "train"))
    words = (f"menet-tf synth, preset {synthetic.get('preset')}, renderer "
             f"{synthetic.get('renderer_version')}" if synthetic else "a heavy-rain test set")
    return {"data": f"{_relative_name(heavy_data, levels=2)}/test ({words})",
            "images": summary["images"], **_means(summary, ("authors", "y", "rgb"))}


def _with_real_heavy_figure(heavy, config):
    """The paper's figure on the real Rain100H beside a heavy set's scores (not comparable
    numbers: another rain, the same backgrounds), for the README's table."""
    if heavy is not None:
        heavy["paper"] = _paper_figure(config, "Rain100H")
    return heavy


def _paper_figure(config, data_name):
    """The paper's authors'-protocol figure for ``config`` on ``data_name`` (Table I), if the
    checkout's experiments/table1.json is at hand and lists it."""
    from menet_tf.errors import ConfigError
    from menet_tf.evaluation.table_plan import load_table

    try:
        rows = load_table("table1")["rows"]
    except ConfigError:
        return None
    for row in rows:
        paper = row.get("paper", {}).get(data_name)
        if os.path.basename(row["config"]) == f"{config.name}.json" and paper:
            return {"psnr": paper["psnr"], "ssim": paper["ssim"],
                    "source": "Table I, after 100 epochs"}
    return None


# ----------------------------------------------------------------------------------------------
# the registry entry and the card

def _alias_of(config):
    from menet_tf.config import ALIASES

    return next((alias for alias, name in ALIASES.items() if name == config.name), None)


def _entry(name, weights_file, config, training, measured):
    import menet_tf

    scores = dict(measured["scores"], paper=_paper_figure(config, measured["scores"]["data"]))
    return {
        "name": name, "file": f"{name}.weights.h5",
        "sha256": registry.sha256_of(weights_file), "bytes": os.path.getsize(weights_file),
        "configuration": config.name, "alias": _alias_of(config), "training": training,
        "scores": scores, "check": measured["check"],
        "heavy": _with_real_heavy_figure(measured["heavy"], config),
        "licence": "MIT (the weights, like the code); the training data's own terms apply to it",
        "card": None, "menet_tf_version": menet_tf.__version__,
        "added": datetime.date.today().isoformat(),
    }


def _write_registry(entry, default):
    """The registry with ``entry`` added or replaced (the first model becomes the default)."""
    reg = registry.load_registry(missing_ok=True)
    entry["card"] = _card_place(entry["name"])[1]
    models = {**reg["models"], entry["name"]: entry}
    if entry.get("rain"):  # one model per rain word
        models = {n: ({**e, "rain": None} if n != entry["name"] and e.get("rain") == entry["rain"]
                      else e) for n, e in models.items()}
    reg["models"] = dict(sorted(models.items()))
    if default or not reg.get("default"):
        reg["default"] = entry["name"]
    write_json(registry.registry_path(), {"default": reg["default"], "models": reg["models"]})


def _checkout_root():
    """The repository root when the package's own registry is in use inside a checkout."""
    package = os.path.dirname(os.path.abspath(registry.__file__))
    root = os.path.dirname(os.path.dirname(package))
    in_checkout = os.path.isfile(os.path.join(root, "setup.cfg")) and \
        os.path.isdir(os.path.join(root, "docs"))
    return root if in_checkout and os.path.samefile(registry.folder(), package) else None


def _card_place(name):
    """(where the card goes, how the registry names that place): docs/models/ of the checkout,
    else beside the registry."""
    root = _checkout_root()
    if root:
        return os.path.join(root, "docs", "models", f"{name}.md"), f"docs/models/{name}.md"
    return os.path.join(registry.folder(), f"{name}.md"), f"{name}.md"


def _write_card(entry, log):
    path = _card_place(entry["name"])[0]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_text(path, card.render(entry))
    log(f"wrote {registry.registry_path()} and the model card {path}")


def _write_readme_summary(log):
    """The checkout's README opens with the bundled models' scores: rewrite that block."""
    root = _checkout_root()
    readme = os.path.join(root, "README.md") if root else None
    if not readme or not os.path.isfile(readme):
        return
    with open(readme, encoding="utf-8") as f:
        text = card.replace_readme_summary(f.read(), registry.load_registry())
    if text is not None:
        write_text(readme, text)
        log(f"rewrote the bundled models' scores in {readme}")
