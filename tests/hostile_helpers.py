"""Running the `menet-tf` command as a user would, and reading what it printed.

The error contract (docs/reliability.md): a bad input ends with a non-zero exit and ONE line on
stderr that names the file or the flag, never a traceback. What a command said on stdout before it
met the problem (the model it loaded, the run it started) is not part of the error. Left out of
stderr here, as not menet-tf's message: TensorFlow's C++ start-up lines, argparse's usage block
(printed above its one `error:` line) and progress bars.
"""
import os
import re
import subprocess
import sys

# Lines TensorFlow's C++ runtime prints at start-up (absl logging), not menet-tf's output.
TF_STARTUP = ("I0000", "W0000", "E0000", "WARNING: All log messages")


# A tqdm progress bar line: "  40%|####      | 2/5 [...]".
PROGRESS_BAR = re.compile(r"\d+%\|")


def run_cli(args, cwd=None, timeout=300):
    """(exit status, stdout, stderr) of `menet-tf ARGS` run in a subprocess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, "-m", "menet_tf", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def own_lines(stderr):
    """menet-tf's own non-empty lines of STDERR: not TF's start-up lines, usage, progress bars."""
    lines, in_usage = [], False
    for line in stderr.replace("\r", "\n").splitlines():
        if not line.strip() or line.startswith(TF_STARTUP) or PROGRESS_BAR.search(line):
            continue
        if line.startswith("usage: "):
            in_usage = True
        if in_usage and not (line.startswith("menet-tf") and ": error:" in line):
            continue
        in_usage = False
        lines.append(line)
    return lines
