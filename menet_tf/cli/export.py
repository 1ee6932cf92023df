"""``menet-tf export``: a trained model as a SavedModel (TF Serving), a TFLite file or an
OpenVINO IR.

The SavedModel takes a batch of float32 (serving_default) or uint8 (serve_uint8) images of any
height and width in 0..255 and returns the de-rained images of the same size (padding happens
inside the graph); load it with tf.saved_model.load, serve it with TF Serving, or run it with
`menet-tf derain --model DIR`. TFLite needs a fixed input size (--size H W): float32, or
--quantize dynamic for int8 weights (about 4x smaller). OpenVINO (`pip install
menet-tf[openvino]`): model.xml + model.bin, float32 images of any size; run it with `menet-tf
derain --model DIR/model.xml --backend openvino`; --precision bf16/fp16 stores float16 weights.
"""
from menet_tf.cli import options
from menet_tf.errors import MenetError

SOURCE_HELP = ("a bundled model's name, run folder (model.keras), .keras file, or the authors' TF1"
               " checkpoint prefix or folder")


FORMATS = ("savedmodel", "tflite", "openvino")


def register(sub):
    p = sub.add_parser(
        "export",
        help="export a trained model to a SavedModel, TFLite file or OpenVINO IR for deployment",
        description=__doc__.replace("`", ""),
    )
    p.add_argument("source", nargs="?", metavar="MODEL",
                   help=f"{SOURCE_HELP} (or --model; default: the bundled default model)")
    options.add_model(p, required=False, help=f"the same as MODEL: {SOURCE_HELP}")
    options.add_out(p, "output folder (SavedModel; for tflite model.tflite, for openvino"
                    " model.xml and model.bin go inside), a .tflite or an .xml file name",
                    required=True)
    p.add_argument("--format", choices=FORMATS, default="savedmodel",
                   help="savedmodel (default), tflite or openvino (OpenVINO IR, needs the"
                   " openvino extra)")
    options.add_precision(p)
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
    """The model to export: MODEL or --model (not both), else the bundled default."""
    if args.source is not None and args.model is not None:
        raise MenetError("give the model to export once: menet-tf export MODEL or --model MODEL")
    return options.model_or_default(args.source or args.model)


def _check_format(args):
    if args.format == "tflite" and args.size is None:
        raise MenetError("--format tflite needs a fixed input size: --size H W (e.g. 512 512)")
    if args.format != "tflite" and (args.size or args.quantize):
        raise MenetError("--size and --quantize apply to --format tflite only")
    if args.format == "tflite" and args.quantize and args.precision != "fp32":
        raise MenetError("--quantize dynamic and --precision apply one at a time")


def export(args):
    source = _source(args)
    _check_format(args)
    import os

    from menet_tf.infer import export as export_lib
    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.load import load_model

    model = load_model(source, args.model_name)
    if args.format == "openvino":  # converted from the float32 graph; precision is OpenVINO's
        derainer = Derainer(model, fold_batch_norm=not args.no_fold, jit_compile=False)
        path = export_lib.export_openvino(derainer, args.out, args.precision, force=args.force)
        print(f"wrote OpenVINO IR {path} (+ .bin; float32 images [N, H, W, 3] 0..255, any size;"
              f" {'float32' if args.precision == 'fp32' else 'float16'} weights)")
        return 0
    derainer = Derainer(model, fold_batch_norm=not args.no_fold, jit_compile=False,
                        precision=args.precision)
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
