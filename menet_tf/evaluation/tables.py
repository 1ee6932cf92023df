"""The paper's tables as runnable experiments: plan, train (resuming), evaluate, tabulate, plot.

A table file (``experiments/table1.json``, ``table2.json``, ``table4.json``, ``menet.json``) lists
its rows: an id, the paper's label, the row's configuration (a JSON file such as
``released/ModelShallowNew.json``, relative to the table file) and the paper's PSNR/SSIM on
Rain100H and Rain100L. :func:`run_table` trains every row that is missing or half done (through
``menet_tf.train.run.train_run``, which resumes), scores each model with ``menet_tf.evaluation.scoring``,
and writes into the runs folder ``table.md``/``table.csv`` (ours next to the paper's), the paper's
Fig. 8 (histogram of per-image PSNR) and Fig. 9 (box plot of per-image SSIM), and an image grid
(rainy, clean, each model) like Fig. 10/11.

The ``quick`` form runs the same rows with small crops and few steps, so the whole of Table I
fits in half an hour on a 2-core CPU; its numbers say so wherever they are written.
"""
import csv
import io
import json
import math
import os

from menet_tf.errors import ConfigError, DataError, MenetError
from menet_tf.files import read_json, replacing, write_all
from menet_tf.train.records import run_finished

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS_DIR = os.path.join(REPO, "experiments")
TRAIN_SETS = {"Rain100H": ("RainTrainH", "1800 pairs, or 1254 without the Rain100H overlaps"),
              "Rain100L": ("RainTrainL", "200 pairs")}
DEFAULT_QUICK = {"crop_size": 64, "batch_size": 20, "steps": 300, "eval_crop_size": 64}
GRID_IMAGES = 3
QUICK_WARNING = ("**Quick-run numbers, not the paper's setting.** {note}. They show that the "
                 "pipeline works and how the rows compare after a short run; the paper's "
                 "figures need the full runs (`make ablation`).")


# ----------------------------------------------------------------------------------------------
# table files

def load_table(name):
    """The table spec of ``name`` (``table1`` or a path to a JSON file), with each row's
    configuration path resolved. Raises ConfigError naming the file on anything malformed."""
    if isinstance(name, dict):  # already loaded (e.g. by subset)
        return name
    path = os.fspath(name)
    if not os.path.isfile(path):
        candidates = [os.path.join(d, f"{path}.json") for d in (EXPERIMENTS_DIR, "experiments")]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            known = sorted(f[:-5] for f in os.listdir(EXPERIMENTS_DIR) if f.endswith(".json")) \
                if os.path.isdir(EXPERIMENTS_DIR) else []
            raise ConfigError(f"unknown experiment {name!r}: no such file and no "
                              f"experiments/{name}.json (known: {', '.join(known)})")
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the table file ({err})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list) or not spec["rows"]:
        raise ConfigError(f"{path}: a table file needs a non-empty 'rows' list")
    spec["path"] = os.path.abspath(path)
    base = os.path.dirname(spec["path"])
    ids = set()
    for i, row in enumerate(spec["rows"]):
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
        raise ConfigError(f"{spec['path']}: no row(s) {', '.join(unknown)}; rows are {', '.join(known)}")
    spec["rows"] = [r for r in spec["rows"] if r["id"] in ids]
    return spec


def row_config(row, *, quick=None, overrides=None, vgg_weights=None):
    """The ExperimentConfig of a row with the quick settings and command-line overrides."""
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
    if changes.get("no_jit"):
        config.train.jit_compile = False
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
    """(train root, test root) of a data root; DataError with the full advice when missing."""
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
    return train, test


def quick_data(data, message=print):
    """The data of the quick form: ``data`` when it exists, else the synthetic light set
    (generated if needed) with a message saying so."""
    if data and os.path.isdir(data):
        return data, False
    from menet_tf.data import synthesize

    synthetic = os.path.join("data", "synthetic", "light")
    message(f"{data or 'the real Rain100L copy'} not found: the quick run uses the synthetic "
            f"light-rain set in {synthetic} instead (its numbers are not comparable with the "
            f"paper's; put RainTrainL/Rain100L in {data or 'data/Rain100L'} for real ones)")
    if not os.path.isdir(synthetic):
        synthesize(synthetic, preset="light", seed=0, progress=False)
    return synthetic, True


# ----------------------------------------------------------------------------------------------
# state of the rows

