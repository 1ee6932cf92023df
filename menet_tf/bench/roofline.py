"""This machine's practical peak in each precision, so a timing can say how close to the limit
it is (``menet-tf bench``'s roofline columns).

Two kernels per precision, timed in the same process as the network and interleaved with
each other by ``menet_tf.bench.timing``: a large square matrix product (what the CPU's vector
units can do at best through TensorFlow's kernels) and a 64-to-64 3x3 convolution at MENET's
block shape (the residual blocks run at 1/4 resolution with 64 channels: [N, 56, 56, 64] for a
224x224 input; they carry most of the network's FLOPs). The practical peak of a precision is
the higher of the two. Each timed call repeats its kernel enough times to run about a tenth of a
second, so call overhead does not count.

A share of peak = the network's GFLOP/s (``menet_tf.bench.flops``) / the peak of the precision
it ran in, both from medians of the same run. On a shared machine the load changes between the
two, so a second share is taken in CPU time: FLOPs per second of this process's CPU time, the
network's over the peak's. It does not count the time other processes held the cores.
"""
import math

import numpy as np

from menet_tf.bench.timing import time_interleaved
from menet_tf.infer.precision import PRECISIONS, resolve
from menet_tf.tf_logging import without_tensorflow_logging
CALL_SECONDS = 0.1  # each timed call runs its kernel about this long


class Shapes:
    """The kernels' sizes: the issue's (matrix 2048, convolution [20, 56, 56, 64]), smaller for
    ``--quick`` (1024, [4, 56, 56, 64]: still large enough to reach the peak), or given."""

    def __init__(self, quick=False, matmul=None, conv=None):
        self.matmul = int(matmul or (1024 if quick else 2048))
        self.conv = list(conv or ([4, 56, 56, 64] if quick else [20, 56, 56, 64]))

    def matmul_flops(self):
        return 2 * self.matmul ** 3

    def conv_flops(self):
        n, h, w, c = self.conv
        return 2 * n * h * w * c * 3 * 3 * c  # 64 -> 64 channels, 3x3, SAME

    def as_dict(self):
        return {"matmul": [self.matmul, self.matmul, self.matmul], "conv_input": self.conv,
                "conv_kernel": [3, 3, self.conv[3], self.conv[3]]}


def _kernels(precision, shapes, seed):
    """{kernel: (one call of it, its FLOPs)} for ``precision``, inputs made once."""
    import tensorflow as tf

    dtype = tf.as_dtype(resolve(precision).dtype)
    rng = np.random.default_rng(seed)

    def tensor(shape):
        return tf.cast(tf.constant(rng.standard_normal(shape).astype(np.float32)), dtype)

    n = shapes.matmul
    a, b = tensor([n, n]), tensor([n, n])
    x, k = tensor(shapes.conv), tensor([3, 3, shapes.conv[3], shapes.conv[3]])
    # The inputs are arguments, not captured constants, so no graph optimiser folds the work;
    # one element of the result comes back, so the call has finished when it returns.
    matmul = tf.function(lambda a, b: tf.linalg.matmul(a, b)[:1, :1], autograph=False)
    conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")[:1, :1, :1, :1],
                       autograph=False)
    return {"matmul": (lambda: matmul(a, b).numpy(), shapes.matmul_flops()),
            "conv": (lambda: conv(x, k).numpy(), shapes.conv_flops())}


def _repeated(fn, times):
    def call():
        for _ in range(times):
            fn()
    return call


def _calibrated(fn):
    """(``fn`` repeated to run about CALL_SECONDS, how often): one untimed warm-up call
    (tracing), then one timed call sets the count."""
    once = time_interleaved({"k": fn}, repeats=1, warmup=1)["k"]["median_s"]
    times = max(1, int(math.ceil(CALL_SECONDS / max(once, 1e-6))))
    return _repeated(fn, times), times


