"""Compare the port with the authors' released TF1 graphs (``menet-tf compare-authors``).

For one released model: the authors' training graph (``menet_tf.authors.graphs.AuthorsGraph``) and the
port start from the same values (the released checkpoint, or a seeded initialisation, handed to
the port through a TF1 checkpoint and ``menet_tf.authors.checkpoint.load_checkpoint``, so there is one name
mapping only) and the same optimizer state: both start a FRESH Adam (zero slots, step 0; the
released checkpoints' slots and step are dropped on the authors' side too). Then, on one batch:

- inference outputs (moving statistics),
- every task loss, task weight, the objective and PSNR of a training-mode pass,
- the gradient of every variable, judged against the port run in float64 (the arbiter),
- every variable and BN moving statistic after ``steps`` Adam steps,
- speed, both timed in turns in this process.

Each check has a tolerance and a verdict; ``compare_models`` writes report.md / report.json.
"""
import dataclasses
import math
import os
import re
import tempfile
import time

import numpy as np

from menet_tf.errors import MenetError
from menet_tf.files import replacing, write_json, write_text

_MOVING = re.compile(r"/moving_(mean|variance)$")

# Tolerances, each the float32 noise measured on the three fixtures and the deep GB model with
# a margin (README, Faithfulness); a defect (a wrong weight, momentum, epsilon) is far outside.
TOLERANCES = {
    "inference": 1e-2,  # max |difference| of the 0..255 outputs
    "loss": 2e-4,  # relative, each task loss and the objective
    "weight": 1e-4,  # absolute, each task weight (they lie in 0..1)
    "psnr": 1e-3,  # dB
    # Gradients: per variable max |difference| / its largest entry; the MEDIAN over variables
    # of the port's and of the authors' distance from the float64 arbiter (without arbiter:
    # of port against authors). Measured: 0.13% to 0.52%. The worst variable is reported, not
    # judged: it is a batch norm's beta whose gradient cancels to float noise (up to 4.2%).
    "gradient": 1e-2,
    # Variables after N Adam steps: of all weight elements, those off by more than 2e-4 +
    # 1e-4 |ref| may be at most this share (an Adam step follows the gradient's sign, which
    # flips where the gradient is float noise around zero, e.g. in half the entries of a beta
    # whose gradient cancels), and none by more than 2 lr per step.
    "step_share": 0.1,
    # BN moving statistics after N steps: per statistic, max |difference| / its largest entry
    # (the batches' statistics move with the weights' few flipped Adam steps).
    "moving": 1e-3,
}


# ---------------------------------------------------------------------------------------------
# the port's side


def port_config(name, graph):
    """The port's ExperimentConfig for a released model, with the graph's optimizer settings."""
    from menet_tf import config as config_lib

    if name in config_lib.RELEASED:
        config = config_lib.released_config(name)
    else:
        raise MenetError(f"{name}: not a released model the port knows ({sorted(config_lib.RELEASED)})")
    layout = graph.layout
    opt = config.optimizer
    opt.learning_rate = layout.learning_rate
    opt.beta_1, opt.beta_2, opt.epsilon = layout.beta_1, layout.beta_2, layout.epsilon
    if layout.decay_steps:
        opt.decay_steps = layout.decay_steps
    config.train.jit_compile = False
    return config


def build_port(config, prefix, dtype=None):
    """The port's compiled model with the values of the TF1 checkpoint ``prefix``."""
    from menet_tf.authors import checkpoint as tf1
    from menet_tf.model.multitask import build_model

    if dtype is None:
        model = build_model(config)
    else:
        from menet_tf.model.multitask import MultiTaskMENET

        model = MultiTaskMENET(
            depth=config.model.depth, attention=config.model.attention, tasks=config.loss.tasks,
            weighting=config.loss.weighting, task_weights=config.loss.task_weights,
            texture_form=config.loss.texture_form, dtype=dtype,
        )
        model.ensure_built()
    tf1.load_checkpoint(model, prefix)
    return model


def _names(model):
    from menet_tf.authors.checkpoint import variable_map

    return variable_map(model)


def port_variables(model):
    return {n: v.numpy() for n, v in _names(model).items()}


