"""``make gpu-check``: does menet-tf work on this GPU, and how fast is it? One JSON answers it.

    python benchmarks/gpu_check.py [-o gpu-check.json] [--force] [--budget 280]
    python benchmarks/gpu_check.py --allow-cpu --tiny -o dry.json   # the CPU dry run of the tests

Needs nothing but the repository and ``pip install -e .[gpu]``. Without a GPU it prints one
line and exits 0. With one, in under 5 minutes (``--budget`` seconds, default 280), it runs:

- ``gpu_tests``: ``pytest -m gpu tests`` in a subprocess (first, before this process takes the
  GPU's memory): passed / failed / skipped counts and the failures' names;
- ``train_step``: the MENET-GB training step at batch 20 of 224x224 with XLA, in float32 and in
  mixed float16 (dynamic loss scaling), and float32 without XLA, built alike and timed
  interleaved; first-call seconds (trace and compile), losses, skipped steps, loss scale;
- ``inference``: the bundled model through ``Derainer`` at batch 1 and 20 of 224x224 in fp32,
  fp16 and bf16, interleaved; the half-precision outputs against fp32 (PSNR), and what fp32
  de-raining gains on synthetic rain;
- ``training_run``: 200 steps of MENET-GB at 224x224 on a fresh synthetic set through
  ``train_run`` (pipeline, loop, checkpoints, test set): seconds per step, first and final loss;
- ``tiling``: the size above which ``derain`` tiles on this device (``default_max_pixels``) and
  an 8-megapixel image de-rained whole and in tiles: seconds, GPU peak memory, tiles vs whole.

Each section runs in its own try/except: a failure is recorded (one line, plus the traceback's
end) and the rest still runs. A section that the time budget leaves no room for is recorded as
skipped, and the training run is shortened to fit (the budget decides what starts; a section
that has started is finished). The JSON (written atomically) starts with ``works`` and a
one-line ``verdict``; the exit status is 0 when menet-tf works here, 1 when a section failed,
130 when interrupted (the sections done are still written).
"""
import argparse
import contextlib
import datetime
import gc
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ET

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's warnings stay, its INFO goes

import numpy as np  # noqa: E402

from menet_tf.tf_logging import captured_stderr  # noqa: E402  (TensorFlow's C++ start-up lines)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMAT = 1
GB_MODEL = "MENET-GB"
DEFAULT_BUDGET = 280.0  # seconds: under 5 minutes with TensorFlow's import and the JSON
TILING_RESERVE = 50.0  # seconds the training run leaves for tiling (8 MP XLA compile included)


# What each section of the JSON holds, so that the file explains itself.
ABOUT = {
    "works": "true when no section failed (skipped for time is not a failure)",
    "gpu_tests": "pytest -m gpu on the repository's tests, in a subprocess: the GPU-only tests",
    "train_step": "MENET-GB training step (three tasks, gradient balance), seconds per step,"
                  " timed interleaved after compilation; float32 and mixed_float16 with XLA"
                  " (jit_compile), float32_no_xla without; first_applied_step: mixed float16's"
                  " dynamic loss scale skips a fresh model's first steps until it fits",
    "inference": "the bundled model through menet_tf Derainer (batch norm folded), ms per image;"
                 " fp16/bf16 outputs against fp32 (PSNR, dB); fp32_gain_db: PSNR gained over the"
                 " rainy input on synthetic rain",
    "training_run": "menet_tf train_run on a fresh synthetic set (pipeline, loop, checkpoints,"
                    " test set): s_per_step after the first epoch (compile excluded), loss per"
                    " epoch",
    "tiling": "default_max_pixels: the size above which derain tiles on this device; an image just"
              " under 8 MP de-rained by default (whole) and in tiles: seconds, GPU peak memory",
}


