"""The ``menet-tf`` command line.

Each concern registers its own sub-commands (``register(subparsers)``) so this file only wires
them together. Handlers import TensorFlow lazily, which keeps ``menet-tf --help`` instant.
"""
import argparse
import contextlib
import importlib
import sys

from menet_tf.errors import MenetError
from menet_tf.tf_logging import VERBOSE_VARIABLE, quiet_tensorflow

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
    "menet_tf.cli.serve",
)

def build_parser():
    parser = argparse.ArgumentParser(
        prog="menet-tf",
        description="MENET multi-task single-image de-raining (TensorFlow 2 / Keras 3).",
        epilog=f"TensorFlow's start-up logging is hidden; --verbose (or {VERBOSE_VARIABLE}=1) "
               "shows it.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own start-up logging (CUDA probing, oneDNN)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


# Commands that stop between two items on SIGINT/SIGTERM (menet_tf.interrupts).
STOPPING_BETWEEN_ITEMS = ("evaluate", "table")


def _stopping(command):
    if command not in STOPPING_BETWEEN_ITEMS:
        return contextlib.nullcontext()
    from menet_tf import interrupts

    return interrupts.deferred()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    quiet_tensorflow(args.verbose)
    with _stopping(args.command):
        try:
            return args.func(args) or 0
        except (MenetError, FileNotFoundError) as err:
            print(f"menet-tf {args.command}: error: {err}", file=sys.stderr)
            return getattr(err, "exit_code", 1)  # an interrupted training: 130 or 143
        except OSError as err:  # an output under a file, a folder where a file must go, ...
            if not err.filename:
                raise
            print(f"menet-tf {args.command}: error: {err.filename}: {err.strerror}",
                  file=sys.stderr)
            return 1
        except KeyboardInterrupt as err:
            # Every result file is written whole or not at all (menet_tf.files): what was
            # finished before the signal is kept, the item in progress is abandoned.
            terminated = type(err).__name__ == "Terminated"
            name, code = ("SIGTERM", 143) if terminated else ("SIGINT", 130)
            print(f"menet-tf {args.command}: interrupted by {name}; nothing half-written was "
                  "left (every result file is written whole or not at all)", file=sys.stderr)
            return code


if __name__ == "__main__":
    sys.exit(main())
