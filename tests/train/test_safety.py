"""What `menet-tf train` must never do to a user's files, and how it stops (issue 14).

A run deletes only what it created (its cache has its own name; a user's ``.cache`` survives
``--out ~``); a folder holding files that are not a run is refused unless ``--force``; bad
sizes and lengths are refused in one line before anything is built or written; SIGINT and
SIGTERM in the middle of an epoch save the state, and the same command then finishes the run;
resuming notices a training folder whose files changed.
"""
import json
import os
import signal
import subprocess
import sys

import pytest
from PIL import Image

from menet_tf.cli.main import main
from menet_tf.data import synthesize

TINY = ["--config", "ModelShallowNewEdgeLossBalance", "--crop-size", "32", "--batch-size", "8",
        "--depth", "1", "--jit-compile", "off", "--quiet"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    synthesize(str(root), preset="light", seed=0, count=4, test_count=2, progress=False)
    return root


def train(tiny_set, out, *extra):
    return main(["train", "--data", str(tiny_set), "--out", str(out), *TINY, *extra])


def one_line_error(capsys):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err + captured.out
    assert len(lines) == 1, captured.err
    return lines[0]


# -- point 1 and 4: a user's files -------------------------------------------------------------

def test_a_users_folder_is_refused_and_its_cache_survives_force(tiny_set, tmp_path, capsys):
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (home / ".cache" / "keep.txt").write_text("mine")
    (home / "notes.txt").write_text("mine too")
    assert train(tiny_set, home, "--epochs", "1") == 1
    assert "not a run" in one_line_error(capsys)
    assert sorted(os.listdir(home)) == [".cache", "notes.txt"]
    # --force: the run goes in, with its own cache, and only the run's files are written.
    assert train(tiny_set, home, "--epochs", "1", "--force", "--cache") == 0
    assert (home / ".cache" / "keep.txt").read_text() == "mine"
    assert (home / "notes.txt").read_text() == "mine too"
    record = json.loads((home / "run.json").read_text())
    assert record["cache"] == ".menet-train-cache"
    assert not (home / ".menet-train-cache").exists()  # created by the run, removed by it


@pytest.mark.parametrize("name", ["config.json", "curves.png", "run.json", "eval.json"])
def test_a_users_own_run_file_names_are_not_overwritten(tiny_set, tmp_path, capsys, name):
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text('{"mine": true}')
    assert train(tiny_set, out, "--epochs", "1") == 1
    assert "not a run" in one_line_error(capsys)
    assert (out / name).read_text() == '{"mine": true}'
    assert os.listdir(out) == [name]


def test_a_cache_folder_the_run_did_not_create_is_not_deleted(tmp_path):
    from menet_tf.train.loop import CACHE_DIR, _remove_cache

    (tmp_path / CACHE_DIR).mkdir()
    (tmp_path / CACHE_DIR / "x").write_text("someone's")
    _remove_cache(str(tmp_path), created=False, chief=True)
    assert (tmp_path / CACHE_DIR / "x").exists()


# -- point 5: only the chief deletes ----------------------------------------------------------

def test_only_the_chief_cleans_the_shared_run_folder(tmp_path):
    from menet_tf.train.loop import CACHE_DIR, _remove_cache
    from menet_tf.train.run import _prepare_run_folder

    (tmp_path / "state.npz").write_text("the chief's")
    (tmp_path / ".state.npz.partial").write_text("the chief's, being written")
    (tmp_path / CACHE_DIR).mkdir()
    _prepare_run_folder(str(tmp_path), "restart", chief=False)
    _remove_cache(str(tmp_path), created=True, chief=False)
    assert sorted(os.listdir(tmp_path)) == sorted([".state.npz.partial", "state.npz", CACHE_DIR])


# -- point 10: bad sizes and lengths ------------------------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--batch-size", "0"], "batch size"), (["--batch-size", "-3"], "batch size"),
    (["--epochs", "0"], "epochs"), (["--steps", "0"], "steps"),
    (["--crop-size", "7"], "multiple of 4"), (["--save-every-steps", "0"], "save-every-steps"),
])
def test_bad_sizes_are_one_line_and_leave_no_folder(tiny_set, tmp_path, capsys, flags, words):
    out = tmp_path / "run"
    assert train(tiny_set, out, *flags) == 1
    assert words in one_line_error(capsys)
    assert not out.exists()


def test_crop_size_must_be_a_multiple_of_16_with_attention(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_set), "--out", str(out), "--config", "ModelShallowNewCa",
                 "--crop-size", "36", "--epochs", "1", "--quiet"]) == 1
    assert "multiple of 16" in one_line_error(capsys)
    assert not out.exists()


# -- point 13: changed data --------------------------------------------------------------------

def test_resuming_refuses_a_training_folder_that_changed(tiny_set, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_set, data)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), *TINY]
    assert main([*args, "--epochs", "1"]) == 0
    capsys.readouterr()
    image = sorted(p for p in (data / "train").rglob("*.png"))[0]
    Image.new("RGB", Image.open(image).size, (9, 9, 9)).save(image)  # same name, other size
    assert main([*args, "--epochs", "2"]) == 1
    line = one_line_error(capsys)
    assert "changed" in line and image.name in line and "--accept-data-change" in line
    assert main([*args, "--epochs", "2", "--accept-data-change"]) == 0


# -- point 6: SIGINT and SIGTERM ---------------------------------------------------------------

PER_EPOCH = 40  # 4 pairs x 10 crops / batch 1


def signalled_run(tiny_set, out, sig):
    cmd = [sys.executable, "-m", "menet_tf.cli.main", "train", "--data", str(tiny_set), "--out",
           str(out), "--config", "ModelShallowNewEdgeLossBalance", "--crop-size", "32",
           "--batch-size", "1", "--depth", "1", "--jit-compile", "off", "--quiet", "--epochs", "2",
           "--no-tensorboard", "--cache"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # the loop starts: the signal lands in the first epoch's first step
        if line.startswith("training "):
            proc.send_signal(sig)
            break
    out_text, err_text = proc.communicate(timeout=300)
    return proc.returncode, out_text, err_text, cmd, env


@pytest.mark.slow  # two training subprocesses per signal
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_epoch_saves_and_the_same_command_finishes(tiny_set, tmp_path, sig, code):
    from menet_tf.train.state import read_state_header

    out = tmp_path / "run"
    returncode, stdout, stderr, cmd, env = signalled_run(tiny_set, out, sig)
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    header = read_state_header(str(out / "state.npz"))
    step = header["global_step"]
    assert 0 < step < PER_EPOCH and header["batches_done"] == step  # inside the first epoch
    assert f"interrupted: state saved at step {step}" in stdout + stderr
    assert not (out / ".menet-train-cache").exists()  # the session's cache goes with it
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["steps"] == 2 * PER_EPOCH
    assert [(s["from_step"], s["to_step"]) for s in record["sessions"]] == [
        (0, step), (step, 2 * PER_EPOCH)]


@pytest.mark.parametrize("task, chief", [
    ({"type": "worker", "index": 1}, False), ({"type": "worker", "index": 0}, True),
    ({"type": "chief", "index": 0}, True)])
def test_the_chief_is_known_before_the_strategy_is_built(monkeypatch, task, chief):
    from menet_tf.train.distribute import is_chief_process

    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert is_chief_process("multiworker") is chief
    assert is_chief_process("mirrored") is True