def row_state(folder, skip_reason=None):
    """'skipped', 'evaluated', 'trained', 'half done' or 'missing'."""
    if skip_reason:
        return "skipped"
    summary = os.path.join(folder, "evaluation", "summary.json")
    if run_finished(folder):
        if os.path.isfile(summary) and os.path.getmtime(summary) >= os.path.getmtime(
                os.path.join(folder, "model.keras")):
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


# ----------------------------------------------------------------------------------------------
# running

def run_table(experiment, runs, data=None, *, quick=False, dataset=None, steps=None,
              overrides=None, vgg_weights=None, seed=0, cache=False, steps_per_epoch=None,
              save_every_steps=200, grid_images=GRID_IMAGES, eval_crop_size=None, progress=True, message=print):
    """Train what is missing, resume what is half done, evaluate, write the table and figures.

    Returns the list of result dicts (one per row). ``overrides``: crop_size, batch_size,
    epochs, depth, no_jit (as ``menet-tf train`` takes them).
    """
    spec = load_table(experiment)
    synthetic = False
    if quick:
        data, synthetic = quick_data(data, message)
    if not synthetic:
        dataset = dataset_name(data, dataset) if data else (dataset_name(None, dataset)
                                                            if dataset else None)
    else:
        dataset = None
    what = f"{spec['title'].split(':')[0]}{' (quick form)' if quick else ''}"
    train_root, test_root = data_splits(data, dataset, what)
    os.makedirs(runs, exist_ok=True)
    with RunsLock(runs):
        return _run_rows(spec, runs, data, dataset, train_root, test_root, synthetic,
                         quick=quick, steps=steps, overrides=overrides, vgg_weights=vgg_weights,
                         seed=seed, cache=cache, steps_per_epoch=steps_per_epoch,
                         save_every_steps=save_every_steps, grid_images=grid_images,
                         eval_crop_size=eval_crop_size, progress=progress, message=message)


class RunsLock:
    """One `menet-tf table` per runs folder: a second one on the same rows would train them
    twice over each other's state. A lock left by a process that no longer runs is taken over."""

    def __init__(self, runs):
        self.path = os.path.join(runs, ".table.lock")

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    with open(self.path) as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise MenetError(
                        f"{self.path}: the runs folder is in use by another `menet-tf table` "
                        f"(process {pid}); wait for it, or use another --runs") from None
                os.remove(self.path)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise MenetError(f"{self.path}: cannot take the lock of the runs folder")

    def __exit__(self, *exc):
        try:
            os.remove(self.path)
        except OSError:
            pass
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_rows(spec, runs, data, dataset, train_root, test_root, synthetic, *, quick, steps,
              overrides, vgg_weights, seed, cache, steps_per_epoch, save_every_steps,
              grid_images, eval_crop_size, progress, message):
    """run_table's work once the data are found and the runs folder is locked."""
    if quick:
        steps = steps if steps is not None else spec["quick"]["steps"]
    eval_crop = eval_crop_size or (spec["quick"]["eval_crop_size"] if quick else 224)

    plan = plan_table(spec, runs, quick=quick, overrides=overrides, vgg_weights=vgg_weights)
    message(f"{spec['title']} on {data}" + (" (quick form)" if quick else "") + f"; runs in {runs}")
    for row, config, state, reason in plan:
        message(f"  {row['id']:<16} {config.name:<38} {state}" + (f": {reason}" if reason else ""))

    from menet_tf.train import run as trainer
    from menet_tf.evaluation.scoring import evaluate

    results = []
    for row, config, state, reason in plan:
        folder = os.path.join(runs, row["id"])
        result = {"row": row, "config": config, "state": state, "skip": reason, "folder": folder}
        results.append(result)
        if reason:
            message(f"skipped {row['id']}: {reason}")
            continue
        # Always through train_run: it continues a half-done run, extends a finished one when
        # more steps/epochs are asked, refuses a folder of another configuration, and says
        # RunFinishedError (at once) when there is nothing to do.
        if state in ("missing", "half done"):
            message(f"training {row['id']} ({config.name})" + (" - resuming" if state == "half done" else ""))
        try:
            trainer.train_run(config, data=data, out=folder, seed=seed, steps=steps,
                              save_every_steps=save_every_steps, tensorboard=not quick,
                              cache=cache, steps_per_epoch=steps_per_epoch, resume="auto",
                              progress=progress, log=message)
        except trainer.RunFinishedError:
            pass  # trained already: keep it
        eval_dir = os.path.join(folder, "evaluation")
        previous = read_json(os.path.join(eval_dir, "summary.json")) or {}
        if row_state(folder) != "evaluated" or (previous.get("authors") or {}).get(
                "crop_size") != eval_crop:
            message(f"evaluating {row['id']} on {test_root}")
            evaluate(folder, test_root, eval_dir, crop_size=eval_crop,
                     save_images=grid_images, progress=progress)
        result["summary"] = read_json(os.path.join(eval_dir, "summary.json"))
        result["metrics"] = _read_metrics(os.path.join(eval_dir, "metrics.csv"))
        result["run"] = _run_info(folder)
    meta = {"spec": spec, "data": os.path.abspath(data), "train": train_root, "test": test_root,
            "dataset": dataset, "quick": quick, "synthetic": synthetic, "steps": steps,
            "eval_crop": eval_crop}
    write_table(results, meta, runs)
    figures(results, meta, runs, grid_images)
    return results