class Sizes:
    """What to run: the issue's sizes, or tiny ones (``--tiny``) that only exercise the code."""

    def __init__(self, tiny):
        self.tiny = tiny
        if tiny:
            self.depth = 2  # MENET-GB with 2 residual blocks: the same step, cheaply
            self.train_batch, self.train_size, self.repeats = 2, 32, 1
            self.infer_size, self.infer_batches = 32, (1, 2)
            self.run_steps, self.run_crop, self.run_batch = 4, 32, 2
            self.run_pairs, self.run_test, self.run_image, self.run_per_epoch = 2, 1, "96x64", 2
            self.big, self.tile, self.overlap = (96, 128), 64, 32
        else:
            self.depth = None  # the released configuration's (8)
            self.train_batch, self.train_size, self.repeats = 20, 224, 5
            self.infer_size, self.infer_batches = 224, (1, 20)
            self.run_steps, self.run_crop, self.run_batch = 200, 224, 20
            self.run_pairs, self.run_test, self.run_image, self.run_per_epoch = 40, 4, "mixed", None
            self.big, self.tile, self.overlap = (2448, 3264), None, None  # 7.99 MP, tiles: defaults

    def as_dict(self):
        return {"tiny": self.tiny, "depth": self.depth or 8,
                "train_step": {"batch": self.train_batch, "size": self.train_size,
                               "repeats": self.repeats},
                "inference": {"size": self.infer_size, "batches": list(self.infer_batches),
                              "repeats": self.repeats},
                "training_run": {"steps": self.run_steps, "crop": self.run_crop,
                                 "batch": self.run_batch, "pairs": self.run_pairs,
                                 "test_pairs": self.run_test},
                "tiling": {"image": list(self.big),
                           "megapixels": round(math.prod(self.big) / 1e6, 2)}}


class Budget:
    """Seconds left before the check must end."""

    def __init__(self, seconds):
        self.seconds, self.start = float(seconds), time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self):
        return self.seconds - self.elapsed()


class SkipSection(Exception):
    """The time budget leaves no room for this section."""


def one_line(err):
    """An exception as one line: its type and message, whitespace collapsed, shortened."""
    text = " ".join(str(err).split())
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= 400 else line[:397] + "..."


def run_section(name, fn, result, budget, needs=0.0):
    """``result["sections"][name]`` = {"ok", "seconds", "error", ...what ``fn(failures)``
    returned}.

    ``fn`` appends partial failures (one contender's error) to ``failures``: the section is then
    not ok, and the rest of its figures still count. An exception ends the section and is
    recorded as ``error``. ``needs``: seconds of budget below which the section is skipped."""
    print(f"gpu-check: {name} ...", flush=True)
    t0 = time.perf_counter()
    entry = {"ok": False, "seconds": None, "error": None}
    try:
        if budget.left() < needs:
            raise SkipSection(f"time budget: {budget.left():.0f} s left, the section needs"
                              f" {needs:.0f} s")
        failures = []
        out = fn(failures)
        entry.update(out)
        if failures:
            entry["failures"] = failures
        entry["ok"] = not entry.get("failures")
    except SkipSection as err:
        entry.update(ok=None, not_run=str(err))
    except Exception as err:  # noqa: BLE001 - recorded, and the next section still runs
        entry["error"] = one_line(err)
        # Where it was raised (the frames; the message is "error"), for whoever reads the JSON.
        frames = "".join(traceback.format_tb(err.__traceback__))
        entry["traceback"] = frames.strip().splitlines()[-6:]
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    result["sections"][name] = entry
    state = {True: "ok", False: "FAILED", None: "skipped"}[entry["ok"]]
    detail = entry.get("error") or entry.get("not_run") or "; ".join(entry.get("failures") or [])
    print(f"gpu-check: {name} {state} ({entry['seconds']:.1f} s)"
          + (f": {detail}" if detail else ""), flush=True)
    return entry


def _attempt(failures, what, fn):
    """``fn()``, or None with ``what: error`` added to ``failures``."""
    try:
        return fn()
    except SkipSection:
        raise
    except Exception as err:  # noqa: BLE001 - one contender's failure, recorded
        failures.append(f"{what}: {one_line(err)}")
        return None


# ----------------------------------------------------------------------------------------------
# the device, and the one line without a GPU

def find_gpus():
    """(tensorflow module, [GPU devices], what TensorFlow printed meanwhile)."""
    printed = []
    with captured_stderr(printed):
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    return tf, gpus, printed[0]


def no_gpu_line(tf):
    build = tf.sysconfig.get_build_info()
    if build.get("is_cuda_build"):
        hint = ("a CUDA build; with an NVIDIA GPU and driver, install the CUDA libraries:"
                " pip install -e '.[gpu]'")
    else:
        hint = "not a CUDA build: pip install -e '.[gpu]' on a machine with an NVIDIA GPU"
    return (f"gpu-check: no GPU visible to TensorFlow {tf.__version__} ({hint}); nothing to check,"
            " no file written")


