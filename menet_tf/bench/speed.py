"""Speed of menet-tf, and of the authors' TF1 graph side by side: the figures behind every speed
claim in the README (``menet-tf bench``).

Measured in one process with ``timing.time_interleaved`` (contenders in turns; wall-clock and
process CPU seconds). The machine (CPU model and flags, TensorFlow, threads, load average) goes
into the result, so a figure can be traced to where it was measured.

What is timed:
- inference, seconds per image: 224x224 at batch 1 and 20, one 481x321 image (Rain100L size,
  reflection-padded by ``Derainer.derain``); the port through menet_tf.infer.derainer.Derainer
  (BN folded, one compiled function), the authors' graph through
  menet_tf.authors.session.AuthorsGraph.infer;
- training, seconds per step at batch 20 of 224x224: MENET-GB (three tasks, gradient balance) and
  the same network with the MSE task only, so the cost of the multi-task step shows; the
  authors' released MENET-GB training graph (one Adam step each), as released (the judged
  ratio) and asked for the port's logs too (SSIM added: like for like, for reference);
- the input pipeline (five-crop + flip tf.data pipeline, batch 20): crops per second;
- peak memory (resident set size; GPU peak when there is a GPU);
- the roofline (``menet_tf.bench.roofline``, ``menet_tf.bench.flops``): this machine's practical
  peak in each precision, measured in the same run, and beside every timing the network's
  achieved GFLOP/s (FLOPs counted from the model's traced graph) and its share of that peak.

``precision`` ("fp32", "bf16", "fp16") is the port's: inference through ``Derainer(...,
precision=)``, the training step under the matching Keras policy (mixed_bfloat16,
mixed_float16). ``backend="openvino"`` runs the port's inference through
``menet_tf.infer.openvino_backend`` (training stays TensorFlow's). The authors' graph is float32.
"""
import dataclasses
import datetime
import os
import platform
import tempfile

import numpy as np

from menet_tf.bench.timing import load_average, peak_memory, time_interleaved
from menet_tf.errors import ConfigError, MenetError
from menet_tf.machine import cpu_info

GB_MODEL = "MENET-GB"
MSE_MODEL = "ModelShallowNewCa"  # the MENET-GB network (with channel attention), MSE task only
RAIN100_SIZE = (321, 481)  # height, width of a Rain100L image in landscape

BACKENDS = ("tensorflow", "openvino")

# Goals of issue 8 (float32, interleaved against the authors' graph on the same CPU).
GOALS = (
    ("train_b20", 1.15, "training step at least 1.15x faster than the authors' graph"),
    ("infer_b1", 1.25, "inference at batch 1 at least 1.25x faster than the authors' graph"),
    ("infer_b20", 1.15, "inference at batch 20 at least 1.15x faster than the authors' graph"),
)
GB_OVER_MSE_GOAL = 1.10  # a MENET-GB step at most 10% slower than the MSE-only step
# Goals of issue 16 (bf16 or OpenVINO inference against the authors' float32 graph, batch 1, on
# a CPU with AVX512_BF16 or AMX; the 0.05 dB half is evaluate's, not the bench's).
LOW_PRECISION_GOALS = (
    ("infer_b1", 2.0, "bf16/OpenVINO inference, 224x224 batch 1, at least 2x the authors' float32"),
    ("infer_large", 2.0, "bf16/OpenVINO inference, one Rain100L image, at least 2x the authors'"
     " float32"),
)


def machine_info():
    """Device, CPU (``menet_tf.machine``), TensorFlow and thread settings of this process."""
    import keras
    import tensorflow as tf

    from menet_tf.model.conv_gradient import onednn_enabled

    gpus = tf.config.list_physical_devices("GPU")
    details = []
    for gpu in gpus:
        try:
            details.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
        except Exception:  # noqa: BLE001 - details are informative only
            details.append(gpu.name)
    return {
        "device": "GPU" if gpus else "CPU",
        "gpus": details,
        "cpu": cpu_info(),
        "onednn": onednn_enabled(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "threads": {
            "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            "note": "0 = TensorFlow's default (one per logical CPU)",
        },
        "environment": {
            k: os.environ[k]
            for k in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                      "TF_NUM_INTEROP_THREADS", "TF_XLA_FLAGS", "CUDA_VISIBLE_DEVICES")
            if k in os.environ
        },
        "hostname": platform.node(),
        "platform": platform.platform(),
    }