def _keep_moving(model):
    """Snapshot of the BN moving statistics, to undo the update of a training-mode pass."""
    moving = {n: v for n, v in _names(model).items() if _MOVING.search(n)}
    saved = {n: v.numpy() for n, v in moving.items()}
    return lambda: [moving[n].assign(saved[n]) for n in moving]


def port_step_logs(model, rainy, clean):
    """{loss, <task>, weight_<task>, psnr} of a training-mode pass, without training."""
    import tensorflow as tf

    from menet_tf.model.metrics import image_metrics

    restore = _keep_moving(model)
    _, (c, derained, losses, weights) = model.compute_gradients((tf.constant(rainy), tf.constant(clean)))
    restore()
    objective = tf.add_n([w * l for w, l in zip(weights, losses)])
    out = {"loss": float(objective), "psnr": float(image_metrics(c, derained)[0])}
    for task, loss, weight in zip(model.task_names, losses, weights):
        out[task] = float(loss)
        out[f"weight_{task}"] = float(weight)
    return out


def port_gradients(model, rainy, clean):
    """{TF1 name: gradient} of the port's objective (float32, its own training step's code)."""
    import tensorflow as tf

    names = {id(v): n for n, v in _names(model).items()}
    restore = _keep_moving(model)
    grads, _ = model.compute_gradients((tf.constant(rainy), tf.constant(clean)))
    restore()
    return {names[id(v)]: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def float64_gradients(model, rainy, clean, weights=None):
    """The arbiter: the same objective's gradients computed entirely in float64.

    ``model`` is a float64 MultiTaskMENET; the step is spelled out here because the training
    step computes its losses in float32. ``weights`` (task order) holds the task weights at
    given values, normally those of the float32 step: in float32, gradient balance gives the
    texture task a weight of exactly 0 (its gradient is ~1e12 times the others'), in float64
    about 1e-12, which times a texture loss of ~1e12 is a different objective altogether. The
    weights are constants of the step on both sides, so holding them compares back-propagation
    only, which is what float32 noise affects."""
    import tensorflow as tf

    names = {id(v): n for n, v in _names(model).items()}
    x, y = tf.constant(rainy, tf.float64), tf.constant(clean, tf.float64)
    # Persistent (all float64 activations kept for several gradients) only when the weights
    # must be computed from per-task gradients; the deep model's batch needs GBs in float64.
    with tf.GradientTape(persistent=weights is None) as tape:
        out = tf.cast(model(x, training=True), tf.float64)
        losses = [task(y, out) for task in model.task_losses]
    if weights is None:
        norms = None
        if model.weighting.needs_gradient_norms:
            norms = [tf.norm(tape.gradient(loss, model.shared_kernel)) for loss in losses]
        weights = model.weighting.weights(losses, norms)
    weights = [tf.stop_gradient(tf.cast(w, tf.float64)) for w in weights]
    # d(sum_i w_i L_i) with the w_i held constant: the losses' gradients weighted by w_i.
    grads = tape.gradient(losses, model.trainable_variables, output_gradients=weights)
    del tape
    return {names[id(v)]: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def port_predictor(model):
    """The port's inference: C's Derainer (the one inference path) or a compiled model call."""
    try:
        from menet_tf.infer.derainer import Derainer
    except ImportError:
        Derainer = None
    if Derainer is not None:
        return Derainer(model, jit_compile=False).predict
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), autograph=False)
    return lambda x: fn(tf.constant(x, tf.float32)).numpy()


# ---------------------------------------------------------------------------------------------
# checks


def _check(value, tolerance, **extra):
    ok = bool(np.isfinite(value) and value <= tolerance)
    return {"value": float(value), "tolerance": float(tolerance), "ok": ok, **extra}


def _relative(a, b):
    return abs(a - b) / max(abs(b), 1e-12)


def compare_logs(port, authors):
    """Worst relative loss difference, worst absolute weight difference, PSNR difference."""
    loss_keys = [k for k in authors if k not in ("psnr",) and not k.startswith("weight_")]
    weight_keys = [k for k in authors if k.startswith("weight_")]
    missing = sorted(set(authors) - set(port))
    if missing:
        raise MenetError(f"the port does not log {missing} (tasks differ from the authors' graph)")
    per_loss = {k: _relative(port[k], authors[k]) for k in loss_keys}
    per_weight = {k: abs(port[k] - authors[k]) for k in weight_keys}
    return {
        "losses": _check(max(per_loss.values()), TOLERANCES["loss"], each=per_loss),
        "weights": _check(max(per_weight.values(), default=0.0), TOLERANCES["weight"], each=per_weight),
        "psnr": _check(abs(port["psnr"] - authors["psnr"]), TOLERANCES["psnr"]),
        "port": port,
        "authors": authors,
    }