def _read_metrics(path):
    try:
        with open(path) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def _run_info(folder):
    """Training steps and seconds of a run, from run.json (the trainer's record)."""
    info = read_json(os.path.join(folder, "run.json")) or {}
    flat = dict(info)
    for value in info.values():
        if isinstance(value, dict):
            flat = {**value, **flat}
    steps = next((flat[k] for k in ("steps", "global_step", "step", "steps_done") if
                  isinstance(flat.get(k), (int, float))), None)
    seconds = next((flat[k] for k in ("seconds", "train_seconds", "training_seconds",
                                      "elapsed_seconds") if isinstance(flat.get(k), (int, float))),
                   None)
    return {"steps": steps, "seconds": seconds}


# ----------------------------------------------------------------------------------------------
# the table

def _num(value):
    if value is None or value == "":
        return None
    if value == "inf":
        return math.inf
    return float(value)


def _f(value, digits=2):
    value = _num(value)
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


COLUMNS = ["id", "label", "model", "psnr", "ssim", "paper_psnr", "paper_ssim", "diff_psnr",
           "diff_ssim", "y_psnr", "y_ssim", "rgb_psnr", "rgb_ssim", "beats_input", "steps",
           "train_seconds", "status"]


def table_rows(results, dataset):
    """One dict per row with our numbers, the paper's and their differences (None if absent)."""
    rows = []
    for r in results:
        row, s = r["row"], r.get("summary") or {}
        paper = (row.get("paper") or {}).get(dataset or "", {})
        a, y, rgb = s.get("authors", {}), s.get("y", {}), s.get("rgb", {})
        psnr, ssim = _num(a.get("psnr")), _num(a.get("ssim"))
        out = {"id": row["id"], "label": row["label"], "model": r["config"].name,
               "psnr": psnr, "ssim": ssim,
               "paper_psnr": paper.get("psnr"), "paper_ssim": paper.get("ssim"),
               "diff_psnr": None, "diff_ssim": None,
               "y_psnr": _num(y.get("psnr")), "y_ssim": _num(y.get("ssim")),
               "rgb_psnr": _num(rgb.get("psnr")), "rgb_ssim": _num(rgb.get("ssim")),
               "beats_input": None, "steps": (r.get("run") or {}).get("steps"),
               "train_seconds": (r.get("run") or {}).get("seconds"),
               "status": "skipped: " + r["skip"] if r.get("skip") else "done"}
        if psnr is not None and paper:
            out["diff_psnr"] = psnr - paper["psnr"]
            out["diff_ssim"] = ssim - paper["ssim"]
        if psnr is not None:
            out["beats_input"] = beats_input(s)
        rows.append(out)
    return rows


def beats_input(summary):
    """Does the model's PSNR beat the rainy input's under every protocol where the input's is
    finite? (With small crops some rainy crops hold no rain at all: tf.image.psnr gives them
    inf, and so the authors' mean for the input is inf too.)"""
    checked = []
    for protocol in ("authors", "y", "rgb"):
        entry = summary.get(protocol)
        if entry and math.isfinite(_num(entry["input_psnr"])):
            checked.append(_num(entry["psnr"]) > _num(entry["input_psnr"]))
    return bool(checked) and all(checked)


def _input_scores(results):
    for r in results:
        s = r.get("summary")
        if s:
            return {p: (s[p].get("input_psnr"), s[p].get("input_ssim")) for p in ("authors", "y", "rgb") if p in s}
    return {}


