"""Calibrate a rain preset: render it on clean images, measure its rain, compare with a real set.

    python benchmarks/rain_calibration.py --preset heavy --clean-dir CLEAN [--limit 25] [--jobs 2]

Prints the table (real vs ours: p10 / median / p90 of every statistic of
``menet_tf.data.rain_stats``, and whether the calibration rules hold: every median of ours inside
the real set's p10..p90; the medians of ssim_y, mean, frac>20 and floor within +-15% of the real
ones). Targets: the real Rain100H (``heavy``) and Rain100L (``light``) test sets' statistics in
tests/data/fixtures/. Each image N gets the rain `menet-tf synth --clean-dir` gives test image N
(seed 0). Exit code 0 when every rule holds. Figures in docs/rain.md.
"""
import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "data", "fixtures")
TARGETS = {"heavy": "rain100h_rain_stats.json", "light": "rain100l_rain_stats.json"}


def measure(job):
    """Render the preset on one clean image and measure the pair."""
    from menet_tf.data.images import load_rgb
    from menet_tf.data.rain_stats import image_stats
    from menet_tf.data.synth import render_rain

    path, preset, seed, index = job
    clean = load_rgb(path)
    rainy, _ = render_rain(clean, preset, seed=seed, split="test", index=index)
    return image_stats(rainy, clean)


def _tried(name, settings):
    """The preset ``name`` with FIELD=VALUE overrides (numbers; a comma makes a range)."""
    import dataclasses

    from menet_tf.data.rain import preset_of

    preset = preset_of(name)
    for item in settings:
        field, value = item.split("=", 1)
        numbers = tuple(float(v) for v in value.split(","))
        preset = dataclasses.replace(preset, **{field: numbers if len(numbers) > 1 else numbers[0]})
    return preset


def main(argv=None):
    from menet_tf.data.images import is_image_file
    from menet_tf.data.rain_stats import format_table, passes, summarize

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="heavy")
    parser.add_argument("--clean-dir", required=True)
    parser.add_argument("--target", help="real set's statistics JSON (default: by preset)")
    parser.add_argument("--limit", type=int, help="N images only, evenly spaced in the folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="try a parameter (e.g. density=0.004,0.01) instead of the preset's")
    args = parser.parse_args(argv)
    preset = _tried(args.preset, args.set)
    target = args.target or os.path.join(FIXTURES, TARGETS[args.preset.split("-")[0]])
    with open(target) as f:
        real = json.load(f)["stats"]
    names = sorted((n for n in os.listdir(args.clean_dir) if is_image_file(n)),
                   key=lambda n: (len(n), n))
    chosen = range(len(names)) if not args.limit else \
        sorted({round(i * len(names) / args.limit) for i in range(min(args.limit, len(names)))})
    jobs = [(os.path.join(args.clean_dir, names[i]), preset, args.seed, i) for i in chosen]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(measure, jobs, chunksize=4))
    ours = summarize(rows)
    print(f"preset {args.preset} on {len(rows)} images of {args.clean_dir} (seed {args.seed}) "
          f"vs {os.path.basename(target)}")
    print("\n".join(format_table(ours, real)))
    ok = passes(ours, real)
    print("PASS" if ok else "FAIL")
    print(json.dumps({"preset": args.preset, "images": len(rows), "stats": ours}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
