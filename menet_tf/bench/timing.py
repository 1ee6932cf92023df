"""The one timing loop of menet-tf (``menet-tf bench`` and ``menet-tf compare-authors``), and
what a timed process reads about itself (load average, peak memory).

Contenders are timed interleaved: every round runs each once in turn (port, authors, port,
authors...), so a machine that speeds up or slows down (other users, clocks) affects both
alike; ratios of medians are the result. Besides wall-clock seconds every call records the
process CPU seconds it took, which stay meaningful on a busy shared machine where wall time
does not.
"""
import os
import resource
import sys
import time

import numpy as np


def summarize(runs, cpu_runs, items=1):
    """Median, min, max and spread ((max - min) / median) of wall seconds; CPU-seconds median;
    and per item (image or step) when a call handles ``items`` of them."""
    runs = np.asarray(runs, float)
    median = float(np.median(runs))
    return {
        "median_s": median,
        "min_s": float(runs.min()),
        "max_s": float(runs.max()),
        "spread": float((runs.max() - runs.min()) / median) if median > 0 else 0.0,
        "cpu_median_s": float(np.median(cpu_runs)),
        "per_item_s": median / items,
        "cpu_per_item_s": float(np.median(cpu_runs)) / items,
        "items": items,
        "runs_s": [round(float(r), 5) for r in runs],
        "cpu_runs_s": [round(float(r), 5) for r in cpu_runs],
    }


def time_interleaved(callables, repeats=5, warmup=1, items=None, progress=None):
    """{name: summarize(...)} of ``callables`` ({name: fn()}), called in turns, ``warmup`` rounds
    not counted (tracing, graph optimisation, caches). ``items``: {name: images per call}."""
    wall = {name: [] for name in callables}
    cpu = {name: [] for name in callables}
    for round_ in range(int(warmup) + int(repeats)):
        for name, fn in callables.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            elapsed, cpu_elapsed = time.perf_counter() - t0, time.process_time() - c0
            if round_ >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(cpu_elapsed)
            if progress is not None:
                progress.update(1)
    items = items or {}
    return {name: summarize(wall[name], cpu[name], items.get(name, 1)) for name in callables}


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def peak_memory():
    """Peak resident memory of this process in MB (and GPU peak when there is a GPU)."""
    import tensorflow as tf

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024
    out = {"peak_rss_mb": round(rss_mb, 1)}
    if tf.config.list_physical_devices("GPU"):
        try:
            out["gpu_peak_mb"] = round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, 1)
        except (ValueError, RuntimeError):
            pass
    return out