def write_table(results, meta, runs):
    """table.md and table.csv in ``runs`` (each written whole, then moved into place)."""
    from menet_tf.evaluation.scoring import DESCRIPTIONS

    spec, dataset = meta["spec"], meta["dataset"]
    rows = table_rows(results, dataset)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6f}" if isinstance(v, float) else v))
                         for k, v in row.items()})
    write_all({os.path.join(runs, "table.csv"): buf.getvalue()})

    md = [f"# {spec['title']}", ""]
    if meta["quick"]:
        md += ["> " + QUICK_WARNING.format(note=spec["quick"].get(
            "note", "small crops, few steps").rstrip(".")), ""]
    if meta["synthetic"]:
        md += ["> Trained and scored on the **synthetic** light-rain set (the real Rain100L "
               "copy was not found): no paper numbers apply.", ""]
    where = dataset or "this data set (not recognised as Rain100H/L: no paper numbers; pass --dataset)"
    md += [f"Trained on `{meta['train']}`, scored on `{meta['test']}` ({where}). "
           f"Paper: {spec.get('source', '')}.", ""]
    md += ["| row | model | PSNR | SSIM | paper PSNR | paper SSIM | Δ PSNR | Δ SSIM | Y PSNR | "
           "Y SSIM | beats rainy input | steps | training |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|"]
    for row, r in zip(rows, results):
        label = row["label"]
        if r["row"].get("swapped_in_authors_log") and dataset == "Rain100H":
            label += " †"
        elif r["row"].get("swapped_in_authors_log"):
            label += " (†)"
        if row["status"] != "done":
            md.append(f"| {label} | {row['model']} | {row['status']} | | {_f(row['paper_psnr'])} | "
                      f"{_f(row['paper_ssim'], 4)} | | | | | | | |")
            continue
        beats = {True: "yes", False: "**no**", None: "-"}[row["beats_input"]]
        md.append(
            f"| {label} | {row['model']} | {_f(row['psnr'])} | {_f(row['ssim'], 4)} | "
            f"{_f(row['paper_psnr'])} | {_f(row['paper_ssim'], 4)} | {_signed(row['diff_psnr'])} | "
            f"{_signed(row['diff_ssim'], 4)} | {_f(row['y_psnr'])} | {_f(row['y_ssim'], 4)} | "
            f"{beats} | {row['steps'] if row['steps'] is not None else '-'} | "
            f"{_duration(row['train_seconds'])} |")
    for ref in spec.get("reference_rows", []):
        paper = ref["paper"].get(dataset or "", {})
        md.append(f"| {ref['label']} | (paper only) | | | {_f(paper.get('psnr'))} | "
                  f"{_f(paper.get('ssim'), 4)} | | | | | | | |")
    inputs = _input_scores(results)
    if inputs:
        a, y = inputs.get("authors", (None, None)), inputs.get("y", (None, None))
        md.append(f"| rainy input | - | {_f(a[0])} | {_f(a[1], 4)} | | | | | {_f(y[0])} | "
                  f"{_f(y[1], 4)} | | | |")
    md.append("")
    done = [r for r in rows if r["status"] == "done"]
    beaten = [r for r in done if r["beats_input"]]
    if done:
        if len(beaten) == len(done):
            md.append(f"All {len(done)} trained models improve on the rainy input (PSNR under "
                      f"every protocol where the input's is finite).")
        else:
            worse = [r["id"] for r in done if not r["beats_input"]]
            md.append(f"**Not every model improves on the rainy input: {', '.join(worse)} "
                      f"{'does' if len(worse) == 1 else 'do'} not.**")
        md.append("")
    if inputs and not math.isfinite(_num(inputs.get("authors", (0,))[0]) or 0):
        md.append(f"The rainy input's PSNR under the authors' protocol is infinite: some "
                  f"{meta['eval_crop']}x{meta['eval_crop']} test crops hold no rain, so rainy "
                  f"and clean crops are identical and tf.image.psnr gives inf for them (the "
                  f"batch means, and so the protocol's mean, are then inf). Compare with the "
                  f"input under the whole-image protocols.")
        md.append("")
    if any(r["row"].get("swapped_in_authors_log") for r in results):
        md.append("† The authors' own Rain100H evaluation log swaps the two 'Lp Le Lt' rows "
                  "(27.7668 / 0.8472 for the loss-balanced model, 27.7977 / 0.8465 for the "
                  "gradient-balanced one); the paper's table is shown.")
        md.append("")
    md += ["PSNR/SSIM: the authors' protocol (" + DESCRIPTIONS["authors"] +
           f"; crops of {meta['eval_crop']}). Y: " + DESCRIPTIONS["y"] + ". Y figures are "
           "typically about 1.5 dB above RGB ones for the same outputs. Δ = ours - paper. "
           "Steps and training time as recorded by the trainer (this machine).", ""]
    md += ["Figures: [Fig. 8, per-image PSNR](fig8_psnr_histogram.png), "
           "[Fig. 9, per-image SSIM](fig9_ssim_boxplot.png), "
           "[outputs](grid.png). Per-image scores: `<row>/evaluation/metrics.csv`.", ""]
    write_all({os.path.join(runs, "table.md"): "\n".join(md)})
    return rows