def nvidia_smi():
    """Name, total memory (MB) and driver of each GPU from nvidia-smi, or None without it."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
             "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            rows.append({"name": parts[0], "memory_total_mb": _number(parts[1]),
                         "driver": parts[2]})
    return rows or None


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def device_record(tf, gpus):
    """The device section: GPU(s), CUDA/cuDNN of the build, versions, the machine around it."""
    import keras

    import menet_tf
    from menet_tf.bench.speed import machine_info

    build = dict(tf.sysconfig.get_build_info())
    details = []
    for gpu in gpus:
        try:
            d = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001 - details are informative only
            d = {}
        cc = d.get("compute_capability")
        details.append({"tf_name": gpu.name, "name": d.get("device_name", gpu.name),
                        "compute_capability": ".".join(map(str, cc)) if cc else None})
    smi = nvidia_smi()
    if smi:
        for detail, row in zip(details, smi):
            detail.update(memory_total_mb=row["memory_total_mb"], driver=row["driver"])
    return {
        "device": "GPU" if gpus else "CPU",
        "name": details[0]["name"] if details else cpu_name(),
        "gpus": details,
        "versions": {
            "menet_tf": menet_tf.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "cuda_build": build.get("cuda_version"),
            "cudnn_build": build.get("cudnn_version"),
            "is_cuda_build": build.get("is_cuda_build"),
            "cuda_compute_capabilities": build.get("cuda_compute_capabilities"),
            "nvidia_driver": smi[0]["driver"] if smi else None,
        },
        "machine": machine_info(),
    }


def cpu_name():
    from menet_tf.machine import cpu_info

    return f"CPU ({cpu_info()['model']})"


def gpu_peak_mb():
    """Peak GPU memory (MB) of this process's allocator since the last reset, None without."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)


def reset_gpu_peak():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


# ----------------------------------------------------------------------------------------------
# synthetic data

def synthetic_pairs(n, height, width, seed, preset="heavy"):
    """(rainy, clean) float32 [n, height, width, 3] in 0..255: scikit-image photos with
    synthetic streaks (``menet_tf.data.synth``), so de-raining has real work to do."""
    from menet_tf.data.synth import add_rain, derive_clean, rain_streaks, skimage_photos

    photos = skimage_photos()
    names = sorted(photos)
    rng = np.random.default_rng(seed)
    clean, rainy = [], []
    for i in range(n):
        c = derive_clean(rng, photos[names[i % len(names)]], (width, height))
        clean.append(c)
        rainy.append(add_rain(c, rain_streaks(rng, height, width, preset)))
    return np.stack(rainy).astype(np.float32), np.stack(clean).astype(np.float32)


def _finite(logs):
    return all(math.isfinite(float(v)) for v in logs.values())


def _floats(logs):
    return {k: float(v) for k, v in logs.items()}


def _ratio(slow, fast):
    """How many times faster ``fast`` is than ``slow`` (two ``timing.summarize`` results)."""
    return round(slow["median_s"] / fast["median_s"], 3)


def _timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 3)


def _figure(summary):
    """The keys of ``timing.summarize`` worth keeping."""
    keep = ("median_s", "min_s", "max_s", "spread", "cpu_median_s", "per_item_s", "items", "runs_s")
    return {k: summary[k] for k in keep}


# ----------------------------------------------------------------------------------------------
# the sections

def gpu_tests(tests, timeout, on_gpu):
    """``pytest -m gpu TESTS`` in a subprocess; counts from its JUnit XML report."""
    if not os.path.exists(tests):
        raise FileNotFoundError(f"{tests}: no tests here (the check runs from a checkout of the"
                                " repository)")
    import importlib.util

    if importlib.util.find_spec("pytest") is None:
        raise RuntimeError("pytest is not installed: pip install -e '.[gpu]'")
    with tempfile.TemporaryDirectory(prefix="menet-tf-gpu-tests-") as work:
        report = os.path.join(work, "report.xml")
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={report}", tests]
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"pytest -m gpu took more than {timeout:.0f} s (the time"
                               " budget)") from None
        counts = junit_counts(report) if os.path.exists(report) else None
    tail = (done.stdout or done.stderr).strip().splitlines()[-1:] or [""]
    out = {"command": " ".join(["python", *command[1:-2], os.path.relpath(tests, REPO)]),
           "returncode": done.returncode, "summary": tail[0]}
    if counts is None:
        out["failures"] = [f"pytest wrote no report (exit {done.returncode}): {tail[0]}"]
        return out
    out.update(counts)
    failures = [f"{name}: {message}" for name, message in counts.pop("failed_tests")]
    out["failed_tests"] = failures
    if failures:
        out["failures"] = failures
    elif done.returncode not in (0, 5) or (on_gpu and counts["passed"] == 0):
        out["failures"] = [f"pytest exit {done.returncode}, {counts['passed']} passed: {tail[0]}"]
    return out


