"""``menet-tf derain``: de-rain photos of any size with a trained model.

Reads files, folders (``--recursive`` for sub-folders) or glob patterns (JPEG, PNG, BMP, TIFF,
WebP), writes each de-rained image under OUT with its own name (PNG unless ``--format``), and a
summary ``derain.json`` (what ran, failures, seconds per megapixel) when OUT is a folder.
Without ``--model`` the bundled default model is used (``menet-tf models`` lists them), and one
line says which. Sizes the network cannot take directly are handled by ``--mode``: pad (reflection
pad and crop, exact), resize (the authors' released script: bicubic to multiples of 16 and back)
or tile (overlapping tiles, automatic above ``--max-pixels``). ``--clean-dir`` scores each output
that has a clean image of the same name there (PSNR, whole-image RGB) beside its rainy input.
``--precision bf16`` runs the network in bfloat16 (batch norm folded, weights cast once, output
float32): faster on CPUs with AVX512_BF16 or AMX, and one line says when this CPU has neither.
Video files (mp4, mov, mkv, avi, webm, m4v; the extra menet-tf[video]) are de-rained frame by
frame into a clip of the same container (or --format mp4|mkv|webm; H.264 at --crf, VP9 in webm)
keeping every frame's timestamp, the rotation, colour tags and the audio, copied unencoded.

Examples: menet-tf derain photo.jpg -o out/ (the bundled model); menet-tf derain photos/ -o
derained/ --model runs/MENET-GB --compare; menet-tf derain clip.mp4 -o clip-derained.mp4.
"""
import os

from menet_tf.cli import options
from menet_tf.errors import MenetError


def register(sub):
    p = sub.add_parser(
        "derain",
        help="de-rain photos and videos (files, folders, globs) with a trained model",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image or video files (mp4, mov, mkv, avi, webm, m4v), folders or glob"
                   " patterns (quote globs)")
    options.add_out(p, "output folder (or an output file name for a single input)",
                    required=True)
    options.add_model(p, required=False,
                      help=options.MODEL_SOURCE_HELP + " (default: the bundled default model)")
    options.add_model_name(p)
    p.add_argument("--clean-dir", metavar="DIR", default=None,
                   help="folder of clean images: each output whose input has a clean image of"
                   " the same name there (any image extension) is scored, PSNR over RGB at max"
                   " 255, beside its rainy input; printed and recorded in derain.json")
    p.add_argument("--mode", choices=("pad", "resize", "tile"), default="pad",
                   help="pad: reflection-pad to the model's multiple and crop back (default,"
                   " exact size, no resampling); resize: the released script's bicubic resize"
                   " to multiples of 16 and back; tile: overlapping blended tiles")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--format", default="png",
                   choices=("png", "jpg", "webp", "bmp", "tiff", "same", "mp4", "mkv", "webm"),
                   help="output format of photos (default png; 'same' keeps each input's"
                   " format) or of videos (mp4, mkv: H.264; webm: VP9; default: the clip's own"
                   " container, AVI becoming mp4)")
    p.add_argument("--crf", type=int, default=None,
                   help="videos: the encoder's constant quality, lower is better (default 17"
                   " for H.264, x264's visually lossless point; 20 for VP9)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--compare", action="store_true",
                   help="also write <name>_compare.<ext>: rainy | de-rained side by side")
    p.add_argument("--batch-size", type=int, default=4,
                   help="images (or tiles, or a clip's frames) of the same size run together"
                   " (default 4)")
    p.add_argument("--max-pixels", type=float, default=None,
                   help="tile images larger than this many pixels (default: 8e6 with a GPU,"
                   " 16e6 on a CPU; about 105 MB of memory per megapixel untiled)")
    p.add_argument("--tile-size", type=int, default=512, help="tile side in pixels (512)")
    p.add_argument("--overlap", type=int, default=128,
                   help="tile overlap in pixels (128; smaller overlaps show seams)")
    p.add_argument("--no-fold", action="store_true",
                   help="do not fold batch norm into the convolutions (runs the"
                   " model's own BN ops; folding changes outputs by ~1e-4 on 0..255)")
    options.add_jit_compile(p, default="auto", old=("--jit",))
    options.add_precision(p)
    options.add_backend(p)
    options.add_quiet(p)
    p.set_defaults(func=derain)


def _check_sizes(args):
    if args.batch_size < 1:
        raise MenetError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.tile_size < 16 or args.overlap < 0 or args.overlap >= args.tile_size:
        raise MenetError(f"need --tile-size >= 16 and 0 <= --overlap < --tile-size, got"
                         f" {args.tile_size} and {args.overlap}")


def _print_scores(psnr):
    """One line per scored image (rainy input -> output, against its clean image), and the mean."""
    for image in psnr["images"]:
        gain = image["output_psnr"] - image["input_psnr"]
        print(f"  {os.path.basename(image['output'])}: PSNR {image['output_psnr']:.2f} dB"
              f" (rainy input {image['input_psnr']:.2f} dB, {gain:+.2f} dB) against"
              f" {image['clean']}")
    if len(psnr["images"]) > 1:
        print(f"  mean of {len(psnr['images'])}: {psnr['mean_output_psnr']:.2f} dB (rainy input"
              f" {psnr['mean_input_psnr']:.2f} dB)")
    if not psnr["images"]:
        print(f"  no input has a clean image of the same name in {psnr['clean_dir']}:"
              " nothing scored")


