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
import datetime
import os
import platform
import tempfile

from menet_tf.bench.authors_side import add_authors, copy_authors_weights, open_authors
from menet_tf.bench.goals import goals
from menet_tf.bench.inputs import Inputs, Sizes
from menet_tf.bench.keys import keys
from menet_tf.bench.timing import load_average, peak_memory, time_interleaved
from menet_tf.errors import ConfigError
from menet_tf.machine import environment

GB_MODEL = "MENET-GB"
MSE_MODEL = "ModelShallowNewCa"  # the MENET-GB network (with channel attention), MSE task only
BACKENDS = ("tensorflow", "openvino")


def machine_info():
    """Device, CPU (``menet_tf.machine``), TensorFlow and thread settings of this process."""
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
        **environment(),  # versions, cpu, platform: the keys of every record
        "onednn": onednn_enabled(),
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
    }


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
    from menet_tf.bench import roofline
    from menet_tf.model.multitask import resolve_jit_compile

    sizes = Sizes(quick)
    repeats = int(repeats or (2 if quick else 5))
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    jit = resolve_jit_compile(jit_compile)
    result = _record(command, sizes, repeats, warmup, jit, jit_compile, conv_gradient, options)
    key = keys(sizes.infer_batch, sizes.train_batch)
    graph = None
    if authors_dir is not None:
        graph, result["authors"] = open_authors(authors_dir, GB_MODEL)
    models, groups = _contenders(sizes, key, jit, options, graph, result["notes"])
    port, theirs, memory = _time_groups(groups, key, repeats, warmup, progress)
    if graph is not None:
        graph.close()
    result["port"] = port
    result["authors_graph"] = theirs or None
    ours = dict(port)
    if key["train"] in port:
        ours[key["train_logs"]] = port[key["train"]]  # the same port step, both ways
    result["ratios"] = {name: _ratio(theirs[name], ours[name]) for name in theirs}
    result["gb_over_mse"] = (_ratio(port[key["train"]], port[key["train_mse"]])
                             if key["train"] in port else None)
    if options["roofline"]:
        result["roofline"] = roofline.of_timings(result, models, sizes, repeats, warmup)
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
        result["notes"].append("--quick: small sizes, not the goals' (docs/speed.md); ratios are"
                               " indicative only")
    return result


def _openvino_version():
    try:
        import openvino
    except ImportError:
        return None
    return getattr(openvino, "__version__", None) or openvino.get_version()


def _contenders(sizes, key, jit, options, graph, notes):
    """(the port's models, {group: ({contender: call}, items per call)}): the port, and the
    authors' graph beside it when there is one. Groups are named by ``key`` (role -> key)."""
    import menet_tf
    from menet_tf.infer.load import derainer_of

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
        copy_authors_weights(graph, gb)
    derainer = derainer_of(gb, fold_batch_norm=True, jit_compile=jit,
                           precision=options["precision"], backend=options["backend"])
    x = Inputs.of(sizes)
    groups = {
        key["infer_one"]: ({"port": lambda: derainer.predict(x.one)}, 1),
        key["infer_batch"]: ({"port": lambda: derainer.predict(x.many)}, sizes.infer_batch),
        key["infer_large"]: ({"port": lambda: derainer.derain(x.large[0], mode="pad")}, 1),
    }
    if options["training"]:
        train = gb
        if options["precision"] != "fp32":
            train = menet_tf.build_model(configured(GB_MODEL, options["precision"]))
            if graph is not None:
                copy_authors_weights(graph, train)
        mse = menet_tf.build_model(configured(MSE_MODEL, options["precision"]))
        models.update(train_gb=train, train_mse=mse)
        groups[key["train"]] = ({"port": lambda: train.train_on_batch(x.rainy, x.clean),
                                 "port_mse": lambda: mse.train_on_batch(x.rainy, x.clean)}, 1)
    models["multiple"] = derainer.multiple
    if graph is not None:
        add_authors(groups, key, graph, derainer.multiple, sizes, x, notes)
    return models, groups


def _time_groups(groups, key, repeats, warmup, progress):
    """Each group timed interleaved; the port's figures, the authors' and the memory after."""
    from menet_tf.progress import bar as progress_bar

    total = sum(len(fns) for fns, _ in groups.values()) * (repeats + warmup)
    bar = progress_bar(total=total, desc="bench", unit="call", disable=not progress, leave=False)
    port, theirs, memory = {}, {}, {}
    for name, (fns, items) in groups.items():
        timed = time_interleaved(fns, repeats, warmup, {n: items for n in fns}, progress=bar)
        port[name] = timed["port"]
        if "port_mse" in timed:
            port[key["train_mse"]] = timed["port_mse"]
        if "authors" in timed:
            theirs[name] = timed["authors"]
        if "authors_logs" in timed:
            theirs[key["train_logs"]] = timed["authors_logs"]
        memory[name] = peak_memory()
    bar.close()
    return port, theirs, memory


def _ratio(slow, fast):
    """How many times ``fast`` is faster than ``slow``, by wall and by CPU seconds."""
    return {"wall": slow["median_s"] / fast["median_s"],
            "cpu": slow["cpu_median_s"] / fast["cpu_median_s"]}


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