def junit_counts(path):
    """passed / failed / errors / skipped and [(test, one-line message)] of a JUnit XML file."""
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failed_tests": []}
    for case in cases:
        name = "::".join(part for part in (case.get("classname"), case.get("name")) if part)
        outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            counts["failed_tests"].append((name, _junit_message(outcome)))
    return counts


def _junit_message(outcome):
    """A failure's message in one line, with the first ``E`` line of its report when the
    message alone says little ("collection failure")."""
    message = " ".join((outcome.get("message") or "").split())
    detail = next((" ".join(line[1:].split()) for line in (outcome.text or "").splitlines()
                   if line.startswith("E ")), "")
    if detail and detail not in message:
        message = f"{message}: {detail}" if message else detail
    return message[:300]


def train_step(sizes, jit, budget, failures):
    """MENET-GB's step: float32 and mixed float16 (with ``jit``, XLA on a GPU), and float32
    without XLA when ``jit`` is on; seeded alike, each compiled, then timed interleaved."""
    import keras

    import menet_tf
    from menet_tf.bench.timing import time_interleaved

    rainy, clean = synthetic_pairs(sizes.train_batch, sizes.train_size, sizes.train_size, seed=0)
    contenders = {"float32": ("float32", jit), "mixed_float16": ("mixed_float16", jit)}
    if jit:
        contenders["float32_no_xla"] = ("float32", False)
    out = {"model": GB_MODEL, "batch": sizes.train_batch, "size": sizes.train_size,
           "jit_compile": jit, "contenders": {}}
    models = {}
    for name, (precision, xla) in contenders.items():
        if models and budget.left() < (150 if name == "float32_no_xla" else 90):
            out["contenders"][name] = {"not_run": f"time budget: {budget.left():.0f} s left"}
            continue

        def build(precision=precision, xla=xla):
            config = menet_tf.released_config(GB_MODEL)
            if sizes.depth:
                config.model.depth = sizes.depth
            config.train.precision, config.train.jit_compile = precision, xla
            keras.utils.set_random_seed(0)
            model = menet_tf.build_model(config)
            logs, seconds = _timed(lambda: model.train_on_batch(rainy, clean, return_dict=True))
            if not _finite(logs):
                raise FloatingPointError(f"first step's logs are not finite: {_floats(logs)}")
            taken = 1 + settle_loss_scale(model, rainy, clean)
            return model, {"precision": precision, "jit_compile": xla, "first_call_s": seconds,
                           "first_step_logs": _floats(logs), "first_applied_step": taken}

        built = _attempt(failures, name, build)
        if built is not None:
            models[name], out["contenders"][name] = built
    steps = {n: (lambda m=m: m.train_on_batch(rainy, clean)) for n, m in models.items()}
    timed = time_interleaved(steps, repeats=sizes.repeats, warmup=1)
    for name, model in models.items():
        logs = _floats(model.train_on_batch(rainy, clean, return_dict=True))
        figure = _figure(timed[name])
        figure["images_per_s"] = round(sizes.train_batch / figure["median_s"], 2)
        c = out["contenders"][name]
        c.update(step=figure, last_step_logs=logs,
                 steps_taken=c["first_applied_step"] + 2 + sizes.repeats,  # warm-up, timed, last
                 optimizer_steps=int(model.optimizer.iterations.numpy()))
        if not _finite(logs):
            failures.append(f"{name}: a later step's logs are not finite: {logs}")
    if "float32" in models and "mixed_float16" in models:
        out["mixed_float16_speedup"] = _ratio(timed["float32"], timed["mixed_float16"])
    if "float32" in models and "float32_no_xla" in models:
        out["xla_speedup"] = _ratio(timed["float32_no_xla"], timed["float32"])
        a = out["contenders"]["float32"]["first_step_logs"]["loss"]
        b = out["contenders"]["float32_no_xla"]["first_step_logs"]["loss"]
        out["xla_first_loss_relative_difference"] = abs(a - b) / max(abs(b), 1e-12)
    del models
    gc.collect()
    return out


