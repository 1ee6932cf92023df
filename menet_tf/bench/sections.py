"""A check in sections under a time budget (``make gpu-check``): each section runs in its own
try/except, so one failure is recorded in one line and the next section still runs; a section
the budget leaves no room for is recorded as skipped."""
import time
import traceback

from menet_tf.machine import one_line


class Budget:
    """Seconds left before the check must end."""

    def __init__(self, seconds):
        self.seconds, self.start = float(seconds), time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def left(self):
        return self.seconds - self.elapsed()


class SkipSection(Exception):
    """The time budget leaves no room for this section."""


def run_section(name, fn, result, budget, needs=0.0):
    """``result["sections"][name]`` = {"ok", "seconds", "error", ...what ``fn(failures)``
    returned}.

    ``fn`` appends partial failures (one contender's error) to ``failures``: the section is then
    not ok, and the rest of its figures still count. An exception ends the section and is
    recorded as ``error``. ``needs``: seconds of budget below which the section is skipped."""
    print(f"gpu-check: {name} ...", flush=True)
    t0 = time.perf_counter()
    entry = {"ok": False, "seconds": None, "error": None}
    try:
        if budget.left() < needs:
            raise SkipSection(f"time budget: {budget.left():.0f} s left, the section needs"
                              f" {needs:.0f} s")
        failures = []
        out = fn(failures)
        entry.update(out)
        if failures:
            entry["failures"] = failures
        entry["ok"] = not entry.get("failures")
    except SkipSection as err:
        entry.update(ok=None, not_run=str(err))
    except Exception as err:  # noqa: BLE001 - recorded, and the next section still runs
        entry["error"] = one_line(err)
        # Where it was raised (the frames; the message is "error"), for whoever reads the JSON.
        frames = "".join(traceback.format_tb(err.__traceback__))
        entry["traceback"] = frames.strip().splitlines()[-6:]
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    result["sections"][name] = entry
    state = {True: "ok", False: "FAILED", None: "skipped"}[entry["ok"]]
    detail = entry.get("error") or entry.get("not_run") or "; ".join(entry.get("failures") or [])
    print(f"gpu-check: {name} {state} ({entry['seconds']:.1f} s)"
          + (f": {detail}" if detail else ""), flush=True)
    return entry


def attempt(failures, what, fn):
    """``fn()``, or None with ``what: error`` added to ``failures``."""
    try:
        return fn()
    except SkipSection:
        raise
    except Exception as err:  # noqa: BLE001 - one contender's failure, recorded
        failures.append(f"{what}: {one_line(err)}")
        return None


def timed(fn):
    """(``fn()``, its wall seconds rounded to ms)."""
    t0 = time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - t0, 3)


def figure(summary):
    """The keys of ``timing.summarize`` worth keeping."""
    keep = ("median_s", "min_s", "max_s", "spread", "cpu_median_s", "per_item_s", "items", "runs_s")
    return {k: summary[k] for k in keep}


def speedup(slow, fast):
    """How many times faster ``fast`` is than ``slow`` (two ``timing.summarize`` results)."""
    return round(slow["median_s"] / fast["median_s"], 3)
