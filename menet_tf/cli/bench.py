"""``menet-tf bench``: speed of menet-tf, optionally side by side with the authors' TF1 graph."""
import argparse
import os

from menet_tf.cli import options

DESCRIPTION = """\
Time menet-tf on this machine: inference seconds per image (224x224 at batch 1 and 20, one
481x321 image), training seconds per step (batch 20 of 224x224, MENET-GB and the MSE-only
model), input-pipeline crops/s and peak memory. Every figure is the median of several
repetitions, with its spread, wall-clock and process CPU time.

The roofline: the same run measures this machine's practical peak in each precision (a
2048x2048 matrix product and a 64-to-64 3x3 convolution at MENET's block shape, [20, 56, 56,
64]) and prints beside every timing the network's achieved GFLOP/s (FLOPs counted from the
model's traced graph: forward pass, or training step with its backward pass and losses) and
its share of the peak of the precision it ran in.

--precision sets the port's inference precision and its training step's (bf16: mixed
precision, variables float32, as `menet-tf train --precision bf16`); --backend openvino runs the port's inference through OpenVINO. The
authors' graph is always float32.

With --authors DIR (a folder of the authors' released .meta graphs) the authors' MENET-GB graph
is timed in the same process, interleaved with the port (port, authors, port, authors, ...),
and the speed-ups (authors' time / port's time) are printed: this is how every speed claim in
the README is made. On a busy shared machine prefer the CPU-time ratio, and re-run on a quiet one.
"""

EXAMPLES = """\
examples:
  menet-tf bench --authors ../shared/reference/authors_graphs --out bench.json
  menet-tf bench --quick                      # small sizes, about a minute
  menet-tf bench --jit-compile on             # force XLA (default: what this device runs best)
  menet-tf bench --authors ../shared/reference/authors_graphs --precision bf16 --no-training
  menet-tf bench --authors DIR --backend openvino --precision bf16 --no-training --repeats 5
"""


def register(sub):
    p = sub.add_parser(
        "bench",
        help="time inference, training steps and the input pipeline (vs the authors' graph)",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--authors", metavar="DIR",
                   help="folder of the authors' released graphs (e.g."
                   " ../shared/reference/authors_graphs), timed interleaved with the port")
    options.add_out(p, "also write every figure, the machine and the settings to this JSON file"
                    " (default: none, the table is printed)", metavar="FILE.json")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing --out file (refused otherwise, before timing)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes (64x64, batch 2-4) and 2 repetitions: a first look, not a claim")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed rounds per measurement (default: 5, 2 with --quick)")
    options.add_jit_compile(p, default="auto",
                            help="XLA for the port's training step and inference (default: auto ="
                            " the library default on this device)")
    options.add_precision(p)  # also takes the old float32/mixed_* spellings, with a notice
    options.add_backend(p)
    p.add_argument("--conv-gradient", default="auto", choices=("auto", "native", "convolution"),
                   help="how the port differentiates its convolutions: TensorFlow's backprop"
                   " kernels (native) or forward convolutions (default auto: forward convolutions"
                   " on CPUs without oneDNN)")
    p.add_argument("--data", metavar="DIR",
                   help="training set for the input-pipeline figure (default: the synthetic set)")
    p.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                   help="skip the input-pipeline measurement")
    p.add_argument("--no-training", dest="training", action="store_false",
                   help="skip the training steps (inference, e.g. to compare precisions or"
                   " backends)")
    p.add_argument("--no-roofline", dest="roofline", action="store_false",
                   help="skip the practical peaks and the GFLOP/s columns")
    options.add_quiet(p, old=("--no-progress",))
    p.set_defaults(func=run)


def _command(args):
    """The command line that reproduces this run (recorded in the JSON)."""
    parts = ["menet-tf", "bench"]
    if args.authors:
        parts += ["--authors", args.authors]
    if args.quick:
        parts.append("--quick")
    if args.repeats:
        parts += ["--repeats", str(args.repeats)]
    if args.jit_compile != "auto":
        parts += ["--jit-compile", args.jit_compile]
    if args.precision != "fp32":
        parts += ["--precision", args.precision]
    if args.backend != "tensorflow":
        parts += ["--backend", args.backend]
    if args.conv_gradient != "auto":
        parts += ["--conv-gradient", args.conv_gradient]
    if args.data:
        parts += ["--data", args.data]
    if not args.pipeline:
        parts.append("--no-pipeline")
    if not args.training:
        parts.append("--no-training")
    if not args.roofline:
        parts.append("--no-roofline")
    if args.out:
        parts += ["--out", args.out]
    return " ".join(parts)


def run(args):
    from menet_tf.bench import speed
    from menet_tf.bench.report import format_table, write_json
    from menet_tf.errors import ConfigError

    if args.authors is not None and not os.path.isdir(args.authors):
        raise ConfigError(f"{args.authors}: no such folder (--authors wants the folder of the"
                          " authors' released .meta graphs)")
    if args.data is not None and not os.path.isdir(args.data):
        raise ConfigError(f"{args.data}: no such folder (--data)")
    if args.out and os.path.exists(args.out) and not args.force:
        raise ConfigError(f"{args.out}: exists (an earlier bench's figures?); pass --force to"
                          " overwrite it")
    result = speed.run_bench(
        authors_dir=args.authors, quick=args.quick, repeats=args.repeats,
        jit_compile=options.jit_compile_value(args.jit_compile), precision=args.precision,
        data=args.data, pipeline=args.pipeline, progress=not args.quiet, command=_command(args),
        conv_gradient=args.conv_gradient, backend=args.backend, training=args.training,
        roofline=args.roofline,
    )
    print(format_table(result))
    if args.out:  # only where asked: a bench never drops files into the current folder
        print(f"wrote {write_json(result, args.out)}")
    return 0
