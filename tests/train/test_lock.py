"""One `menet-tf train` per run folder (menet_tf.locks): a second one is refused in one line
naming the folder and the holder's pid, a lock left by a dead process is taken over, and the
lock file never makes a run folder look like something else."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from menet_tf.cli.main import main
from menet_tf.config import released_config
from menet_tf.data import synthesize
from menet_tf.errors import MenetError
from menet_tf.locks import TRAIN_LOCK, FolderLock
from menet_tf.train.run import train_run


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    synthesize(str(root), preset="light", seed=0, count=4, test_count=2, progress=False)
    return root


@pytest.fixture
def live_pid():
    """The pid of a process that runs for the test's length (another command's, as it were)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc.pid
    proc.kill()
    proc.wait()


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def config():
    config = released_config("ModelShallowNewEdgeLossBalance")
    config.model.depth = 1
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    return config


RUN = dict(steps=2, progress=False, log=None, tensorboard=False)


def test_the_lock_refuses_a_live_holder_takes_a_stale_one_and_releases_only_its_own(tmp_path,
                                                                                    live_pid):
    lock = tmp_path / ".x.lock"
    lock.write_text(str(live_pid))
    with pytest.raises(MenetError, match=f"{tmp_path}: in use by another thing \\(process"
                                         f" {live_pid}, .*; wait"):
        with FolderLock(str(tmp_path), ".x.lock", "thing"):
            pass
    assert lock.read_text() == str(live_pid)  # untouched
    lock.write_text(str(dead_pid()))
    with FolderLock(str(tmp_path), ".x.lock", "thing"):
        assert lock.read_text() == str(os.getpid())
        lock.write_text(str(live_pid))  # (as if taken over meanwhile): not ours to remove
    assert lock.read_text() == str(live_pid)
    lock.unlink()
    with FolderLock(str(tmp_path), ".x.lock", "thing"):
        pass
    assert not lock.exists()


def test_train_refuses_a_folder_another_process_trains_in(tiny_set, tmp_path, live_pid, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / TRAIN_LOCK).write_text(str(live_pid))
    code = main(["train", "--config", "ModelShallowNewEdgeLossBalance", "--data", str(tiny_set),
                 "--depth", "1", "--crop-size", "32", "--batch-size", "4", "--steps", "2",
                 "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1, err
    assert f"{out}: in use by another `menet-tf train` (process {live_pid}" in err
    assert [p.name for p in out.iterdir()] == [TRAIN_LOCK]  # nothing written


def test_the_lock_is_held_while_training_and_a_stale_one_is_taken(tiny_set, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / TRAIN_LOCK).write_text(str(dead_pid()))  # a killed run's; the folder is no "user's"
    held = []
    summary = train_run(config(), str(tiny_set), str(out),
                        stop=lambda step: held.append((out / TRAIN_LOCK).read_text()) and False,
                        **RUN)
    assert summary["steps"] == 2 and held == [str(os.getpid())] * 2
    assert not (out / TRAIN_LOCK).exists()
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow  # a training subprocess holds the folder while a second train is refused
def test_a_second_train_process_is_refused_while_the_first_trains(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "ModelShallowNewEdgeLossBalance", "--data", str(tiny_set),
            "--depth", "1", "--crop-size", "32", "--batch-size", "4", "--steps", "100000",
            "--jit-compile", "off", "--quiet", "--no-tensorboard", "--save-every-steps", "1",
            "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    first = subprocess.Popen([sys.executable, "-m", "menet_tf.cli.main", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 240
        while not (out / "state.npz").exists():  # training: a step saved
            assert first.poll() is None and time.time() < deadline, first.stderr.read()
            time.sleep(0.2)
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert f"{out}: in use by another `menet-tf train` (process {first.pid}" in err, err
        assert first.poll() is None  # the first one trains on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert first.returncode == 143
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / TRAIN_LOCK).exists()
