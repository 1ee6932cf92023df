"""Time one MENET training step (forward, per-task shared-layer gradients, weights, backward,
Adam) on random data, with and without XLA, and print seconds per step and crops per second.

    python benchmarks/bench_train_step.py [--config MENET-GB] [--batch-size 20] [--crop-size 224]
        [--precision float32,mixed_bfloat16] [--jit-compile off|on|both]
"""
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import menet_tf  # noqa: E402


def measure(config, batch, crop, steps, jit, precision="float32"):
    config.train.jit_compile = jit
    config.train.precision = precision
    model = menet_tf.build_model(config)
    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, [batch, crop, crop, 3]).astype("float32")
    rainy = np.clip(clean + 40 * (rng.random(clean.shape) < 0.05), 0, 255).astype("float32")
    start = time.perf_counter()
    model.train_on_batch(rainy, clean)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(rainy, clean)
    per_step = (time.perf_counter() - start) / steps
    return first, per_step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="MENET-GB")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after the first")
    parser.add_argument("--precision", default="float32",
                        help="comma-separated precisions to time, e.g. float32,mixed_bfloat16")
    parser.add_argument("--jit-compile", "--jit", dest="jit", choices=("off", "on", "both"),
                        default="both")
    args = parser.parse_args()
    print(f"{args.config}: batch {args.batch_size}, crops {args.crop_size}x{args.crop_size}")
    jits = {"off": (False,), "on": (True,), "both": (False, True)}[args.jit]
    for precision in args.precision.split(","):
        for jit in jits:
            first, per_step = measure(menet_tf.released_config(args.config), args.batch_size,
                                      args.crop_size, args.steps, jit, precision)
            print(f"  {precision:14s} XLA {'on ' if jit else 'off'}: first step {first:6.2f} s"
                  f" (tracing/compiling), then {per_step:6.3f} s/step"
                  f" = {args.batch_size / per_step:7.1f} crops/s")


if __name__ == "__main__":
    main()