def settle_loss_scale(model, rainy, clean, most=20):
    """Steps taken after the first until one is applied (0 when the first was).

    Under mixed float16 the dynamic loss scale starts at 2**15 and is halved, the step skipped,
    whenever a gradient overflows, so a fresh model's first steps are skipped until the scale
    fits; the timed steps come after. No step applied in ``most`` more steps is a failure."""
    extra = 0
    while int(model.optimizer.iterations.numpy()) == 0:
        if extra == most:
            scale = getattr(model.optimizer, "dynamic_scale", None)
            scale = "?" if scale is None else float(scale)
            raise FloatingPointError(f"no step applied in {most + 1} steps: every gradient"
                                     f" overflowed (loss scale now {scale})")
        model.train_on_batch(rainy, clean)
        extra += 1
    return extra


PRECISIONS = ("fp32", "fp16", "bf16")


def inference(sizes, jit, failures):
    """The bundled model through ``Derainer`` in every precision, interleaved per batch size."""
    import menet_tf
    from menet_tf.bench.timing import time_interleaved
    from menet_tf.bundled.registry import default_name
    from menet_tf.infer.derainer import Derainer
    from menet_tf.model.metrics import psnr_float64

    model = menet_tf.pretrained()
    s = sizes.infer_size
    batches = {b: synthetic_pairs(b, s, s, seed=10 + b) for b in sizes.infer_batches}
    out = {"model": f"{default_name()} (bundled)", "size": s, "jit_compile": jit,
           "precisions": {}}
    derainers, outputs = {}, {}
    for p in PRECISIONS:
        def make(p=p):
            options = {} if p == "fp32" else {"precision": p}  # fp32: any Derainer takes it
            d = Derainer(model, jit_compile=jit, **options)
            first = {}
            for b, (rainy, _) in batches.items():
                outputs[p, b], first[f"batch_{b}"] = _timed(lambda: d.predict(rainy))
                if not np.all(np.isfinite(outputs[p, b])):
                    raise FloatingPointError(f"batch {b}: output is not finite")
            return d, {"first_call_s": first}

        made = _attempt(failures, p, make)
        if made is not None:
            derainers[p], out["precisions"][p] = made
    for b, (rainy, clean) in batches.items():
        timed = time_interleaved({p: (lambda d=d: d.predict(rainy)) for p, d in derainers.items()},
                                 repeats=sizes.repeats, warmup=1, items={p: b for p in derainers})
        for p in derainers:
            figure = _figure(timed[p])
            figure["ms_per_image"] = round(1000 * figure["per_item_s"], 3)
            out["precisions"][p][f"batch_{b}"] = figure
        if "fp32" in derainers:
            out[f"fp32_gain_db_batch_{b}"] = round(
                psnr_float64(outputs["fp32", b], clean) - psnr_float64(rainy, clean), 3)
            for p in derainers:
                if p != "fp32":
                    out["precisions"][p][f"psnr_vs_fp32_batch_{b}"] = round(
                        psnr_float64(outputs[p, b], outputs["fp32", b]), 2)
    return out