def gradient_errors(grads, reference):
    """Per variable max |g - ref| / max |ref|; returns (median, worst, worst variable)."""
    errors = {}
    for name, ref in reference.items():
        scale = float(np.abs(ref).max()) or 1.0
        errors[name] = float(np.abs(grads[name] - ref).max() / scale)
    worst = max(errors, key=errors.get)
    return {"median": float(np.median(list(errors.values()))), "worst": errors[worst], "worst_variable": worst}


def compare_gradients(port, authors, arbiter=None):
    """Port against authors, and both against the float64 arbiter when there is one."""
    result = {"port_vs_authors": gradient_errors(port, authors)}
    if arbiter is None:
        result["arbiter"] = "unavailable"
        result.update(_check(result["port_vs_authors"]["median"], TOLERANCES["gradient"]))
        return result
    result["port_vs_float64"] = gradient_errors(port, arbiter)
    result["authors_vs_float64"] = gradient_errors(authors, arbiter)
    p, a = result["port_vs_float64"], result["authors_vs_float64"]
    if abs(p["median"] - a["median"]) <= 0.01 * max(p["median"], a["median"]):
        result["closer_to_float64"] = "equally close"  # same kernels, same order: same noise
    else:
        result["closer_to_float64"] = "port" if p["median"] < a["median"] else "authors"
    # Both float32 implementations must sit within float32 noise of the float64 port: a port
    # computing other math is near its own float64 version, but then the authors' graph is
    # far from it, for most variables.
    result.update(_check(max(p["median"], a["median"]), TOLERANCES["gradient"]))
    return result


def compare_variables(port, authors, steps, learning_rate):
    """Every weight and BN statistic after ``steps`` Adam steps on both sides."""
    worst_share, worst_jump, worst_moving = 0.0, 0.0, 0.0
    where, off_total, total = {}, 0, 0
    for name, ref in authors.items():
        value = port[name]
        diff = np.abs(value - ref)
        if _MOVING.search(name):
            rel = float(diff.max() / max(float(np.abs(ref).max()), 1e-12))
            if rel > worst_moving:
                worst_moving, where["moving"] = rel, name
            continue
        off = diff > 2e-4 + 1e-4 * np.abs(ref)
        off_total, total = off_total + int(off.sum()), total + off.size
        share = float(off.mean())
        if share > worst_share:
            worst_share, where["share"] = share, name
        if float(diff.max()) > worst_jump:
            worst_jump, where["jump"] = float(diff.max()), name
    jump_limit = 2 * learning_rate * steps + 1e-4
    return {
        "steps": steps,
        "weights": _check(off_total / max(total, 1), TOLERANCES["step_share"],
                          worst_variable=where.get("share"), worst_variable_share=worst_share,
                          max_abs_difference=worst_jump, max_abs_limit=jump_limit,
                          ok_jump=worst_jump <= jump_limit),
        "moving_statistics": _check(worst_moving, TOLERANCES["moving"],
                                    worst_variable=where.get("moving")),
    }


# ---------------------------------------------------------------------------------------------
# one model


@dataclasses.dataclass
class CompareOptions:
    steps: int = 3
    seed: int = 0
    data: str = None
    timing_repeats: int = 3
    train_steps: int = 0
    arbiter: bool = True


def load_batches(data, count, seed=0):
    """``count`` (rainy, clean) batches of 20 five-crops of 224 from ``data``, as numpy.

    ``data`` is a folder of pairs in any layout ``menet-tf data check`` knows, or a data set
    root with train/ and test/ folders (its training split is used)."""
    from menet_tf.data import train_dataset
    from menet_tf.data.splits import named_splits

    splits = named_splits(data)
    train = splits.train or next(iter(splits.found.values()))
    ds = train_dataset(train.root, batch_size=20, crop_size=224, seed=seed)
    batches = []
    while len(batches) < count:
        for rainy, clean in ds:
            batches.append((rainy.numpy(), clean.numpy()))
            if len(batches) == count:
                break
    return batches


