"""The ``menet-tf`` command line.

Each concern registers its own sub-commands (``register(subparsers)``) so this file only wires
them together. Handlers import TensorFlow lazily, which keeps ``menet-tf --help`` instant.
"""
import argparse
import importlib
import os
import sys

from menet_tf.errors import MenetError

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES = (
    "menet_tf.cli.data",
    "menet_tf.cli.train",
    "menet_tf.cli.tf1",
    "menet_tf.cli.compare",
    "menet_tf.cli.evaluate",
    "menet_tf.cli.table",
    "menet_tf.cli.derain",
    "menet_tf.cli.models",
    "menet_tf.cli.export",
    "menet_tf.cli.bench",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="menet-tf",
        description="MENET multi-task single-image de-raining (TensorFlow 2 / Keras 3).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None):
    # TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) is not for CLI users.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except (MenetError, FileNotFoundError) as err:
        print(f"menet-tf {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
