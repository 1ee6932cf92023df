"""The sections of ``make gpu-check`` that run the library (the training step in each precision,
inference in each precision, tiling a large image); the script (benchmarks/gpu_check.py) runs
them in order under its time budget, with the training run and the verdict.

Each takes the check's ``Sizes`` and a ``failures`` list (one contender's error is recorded
there, in one line, and the others still run), and returns the section's figures.
"""
import gc
import math

import numpy as np

from menet_tf.bench.gpu import gpu_peak_mb, reset_gpu_peak
from menet_tf.bench.sections import attempt, figure, speedup, timed
from menet_tf.bench.speed import GB_MODEL
from menet_tf.precisions import NAMES as PRECISIONS  # fp32, bf16, fp16


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
            logs, seconds = timed(lambda: model.train_on_batch(rainy, clean, return_dict=True))
            if not _finite(logs):
                raise FloatingPointError(f"first step's logs are not finite: {_floats(logs)}")
            taken = 1 + settle_loss_scale(model, rainy, clean)
            return model, {"precision": precision, "jit_compile": xla, "first_call_s": seconds,
                           "first_step_logs": _floats(logs), "first_applied_step": taken}

        built = attempt(failures, name, build)
        if built is not None:
            models[name], out["contenders"][name] = built
    steps = {n: (lambda m=m: m.train_on_batch(rainy, clean)) for n, m in models.items()}
    timings = time_interleaved(steps, repeats=sizes.repeats, warmup=1)
    for name, model in models.items():
        logs = _floats(model.train_on_batch(rainy, clean, return_dict=True))
        step = figure(timings[name])
        step["images_per_s"] = round(sizes.train_batch / step["median_s"], 2)
        c = out["contenders"][name]
        c.update(step=step, last_step_logs=logs,
                 steps_taken=c["first_applied_step"] + 2 + sizes.repeats,  # warm-up, timed, last
                 optimizer_steps=int(model.optimizer.iterations.numpy()))
        if not _finite(logs):
            failures.append(f"{name}: a later step's logs are not finite: {logs}")
    if "float32" in models and "mixed_float16" in models:
        out["mixed_float16_speedup"] = speedup(timings["float32"], timings["mixed_float16"])
    if "float32" in models and "float32_no_xla" in models:
        out["xla_speedup"] = speedup(timings["float32_no_xla"], timings["float32"])
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


def inference(sizes, jit, failures, name):
    """The bundled model ``name`` through ``Derainer`` in every precision, interleaved per batch
    size."""
    import menet_tf
    from menet_tf.bench.timing import time_interleaved
    from menet_tf.infer.derainer import Derainer
    from menet_tf.model.metrics import psnr_float64

    model = menet_tf.pretrained(name)
    s = sizes.infer_size
    batches = {b: synthetic_pairs(b, s, s, seed=10 + b) for b in sizes.infer_batches}
    out = {"model": f"{name} (bundled)", "size": s, "jit_compile": jit,
           "precisions": {}}
    derainers, outputs = {}, {}
    for p in PRECISIONS:
        def make(p=p):
            options = {} if p == "fp32" else {"precision": p}  # fp32: any Derainer takes it
            d = Derainer(model, jit_compile=jit, **options)
            first = {}
            for b, (rainy, _) in batches.items():
                outputs[p, b], first[f"batch_{b}"] = timed(lambda: d.predict(rainy))
                if not np.all(np.isfinite(outputs[p, b])):
                    raise FloatingPointError(f"batch {b}: output is not finite")
            return d, {"first_call_s": first}

        made = attempt(failures, p, make)
        if made is not None:
            derainers[p], out["precisions"][p] = made
    for b, (rainy, clean) in batches.items():
        calls = {p: (lambda d=d: d.predict(rainy)) for p, d in derainers.items()}
        timings = time_interleaved(calls, repeats=sizes.repeats, warmup=1,
                                   items={p: b for p in derainers})
        for p in derainers:
            row = figure(timings[p])
            row["ms_per_image"] = round(1000 * row["per_item_s"], 3)
            out["precisions"][p][f"batch_{b}"] = row
        if "fp32" in derainers:
            out[f"fp32_gain_db_batch_{b}"] = round(
                psnr_float64(outputs["fp32", b], clean) - psnr_float64(rainy, clean), 3)
            for p in derainers:
                if p != "fp32":
                    out["precisions"][p][f"psnr_vs_fp32_batch_{b}"] = round(
                        psnr_float64(outputs[p, b], outputs["fp32", b]), 2)
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
            result, first = timed(lambda: derainer.derain(image, **options))
            _, second = timed(lambda: derainer.derain(image, **options))
            if not np.all(np.isfinite(result)):
                raise FloatingPointError("output is not finite")
            results[name] = result
            return {"first_call_s": first, "seconds": second,
                    "s_per_megapixel": round(second / (h * w / 1e6), 4),
                    "gpu_peak_mb": gpu_peak_mb()}

        out[name] = attempt(failures, name, run)
    if len(results) == 2:
        diff = np.abs(results["default"] - results["tiles"])
        out["tiles_vs_default"] = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}
    return out
