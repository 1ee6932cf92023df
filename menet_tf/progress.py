"""Progress bars that suit both a terminal and a log: every bar of menet-tf is made here.

On a terminal a bar is tqdm's, redrawn in place as usual. When stderr is not a terminal (a log
file, a pipe, CI), redrawing in place would write hundreds of ``\\r`` updates into one line of
the log; there a bar prints whole lines instead: one when it starts, at most one more per 10% of
its total (per minute when the total is unknown), and its last state when it ends.
"""
import sys
import time

LOG_EVERY_SECONDS = 60.0


def bar(iterable=None, *, total=None, file=None, **options):
    """``tqdm(iterable, total=..., desc=..., unit=..., ...)`` fit for where it writes (``file``,
    default stderr): tqdm's own bar on a terminal, a few plain lines elsewhere."""
    from tqdm import tqdm

    stream = file if file is not None else sys.stderr
    if options.get("disable") or _is_terminal(stream):
        return tqdm(iterable, total=total, file=file, **options)
    options.pop("dynamic_ncols", None)
    return _log_bar_class()(iterable, total=total, file=_NoRedraws(stream), ncols=80, **options)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


class _NoRedraws:
    """The stream a log bar writes to: tqdm's carriage returns and blank redraws (a bar clearing
    itself) never reach the log."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        text = text.replace("\r", "")
        if text.strip():
            self.stream.write(text)

    def flush(self):
        getattr(self.stream, "flush", lambda: None)()


_LOG_BAR = None


def _log_bar_class():
    """tqdm with ``display`` printing a whole line only when progress has crossed another 10%
    (or a minute has passed without a total), and at the end."""
    global _LOG_BAR
    if _LOG_BAR is not None:
        return _LOG_BAR
    from tqdm import tqdm

    class LogBar(tqdm):
        _logged_mark = _logged_n = _logged_at = None
        _closing = False

        def display(self, msg=None, pos=None):
            if msg == "" and not self._closing:  # clearing: nothing was drawn in place
                return True  # (a bar closing with leave=False still logs its last state)
            now = time.monotonic()
            mark = min(10, int(10 * self.n / self.total)) if self.total else None
            if self._logged_at is None:
                due = True
            elif self._closing:
                due = self.n != self._logged_n
            elif mark is not None:
                due = mark != self._logged_mark
            else:
                due = now - self._logged_at >= LOG_EVERY_SECONDS
            if due:
                self.fp.write(self.__str__().rstrip() + "\n")
                self.fp.flush()
                self._logged_mark, self._logged_n, self._logged_at = mark, self.n, now
            return True

        def close(self):
            self._closing = True
            super().close()

    _LOG_BAR = LogBar
    return LogBar