def training_run(sizes, jit, budget, reserve, step_s, failures):
    """``train_run`` of MENET-GB on a fresh synthetic set for up to ``sizes.run_steps`` steps
    (fewer when the budget, less ``reserve`` seconds, has no room: ``step_s`` is the measured
    step), with its first and final loss and its speed."""
    import menet_tf
    from menet_tf.data.synth import synthesize
    from menet_tf.train.loop import TrainingInterrupted
    from menet_tf.train.run import train_run
    from menet_tf.train.state import read_state_header

    with tempfile.TemporaryDirectory(prefix="menet-tf-gpu-check-") as work:
        data, run = os.path.join(work, "synthetic"), os.path.join(work, "run")
        _, synth_s = _timed(lambda: synthesize(
            data, preset="heavy", seed=0, count=sizes.run_pairs, test_count=sizes.run_test,
            size=sizes.run_image, progress=False))
        steps = sizes.run_steps
        if not sizes.tiny:
            room = budget.left() - reserve - 15.0 - (step_s or {}).get("first_call_s", 60.0)
            per_step = 1.25 * (step_s or {}).get("median_s", 1.0)
            steps = max(0, min(steps, int(room / per_step)))
            if steps < 20:
                raise SkipSection(f"time budget: {budget.left():.0f} s left, room for {steps}"
                                  " steps")
        config = menet_tf.released_config(GB_MODEL)
        if sizes.depth:
            config.model.depth = sizes.depth
        config.train.crop_size, config.train.batch_size = sizes.run_crop, sizes.run_batch
        config.train.jit_compile = jit
        lines = []
        log = lambda message: lines.append((time.perf_counter(), str(message)))  # noqa: E731
        out = {"model": GB_MODEL, "steps_asked": sizes.run_steps, "steps_planned": steps,
               "crop": sizes.run_crop, "batch": sizes.run_batch, "jit_compile": jit,
               "data": f"synthetic heavy rain, {sizes.run_pairs} train and {sizes.run_test}"
                       " test pairs",
               "synthesize_s": synth_s}
        t0 = time.perf_counter()
        with budget_stop(budget.left() - reserve) as fired:
            try:
                summary = train_run(config, data, run, steps=steps, tensorboard=False,
                                    progress=False, steps_per_epoch=sizes.run_per_epoch,
                                    command="benchmarks/gpu_check.py", log=log)
                out["seconds_in_run"] = round(summary["seconds"], 3)
            except (TrainingInterrupted, KeyboardInterrupt):
                if not fired.is_set():
                    raise KeyboardInterrupt from None  # the user's Ctrl-C: stop the check
                out["stopped"] = "by the time budget (the steps done are recorded)"
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        state_file = os.path.join(run, "state.npz")
        header = read_state_header(state_file) if os.path.exists(state_file) else None
    history = header["history"] if header else []
    out.update(run_figures(history, lines, t0))
    out["steps_done"] = header["global_step"] if header else 0  # a stopped run: mid-epoch too
    if out.get("steps_done", 0) <= 0:
        failures.append("no training step was recorded")
    elif not all(math.isfinite(r.get("loss", math.nan)) for r in history):
        failures.append(f"non-finite loss: {[r.get('loss') for r in history]}")
    return out


@contextlib.contextmanager
def budget_stop(seconds):
    """A SIGINT to this process after ``seconds``, unless the block ended first: train_run stops
    after the current step with its state saved (its own Ctrl-C handling). Yields the Event
    that tells whether the timer fired."""
    fired = threading.Event()

    def fire():
        fired.set()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(max(seconds, 1.0), fire)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def run_figures(history, lines, t0):
    """Steps, losses and speeds of a run from its history rows and timestamped log lines.

    ``s_per_step``: between the end of the first epoch and the end of the last (XLA compile and
    warm-up excluded; per-epoch test and checkpoint included); ``s_per_step_overall``: all of it."""
    if not history:
        return {"steps_done": 0}
    first, last = history[0], history[-1]
    ends = [t for t, line in lines if line.startswith("epoch ")]
    out = {"steps_done": int(last["steps"]), "epochs": len(history),
           "loss_first_epoch": first.get("loss"), "loss_final_epoch": last.get("loss"),
           "psnr_final_epoch": last.get("psnr"), "val_psnr_final": last.get("val_psnr"),
           "loss_decreased": bool(last.get("loss", math.inf) < first.get("loss", -math.inf)),
           "log": [line for _, line in lines if line.startswith(("epoch ", "test: "))][-3:]}
    if ends:
        out["s_per_step_overall"] = round((ends[-1] - t0) / max(int(last["steps"]), 1), 4)
    if len(ends) >= 2 and int(last["steps"]) > int(first["steps"]):
        steps = int(last["steps"]) - int(first["steps"])
        out["s_per_step"] = round((ends[-1] - ends[0]) / steps, 4)
    return out