def make_batches(options, shape=(20, 224)):
    """The comparison's batches: five-crops of ``options.data`` or seeded synthetic ones; as
    many as ``options.train_steps`` needs (at least one)."""
    from menet_tf.authors import graphs as authors

    count = max(1, options.train_steps)
    if options.data:
        return load_batches(options.data, count, options.seed), f"five-crop batches of {options.data}"
    batches = [authors.synthetic_batch(*shape, seed=options.seed + i) for i in range(count)]
    return batches, f"synthetic batch (seed {options.seed})"


def compare_model(released, options=None, work_dir=None, port_hook=None, log=print, batches=None):
    """Compare one ReleasedModel; returns its report entry (a dict with ``ok``).

    ``port_hook(model)`` may change the port after loading (tests use it to break the port on
    purpose and check that the comparison notices).
    """
    import keras

    from menet_tf.authors import graphs as authors
    from menet_tf.errors import CheckpointError

    options = options or CompareOptions()
    entry = {"name": released.name, "key": released.key, "meta": released.meta_path, "notes": []}
    graph = authors.AuthorsGraph(released.meta_path, released.name)
    owned_dir = None
    if work_dir is None:
        owned_dir = tempfile.TemporaryDirectory(prefix="menet_compare_")
        work_dir = owned_dir.name
    try:
        if released.has_data:
            graph.restore(released.checkpoint_prefix)
            entry["start"] = "released checkpoint"
        else:
            note = authors.missing_data_note(released)
            entry["notes"].append(note)
            log(note)
            graph.initialise(options.seed)
            entry["start"] = f"seeded initialisation (seed {options.seed})"
        graph.reset_optimizer()
        entry["optimizer"] = "fresh Adam on both sides (zero slots, beta powers = beta, step 0)"
        prefix = graph.save(os.path.join(work_dir, released.key.replace("/", "_"), "initial"))
        config = port_config(released.name, graph)
        if tuple(config.loss.tasks) != tuple(graph.tasks):
            raise CheckpointError(
                f"{released.meta_path}: the graph's tasks {graph.tasks} differ from the port's"
                f" configuration {config.loss.tasks}")
        model = build_port(config, prefix)
        if port_hook is not None:
            port_hook(model)
        if batches is None:
            batches = make_batches(options, graph.train_shape[:2])
        batches, entry["batch"] = batches
        rainy, clean = batches[0]

        # inference (moving statistics)
        predict = port_predictor(model)
        x = rainy[:4]
        diff = float(np.abs(predict(x) - graph.infer(x)).max())
        entry["inference"] = _check(diff, TOLERANCES["inference"])

        # losses, weights, objective, PSNR of one training-mode pass
        entry["step"] = compare_logs(port_step_logs(model, rainy, clean), graph.step(rainy, clean))

        # gradients, with the float64 arbiter
        arbiter = None
        if options.arbiter:
            try:
                model64 = build_port(config, prefix, dtype="float64")
                held = [entry["step"]["port"][f"weight_{t}"] for t in config.loss.tasks]
                arbiter = float64_gradients(model64, rainy, clean, held)
                del model64
            except Exception as err:  # noqa: BLE001 - report, do not hide the other checks
                entry["notes"].append(f"float64 arbiter unavailable: {type(err).__name__}: {str(err).splitlines()[0]}")
        entry["gradients"] = compare_gradients(
            port_gradients(model, rainy, clean), graph.gradients(rainy, clean), arbiter)

        # N Adam steps on the same batch
        for _ in range(options.steps):
            model.train_on_batch(rainy, clean)
            graph.step(rainy, clean, train=True)
        entry["after_steps"] = compare_variables(
            port_variables(model),
            {n: v for n, v in graph.variables().items() if n.startswith("derain/") and not n.endswith(("/Adam", "/Adam_1"))},
            options.steps, config.optimizer.learning_rate)
        entry["after_steps"]["global_step"] = {
            "port": int(model.optimizer.iterations.numpy()), "authors": int(graph.variables()["global_step"])}

        if options.timing_repeats:
            entry["timing"] = time_model(graph, model, predict, rainy, clean, options.timing_repeats)
        if options.train_steps:
            entry["curves"] = train_curves(graph, released, config, prefix, batches, work_dir)
        checks = [entry["inference"], entry["step"]["losses"], entry["step"]["weights"],
                  entry["step"]["psnr"], entry["gradients"], entry["after_steps"]["weights"],
                  entry["after_steps"]["moving_statistics"]]
        steps = entry["after_steps"]
        entry["ok"] = (all(c["ok"] for c in checks) and steps["weights"]["ok_jump"]
                       and steps["global_step"]["port"] == steps["global_step"]["authors"])
        return entry
    finally:
        graph.close()
        keras.backend.clear_session()
        if owned_dir is not None:
            owned_dir.cleanup()


