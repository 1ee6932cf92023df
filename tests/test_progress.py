"""Progress bars that suit a log (menet_tf.progress): tqdm's bar on a terminal; elsewhere whole
lines, no carriage return, at most one line per 10% of the work (and the start and end)."""
import io
import os
import subprocess
import sys

import pytest

from menet_tf import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _lines(text):
    return [line for line in text.split("\n") if line]


def test_in_a_log_a_bar_writes_a_line_per_tenth_and_no_carriage_return():
    log = io.StringIO()
    bar = progress.bar(total=1000, desc="work", unit="item", file=log, mininterval=0)
    for i in range(1000):
        bar.update(1)
        bar.set_postfix(step=i)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = _lines(text)
    # the start, one per 10% (10 of them, the last at 100%): counted by hand
    assert len(lines) == 11, lines
    assert lines[0].startswith("work:   0%") and lines[-1].startswith("work: 100%")
    assert all(line.startswith("work:") for line in lines)


def test_in_a_log_a_bar_that_clears_itself_leaves_its_last_line_only():
    log = io.StringIO()
    for _ in progress.bar(range(3), desc="short", leave=False, file=log):
        pass
    assert "\r" not in log.getvalue()
    assert _lines(log.getvalue())[-1].startswith("short: 100%")


def test_without_a_total_a_log_gets_the_start_and_the_end():
    log = io.StringIO()
    for _ in progress.bar(iter(range(500)), desc="frames", file=log, mininterval=0):
        pass
    lines = _lines(log.getvalue())
    assert len(lines) == 2 and "500" in lines[-1] and "\r" not in log.getvalue()


def test_on_a_terminal_the_bar_is_redrawn_in_place_as_before():
    tty = _Terminal()
    bar = progress.bar(total=50, desc="work", file=tty, mininterval=0)
    for _ in range(50):
        bar.update(1)
    bar.close()
    assert tty.getvalue().count("\r") >= 10


def test_disabled_writes_nothing():
    log = io.StringIO()
    for _ in progress.bar(range(10), file=log, disable=True):
        pass
    assert log.getvalue() == ""


@pytest.mark.slow
def test_synth_and_evaluate_with_stderr_to_a_file_write_no_carriage_return(tmp_path):
    """`menet-tf synth` then `menet-tf evaluate` with stderr to a file, as in a job's log."""
    from menet_tf.bundled.registry import default_name

    env = {k: v for k, v in os.environ.items() if not k.startswith("MENET_")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    commands = {
        "synth": ["synth", "--preset", "light", "--count", "2", "--test-count", "12",
                  "--size", "48x40", "-o", str(tmp_path / "data")],
        "evaluate": ["evaluate", default_name(), "--data", str(tmp_path / "data"), "-o", str(tmp_path / "eval"),
                     "--protocol", "authors", "y", "--crop-size", "32", "--batch-size", "4"],
    }
    for name, argv in commands.items():
        log = tmp_path / f"{name}.log"
        with open(log, "w") as err:
            done = subprocess.run([sys.executable, "-m", "menet_tf", *argv], stdout=subprocess.PIPE,
                                  stderr=err, env=env, cwd=tmp_path, timeout=600)
        text = log.read_text()
        assert done.returncode == 0, text
        assert "\r" not in text, f"{name} wrote carriage returns into its log:\n{text!r}"
        assert "%|" in text, f"{name} logged no progress at all:\n{text}"  # the lines are there
        assert len([line for line in text.splitlines() if "%|" in line]) <= 30, text
