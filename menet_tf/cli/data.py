"""``menet-tf data check|bench`` and ``menet-tf synth``.

Handlers import TensorFlow (and the heavier data modules) only when they run, so building the
parser costs nothing.
"""
import argparse
import os
import sys

from menet_tf.cli import options


FORMAT = argparse.RawDescriptionHelpFormatter


def register(subparsers):
    """Add the ``data`` (check, bench) and ``synth`` sub-commands."""
    data = subparsers.add_parser(
        "data", help="check paired rainy/clean data sets, benchmark the input pipeline",
        description="Inspect rainy/clean data sets and measure the tf.data input pipeline.",
        formatter_class=FORMAT)
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    _register_check(data_sub)
    _register_bench(data_sub)
    _register_synth(subparsers)


def _register_check(data_sub):
    check = data_sub.add_parser(
        "check", help="report layout, pairs, missing and bad files of a data set",
        formatter_class=FORMAT,
        description="Find the rainy/clean pairs in DIR and check every image (PIL full decode).\n"
                    "Layouts: JORDER (norain-N.png + rain-N.png in one folder), twin folders\n"
                    "(rain/ + norain/, input/ + target/, ... with the same file names),\n"
                    "rainy/rain-N.png + norain-N.png, or a text file listing 'rainy clean'\n"
                    "pairs. A folder with train/ and test/ sub-folders is checked per split.\n"
                    "Known sets (by folder name or --expect): Rain100H, Rain100L (100 pairs),\n"
                    "RainTrainH (1800, or 1254 without the Rain100H overlaps), RainTrainL (200).\n"
                    "Exit code 0 when everything pairs and counts match, 1 otherwise.")
    check.add_argument("dir", metavar="DIR", help="data set folder or pair-list file")
    check.add_argument("--expect", metavar="NAME",
                       help="known set the folder should be (Rain100H, Rain100L, RainTrainH, "
                            "RainTrainL); on a folder with train/ and test/, Rain100H/L means "
                            "RainTrainH/L for train and Rain100H/L for test")
    check.add_argument("--layout", default="auto",
                       choices=("auto", "list", "jorder", "twin_folders", "rainy_subfolder"),
                       help="force a layout instead of detecting it (default: auto)")
    check.add_argument("--rainy-dir", metavar="NAME", help="name of the rainy sub-folder")
    check.add_argument("--clean-dir", metavar="NAME", help="name of the clean sub-folder")
    check.add_argument("--crop-size", type=int, default=224,
                       help="flag images smaller than this crop (default: 224)")
    check.add_argument("--quick", action="store_true",
                       help="read image headers only, skip the full decode check (faster)")
    check.add_argument("--max-list", type=int, default=10, metavar="N",
                       help="list at most N files per problem (default: 10)")
    check.set_defaults(func=_check)


def _register_bench(data_sub):
    bench = data_sub.add_parser(
        "bench", help="measure the training pipeline's throughput in crops/s",
        formatter_class=FORMAT,
        description="Time the training input pipeline (five-crop + flip, shuffled, batch 20)\n"
                    "over whole epochs and print crops per second. Without DIR it uses\n"
                    "data/synthetic/heavy/train (make data-synthetic) or a temporary\n"
                    "synthetic set.")
    bench.add_argument("dir", metavar="DIR", nargs="?", help="data set folder (default: synthetic)")
    bench.add_argument("--batch-size", type=int, default=20, help="batch size (default: 20)")
    bench.add_argument("--crop-size", type=int, default=224, help="crop size (default: 224)")
    bench.add_argument("--num-crops", type=int, default=10, help="crops per pair (default: 10)")
    bench.add_argument("--mode", choices=("five_crop", "random"), default="five_crop",
                       help="crop mode (default: five_crop)")
    bench.add_argument("--epochs", type=int, default=2, help="epochs to time (default: 2)")
    bench.add_argument("--cache", action="store_true", help="cache decoded images in memory")
    bench.add_argument("--max-batches", type=int, metavar="N",
                       help="stop each epoch after N batches")
    bench.set_defaults(func=_bench)