def time_model(graph, model, predict, rainy, clean, repeats):
    """Per-image inference at batch 1 and 20, training step at batch 20; interleaved."""
    from menet_tf.bench.speed import time_interleaved  # the one timing loop (menet-tf bench's)

    x1, x20 = rainy[:1], rainy[:20]
    t = time_interleaved(
        {
            "authors_infer_1": lambda: graph.infer(x1),
            "port_infer_1": lambda: predict(x1),
            "authors_infer_20": lambda: graph.infer(x20),
            "port_infer_20": lambda: predict(x20),
            "authors_train_20": lambda: graph.step(rainy, clean, train=True),
            "port_train_20": lambda: model.train_on_batch(rainy, clean),
        },
        repeats=repeats, warmup=1)
    out = {}
    for side in ("authors", "port"):
        out[side] = {
            "infer_per_image_batch_1": t[f"{side}_infer_1"]["median_s"],
            "infer_per_image_batch_20": t[f"{side}_infer_20"]["median_s"] / len(x20),
            "train_step_batch_20": t[f"{side}_train_20"]["median_s"],
        }
    out["speedup"] = {k: out["authors"][k] / out["port"][k] for k in out["port"]}  # >1: port faster
    out["repeats"] = repeats
    return out


def train_curves(graph, released, config, prefix, batches, work_dir):
    """Train both from ``prefix`` on the same batches; per-step logs of both sides."""
    graph.restore(prefix)
    model = build_port(config, prefix)
    rows = []
    for i, (rainy, clean) in enumerate(batches):
        a = graph.step(rainy, clean, train=True)
        p = {k: float(v) for k, v in model.train_on_batch(rainy, clean, return_dict=True).items()}
        rows.append({"step": i + 1, "authors": a, "port": {k: p[k] for k in a}})
    return rows


# ---------------------------------------------------------------------------------------------
# many models, the report


def compare_models(source, out, variants=None, options=None, progress=True, port_hook=None):
    """Compare every selected released model under ``source``; write report.md/json (+ plots).

    Returns the report dict; ``report["ok"]`` is False when any model is outside tolerance."""
    from menet_tf.authors import graphs as authors

    options = options or CompareOptions()
    models = authors.select(authors.find_released(source), variants)
    os.makedirs(out, exist_ok=True)
    batches = make_batches(options)  # once: bad data is one error, not one per model
    entries = []
    bar = _progress(models, progress)
    for released in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(released.name)
        started = time.perf_counter()
        try:
            entry = compare_model(released, options, port_hook=port_hook, batches=batches,
                                  log=(bar.write if hasattr(bar, "write") else print))
        except MenetError as err:
            entry = {"name": released.name, "key": released.key, "ok": False, "error": str(err), "notes": []}
        entry["seconds"] = time.perf_counter() - started
        entries.append(entry)
        if entry.get("curves"):
            plot_curves(entry, os.path.join(out, f"curves_{released.key.replace('/', '_')}.png"))
        _write_report(out, source, options, entries)  # after every model: nothing is lost
    return _write_report(out, source, options, entries)


def _progress(items, enabled):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, unit="model")


def _write_report(out, source, options, entries):
    report = {
        "source": os.fspath(source),
        "options": dataclasses.asdict(options),
        "tolerances": TOLERANCES,
        "optimizer_state": "reset on both sides: fresh Adam (zero slots, step 0)",
        "models": entries,
        "ok": all(e["ok"] for e in entries),
    }
    write_json(os.path.join(out, "report.json"), report, default=_jsonable)
    write_text(os.path.join(out, "report.md"), format_markdown(report))
    return report


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _pct(x):
    return f"{100 * x:.2f}%"


