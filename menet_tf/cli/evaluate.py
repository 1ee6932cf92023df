"""``menet-tf evaluate``: score a trained model on a paired test set (menet_tf.evaluation.scoring)."""
import argparse

from menet_tf.cli import options

EPILOG = """protocols (all by default):
  authors  the paper's numbers (= `menet-tf train`'s test scores): 10 crops of 224 per image,
           tf.image PSNR/SSIM on RGB at max 255, mean per batch of 20, then over batches
  y        whole images, Y channel of MATLAB rgb2ycbcr, Gaussian SSIM (11x11, sigma 1.5):
           how PReNet, BRN, Restormer report
  rgb      whole images, PSNR/SSIM on RGB
--crop-border N drops N pixels per side before the y and rgb scores.
Y scores run about 1.5 dB above RGB scores for the same outputs; compare only like with like.

writes OUT/metrics.csv (per image: every protocol's PSNR/SSIM of the output and of the rainy
input) and OUT/summary.json (per protocol its mean psnr/ssim and description, model, the
folder scored and its split, precision and backend, seconds per image, device, and the
versions and CPU under "environment", the keys of a run's run.json). A data
root's test/ is scored; a root without test/ has its val/ scored, reported as the validation
split. --precision bf16 runs the network in bfloat16 (docs/speed.md: on Rain100L within
0.01 dB of fp32 under every protocol).

example: menet-tf evaluate runs/MENET-GB --data ../shared/datasets/Rain100L -o runs/MENET-GB/eval"""


def register(sub):
    p = sub.add_parser(
        "evaluate", help="score a model on a paired test set (authors' crops, Y channel, RGB)",
        description="Score a de-raining model on a test set of rainy/clean pairs under the "
                    "paper's protocol and the whole-image protocols of later papers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", metavar="MODEL", help=options.MODEL_SOURCE_HELP)
    options.add_model(p, required=False, help="the model source, as MODEL")
    options.add_model_name(p)
    p.add_argument("--data", required=True, metavar="DIR",
                   help="test set with rainy and clean images (any supported layout), or a data "
                        "root whose test/ folder is used")
    options.add_out(p, "folder for metrics.csv and summary.json", required=True, metavar="DIR")
    p.add_argument("--protocol", nargs="+", choices=("authors", "y", "rgb"),
                   default=["authors", "y", "rgb"], help="protocols to run (default: all three)")
    p.add_argument("--crop-size", type=int, default=224,
                   help="crop size of the authors' protocol (default: 224, the paper's); images "
                        "smaller than it are left out of that protocol with a warning")
    p.add_argument("--batch-size", type=int, default=20,
                   help="crops per batch of the authors' protocol (default: 20, the paper's)")
    p.add_argument("--crop-border", type=int, default=0, metavar="N",
                   help="pixels dropped on every side before the whole-image (y and rgb) scores"
                   " (default: 0)")
    p.add_argument("--save-images", type=int, default=0, metavar="N",
                   help="also write the first N de-rained images to OUT/images/")
    options.add_jit_compile(p, default="auto")
    options.add_precision(p)
    options.add_backend(p)
    options.add_quiet(p)
    p.set_defaults(func=run)


def model_and_name(args):
    """(model source, released name). ``--model`` took the released name in 0.1: a released
    name that is not a path is still read so, with the deprecation line."""
    from menet_tf.errors import MenetError

    source, name = args.source, args.model_name
    if args.model is not None and options.is_released_name(args.model):
        options.deprecated("--model NAME", "--model-name NAME")
        name = name or args.model
    elif args.model is not None:
        if source is not None:
            raise MenetError(f"two models given: {source} and --model {args.model}")
        source = args.model
    if source is None:
        raise MenetError("no model given: MODEL (or --model SOURCE) is required")
    return source, name


def run(args):
    import sys
    import warnings

    from menet_tf.evaluation.scoring import evaluate, format_summary
    from menet_tf.infer.precision import cpu_note

    source, name = model_and_name(args)
    note = cpu_note(args.precision) if args.backend == "tensorflow" else None
    if note:
        print(note)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        summary = evaluate(source, args.data, args.out, protocols=args.protocol,
                           model_name=name, crop_size=args.crop_size,
                           batch_size=args.batch_size, border=args.crop_border,
                           save_images=args.save_images,
                           jit_compile=options.jit_compile_value(args.jit_compile),
                           precision=args.precision, backend=args.backend,
                           progress=not args.quiet)
    print(f"{summary['model']} on {summary['data']} ({summary['images']} images; scored: "
          f"{summary['split']['described']})")
    print(format_summary(summary))
    if summary.get("seconds_per_image"):
        print(f"{summary['seconds_per_image']:.3f} s per whole image on {summary['device']}"
              f" ({summary['precision']}, {summary['backend']})")
    print(f"wrote {args.out}/metrics.csv, {args.out}/summary.json")
    return 0
