"""What a user sees on the terminal is menet-tf's own output (issue 14, point 14): TensorFlow's
C++ start-up logging (``I0000 ... oneDNN``, ``cudart_stub``, ``E0000 ... cuInit``) stays out
unless ``--verbose`` (or MENET_TF_VERBOSE) asks for it."""
import os
import re
import subprocess
import sys

from conftest import REPO

TF_LOG_LINE = re.compile(r"^[IWE]0000 |WARNING: All log messages before absl", re.M)


def _derain(tmp_path, *flags, **env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "MENET_TF_VERBOSE")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "menet_tf", *flags, "derain", str(REPO / "examples" / "cat.png"),
         "-o", str(tmp_path / "out.png"), "--quiet"],
        capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=300)


def test_derain_prints_no_tensorflow_start_up_logging(tmp_path):
    done = _derain(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not TF_LOG_LINE.search(done.stderr), done.stderr
    assert (tmp_path / "out.png").is_file()


def test_verbose_shows_tensorflow_start_up_logging(tmp_path):
    """--verbose hands the terminal back to TensorFlow, as the environment variable does."""
    assert TF_LOG_LINE.search(_derain(tmp_path, "--verbose").stderr)
    assert TF_LOG_LINE.search(_derain(tmp_path, MENET_TF_VERBOSE="1").stderr)
