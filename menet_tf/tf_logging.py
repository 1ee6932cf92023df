"""TensorFlow's C++ logging kept off the terminal: its start-up lines, and the lines a first
op of some kinds writes (e.g. oneDNN's note on float16), which no ``TF_CPP_MIN_LOG_LEVEL``
stops under TF 2.21 because they come before absl's logging is initialised.

``quiet_tensorflow`` is what every ``menet-tf`` command calls first; ``without_tensorflow_logging``
is for library code that runs such an op first (the bench's float16 peak).
"""
import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# Set to anything but "" or "0" to see TensorFlow's start-up logging (as --verbose does).
VERBOSE_VARIABLE = "MENET_TF_VERBOSE"

# TensorFlow's C++ start-up lines: absl records ("I0000 00:00:17.. port.cc:153] ..."), absl's
# note that it is not initialised yet, and the continuation of the CPU-feature notice.
_TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\S+\s+\d+ \S+:\d+\]|WARNING: All log messages "
                          r"before absl::InitializeLog|To enable the following instructions:)")


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
def without_tensorflow_logging():
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
    all the start-up lines come from; both run inside :func:`without_tensorflow_logging`.
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
        with without_tensorflow_logging():
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
