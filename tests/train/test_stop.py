"""The stop hook (`train_run(stop=...)`, `menet_tf.train.stop_after`, `menet-tf train
--time-budget`): a session asked to stop saves its state as an interrupt does, returns normally
marked stopped, and the same call later ends like a run that never stopped."""
import csv
import json

import numpy as np
import pytest

from menet_tf.cli.main import main
from menet_tf.config import released_config
from menet_tf.data import synthesize
from menet_tf.errors import ConfigError
from menet_tf.train import stop_after
from menet_tf.train.run import train_run
from menet_tf.train.state import read_state_header


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("stop")
    synthesize(str(root), preset="light", seed=0, count=4, test_count=2, progress=False)
    return root


def config():
    config = released_config("ModelShallowNewEdgeLossBalance")
    config.model.depth = 1
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    return config


RUN = dict(steps=6, steps_per_epoch=3, progress=False, log=None, tensorboard=False)


def rows(out):
    return list(csv.DictReader((out / "history.csv").open()))


def test_a_stopped_run_saves_returns_and_the_same_call_ends_like_a_straight_run(tiny_set,
                                                                                tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    train_run(config(), str(tiny_set), str(straight), **RUN)
    asked = []

    def stop(step):
        asked.append(step)
        return step >= 4  # in the middle of the second epoch (3 steps an epoch)

    summary = train_run(config(), str(tiny_set), str(stopped), stop=stop, **RUN)
    assert asked == [0, 1, 2, 3, 4]  # before the first step, then after every step
    assert summary["stopped"] is True and summary["steps"] == 4 and summary["epochs"] == 1
    header = read_state_header(str(stopped / "state.npz"))
    assert header["global_step"] == 4 and header["epoch"] == 1 and header["batches_done"] == 1
    record = json.loads((stopped / "run.json").read_text())
    assert record["status"] == "stopped" and record["steps"] == 4
    assert record["summary"]["stopped"] is True
    assert not (stopped / "model.keras").exists() and not (stopped / "eval.json").exists()
    assert not (stopped / ".train.lock").exists()

    summary = train_run(config(), str(tiny_set), str(stopped), stop=lambda step: False, **RUN)
    assert summary["stopped"] is False and summary["steps"] == 6
    record = json.loads((stopped / "run.json").read_text())
    assert record["status"] == "finished"
    assert [(s["from_step"], s["to_step"]) for s in record["sessions"]] == [(0, 4), (4, 6)]
    resumed, whole = rows(stopped), rows(straight)
    assert [r["steps"] for r in resumed] == [r["steps"] for r in whole] == ["3", "6"]
    for key in ("loss", "mse", "edge", "val_psnr"):
        np.testing.assert_allclose([float(r[key]) for r in resumed],
                                   [float(r[key]) for r in whole], rtol=2e-4, err_msg=key)


def test_stop_after_is_a_wall_clock_budget(monkeypatch):
    import menet_tf.train as train

    clock = [1000.0]
    monkeypatch.setattr(train.time, "monotonic", lambda: clock[0])
    stop = stop_after(90)
    assert stop(0) is False
    clock[0] = 1089.9
    assert stop(7) is False
    clock[0] = 1090.0
    assert stop(8) is True
    assert stop_after(0)(0) is True
    for bad in (-1, "soon", None):
        with pytest.raises(ConfigError, match="time budget"):
            stop_after(bad)


def test_time_budget_flag_stops_the_command_and_the_same_command_continues(tiny_set, tmp_path,
                                                                          capsys):
    out = tmp_path / "budget"
    args = ["train", "--config", "ModelShallowNewEdgeLossBalance", "--data", str(tiny_set),
            "--depth", "1", "--crop-size", "32", "--batch-size", "4", "--steps", "2",
            "--jit-compile", "off", "--no-tensorboard", "--quiet", "--out", str(out)]
    assert main([*args, "--time-budget", "0"]) == 0  # spent before the first step
    assert "stopped: state saved at step 0 of 2" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["status"] == "stopped"
    assert read_state_header(str(out / "state.npz"))["global_step"] == 0
    assert main([*args, "--time-budget", "1h"]) == 0  # ample: the run finishes
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["steps"] == 2
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--time-budget", "soon"])
    assert exit_info.value.code == 2 and "not a duration" in capsys.readouterr().err


@pytest.mark.parametrize("text, seconds", [("3600", 3600), ("90m", 5400), ("1h30m", 5400),
                                           ("2h", 7200), ("45s", 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    from menet_tf.cli.train import duration

    assert duration(text) == seconds