def measure_peaks(precisions=PRECISIONS, quick=False, repeats=3, warmup=1, shapes=None,
                  seed=0):
    """{"shapes", "precisions": {precision: {"matmul": ..., "conv": ..., "peak_gflops",
    "peak_kernel"}}}; each kernel's figure has ``gflops`` (from the median call), ``best_gflops``
    (from the fastest), ``repeats_per_call`` and the timing summary."""
    shapes = shapes or Shapes(quick)
    calls, flops, per_call = {}, {}, {}
    precisions = [resolve(p).name for p in precisions]
    with without_tensorflow_logging():  # oneDNN's line on a CPU's first float16 op
        for precision in precisions:
            for kind, (fn, f) in _kernels(precision, shapes, seed).items():
                key = f"{kind}_{precision}"
                calls[key], per_call[key] = _calibrated(fn)
                flops[key] = f * per_call[key]
    timed = time_interleaved(calls, repeats=repeats, warmup=warmup)
    out = {}
    for precision in precisions:
        figures = {}
        for kind in ("matmul", "conv"):
            key = f"{kind}_{precision}"
            t = timed[key]
            cpu_s = t["cpu_median_s"]
            figures[kind] = {
                "gflops": flops[key] / t["median_s"] / 1e9,
                "gflops_per_cpu_second": flops[key] / cpu_s / 1e9 if cpu_s > 0 else None,
                "best_gflops": flops[key] / t["min_s"] / 1e9,
                "flops_per_call": flops[key], "repeats_per_call": per_call[key], "timing": t,
            }
        best = max(("matmul", "conv"), key=lambda kind: figures[kind]["gflops"])
        per_cpu = [figures[k]["gflops_per_cpu_second"] for k in ("matmul", "conv")]
        out[precision] = {**figures, "peak_gflops": figures[best]["gflops"], "peak_kernel": best,
                          "peak_gflops_per_cpu_second": max(
                              (v for v in per_cpu if v is not None), default=None)}
    return {"shapes": shapes.as_dict(), "precisions": out,
            "rule": "peak = the higher of the two kernels' GFLOP/s (medians of interleaved"
                    " calls); in CPU time likewise, from FLOPs per CPU second"}


def share(gflops, peaks, precision, key="peak_gflops"):
    """``gflops`` as a fraction of ``precision``'s practical peak (None when not measured);
    ``key="peak_gflops_per_cpu_second"`` for GFLOP per CPU second."""
    peak = ((peaks or {}).get("precisions") or {}).get(precision)
    if peak is None or gflops is None or not peak.get(key):
        return None
    return gflops / peak[key]


def of_timings(result, models, sizes, repeats, warmup):
    """The roofline of a bench run: the practical peaks (measured now, after the network's
    timings, under the same load), the FLOPs of every timed computation, and each timing's
    GFLOP/s and share of the peak of the precision it ran in."""
    from menet_tf.bench import flops
    from menet_tf.bench.keys import keys_of
    from menet_tf.infer.tiling import round_up

    peaks = measure_peaks(quick=sizes.quick, repeats=max(3, min(repeats, 5)), warmup=1)
    key = keys_of(result["settings"])
    gb, s = models["gb"], sizes.infer_size
    m = models["multiple"]
    large = (round_up(sizes.large[0], m), round_up(sizes.large[1], m))
    counted = {
        key["infer_one"]: flops.forward_flops(gb, 1, s, s),
        key["infer_batch"]: flops.forward_flops(gb, sizes.infer_batch, s, s),
        key["infer_large"]: flops.forward_flops(gb, 1, *large),
    }
    if "train_gb" in models:
        b, t = sizes.train_batch, sizes.train_size
        counted[key["train"]] = flops.train_step_flops(models["train_gb"], b, t, t)
        counted[key["train_mse"]] = flops.train_step_flops(models["train_mse"], b, t, t)
        counted["forward_train_batch"] = flops.forward_flops(gb, b, t, t)
    port_precision = result["settings"]["precision"]
    rows = {}
    for name, figure in result["port"].items():
        rows[name] = {"port": achieved(counted[name]["dense"], figure, peaks, port_precision)}
    for name, figure in (result.get("authors_graph") or {}).items():
        # The authors' graph computes the same network (inference: the same convolutions);
        # their training step is counted with the port's step, whose losses differ slightly.
        count = counted[key["train"] if name == key["train_logs"] else name]["dense"]
        rows.setdefault(name, {})["authors"] = achieved(count, figure, peaks, "fp32")
    forward_224 = flops.forward_flops(gb, 1, 224, 224)["dense"]
    return {"peaks": peaks, "flops": counted, "rows": rows,
            "forward_224_flops": forward_224,
            "flops_rule": "dense FLOPs (convolutions and matrix products, 2 per multiply-add)"
                          " of the executed ops of the traced graph (menet_tf.bench.flops)",
            "authors_flops_rule": "inference: the port's count (the same network); training:"
                                  " the port's MENET-GB step (their losses differ slightly)"}


def achieved(flop_count, figure, peaks, precision):
    """GFLOP/s of one timing (median wall and CPU seconds per call) and its share of
    ``precision``'s peak."""
    gflops = flop_count / figure["median_s"] / 1e9
    cpu = flop_count / figure["cpu_median_s"] / 1e9 if figure["cpu_median_s"] > 0 else None
    return {"flops_per_call": int(flop_count), "gflops": gflops, "gflops_per_cpu_second": cpu,
            "precision": precision, "share_of_peak": share(gflops, peaks, precision),
            "share_of_peak_cpu": share(cpu, peaks, precision, "peak_gflops_per_cpu_second")}
