"""Resumable `menet-tf train`, end to end in subprocesses on a tiny synthetic set.

A run is SIGKILLed in the middle of an epoch (after the first), then the same command is run
again; it must end like an uninterrupted run of that command: one history row per epoch, the
same optimizer step count, the same learning rate per epoch (decayed every epoch here, so a
schedule out of place shows), and the same losses (same data order, same state). Also: a
different configuration is refused naming the fields, an unreadable state and a save that fails
(file size limit, as a full disk) are reported naming the file, with the last good state kept.
"""
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from menet_tf.config import released_config, save_config
from menet_tf.data import synthesize
from menet_tf.train.state import read_state_header

EPOCHS, PER_EPOCH = 3, 10  # 4 pairs x 10 crops / batch 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = root / "data"
    synthesize(str(data), preset="light", seed=0, count=4, test_count=2, progress=False)
    config = released_config("ModelShallowNewEdgeLossBalance")
    config.model.depth = 2
    config.optimizer.decay_epochs = 1  # lr 1e-3, 1e-4, 1e-5 over the three epochs
    save_config(config, root / "config.json")
    return root, data


def command(setup, out, *extra, epochs=EPOCHS):
    root, data = setup
    return [sys.executable, "-m", "menet_tf.cli.main", "train", "--config", str(root / "config.json"),
            "--data", str(data), "--crop-size", "32", "--batch-size", "4", "--epochs", str(epochs),
            "--jit-compile", "off", "--quiet", "--save-every-steps", "1", "--out", str(out), *extra]


