"""The ``menet-tf`` command line.

Each concern registers its own sub-commands (``register(subparsers)``) so this file only wires
them together. Handlers import TensorFlow lazily, which keeps ``menet-tf --help`` instant.
"""
import argparse
import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

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
    "menet_tf.cli.serve",
)

# Set to anything but "" or "0" to see TensorFlow's start-up logging (as --verbose does).
VERBOSE_VARIABLE = "MENET_TF_VERBOSE"

# TensorFlow's C++ start-up lines: absl records ("I0000 00:00:17.. port.cc:153] ..."), absl's
# note that it is not initialised yet, and the continuation of the CPU-feature notice.
_TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages "
                          r"before absl::InitializeLog|To enable the following instructions:)")


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


@contextlib.contextmanager
def captured_stderr(into):
    """File descriptor 2 into a temporary file while the block runs; its text is appended to
    ``into`` (a list) afterwards, also when the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            into.append(captured.read().decode(errors="replace"))


@contextlib.contextmanager
def _without_tensorflow_logging():
    """Run the block with file descriptor 2 captured, then replay what it wrote minus
    TensorFlow's C++ log lines.

    Those lines are written by C++ before absl's logging is initialised, so no setting of
    ``TF_CPP_MIN_LOG_LEVEL`` stops them under TF 2.21: only the descriptor can be kept from them.
    Anything else (a Python warning, an error) is still shown, after the block.
    """
    printed = []
    try:
        with captured_stderr(printed):
            yield
    finally:
        kept = [line for line in "".join(printed).splitlines(True)
                if not _TF_LOG_LINE.match(line)]
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``tensorflow`` (whenever a command first does) with its start-up logging hidden.

    Loading TensorFlow and its first look at the devices (the CUDA probe, ``cuInit``) is where
    all the start-up lines come from; both run inside :func:`_without_tensorflow_logging`.
    Commands that never import TensorFlow do not pay for it.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # find the real module, once
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _without_tensorflow_logging():
            self._loader.exec_module(module)
            module.config.list_physical_devices()


def quiet_tensorflow(verbose=False):
    """Keep TensorFlow's start-up logging off the terminal unless asked for (see above)."""
    if verbose or os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the logging after start-up
    if "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


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
