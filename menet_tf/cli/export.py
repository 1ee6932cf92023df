"""``menet-tf export``: a trained model as a SavedModel (TF Serving) or a TFLite file.

The SavedModel takes a batch of float32 (serving_default) or uint8 (serve_uint8) images of any
height and width in 0..255 and returns the de-rained images of the same size (padding happens
inside the graph); load it with tf.saved_model.load, serve it with TF Serving, or run it with
`menet-tf derain --model DIR`. TFLite needs a fixed input size (--size H W): float32, or
--quantize dynamic for int8 weights (about 4x smaller).
"""
from menet_tf.cli import options
from menet_tf.errors import MenetError

SOURCE_HELP = ("a bundled model's name, run folder (model.keras), .keras file, or the authors' TF1"
               " checkpoint prefix or folder")


def register(sub):
    p = sub.add_parser(
        "export",
        help="export a trained model to a SavedModel or TFLite file for deployment",
        description=__doc__.replace("`", ""),
    )
    p.add_argument("source", nargs="?", metavar="MODEL", help=f"{SOURCE_HELP} (or --model)")
    options.add_model(p, required=False, help=f"the same as MODEL: {SOURCE_HELP}")
    options.add_out(p, "output folder (SavedModel; for tflite model.tflite goes inside) or a"
                    " .tflite file name", required=True)
    p.add_argument("--format", choices=("savedmodel", "tflite"), default="savedmodel",
                   help="savedmodel (default) or tflite")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="TFLite input height and width (any size; padding is inside the model);"
                   " required for tflite")
    p.add_argument("--quantize", choices=("dynamic",), default=None,
                   help="TFLite dynamic-range quantisation (int8 weights, float activations)")
    options.add_model_name(p)
    p.add_argument("--no-fold", action="store_true",
                   help="keep batch norm as separate ops (default: folded into the convs)")
    p.add_argument("--force", action="store_true", help="replace an existing export")
    p.set_defaults(func=export)


def _source(args):
    """The model to export: MODEL or --model, exactly one of them."""
    if (args.source is None) == (args.model is None):
        raise MenetError("give the model to export once: menet-tf export MODEL or --model MODEL")
    return args.source or args.model


def _check_format(args):
    if args.format == "tflite" and args.size is None:
        raise MenetError("--format tflite needs a fixed input size: --size H W (e.g. 512 512)")
    if args.format == "savedmodel" and (args.size or args.quantize):
        raise MenetError("--size and --quantize apply to --format tflite only")


def export(args):
    source = _source(args)
    _check_format(args)
    import os

    from menet_tf.infer import export as export_lib
    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.load import load_model

    derainer = Derainer(load_model(source, args.model_name),
                        fold_batch_norm=not args.no_fold, jit_compile=False)
    if args.format == "savedmodel":
        path = export_lib.export_saved_model(derainer, args.out, force=args.force)
        print(f"wrote SavedModel {path} (signatures serving_default: float32, serve_uint8:"
              " uint8; any size)")
    else:
        path = export_lib.export_tflite(derainer, args.out, args.size, args.quantize,
                                        force=args.force)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, input [1, {args.size[0]},"
              f" {args.size[1]}, 3] float32 0..255"
              + (", dynamic-range quantised)" if args.quantize else ")"))
    return 0
