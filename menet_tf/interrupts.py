"""SIGINT and SIGTERM (what Ctrl-C, Slurm, Kubernetes and ``timeout`` send) as a flag that long
work reads between two items (a training step, a test image), never an exception raised inside
TensorFlow (whose C++ code turns one raised mid-trace into an unrelated error). A second SIGINT
aborts at once. The one home of this rule for training, evaluation and tables.
"""
import contextlib
import signal
import threading

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's: 128 + the signal

_requested = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopping a command as Ctrl-C does."""


@contextlib.contextmanager
def deferred():
    """While the block runs, the first SIGINT/SIGTERM is only recorded (:func:`requested`)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be installed from the main thread
        return

    def handler(signum, frame):
        if _requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _requested.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in EXIT_CODES}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _requested.clear()


def requested():
    """The signal that asked to stop (None: none did)."""
    return _requested[0] if _requested else None


def check():
    """Between two items: stop here (abandoning the item in progress) if a signal asked to."""
    if _requested:
        raise Terminated if _requested[0] == signal.SIGTERM else KeyboardInterrupt
