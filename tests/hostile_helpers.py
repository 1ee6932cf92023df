"""Running the `menet-tf` command as a user would, and reading what it printed.

The error contract (docs/reliability.md): a bad input ends with a non-zero exit and ONE line on
stderr that names the file or the flag, never a traceback. What a command said on stdout before it
met the problem (the model it loaded, the run it started) is not part of the error. Left out of
stderr here, as not menet-tf's message: TensorFlow's C++ start-up lines, argparse's usage block
(printed above its one `error:` line) and progress bars.
"""
import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

# Lines TensorFlow's C++ runtime prints at start-up (absl logging), not menet-tf's output.
TF_STARTUP = ("I0000", "W0000", "E0000", "WARNING: All log messages")


# A tqdm progress bar line: "  40%|####      | 2/5 [...]".
PROGRESS_BAR = re.compile(r"\d+%\|")


def run_cli(args, cwd=None, timeout=300, unprivileged=False):
    """(exit status, stdout, stderr) of `menet-tf ARGS` run in a subprocess; ``unprivileged``:
    as the user nobody when this process is root (whom chmod does not stop), see
    ``open_scratch``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    prefix = []
    if unprivileged and os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        env["HOME"] = tempfile.gettempdir()  # nobody's own home does not exist
    done = subprocess.run([*prefix, sys.executable, "-m", "menet_tf", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


@contextlib.contextmanager
def open_scratch():
    """A fresh folder that any user may read and enter (pytest's tmp_path is root's alone), for
    files a command run as nobody must read; removed afterwards."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="menet-unprivileged-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        for path in folder.rglob("*"):
            if path.is_dir():
                path.chmod(0o700)
        shutil.rmtree(folder)


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