def _register_synth(subparsers):
    synth = subparsers.add_parser(
        "synth", help="render synthetic Rain100H/L-like rain on clean images (offline)",
        formatter_class=FORMAT,
        description="Render rainy/clean pairs: streak layers (drops smeared along near-vertical\n"
                    "directions) and a veil, added to clean images. Writes OUT/train and OUT/test\n"
                    "in the JORDER layout (norain-N.png, rain-N.png, rainstreak-N.png) and\n"
                    "OUT/synth.json (renderer version, every parameter). Same seed, same files.\n"
                    "Clean images: the photos that ship with scikit-image (default: 40 train and\n"
                    "10 test crops), or your own with --clean-dir (each used as is, --variants\n"
                    "rains per image, like RainTrainH's 200 backgrounds x 9) and --test-clean-dir\n"
                    "for the test split. The presets heavy and light are calibrated against\n"
                    "Rain100H and Rain100L (docs/rain.md); heavy-0.2 and light-0.2 are\n"
                    "menet-tf 0.2's.")
    from menet_tf.data.rain import PRESETS

    synth.add_argument("--preset", choices=tuple(PRESETS), default="heavy",
                       help="heavy: dense thin near-vertical streaks in five directions over a "
                            "veil (like Rain100H); light: one sparse direction (like Rain100L); "
                            "heavy-0.2/light-0.2: menet-tf 0.2's presets. Default: heavy")
    synth.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--clean-dir", metavar="DIR",
                       help="folder of clean training images, each used as is (default: "
                            "scikit-image photos)")
    synth.add_argument("--variants", type=int, default=1, metavar="N",
                       help="different rains per clean training image (default: 1; "
                            "RainTrainH: 9)")
    synth.add_argument("--test-clean-dir", metavar="DIR",
                       help="folder of clean test images (default with --clean-dir: no test "
                            "split)")
    synth.add_argument("--test-variants", type=int, default=1, metavar="N",
                       help="different rains per clean test image (default: 1)")
    synth.add_argument("--count", type=int, metavar="N",
                       help="clean training images to use (default: 40 photos, or all of "
                            "--clean-dir)")
    synth.add_argument("--test-count", type=int, metavar="N",
                       help="clean test images to use (default: 10 photos, or all of "
                            "--test-clean-dir)")
    synth.add_argument("--size", default=None,
                       help="WIDTHxHEIGHT of each image, 'mixed' (481x321 and 321x481 like "
                            "Rain100; default for the photos) or 'native' (as is; default with "
                            "--clean-dir)")
    synth.add_argument("--blend", choices=("additive", "screen"), default="additive",
                       help="O = B + R (additive, default) or O = 1-(1-B)(1-R) (screen)")
    synth.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="worker processes (default: 1; the files do not depend on it)")
    synth.add_argument("--force", action="store_true",
                       help="replace a set synth wrote in --out before (never other files)")
    synth.set_defaults(func=_synth)


# ----------------------------------------------------------------------------------------------

def _expected_for(split, expect):
    """Map --expect to a split of a dataset root (Rain100L root: train -> RainTrainL)."""
    from menet_tf.data.pairs import known_set

    ks = known_set(expect)
    if split == ".":
        return ks.name
    letter = ks.name[-1]
    low = split.lower()
    if "train" in low:
        return f"RainTrain{letter}"
    if "test" in low:
        return f"Rain100{letter}"
    return ks.name