def table_rows(report):
    """The Faithfulness table: one row per model."""
    rows = []
    for e in report["models"]:
        if "error" in e:
            rows.append([e["key"], "error: " + e["error"].splitlines()[0], "", "", "", "", "FAIL"])
            continue
        g = e["gradients"]
        if "port_vs_float64" in g:
            p, a = g["port_vs_float64"], g["authors_vs_float64"]
            closer = g["closer_to_float64"]
            grad = (f"port {_pct(p['median'])} / {_pct(p['worst'])}, authors {_pct(a['median'])} /"
                    f" {_pct(a['worst'])} ({closer if closer == 'equally close' else closer + ' closer'})")
        else:
            grad = f"port vs authors worst {_pct(g['port_vs_authors']['worst'])} (no float64 arbiter)"
        s = e["after_steps"]
        steps = (f"{_pct(s['weights']['value'])} of elements off, max {s['weights']['max_abs_difference']:.1e};"
                 f" BN stats {s['moving_statistics']['value']:.1e}")
        speed = ""
        if "timing" in e:
            sp = e["timing"]["speedup"]
            speed = (f"train {sp['train_step_batch_20']:.2f}x, infer {sp['infer_per_image_batch_1']:.2f}x (b1)"
                     f" / {sp['infer_per_image_batch_20']:.2f}x (b20)")
        step = e["step"]
        rows.append([
            e["key"],
            f"{e['inference']['value']:.1e}",
            f"{step['losses']['value']:.1e} / {step['weights']['value']:.1e}",
            grad,
            steps,
            speed,
            "ok" if e["ok"] else "FAIL",
        ])
    return rows


def format_markdown(report):
    header = ["model", "max inference difference (0..255)", "losses (rel.) / weights (abs.)",
              "gradients vs float64: median / worst of each variable's largest entry",
              f"variables after {report['options']['steps']} Adam steps", "speed (authors time / port time)",
              "verdict"]
    lines = [
        "# The port against the authors' released TF1 graphs",
        "",
        f"Source: `{report['source']}`. Optimizer state: {report['optimizer_state']}.",
        f"Verdict: **{'all models within tolerance' if report['ok'] else 'SOME MODELS OUTSIDE TOLERANCE'}**.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    lines += ["", "Tolerances: " + ", ".join(f"{k} {v:g}" for k, v in report["tolerances"].items()), ""]
    for e in report["models"]:
        lines.append(f"## {e['key']}")
        if "error" in e:
            lines += ["", f"Error: {e['error']}", ""]
            continue
        lines += ["", f"Start: {e['start']}; batch: {e['batch']}; {e['optimizer']}."]
        lines += [f"- {n}" for n in e["notes"]]
        step = e["step"]
        lines += ["", "| quantity | authors | port |", "|---|---|---|"]
        for k in step["authors"]:
            lines.append(f"| {k} | {step['authors'][k]:.7g} | {step['port'][k]:.7g} |")
        if "timing" in e:
            t = e["timing"]
            lines += ["", "| seconds (median of %d) | authors | port |" % t["repeats"], "|---|---|---|"]
            for k in t["port"]:
                lines.append(f"| {k} | {t['authors'][k]:.4f} | {t['port'][k]:.4f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def plot_curves(entry, path):
    """Side-by-side training curves: objective, each task loss and weight, PSNR."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import MaxNLocator

    rows = entry["curves"]
    first = rows[0]["authors"]
    tasks = [k for k in first if k not in ("loss", "psnr") and not k.startswith("weight_")]
    keys = ["loss", *tasks, *(f"weight_{t}" for t in tasks), "psnr"]
    steps = [r["step"] for r in rows]
    cols = 3
    n_rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(4 * cols, 3 * n_rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot(steps, [r["authors"][key] for r in rows], label="authors' TF1 graph")
        ax.plot(steps, [r["port"][key] for r in rows], "--", label="menet-tf")
        ax.set_title("objective" if key == "loss" else key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key in ("loss", "texture", "mse", "edge") and all(r["authors"][key] > 0 for r in rows):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle(entry["key"])
    fig.tight_layout()
    with replacing(path, suffix=".png", what=" the figure") as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