class Sizes:
    """What to time: full (the issue's sizes) or quick (small, for tests and a first look)."""

    def __init__(self, quick):
        self.quick = quick
        if quick:
            self.infer_size, self.infer_batch, self.large = 64, 4, (81, 97)
            self.train_batch, self.train_size = 2, 64
            self.pipeline = dict(batch_size=4, crop_size=64, num_crops=2, epochs=1, max_batches=4)
        else:
            self.infer_size, self.infer_batch, self.large = 224, 20, RAIN100_SIZE
            self.train_batch, self.train_size = 20, 224
            self.pipeline = dict(batch_size=20, crop_size=224, num_crops=10, epochs=2, max_batches=30)

    def as_dict(self):
        return {
            "quick": self.quick,
            "inference": {"size": self.infer_size, "batches": [1, self.infer_batch],
                          "large_image": list(self.large)},
            "training": {"batch": self.train_batch, "size": self.train_size},
            "pipeline": self.pipeline,
        }


def _batch(batch_size, height, width, seed):
    """A seeded rainy/clean pair of batches (streaks added to a smooth random image), 0..255."""
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 255, [batch_size, height // 8 + 1, width // 8 + 1, 3])
    clean = np.kron(clean, np.ones([1, 8, 8, 1]))[:, :height, :width]
    rain = (rng.random(clean.shape[:3]) < 0.03)[..., None] * rng.uniform(40, 120)
    rainy = np.clip(clean + rain, 0, 255)
    return rainy.astype(np.float32), clean.astype(np.float32)


@dataclasses.dataclass
class _Inputs:
    """The seeded batches every contender is timed on."""

    one: np.ndarray  # inference, batch 1
    many: np.ndarray  # inference, batch ``infer_batch``
    large: np.ndarray  # inference, one Rain100L-sized image
    rainy: np.ndarray  # training
    clean: np.ndarray

    @classmethod
    def of(cls, sizes):
        s, b = sizes.infer_size, sizes.infer_batch
        rainy, clean = _batch(sizes.train_batch, sizes.train_size, sizes.train_size, seed=4)
        return cls(one=_batch(1, s, s, seed=1)[0], many=_batch(b, s, s, seed=2)[0],
                   large=_batch(1, *sizes.large, seed=3)[0], rainy=rainy, clean=clean)


# ---------------------------------------------------------------------------------------------
# the benchmark


def run_bench(authors_dir=None, quick=False, repeats=None, warmup=1, jit_compile="auto",
              precision="fp32", data=None, pipeline=True, progress=True, command=None,
              conv_gradient="auto", backend="tensorflow", training=True, roofline=True):
    """Run every measurement; return the result dict (``menet_tf.bench.report.format_table``
    gives its short form).

    ``authors_dir``: folder of the authors' released graphs (e.g. authors_graphs/), timed
    interleaved with the port. ``jit_compile``: "auto" (the default the library picks on this
    device), True or False, for the port's training step and inference function alike.
    ``conv_gradient``: how the port differentiates its convolutions, for this run only
    (``menet_tf.model.conv_gradient.conv_gradients``; "auto" = the library default on this
    machine). ``precision``: "fp32", "bf16" or "fp16" (the old "float32", "mixed_bfloat16",
    "mixed_float16" still work); ``backend``: "tensorflow" or "openvino" (inference only).
    ``training=False`` skips the training steps, ``roofline=False`` the peaks and FLOP counts.
    """
    from menet_tf.infer.precision import resolve
    from menet_tf.model.conv_gradient import conv_gradients

    precision = resolve(precision).name
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
    options = dict(precision=precision, backend=backend, training=training, roofline=roofline)
    with conv_gradients(conv_gradient):
        return _run_bench(authors_dir, quick, repeats, warmup, jit_compile, data, pipeline,
                          progress, command, conv_gradient, options)


def _run_bench(authors_dir, quick, repeats, warmup, jit_compile, data, pipeline, progress,
               command, conv_gradient, options):
    """The measurements, in the order the result records them (inside ``run_bench``'s
    convolution-gradient setting)."""
    from menet_tf.model.multitask import resolve_jit_compile

    sizes = Sizes(quick)
    repeats = int(repeats or (2 if quick else 5))
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    jit = resolve_jit_compile(jit_compile)
    result = _record(command, sizes, repeats, warmup, jit, jit_compile, conv_gradient, options)
    graph = None
    if authors_dir is not None:
        graph, result["authors"] = _open_authors(authors_dir, GB_MODEL)
    models, groups = _contenders(sizes, jit, options, graph, result["notes"])
    port, theirs, memory = _time_groups(groups, repeats, warmup, progress)
    if graph is not None:
        graph.close()
    result["port"] = port
    result["authors_graph"] = theirs or None
    ours = dict(port)
    if "train_b20" in port:
        ours["train_logs_b20"] = port["train_b20"]  # the same port step, both ways
    result["ratios"] = {key: _ratio(theirs[key], ours[key]) for key in theirs}
    result["gb_over_mse"] = (_ratio(port["train_b20"], port["train_mse_b20"])
                             if "train_b20" in port else None)
    if options["roofline"]:
        result["roofline"] = _roofline(result, models, sizes, repeats, warmup)
    if pipeline:
        with tempfile.TemporaryDirectory(prefix="menet-tf-bench-") as workdir:
            result["pipeline"] = _pipeline(sizes, data, workdir)
    result["memory"] = {"after": memory, **peak_memory()}
    result["load_average_end"] = load_average()
    result["goals"] = goals(result)
    if not result["machine"]["cpu"]["amx"] and result["machine"]["device"] == "CPU":
        result["notes"].append(
            "this CPU has no AMX: the mixed-bfloat16 goal (>= 2x the authors' float32 step on an"
            " AMX CPU) cannot be verified here")
    return result


def _policy(precision):
    """The Keras policy the training step runs in for the port's ``precision``."""
    from menet_tf.infer.precision import resolve

    return resolve(precision).policy


def _record(command, sizes, repeats, warmup, jit, jit_compile, conv_gradient, options):
    """The start of the result: what ran, when, where and with which settings."""
    from menet_tf.infer.precision import cpu_note
    from menet_tf.model import conv_gradient as conv

    result = {
        "command": command or "menet_tf.bench.speed.run_bench()",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_start": load_average(),
        "settings": {**sizes.as_dict(), "repeats": repeats, "warmup_rounds": warmup,
                     "jit_compile": jit, "jit_compile_setting": jit_compile,
                     "conv_gradient": conv.conv_gradient(),
                     "conv_gradient_setting": conv_gradient,
                     "precision": options["precision"], "backend": options["backend"],
                     "training_precision": _policy(options["precision"]),
                     "training_timed": options["training"], "roofline": options["roofline"],
                     "gb_model": GB_MODEL, "mse_model": MSE_MODEL,
                     "authors_precision": "float32"},
        "notes": [],
    }
    note = cpu_note(options["precision"])
    if note:
        result["notes"].append(note.removeprefix("note: "))
    if options["backend"] == "openvino":
        result["machine"]["openvino"] = _openvino_version()
        if options["training"]:
            result["notes"].append("--backend openvino: inference only; the training step is"
                                   " TensorFlow's")
    if sizes.quick:
        result["notes"].append("--quick: small sizes, not the issue's; ratios are indicative only")
    return result


def _open_authors(authors_dir, name):
    """The authors' released graph of ``name``, weights restored or seeded."""
    from menet_tf.authors import graphs
    from menet_tf.authors.session import AuthorsGraph

    models = graphs.find_released(authors_dir)
    if not models:
        raise MenetError(f"{authors_dir}: no released .meta graphs of the authors found here")
    try:
        released = graphs.select(models, [name])[0]
    except (MenetError, IndexError, KeyError) as err:
        raise MenetError(f"{authors_dir}: no released graph of {name} ({err})") from None
    graph = AuthorsGraph(released.meta_path)
    if released.has_data:
        graph.restore(released.checkpoint_prefix)
        weights = "released checkpoint"
    else:
        graph.initialise(seed=0)
        weights = "seeded (the .data file is not in this folder)"
    graph.reset_optimizer()
    return graph, {"name": released.name, "meta": os.fspath(released.meta_path), "weights": weights}


def _copy_authors_weights(graph, model):
    """The port runs the same weights as the authors' graph (timing barely depends on them, but
    the same clip masks and magnitudes keep the comparison exact)."""
    from menet_tf.authors.checkpoint import variable_map

    values = graph.variables()
    for name, variable in variable_map(model).items():
        if name in values:
            variable.assign(np.asarray(values[name], variable.dtype))


def _openvino_version():
    try:
        import openvino
    except ImportError:
        return None
    return getattr(openvino, "__version__", None) or openvino.get_version()


def _derainer(model, jit, precision, backend):
    """The port's inference: ``Derainer`` in ``precision``, through OpenVINO when asked."""
    from menet_tf.infer.derainer import Derainer

    derainer = Derainer(model, fold_batch_norm=True, jit_compile=jit, precision=precision)
    if backend == "openvino":
        from menet_tf.infer.openvino_backend import OpenVINODerainer

        derainer = OpenVINODerainer.from_derainer(derainer, precision)
    return derainer


def _contenders(sizes, jit, options, graph, notes):
    """(the port's models, {group: ({contender: call}, items per call)}): the port, and the
    authors' graph beside it when there is one."""
    import menet_tf

    def configured(name, precision):
        config = menet_tf.released_config(name)
        config.train.jit_compile = jit
        config.train.precision = _policy(precision)
        return config

    # Inference runs a float32 model in the asked precision (Derainer casts the folded
    # weights); the training step trains in the matching Keras policy.
    gb = menet_tf.build_model(configured(GB_MODEL, "fp32"))
    models = {"gb": gb}
    if graph is not None:
        _copy_authors_weights(graph, gb)
    derainer = _derainer(gb, jit, options["precision"], options["backend"])
    x = _Inputs.of(sizes)
    groups = {
        "infer_b1": ({"port": lambda: derainer.predict(x.one)}, 1),
        "infer_b20": ({"port": lambda: derainer.predict(x.many)}, sizes.infer_batch),
        "infer_large": ({"port": lambda: derainer.derain(x.large[0], mode="pad")}, 1),
    }
    if options["training"]:
        train = gb
        if options["precision"] != "fp32":
            train = menet_tf.build_model(configured(GB_MODEL, options["precision"]))
            if graph is not None:
                _copy_authors_weights(graph, train)
        mse = menet_tf.build_model(configured(MSE_MODEL, options["precision"]))
        models.update(train_gb=train, train_mse=mse)
        groups["train_b20"] = ({"port": lambda: train.train_on_batch(x.rainy, x.clean),
                                "port_mse": lambda: mse.train_on_batch(x.rainy, x.clean)}, 1)
    models["multiple"] = derainer.multiple
    if graph is not None:
        _add_authors(groups, graph, derainer, sizes, x, notes)
    return models, groups


def _add_authors(groups, graph, derainer, sizes, x, notes):
    """The authors' graph into each group, doing the port's work (their training step only at
    the one batch shape their graph trains on)."""
    import tensorflow as tf

    from menet_tf.infer.tiling import pad_to_multiple

    padded = pad_to_multiple(tf.constant(x.large), derainer.multiple)[0].numpy()
    h, w = sizes.large
    groups["infer_b1"][0]["authors"] = lambda: graph.infer(x.one)
    groups["infer_b20"][0]["authors"] = lambda: graph.infer(x.many)
    # Same work as the port's pad mode: reflection padding, the network, the crop.
    groups["infer_large"][0]["authors"] = lambda: graph.infer(padded)[:, :h, :w]
    if "train_b20" not in groups:
        return
    if tuple(graph.train_shape) != x.rainy.shape:
        notes.append(
            f"authors' training step not timed: their graph trains on batches of exactly"
            f" {list(graph.train_shape)} only (--quick uses {list(x.rainy.shape)})")
        return
    # The judged figure: the authors' released step as it is (objective, task losses and
    # weights, PSNR fetched). The port's step does more: it also logs SSIM every step.
    # "authors_logs" is their step asked for the same logs (SSIM added to their graph with
    # tf.image.ssim), for reference.
    groups["train_b20"][0]["authors"] = lambda: graph.step(x.rainy, x.clean, train=True)
    groups["train_b20"][0]["authors_logs"] = lambda: graph.step(
        x.rainy, x.clean, train=True, ssim=True)


def _time_groups(groups, repeats, warmup, progress):
    """Each group timed interleaved; the port's figures, the authors' and the memory after."""
    from tqdm import tqdm

    total = sum(len(fns) for fns, _ in groups.values()) * (repeats + warmup)
    bar = tqdm(total=total, desc="bench", unit="call", disable=not progress, leave=False)
    port, theirs, memory = {}, {}, {}
    for key, (fns, items) in groups.items():
        timed = time_interleaved(fns, repeats, warmup, {n: items for n in fns}, progress=bar)
        port[key] = timed["port"]
        if "port_mse" in timed:
            port["train_mse_b20"] = timed["port_mse"]
        if "authors" in timed:
            theirs[key] = timed["authors"]
        if "authors_logs" in timed:
            theirs["train_logs_b20"] = timed["authors_logs"]
        memory[key] = peak_memory()
    bar.close()
    return port, theirs, memory


def _ratio(slow, fast):
    """How many times ``fast`` is faster than ``slow``, by wall and by CPU seconds."""
    return {"wall": slow["median_s"] / fast["median_s"],
            "cpu": slow["cpu_median_s"] / fast["cpu_median_s"]}


def _roofline(result, models, sizes, repeats, warmup):
    """The practical peaks (measured now, after the network's timings, under the same load),
    the FLOPs of every timed computation, and each timing's GFLOP/s and share of the peak of
    the precision it ran in."""
    from menet_tf.bench import flops, roofline
    from menet_tf.infer.tiling import _round_up

    peaks = roofline.measure_peaks(quick=sizes.quick,
                                   repeats=max(3, min(repeats, 5)), warmup=1)
    gb, s = models["gb"], sizes.infer_size
    m = models["multiple"]
    large = (_round_up(sizes.large[0], m), _round_up(sizes.large[1], m))
    counted = {
        "infer_b1": flops.forward_flops(gb, 1, s, s),
        "infer_b20": flops.forward_flops(gb, sizes.infer_batch, s, s),
        "infer_large": flops.forward_flops(gb, 1, *large),
    }
    if "train_gb" in models:
        b, t = sizes.train_batch, sizes.train_size
        counted["train_b20"] = flops.train_step_flops(models["train_gb"], b, t, t)
        counted["train_mse_b20"] = flops.train_step_flops(models["train_mse"], b, t, t)
        counted["forward_train_batch"] = flops.forward_flops(gb, b, t, t)
    port_precision = result["settings"]["precision"]
    rows = {}
    for key, figure in result["port"].items():
        count = counted[key]["dense"]
        rows[key] = {"port": _achieved(count, figure, peaks, port_precision)}
    for key, figure in (result.get("authors_graph") or {}).items():
        # The authors' graph computes the same network (inference: the same convolutions);
        # their training step is counted with the port's step, whose losses differ slightly.
        count = counted["train_b20" if key == "train_logs_b20" else key]["dense"]
        rows.setdefault(key, {})["authors"] = _achieved(count, figure, peaks, "fp32")
    forward_224 = flops.forward_flops(gb, 1, 224, 224)["dense"]
    return {"peaks": peaks, "flops": counted, "rows": rows,
            "forward_224_flops": forward_224,
            "flops_rule": "dense FLOPs (convolutions and matrix products, 2 per multiply-add)"
                          " of the executed ops of the traced graph (menet_tf.bench.flops)",
            "authors_flops_rule": "inference: the port's count (the same network); training:"
                                  " the port's MENET-GB step (their losses differ slightly)"}


def _achieved(flop_count, figure, peaks, precision):
    """GFLOP/s of one timing (median wall and CPU seconds per call) and its share of
    ``precision``'s peak."""
    from menet_tf.bench import roofline

    gflops = flop_count / figure["median_s"] / 1e9
    cpu = flop_count / figure["cpu_median_s"] / 1e9 if figure["cpu_median_s"] > 0 else None
    return {"flops_per_call": int(flop_count), "gflops": gflops, "gflops_per_cpu_second": cpu,
            "precision": precision, "share_of_peak": roofline.share(gflops, peaks, precision),
            "share_of_peak_cpu": roofline.share(cpu, peaks, precision,
                                                "peak_gflops_per_cpu_second")}


def _pipeline(sizes, data, workdir):
    from menet_tf.bench import pipeline as data_bench

    source = data
    if source is None and not sizes.quick:
        source = data_bench.existing_synthetic()
    if source is None:
        # A fresh synthetic set in the bench's temporary folder (removed afterwards).
        from menet_tf.data.synth import synthesize

        synthesize(os.path.join(workdir, "synthetic"), preset="heavy", seed=0,
                   count=6 if sizes.quick else 40, test_count=0, progress=False)
        source = os.path.join(workdir, "synthetic", "train")
    result = data_bench.benchmark(source, progress=False, **sizes.pipeline)
    keep = ("source", "pairs", "batch_size", "crop_size", "mode", "batches", "crops",
            "crops_per_s", "first_epoch_crops_per_s", "later_crops_per_s", "epoch_s")
    return {k: result[k] for k in keep}


def _goal_entry(text, target, ratio, claim, met):
    """One goal's row: the measured ratio (wall and CPU time) and whether it is met, None where
    the ratio was not measured or this run claims no goal."""
    return {"goal": text, "target": target,
            "measured_wall": None if ratio is None else round(ratio["wall"], 3),
            "measured_cpu": None if ratio is None else round(ratio["cpu"], 3),
            "met": None if ratio is None or not claim else bool(met(ratio["wall"]))}


def goals(result):
    """The issue's speed goals against what this run measured (None where not measured)."""
    st = result["settings"]
    ratios = result.get("ratios") or {}
    # Goals hold for the sizes in float32; a --quick or mixed-precision run claims none.
    claim = (st["precision"] == "fp32" and st.get("backend", "tensorflow") == "tensorflow"
             and not st["quick"])
    out = [_goal_entry(text, target, ratios.get(key), claim, lambda r, t=target: r >= t)
           for key, target, text in GOALS]
    out.append(_goal_entry("MENET-GB step at most 10% over the MSE-only step", GB_OVER_MSE_GOAL,
                           result["gb_over_mse"], claim, lambda r: r <= GB_OVER_MSE_GOAL))
    if st["precision"] != "fp32" or st.get("backend") == "openvino":
        cpu = result["machine"]["cpu"]
        able = ((cpu["avx512_bf16"] or cpu["amx"])
                and (st["precision"] == "bf16" or st.get("backend") == "openvino")
                and not st["quick"])
        out += [_goal_entry(text, target, ratios.get(key), able, lambda r, t=target: r >= t)
                for key, target, text in LOW_PRECISION_GOALS]
    return out
