"""Compare the port with the authors' released TF1 graphs (``menet-tf compare-authors``).

For one released model: the authors' training graph (``menet_tf.authors.session.AuthorsGraph``)
and the port start from the same values (the released checkpoint, or a seeded initialisation,
handed to the port through a TF1 checkpoint) and the same optimizer state: both start a FRESH
Adam (zero slots, step 0; the released checkpoints' slots and step are dropped on the authors'
side too). Then, on one batch:

- inference outputs (moving statistics),
- every task loss, task weight, the objective and PSNR of a training-mode pass,
- the gradient of every variable, judged against the port run in float64 (the arbiter),
- every variable and BN moving statistic after ``steps`` Adam steps,
- speed, both timed in turns in this process.

Each check has a tolerance and a verdict (``numerics``); ``compare_models`` writes report.md /
report.json (``report``).
"""
import contextlib
import dataclasses
import os
import tempfile
import time

from menet_tf.authors import graphs as released_graphs
from menet_tf.authors.checkpoint import ADAM_SLOT
from menet_tf.authors.session import AuthorsGraph, synthetic_batch
from menet_tf.bench.timing import time_interleaved
from menet_tf.compare.numerics import (
    build_port, compare_gradients, compare_inference, compare_logs, compare_variables,
    float64_gradients, port_config, port_gradients, port_predictor, port_step_logs,
    port_variables)
from menet_tf.compare.report import plot_curves, write_report
from menet_tf.errors import CheckpointError, MenetError


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
    count = max(1, options.train_steps)
    if options.data:
        return load_batches(options.data, count, options.seed), f"five-crop batches of {options.data}"
    batches = [synthetic_batch(*shape, seed=options.seed + i) for i in range(count)]
    return batches, f"synthetic batch (seed {options.seed})"


# ---------------------------------------------------------------------------------------------
# one model


def compare_model(released, options=None, work_dir=None, port_hook=None, log=print, batches=None):
    """Compare one ReleasedModel; returns its report entry (a dict with ``ok``).

    ``port_hook(model)`` may change the port after loading (tests use it to break the port on
    purpose and check that the comparison notices).
    """
    import keras

    options = options or CompareOptions()
    entry = {"name": released.name, "key": released.key, "meta": released.meta_path, "notes": []}
    graph = AuthorsGraph(released.meta_path, released.name)
    try:
        with _work_folder(work_dir) as work_dir:
            prefix = _start_graph(graph, released, options.seed, work_dir, entry, log)
            config, model = _start_port(graph, released, prefix, port_hook)
            if batches is None:
                batches = make_batches(options, graph.train_shape[:2])
            batches, entry["batch"] = batches
            rainy, clean = batches[0]
            predict = port_predictor(model)
            x = rainy[:4]
            entry["inference"] = compare_inference(predict(x), graph.infer(x))
            entry["step"] = compare_logs(port_step_logs(model, rainy, clean), graph.step(rainy, clean))
            arbiter = _arbiter(config, prefix, rainy, clean, entry) if options.arbiter else None
            entry["gradients"] = compare_gradients(
                port_gradients(model, rainy, clean), graph.gradients(rainy, clean), arbiter)
            entry["after_steps"] = _after_steps(graph, model, rainy, clean, options.steps,
                                                config.optimizer.learning_rate)
            if options.timing_repeats:
                entry["timing"] = time_model(graph, model, predict, rainy, clean, options.timing_repeats)
            if options.train_steps:
                entry["curves"] = train_curves(graph, released, config, prefix, batches, work_dir)
            entry["ok"] = _verdict(entry)
            return entry
    finally:
        graph.close()
        keras.backend.clear_session()


@contextlib.contextmanager
def _work_folder(work_dir):
    """``work_dir``, or a temporary folder removed afterwards."""
    if work_dir is not None:
        yield work_dir
        return
    with tempfile.TemporaryDirectory(prefix="menet_compare_") as owned:
        yield owned


def _start_graph(graph, released, seed, work_dir, entry, log):
    """The authors' graph from the released checkpoint (or seeded) with a fresh Adam, saved as
    the TF1 checkpoint the port starts from; returns its prefix."""
    if released.has_data:
        graph.restore(released.checkpoint_prefix)
        entry["start"] = "released checkpoint"
    else:
        note = released_graphs.missing_data_note(released)
        entry["notes"].append(note)
        log(note)
        graph.initialise(seed)
        entry["start"] = f"seeded initialisation (seed {seed})"
    graph.reset_optimizer()
    entry["optimizer"] = "fresh Adam on both sides (zero slots, beta powers = beta, step 0)"
    return graph.save(os.path.join(work_dir, released.key.replace("/", "_"), "initial"))


def _start_port(graph, released, prefix, port_hook):
    """The port's configuration (the graph's optimizer settings) and model, from ``prefix``."""
    config = port_config(released.name, graph)
    if tuple(config.loss.tasks) != tuple(graph.tasks):
        raise CheckpointError(
            f"{released.meta_path}: the graph's tasks {graph.tasks} differ from the port's"
            f" configuration {config.loss.tasks}")
    model = build_port(config, prefix)
    if port_hook is not None:
        port_hook(model)
    return config, model


def _arbiter(config, prefix, rainy, clean, entry):
    """The float64 port's gradients, task weights held at the float32 step's; None when it
    cannot run (said in a note)."""
    try:
        model64 = build_port(config, prefix, dtype="float64")
        held = [entry["step"]["port"][f"weight_{t}"] for t in config.loss.tasks]
        return float64_gradients(model64, rainy, clean, held)
    except Exception as err:  # noqa: BLE001 - report, do not hide the other checks
        entry["notes"].append(f"float64 arbiter unavailable: {type(err).__name__}: {str(err).splitlines()[0]}")
        return None


def _after_steps(graph, model, rainy, clean, steps, learning_rate):
    """Both sides take ``steps`` Adam steps on the same batch; every variable compared."""
    for _ in range(steps):
        model.train_on_batch(rainy, clean)
        graph.step(rainy, clean, train=True)
    authors = {n: v for n, v in graph.variables().items()
               if n.startswith("derain/") and not ADAM_SLOT.search(n)}
    result = compare_variables(port_variables(model), authors, steps, learning_rate)
    result["global_step"] = {
        "port": int(model.optimizer.iterations.numpy()), "authors": int(graph.variables()["global_step"])}
    return result


def _verdict(entry):
    checks = [entry["inference"], entry["step"]["losses"], entry["step"]["weights"],
              entry["step"]["psnr"], entry["gradients"], entry["after_steps"]["weights"],
              entry["after_steps"]["moving_statistics"]]
    steps = entry["after_steps"]
    return (all(c["ok"] for c in checks) and steps["weights"]["ok_jump"]
            and steps["global_step"]["port"] == steps["global_step"]["authors"])


def time_model(graph, model, predict, rainy, clean, repeats):
    """Per-image inference at batch 1 and 20, training step at batch 20; interleaved."""
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
# many models


def compare_models(source, out, variants=None, options=None, progress=True, port_hook=None):
    """Compare every selected released model under ``source``; write report.md/json (+ plots).

    Returns the report dict; ``report["ok"]`` is False when any model is outside tolerance."""
    options = options or CompareOptions()
    models = released_graphs.select(released_graphs.find_released(source), variants)
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
        write_report(out, source, options, entries)  # after every model: nothing is lost
    return write_report(out, source, options, entries)


def _progress(items, enabled):
    if not enabled:
        return items
    try:
        from menet_tf.progress import bar as progress_bar
    except ImportError:
        return items
    return progress_bar(items, unit="model")
