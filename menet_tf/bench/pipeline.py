"""Input-pipeline throughput, so training can show that data loading is not the bottleneck.

Measures the training pipeline (five-crop + flip, shuffled, batch 20) exactly as training uses
it: crops per second over whole epochs (decoding, cropping, shuffling and float conversion
included); the first epoch is reported apart because it also fills the shuffle buffer and
lets tf.data autotune its parallelism.
"""
import os
import tempfile
import time

DEFAULT_SYNTHETIC = os.path.join("data", "synthetic", "heavy", "train")


def existing_synthetic():
    """The synthetic heavy train set if `make data-synthetic` made it completely, else None."""
    from menet_tf.data.synth import is_complete

    return DEFAULT_SYNTHETIC if is_complete(os.path.dirname(DEFAULT_SYNTHETIC)) else None


def benchmark(source=None, batch_size=20, crop_size=224, num_crops=10, mode="five_crop",
              cache=False, epochs=2, seed=0, max_batches=None, progress=False):
    """Run the training pipeline for ``epochs`` epochs; return a dict of timings.

    Keys: ``source``, ``pairs``, ``validate_s`` (PIL check), ``build_s``, ``epoch_s`` (list),
    ``crops_per_s`` (all epochs, end to end), ``first_epoch_crops_per_s`` (includes shuffle
    buffer fill and tf.data autotuning), ``later_crops_per_s`` (epochs 2+), ``batches``.
    With no ``source``: the synthetic heavy train set if there, else a fresh one in a temporary
    folder that is removed afterwards.
    """
    source = source or existing_synthetic()
    settings = dict(batch_size=batch_size, crop_size=crop_size, num_crops=num_crops, mode=mode,
                    cache=cache, epochs=epochs, seed=seed, max_batches=max_batches,
                    progress=progress)
    if source is not None:
        return _timed(source, False, **settings)
    from menet_tf.data.synth import synthesize

    with tempfile.TemporaryDirectory(prefix="menet-tf-bench-") as folder:
        synthesize(folder, preset="heavy", seed=0, count=40, test_count=0, progress=progress)
        return _timed(os.path.join(folder, "train"), True, **settings)


def _timed(source, temp, batch_size, crop_size, num_crops, mode, cache, epochs, seed,
           max_batches, progress):
    import tensorflow  # noqa: F401  (imported here so its start-up is not timed as "build")

    from menet_tf.data.pipeline import resolve_pairs, train_dataset

    t0 = time.perf_counter()
    pairs = resolve_pairs(source, crop_size, progress=progress)
    t1 = time.perf_counter()
    ds = train_dataset(pairs, batch_size=batch_size, crop_size=crop_size, num_crops=num_crops,
                       mode=mode, seed=seed, cache=cache)
    if max_batches:
        ds = ds.take(max_batches)
    t2 = time.perf_counter()
    epoch_s, batches = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        for _batch in ds:
            batches += 1
        epoch_s.append(time.perf_counter() - start)
    per_epoch = batches // max(epochs, 1)
    crops = batches * batch_size
    later = epoch_s[1:]
    return {
        "source": os.fspath(source), "synthetic_temp": temp, "pairs": len(pairs),
        "batch_size": batch_size, "crop_size": crop_size, "mode": mode, "cache": bool(cache),
        "validate_s": t1 - t0, "build_s": t2 - t1, "epoch_s": epoch_s, "batches": batches,
        "crops": crops, "crops_per_s": crops / sum(epoch_s),
        "first_epoch_crops_per_s": per_epoch * batch_size / epoch_s[0],
        "later_crops_per_s": (per_epoch * batch_size * len(later) / sum(later)) if later else None,
        "cpus": os.cpu_count(),
    }


def format_result(r):
    """A few human-readable lines for the CLI and benchmarks/bench_data.py."""
    lines = [
        f"source: {r['source']}{' (temporary synthetic set)' if r['synthetic_temp'] else ''}",
        f"pairs: {r['pairs']}, mode {r['mode']}, crop {r['crop_size']}, batch {r['batch_size']}, "
        f"cache {'on' if r['cache'] else 'off'}, {r['cpus']} CPUs",
        f"validation (PIL, full decode): {r['validate_s']:.2f} s; pipeline build: "
        f"{r['build_s']:.2f} s",
        "epochs: " + ", ".join(f"{t:.2f} s" for t in r["epoch_s"])
        + f" ({r['batches']} batches, {r['crops']} crops)",
        f"throughput: {r['crops_per_s']:.0f} crops/s over all epochs "
        f"({r['crops_per_s'] / r['batch_size']:.1f} batches/s of {r['batch_size']}); "
        f"first epoch {r['first_epoch_crops_per_s']:.0f} crops/s"
        + (f", later epochs {r['later_crops_per_s']:.0f} crops/s"
           if r["later_crops_per_s"] else ""),
    ]
    return "\n".join(lines)