def _rel(path, base):
    try:
        rel = os.path.relpath(path, base)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def format_report(report, base, max_list=10):
    """The human-readable lines of one split's check."""
    d = report.discovery
    out = [f"  layout: {d.layout} ({d.detail})" if d.detail else f"  layout: {d.layout}"]
    n = len(d.pairs)
    if d.known:
        counts = " or ".join(str(c) for c in d.known.counts)
        verdict = "OK" if n in d.known.counts else "MISMATCH"
        out.append(f"  known set: {d.known.name} ({d.known.note}), expected {counts} pairs")
        out.append(f"  pairs found: {n}  [{verdict}]")
    else:
        out.append(f"  pairs found: {n}  (not a known set; --expect NAME to compare counts)")
    if report.sizes:
        sizes = ", ".join(f"{w}x{h} ({c})" for (w, h), c in
                          sorted(report.sizes.items(), key=lambda kv: -kv[1]))
        out.append(f"  sizes (width x height, pairs): {sizes}")
    streaks = sum(1 for p in d.pairs if p.streak)
    if streaks:
        out.append(f"  rain-streak images: {streaks}")

    def listing(title, items):
        if not items:
            return
        out.append(f"  {title}: {len(items)}")
        for item in items[:max_list]:
            out.append(f"    {item}")
        if len(items) > max_list:
            out.append(f"    ... and {len(items) - max_list} more")

    listing("rainy images without a clean twin", [_rel(p, base) for p in d.unpaired_rainy])
    listing("clean images without a rainy twin", [_rel(p, base) for p in d.unpaired_clean])
    listing("names claimed by several files",
            [f"{k}: " + ", ".join(_rel(p, base) for p in ps) for k, ps in d.duplicates])
    listing("bad files", [f"{_rel(p, base)}: {why}" for p, why in report.bad])
    listing("not 8-bit RGB (usable with convert=True / --convert in training)",
            [f"{_rel(p, base)}: {why}" for p, why in report.converted])
    listing("smaller than the crop", [f"{_rel(p, base)}: {s}" for p, s in report.too_small])
    if d.ignored:
        out.append(f"  other files ignored: {len(d.ignored)}")
    problems = (len(d.unpaired_rainy) + len(d.unpaired_clean) + len(d.duplicates)
                + len(report.bad) + len(report.converted) + len(report.too_small))
    out.append(f"  usable pairs: {report.good_pairs} of {n}"
               + ("" if problems else "; no missing, unpaired or bad files"))
    return out


def _check(args):
    from menet_tf.data.check import check_dataset
    from menet_tf.data.pairs import discover_splits, known_set

    if args.expect:
        known_set(args.expect)  # fail early on a typo
    splits = discover_splits(args.dir, args.layout, args.rainy_dir, args.clean_dir)
    base = args.dir if os.path.isdir(args.dir) else os.path.dirname(args.dir)
    print(f"{args.dir}")
    all_ok = True
    for split, disc in splits.items():
        expect = _expected_for(split, args.expect) if args.expect else None
        report = check_dataset(disc, full_check=not args.quick, progress=True,
                               min_size=(args.crop_size, args.crop_size), expect=expect)
        if split != ".":
            print(f"{split}/")
        for line in format_report(report, base, args.max_list):
            print(line if split != "." else line[2:])
        all_ok &= report.ok
    print("result: OK" if all_ok else "result: PROBLEMS (see above)")
    return 0 if all_ok else 1


def _bench(args):
    from menet_tf.bench.pipeline import benchmark, format_result

    result = benchmark(args.dir, batch_size=args.batch_size, crop_size=args.crop_size,
                       num_crops=args.num_crops, mode=args.mode, cache=args.cache,
                       epochs=args.epochs, max_batches=args.max_batches, progress=True)
    print(format_result(result))
    return 0


def _synth(args):
    from menet_tf.data.synth import synthesize

    summary = synthesize(args.out, preset=args.preset, seed=args.seed, count=args.count,
                         test_count=args.test_count, clean_dir=args.clean_dir, size=args.size,
                         blend=args.blend, progress=True, variants=args.variants,
                         test_clean_dir=args.test_clean_dir, test_variants=args.test_variants,
                         force=args.force, jobs=args.jobs)
    for split, folder in summary["folders"].items():
        n = summary["count"] if split == "train" else summary["test_count"]
        print(f"{split}: {n} pairs in {folder} (mean input PSNR "
              f"{summary['input_psnr_db'][split]:.2f} dB)")
    if "test" not in summary["folders"]:
        print("test: none (pass --test-clean-dir DIR for a test split)")
    print(f"settings: {os.path.join(args.out, 'synth.json')}")
    sys.stdout.flush()
    return 0
