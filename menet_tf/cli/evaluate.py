"""``menet-tf evaluate``: score a trained model on a paired test set (menet_tf.evaluation.scoring)."""
import argparse

EPILOG = """protocols (all by default):
  authors  the paper's numbers (= `menet-tf train`'s test scores): 10 crops of 224 per image,
           tf.image PSNR/SSIM on RGB at max 255, mean per batch of 20, then over batches
  y        whole images, Y channel of MATLAB rgb2ycbcr, Gaussian SSIM (11x11, sigma 1.5):
           how PReNet, BRN, Restormer report; --crop-border N drops N pixels per side
  rgb      whole images, PSNR/SSIM on RGB
Y scores run about 1.5 dB above RGB scores for the same outputs; compare only like with like.

writes OUT/metrics.csv (per image: every protocol's PSNR/SSIM of the output and of the rainy
input) and OUT/summary.json (per protocol its mean psnr/ssim and description, model, data,
seconds per image, device)."""


def register(sub):
    p = sub.add_parser(
        "evaluate", help="score a model on a paired test set (authors' crops, Y channel, RGB)",
        description="Score a de-raining model on a test set of rainy/clean pairs under the "
                    "paper's protocol and the whole-image protocols of later papers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL",
                   help="a run folder (with model.keras), a .keras file, or a TF1 checkpoint "
                        "prefix of the authors' released models")
    p.add_argument("--model", dest="model_name", metavar="NAME",
                   help="released model name when it cannot be read off a TF1 checkpoint "
                        "(e.g. ModelShallowNewCaEdgeGramGradBalance)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="test set with rainy and clean images (any supported layout), or a data "
                        "root whose test/ folder is used")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for metrics.csv and summary.json")
    p.add_argument("--protocol", nargs="+", choices=("authors", "y", "rgb"),
                   default=["authors", "y", "rgb"], help="protocols to run (default: all three)")
    p.add_argument("--crop-size", type=int, default=224,
                   help="crop size of the authors' protocol (default: 224, the paper's); images "
                        "smaller than it are left out of that protocol with a warning")
    p.add_argument("--batch-size", type=int, default=20,
                   help="crops per batch of the authors' protocol (default: 20, the paper's)")
    p.add_argument("--crop-border", type=int, default=0, metavar="N",
                   help="pixels dropped on every side before the Y-channel scores (default: 0)")
    p.add_argument("--save-images", type=int, default=0, metavar="N",
                   help="also write the first N de-rained images to OUT/images/")
    p.set_defaults(func=run)


def run(args):
    import sys
    import warnings

    from menet_tf.evaluation.scoring import evaluate, format_summary

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
        summary = evaluate(args.model, args.data, args.out, protocols=args.protocol,
                           model_name=args.model_name, crop_size=args.crop_size,
                           batch_size=args.batch_size, border=args.crop_border,
                           save_images=args.save_images)
    print(f"{summary['model']} on {summary['data']} ({summary['images']} images)")
    print(format_summary(summary))
    if summary.get("seconds_per_image"):
        print(f"{summary['seconds_per_image']:.3f} s per whole image on {summary['device']}")
    print(f"wrote {args.out}/metrics.csv, {args.out}/summary.json")
    return 0
