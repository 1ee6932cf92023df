"""What this process runs on, for the records results carry (run.json, summary.json, bench,
gpu-check): the CPU, the versions, and an error in one line for those records and messages."""
import os
import platform


def cpu_info():
    """CPU model and the instruction-set flags that matter for TF on CPUs (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "flags": wanted,
        "avx512": any(f.startswith("avx512") for f in flags),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": any(f.startswith("amx") for f in flags),
    }


def versions():
    """The versions a result depends on, keyed by distribution name (as ``pip`` spells them).
    Imports TensorFlow: for records of work that has already imported it."""
    import keras
    import numpy as np
    import tensorflow as tf

    from menet_tf import __version__

    return {"python": platform.python_version(), "menet-tf": __version__,
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}


def environment():
    """The one record of what a result ran on, with the same keys in run.json, evaluate's
    summary.json, the bench's JSON and gpu-check's: ``versions``, ``cpu`` (``cpu_info``) and
    ``platform``. (run.json of 0.1/0.2 had ``cpu`` as the model's name alone.)"""
    return {"versions": versions(), "cpu": cpu_info(), "platform": platform.platform()}


def one_line(err, limit=400):
    """An exception as one line for a message: its type, then its text with whitespace collapsed,
    shortened to ``limit`` characters (Keras' and h5py's errors run over many lines)."""
    text = " ".join(str(err).split())
    line = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."