def _signed(value, digits=2):
    if value is None:
        return "-"
    return f"{value:+.{digits}f}"


# ----------------------------------------------------------------------------------------------
# figures

def _per_image(result, key):
    return [_num(m[key]) for m in result.get("metrics") or [] if m.get(key) not in (None, "")]


def figures(results, meta, runs, grid_images=GRID_IMAGES):
    """Fig. 8 (per-image PSNR histogram), Fig. 9 (per-image SSIM box plot), the output grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    done = [r for r in results if r.get("metrics")]
    if not done:
        return []
    suffix = " (quick run)" if meta["quick"] else ""
    where = meta["dataset"] or os.path.basename(meta["test"].rstrip(os.sep))
    written = []

    series = [("rainy input", _per_image(done[0], "authors_input_psnr"))]
    series += [(r["row"]["id"], _per_image(r, "authors_psnr")) for r in done]
    values = [v for _, s in series for v in s if np.isfinite(v)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bins = np.linspace(min(values), max(values), 25) if values else 10
    for i, (name, s) in enumerate(series):
        ax.hist([v for v in s if np.isfinite(v)], bins=bins, histtype="step", linewidth=1.5,
                label=name, linestyle="--" if i == 0 else "-", color="black" if i == 0 else None)
    ax.set(xlabel="PSNR per test image (dB, mean of its 10 crops, authors' protocol)",
           ylabel="images", title=f"Fig. 8: per-image PSNR on {where}{suffix}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(_save(fig, os.path.join(runs, "fig8_psnr_histogram.png")))
    plt.close(fig)

    series = [("rainy input", _per_image(done[0], "authors_input_ssim"))]
    series += [(r["row"]["id"], _per_image(r, "authors_ssim")) for r in done]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(series)), 4.5))
    ax.boxplot([s for _, s in series])
    ax.set_xticks(range(1, len(series) + 1), [n for n, _ in series], rotation=30, ha="right")
    ax.set(ylabel="SSIM per test image (authors' protocol)",
           title=f"Fig. 9: per-image SSIM on {where}{suffix}")
    fig.tight_layout()
    written.append(_save(fig, os.path.join(runs, "fig9_ssim_boxplot.png")))
    plt.close(fig)

    grid = _grid(done, meta, runs, grid_images)
    if grid:
        written.append(grid)
    return written


def _save(fig, path):
    """Save to a temporary file first, so a full disk never leaves a truncated PNG."""
    with replacing(path, suffix=".png", what=" the figure") as tmp:
        fig.savefig(tmp, dpi=100)
    return path


def _grid(done, meta, runs, count):
    """Rainy | clean | each model's output, for the first ``count`` test images."""
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from menet_tf.evaluation.scoring import load_test_pairs

    _, pairs = load_test_pairs(meta["test"])
    pairs = pairs[:count]
    columns = [("rainy", None), ("clean", None)] + [(r["row"]["id"], r) for r in done]
    images = []
    for pair in pairs:
        stem = os.path.splitext(os.path.basename(pair.rainy))[0]
        line = [np.asarray(Image.open(pair.rainy).convert("RGB")),
                np.asarray(Image.open(pair.clean).convert("RGB"))]
        for _, r in columns[2:]:
            path = os.path.join(r["folder"], "evaluation", "images", stem + ".png")
            line.append(np.asarray(Image.open(path).convert("RGB")) if os.path.isfile(path) else None)
        images.append(line)
    if not images:
        return None
    h, w = images[0][0].shape[:2]
    cell = 1.6
    fig, axes = plt.subplots(len(images), len(columns), squeeze=False,
                             figsize=(cell * len(columns) * w / max(h, w) + 0.4,
                                      cell * len(images) * h / max(h, w) + 0.6))
    for i, line in enumerate(images):
        for j, img in enumerate(line):
            ax = axes[i][j]
            if img is not None:
                ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j][0], fontsize=7)
    fig.suptitle("Outputs" + (" (quick run)" if meta["quick"] else ""), fontsize=9)
    fig.tight_layout()
    path = _save(fig, os.path.join(runs, "grid.png"))
    plt.close(fig)
    return path