def tiling(sizes, jit, failures):
    """The tiling threshold on this device, and an image just under 8 MP whole and in tiles."""
    import menet_tf
    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.tiling import TILE_OVERLAP, TILE_SIZE, default_max_pixels

    threshold = default_max_pixels()
    h, w = sizes.big
    rainy, _ = synthetic_pairs(1, h, w, seed=7, preset="light")
    image = rainy[0]
    tile = dict(tile_size=sizes.tile or TILE_SIZE, overlap=sizes.overlap or TILE_OVERLAP)
    derainer = Derainer(menet_tf.pretrained(), jit_compile=jit)
    out = {"max_pixels": threshold, "image": [h, w], "pixels": h * w,
           "tiled_by_default": h * w > threshold, "tile": tile}
    results = {}
    for name, options in (("default", {}), ("tiles", dict(mode="tile", **tile))):
        def run(options=options):
            reset_gpu_peak()
            result, first = _timed(lambda: derainer.derain(image, **options))
            _, second = _timed(lambda: derainer.derain(image, **options))
            if not np.all(np.isfinite(result)):
                raise FloatingPointError("output is not finite")
            results[name] = result
            return {"first_call_s": first, "seconds": second,
                    "s_per_megapixel": round(second / (h * w / 1e6), 4),
                    "gpu_peak_mb": gpu_peak_mb()}

        out[name] = _attempt(failures, name, run)
    if len(results) == 2:
        diff = np.abs(results["default"] - results["tiles"])
        out["tiles_vs_default"] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
    return out


# ----------------------------------------------------------------------------------------------
# the verdict

def verdict(result):
    """(works, one line): does menet-tf work on this device, and its headline figures."""
    sections = result["sections"]
    failed = [n for n, s in sections.items() if s.get("ok") is False]
    skipped = [n for n, s in sections.items() if s.get("ok") is None]
    works = not failed and not result.get("interrupted")
    head = (f"menet-tf {result['device']['versions']['menet_tf']} "
            f"{'works' if works else 'does NOT fully work'} on {result['device']['name']}")
    parts = [f"{len(sections) - len(failed) - len(skipped)}/{len(sections)} sections ok"
             + (f" (failed: {', '.join(failed)})" if failed else "")
             + (f" (skipped for time: {', '.join(skipped)})" if skipped else "")]
    tests = sections.get("gpu_tests", {})
    if "passed" in tests:
        failed_tests = tests["failed"] + tests["errors"]
        parts.append(f"GPU tests {tests['passed']} passed, {failed_tests} failed,"
                     f" {tests['skipped']} skipped")
    steps = sections.get("train_step", {}).get("contenders", {})
    step_text = [f"{name} {c['step']['median_s']:.3g} s" for name, c in steps.items()
                 if "step" in c]
    if step_text:
        t = sections["train_step"]
        parts.append(f"{GB_MODEL} step (batch {t['batch']} of {t['size']}x{t['size']}): "
                     + ", ".join(step_text))
    precisions = sections.get("inference", {}).get("precisions", {})
    big = max(result["settings"]["inference"]["batches"])
    infer_text = [f"{p} {v[f'batch_{big}']['ms_per_image']:.3g}" for p, v in precisions.items()
                  if f"batch_{big}" in v]
    if infer_text:
        parts.append(f"inference ms/image at batch {big}: " + ", ".join(infer_text))
    run = sections.get("training_run", {})
    if "steps_done" in run:
        speed = run.get("s_per_step", run.get("s_per_step_overall"))
        parts.append(f"{run['steps_done']} training steps"
                     + (f" at {speed:.3g} s/step" if speed else "")
                     + (f", loss {run['loss_first_epoch']:.4g} -> {run['loss_final_epoch']:.4g}"
                        if run.get("loss_final_epoch") is not None else "")
                     + (" (stopped by the time budget)" if run.get("stopped") else ""))
    tiles = sections.get("tiling", {})
    if tiles.get("default"):
        d = tiles["default"]
        total = (result["device"].get("gpus") or [{}])[0].get("memory_total_mb")
        parts.append(f"{tiles['pixels'] / 1e6:.2g} MP image {d['seconds']:.3g} s"
                     + (f", GPU peak {d['gpu_peak_mb']:.0f} MB" if d.get("gpu_peak_mb") else "")
                     + (f" of {total:.0f} MB" if d.get("gpu_peak_mb") and total else ""))
    line = head + ": " + "; ".join(parts)
    if result["device"]["device"] != "GPU":
        line += " [CPU dry run: no GPU figure]"
    return works, line