def run(cmd, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def history(out):
    with open(out / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def uninterrupted(setup):
    out = setup[0] / "uninterrupted"
    result = run(command(setup, out))
    assert result.returncode == 0, result.stderr
    return out


def kill_mid_epoch(proc, state_path, epochs=(1, 2), timeout=240):
    """SIGKILL ``proc`` once its saved state is inside one of ``epochs`` (not at its start);
    returns the header of the state it was killed with. SIGSTOP first, so the state read is the
    final one."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read()}")
        try:
            header = read_state_header(str(state_path))
        except Exception:  # not written yet
            header = None
        if header and header["epoch"] in epochs and 0 < header["batches_done"] < PER_EPOCH - 2:
            os.kill(proc.pid, signal.SIGSTOP)
            header = read_state_header(str(state_path))
            if header["epoch"] in epochs and 0 < header["batches_done"] < PER_EPOCH:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return header
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no mid-epoch state appeared in time")


@pytest.mark.slow  # a training subprocess killed with SIGKILL, then resumed
def test_sigkill_mid_epoch_then_rerun_ends_like_an_uninterrupted_run(setup, uninterrupted):
    out = setup[0] / "killed"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(command(setup, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    killed_at = kill_mid_epoch(proc, out / "state.npz")
    assert proc.returncode == -signal.SIGKILL
    epoch = killed_at["epoch"]  # killed inside epoch 2 (or 3), after the first epoch's row
    assert len(killed_at["history"]) == epoch
    assert killed_at["global_step"] == epoch * PER_EPOCH + killed_at["batches_done"]

    result = run(command(setup, out))  # the very same command
    assert result.returncode == 0, result.stderr
    assert (f"resuming {out} at step {killed_at['global_step']} (epoch {epoch + 1}, batch"
            f" {killed_at['batches_done']} of {PER_EPOCH})") in result.stdout

    resumed, straight = history(out), history(uninterrupted)
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in straight] == ["0", "1", "2"]
    assert [int(r["steps"]) for r in resumed] == [int(r["steps"]) for r in straight] == [10, 20, 30]
    assert [float(r["learning_rate"]) for r in resumed] == [float(r["learning_rate"]) for r in straight]
    np.testing.assert_allclose([float(r["learning_rate"]) for r in resumed], [1e-3, 1e-4, 1e-5], rtol=1e-6)
    # Same data order and state after the restart: the losses follow the uninterrupted run.
    for key in ("loss", "mse", "edge", "weight_mse", "val_psnr"):
        np.testing.assert_allclose([float(r[key]) for r in resumed], [float(r[key]) for r in straight],
                                   rtol=2e-4, err_msg=key)
    for folder in (out, uninterrupted):
        state = read_state_header(str(folder / "state.npz"))
        assert state["global_step"] == EPOCHS * PER_EPOCH
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["steps"] == EPOCHS * PER_EPOCH
    # The killed session is on record up to its last saved state.
    assert [(s["from_step"], s["to_step"]) for s in record["sessions"]] == [
        (0, killed_at["global_step"]), (killed_at["global_step"], EPOCHS * PER_EPOCH)]
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["steps"] == EPOCHS * PER_EPOCH
    assert evaluation["psnr"] == pytest.approx(float(resumed[-1]["val_psnr"]))
    assert not [p for p in os.listdir(out) if p.endswith(".partial")]


def test_finished_model_has_the_uninterrupted_step_count_and_schedule(uninterrupted):
    import keras

    import menet_tf  # noqa: F401  (registers the classes for load_model)

    model = keras.saving.load_model(uninterrupted / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * PER_EPOCH
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-6)  # 3 decays of 0.1
    run_record = json.loads((uninterrupted / "run.json").read_text())
    assert run_record["seed"] == 0 and run_record["steps"] == EPOCHS * PER_EPOCH
    assert set(run_record["versions"]) >= {"tensorflow", "keras", "numpy", "menet-tf"}
    assert run_record["cpu"] and run_record["device"] and "--save-every-steps" in run_record["command"]


def test_tensorboard_has_every_task_loss_weight_lr_and_metric_per_step_and_epoch(uninterrupted):
    import tensorflow as tf

    def scalars(folder):
        found = {}
        for name in os.listdir(folder):
            for event in tf.compat.v1.train.summary_iterator(str(folder / name)):
                for value in event.summary.value:
                    found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
        return found

    train = scalars(uninterrupted / "tensorboard" / "train")
    test = scalars(uninterrupted / "tensorboard" / "test")
    names = ("loss", "mse", "edge", "weight_mse", "weight_edge", "learning_rate", "psnr", "ssim")
    for name in names:
        assert sorted(train[f"step/{name}"]) == list(range(1, EPOCHS * PER_EPOCH + 1)), name
        assert sorted(train[f"epoch/{name}"]) == list(range(1, EPOCHS + 1)), name
    for name in ("loss", "psnr", "ssim"):
        assert sorted(test[f"epoch/{name}"]) == list(range(1, EPOCHS + 1)), name
    rows = history(uninterrupted)
    assert train["epoch/loss"][3] == pytest.approx(float(rows[2]["loss"]), rel=1e-6)
    assert test["epoch/psnr"][3] == pytest.approx(float(rows[2]["val_psnr"]), rel=1e-6)
    assert train["step/learning_rate"][11] == pytest.approx(1e-4)  # step 11 is epoch 2's first
    # The epoch row is the mean of its steps.
    assert np.mean([train["step/loss"][s] for s in range(1, 11)]) == pytest.approx(float(rows[0]["loss"]), rel=1e-5)


def test_a_different_configuration_is_refused_naming_the_fields(setup, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    result = run(command(setup, out, "--depth", "3", "--seed", "1", epochs=EPOCHS + 1))
    assert result.returncode == 1
    assert "holds a run of a different configuration" in result.stderr
    assert "model.depth: 2 in the run folder, 3 now" in result.stderr and "seed: 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    # The same configuration asking for the same length: finished, nothing to do.
    result = run(command(setup, out))
    assert result.returncode == 1 and "already holds a run, finished after 30 steps" in result.stderr


def test_unreadable_state_is_reported_naming_the_file(setup, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    data = (out / "state.npz").read_bytes()
    (out / "state.npz").write_bytes(data[: len(data) // 3])
    result = run(command(setup, out, epochs=EPOCHS + 1))
    assert result.returncode == 1
    assert f"{out / 'state.npz'}: unreadable training state" in result.stderr
    assert "--force" in result.stderr and "Traceback" not in result.stderr


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_failing_save_keeps_the_last_good_state_and_names_the_file(setup, uninterrupted, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    before = (out / "state.npz").read_bytes()
    # Continue for one more epoch with files limited to half the state's size (as a disk filling).
    result = run(command(setup, out, epochs=EPOCHS + 1), preexec_fn=_limit_file_size(len(before) // 2))
    assert result.returncode == 1
    assert f"{out / 'state.npz'}: could not write (File too large); the previous version is kept" \
        in result.stderr
    assert (out / "state.npz").read_bytes() == before
    assert not [p for p in os.listdir(out) if "partial" in p]
    # Space again: the run continues from the last good state (step 30) and finishes epoch 4.
    result = run(command(setup, out, epochs=EPOCHS + 1))
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} at step 30 (epoch 4, batch 0 of 10)" in result.stdout
    assert [int(r["steps"]) for r in history(out)] == [10, 20, 30, 40]


def test_cache_decodes_once_and_changes_nothing(setup, uninterrupted, tmp_path):
    """--cache keeps decoded pairs in OUT/.menet-train-cache for the session (each epoch builds its own
    seeded pipeline); the run is the same as without it, and the cache is gone at the end."""
    from menet_tf.config import load_config
    from menet_tf.train.records import CACHE_DIR
    from menet_tf.train.run import train_run

    root, data = setup
    config = load_config(root / "config.json")
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    config.train.epochs = EPOCHS
    out = tmp_path / "cached"
    seen = []
    summary = train_run(config, data, out, cache=True, tensorboard=False, progress=False,
                        log=lambda msg: seen.append(os.listdir(out / CACHE_DIR)) if msg.startswith("epoch 2/") else None)
    assert seen and seen[0]  # cache files existed during the run
    assert not (out / CACHE_DIR).exists()
    assert summary["steps"] == EPOCHS * PER_EPOCH
    for key in ("loss", "psnr", "val_psnr"):
        np.testing.assert_allclose([float(r[key]) for r in history(out)],
                                   [float(r[key]) for r in history(uninterrupted)], rtol=2e-4, err_msg=key)


def test_state_round_trip_restores_weights_and_adam_and_refuses_another_model(tmp_path):
    import keras

    from menet_tf.errors import CheckpointError
    from menet_tf.model.multitask import build_model
    from menet_tf.train.state import restore_state, save_state

    config = released_config("ModelShallowNewEdgeLossBalance")
    config.model.depth, config.train.jit_compile = 1, False
    trained = build_model(config)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for _ in range(2):
        trained.train_on_batch(x, np.clip(x + 9, 0, 255))
    save_state(str(tmp_path / "state.npz"), trained, {"epoch": 3})
    fresh = build_model(config)  # a second model in the process: Keras names its Adam "adam_1"
    assert restore_state(str(tmp_path / "state.npz"), fresh)["epoch"] == 3
    for a, b in zip(trained.variables + trained.optimizer.variables, fresh.variables + fresh.optimizer.variables):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), err_msg=a.path)
    assert int(fresh.optimizer.iterations.numpy()) == 2
    other = released_config("ModelShallowNewCa")
    other.model.depth, other.train.jit_compile = 1, False
    with pytest.raises(CheckpointError, match="state.npz: training state has .* variables, the model"):
        restore_state(str(tmp_path / "state.npz"), build_model(other))