def _refuse_record(args):
    """derain.json is an output like the images: an earlier run's record is kept unless --force."""
    record = os.path.join(args.out, "derain.json")
    if os.path.exists(record) and not args.force:
        raise MenetError(f"would overwrite {record} (an earlier run's record); use --force to"
                         " replace it, or another -o folder")


def _write_record(args, derainer, summary):
    """derain.json in the output folder: what ran on which files, and what failed."""
    from menet_tf.files import write_json

    record = dict(summary, model=os.fspath(args.model), inputs=list(args.inputs),
                  fold_batch_norm=not args.no_fold, jit_compile=derainer.jit_compile,
                  precision=getattr(derainer, "precision", args.precision), backend=args.backend,
                  failed=[{"file": f, "error": e} for f, e in summary["failed"]])
    write_json(os.path.join(args.out, "derain.json"), record)


def _plan_videos(args):
    """(photo inputs, videos, their targets): the videos among the inputs, with their outputs
    checked (an input, an existing file without --force) before anything runs."""
    from menet_tf.infer import video_files, video_io

    photo_inputs, videos = video_files.split_inputs(args.inputs, args.recursive)
    if not videos:
        return args.inputs, [], []
    video_io.import_av()  # without the extra: one line saying how to install it
    if args.compare or args.clean_dir:
        print("note: --compare and --clean-dir apply to photos; clips are de-rained without"
              " them")
    fmt = args.format if args.format in video_io.VIDEO_FORMATS else "same"
    targets = video_files.output_paths(videos, os.fspath(args.out), fmt)
    video_files.refuse(videos, targets, args.force)
    return photo_inputs, videos, targets


def _derain_videos(args, derainer, videos, targets):
    from menet_tf.infer.video_files import derain_videos

    summary = derain_videos(
        derainer, videos, targets, progress=not args.quiet, mode=args.mode,
        batch_size=args.batch_size, max_pixels=int(args.max_pixels) if args.max_pixels
        else "auto", tile_size=args.tile_size, overlap=args.overlap, crf=args.crf)
    frames = sum(c["frames"] for c in summary["clips"])
    seconds = sum(c["seconds"] for c in summary["clips"])
    print(f"de-rained {len(summary['written'])} of {summary['videos']} videos into {args.out}"
          + (f" ({frames} frames, {frames / seconds:.1f} frames/s)" if frames else ""))
    return summary


def _photo_summary(args, derainer, photo_inputs):
    from menet_tf.infer.batch import derain_files

    if not photo_inputs:
        return {"images": 0, "written": [], "failed": [], "megapixels": 0.0,
                "network_seconds": 0.0, "seconds_per_megapixel": None, "mode": args.mode,
                "psnr": None}
    summary = derain_files(
        derainer, photo_inputs, args.out, recursive=args.recursive, mode=args.mode,
        fmt=args.format if args.format not in ("mp4", "mkv", "webm") else "png",
        force=args.force, compare=args.compare, batch_size=args.batch_size,
        max_pixels=int(args.max_pixels) if args.max_pixels else "auto",
        tile_size=args.tile_size, overlap=args.overlap, clean_dir=args.clean_dir,
        progress=not args.quiet)
    done = len(summary["written"])
    spm = summary["seconds_per_megapixel"]
    print(f"de-rained {done} of {summary['images']} images into {args.out}"
          + (f" ({summary['megapixels']:.2f} MP, {spm:.3f} s per megapixel)" if spm else ""))
    if summary["psnr"] is not None:
        _print_scores(summary["psnr"])
    return summary


def derain(args):
    from menet_tf.infer.load import load_derainer
    from menet_tf.infer.precision import cpu_note

    _check_sizes(args)
    _refuse_record(args)
    photo_inputs, videos, targets = _plan_videos(args)
    args.model = options.model_or_default(args.model)
    note = cpu_note(args.precision) if args.backend == "tensorflow" else None
    if note:
        print(note)
    derainer = load_derainer(args.model, args.model_name, fold_batch_norm=not args.no_fold,
                             jit_compile=options.jit_compile_value(args.jit_compile),
                             precision=args.precision, backend=args.backend)
    summary = _photo_summary(args, derainer, photo_inputs)
    if videos:
        clips = _derain_videos(args, derainer, videos, targets)
        summary = dict(summary, videos=clips["clips"],
                       failed=summary["failed"] + clips["failed"])
    if os.path.isdir(args.out):
        _write_record(args, derainer, summary)
    if summary["failed"]:
        print(f"{len(summary['failed'])} file(s) failed:")
        for _, message in summary["failed"]:
            print(f"  {message}")
        return 1
    return 0