# ----------------------------------------------------------------------------------------------
# the command

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="gpu_check.py", description=__doc__.split("\n\n")[0],
        epilog="Without a GPU: one line, exit 0. Exit 1 when a section failed.")
    parser.add_argument("-o", "--out", default="gpu-check.json", metavar="FILE.json",
                        help="where the JSON goes (default gpu-check.json)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, metavar="SECONDS",
                        help=f"time budget of the whole check (default {DEFAULT_BUDGET:.0f})")
    parser.add_argument("--jit-compile", choices=("auto", "on", "off"), default="auto",
                        help="XLA for the training step, training run and inference (default auto:"
                        " on with a GPU)")
    parser.add_argument("--tests", default=os.path.join(REPO, "tests"), metavar="PATH",
                        help="where `pytest -m gpu` looks (default the repository's tests/)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on a CPU too (a dry run of the check, not a GPU figure)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes and few steps: exercises every section in seconds")
    args = parser.parse_args(argv)
    if args.budget <= 0:
        parser.error(f"--budget must be positive, got {args.budget}")
    return args


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    tf, gpus, printed = find_gpus()
    if not gpus and not args.allow_cpu:
        print(no_gpu_line(tf))
        return 0
    sys.stderr.write(printed)
    out = os.path.abspath(args.out)
    if os.path.exists(out) and not args.force:
        print(f"gpu-check: {args.out}: already exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        os.makedirs(os.path.dirname(out), exist_ok=True)
    except OSError as err:
        print(f"gpu-check: {args.out}: cannot create its folder ({err.strerror})", file=sys.stderr)
        return 1
    from menet_tf.errors import MenetError
    from menet_tf.files import write_json
    from menet_tf.model.multitask import resolve_jit_compile

    sizes = Sizes(args.tiny)
    jit = resolve_jit_compile(args.jit_compile)
    result = {
        "check": "menet-tf gpu-check", "format": FORMAT, "works": None, "verdict": None,
        "command": " ".join(["python", "benchmarks/gpu_check.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "budget_s": args.budget, "device": device_record(tf, gpus),
        "settings": {**sizes.as_dict(), "jit_compile": jit,
                     "jit_compile_setting": args.jit_compile},
        "about": ABOUT, "sections": {}, "notes": [],
    }
    if not gpus:
        result["notes"].append("no GPU: a CPU dry run (--allow-cpu); figures are not GPU figures")
    print(f"gpu-check: {result['device']['name']}, TensorFlow {tf.__version__},"
          f" budget {args.budget:.0f} s", flush=True)
    sections = result["sections"]
    try:
        # First: pytest's process must find the GPU's memory free (TensorFlow takes most of it
        # in this process as soon as it runs anything there).
        tests_timeout = min(90.0, max(budget.left() - 170, 30))
        run_section("gpu_tests", lambda failures: gpu_tests(args.tests, tests_timeout, bool(gpus)),
                    result, budget, needs=60)
        run_section("train_step", lambda failures: train_step(sizes, jit, budget, failures),
                    result, budget, needs=60)
        run_section("inference", lambda failures: inference(sizes, jit, failures), result, budget,
                    needs=40)
        f32 = sections["train_step"].get("contenders", {}).get("float32", {})
        step_s = {"median_s": f32["step"]["median_s"], "first_call_s": f32["first_call_s"]} \
            if "step" in f32 else None
        run_section("training_run", lambda failures: training_run(
            sizes, jit, budget, TILING_RESERVE, step_s, failures), result, budget, needs=45)
        run_section("tiling", lambda failures: tiling(sizes, jit, failures), result, budget,
                    needs=30)
    except KeyboardInterrupt:
        result["interrupted"] = True
        result["notes"].append("interrupted: the sections done so far are recorded")
    result["seconds"] = round(budget.elapsed(), 1)
    result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result["works"], result["verdict"] = verdict(result)
    try:
        write_json(out, result)
    except MenetError as err:
        print(result["verdict"])
        print(f"gpu-check: {err}", file=sys.stderr)
        return 1
    print(result["verdict"])
    print(f"gpu-check: wrote {args.out} ({result['seconds']:.0f} s)")
    if result.get("interrupted"):
        return 130
    return 0 if result["works"] else 1


if __name__ == "__main__":
    sys.exit(main())
