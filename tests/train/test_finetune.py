"""Fine-tuning (`train_run(init=...)`, `menet-tf train --init`): a run starts from a bundled
model's weights with a fresh optimizer and the given learning rate, records the source and its
sha256, refuses another architecture and a folder of another run, and resumes after a kill.

The oracle for "the source's weights" is the bundled model as inference loads it, compared with
the saved state variable by variable; the sha256 is computed here with hashlib.
"""
import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from menet_tf.cli.main import main
from menet_tf.config import released_config
from menet_tf.data import synthesize
from menet_tf.errors import ConfigError
from menet_tf.train.run import train_run
from menet_tf.train.state import read_state_header

SOURCE = "menet-gb-rain100l"  # the bundled MENET-GB: depth 8, channel attention
STEPS_PER_EPOCH = 2


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    synthesize(str(root), preset="light", seed=0, count=4, test_count=2, progress=False)
    return root


def small_config(depth=1):
    """An LB model at a tiny size, its LR decayed every epoch (the x0.1 drop shows in 2 epochs)."""
    config = released_config("ModelShallowNewEdgeLossBalance")
    config.model.depth = depth
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    config.optimizer.learning_rate = 1e-4  # what --lr sets
    config.optimizer.decay_epochs = 1
    return config


@pytest.fixture(scope="module")
def small_source(tmp_path_factory):
    """A .keras source of small_config's architecture, its weights from another seed than a
    run's (so "equal to the source" cannot come from the run's own initialisation), and its
    batch-norm statistics moved off their initial values."""
    import keras

    from menet_tf.model.multitask import build_model

    keras.utils.set_random_seed(123)
    model = build_model(small_config())
    for v in model.variables:
        if "moving" in v.path:
            v.assign(np.random.default_rng(1).uniform(0.5, 2.0, v.shape).astype("float32"))
    path = tmp_path_factory.mktemp("source") / "source.keras"
    model.save(path)
    return path, {v.path.partition("/")[2]: v.numpy() for v in model.variables}


def state_arrays(path):
    """{variable path: array} of a state.npz (model variables below the model's name, optimizer
    variables as "optimizer:<path>")."""
    header = read_state_header(str(path))
    with np.load(path) as data:
        arrays = [data[f"v{i:04d}"] for i in range(len(header["variables"]))]
    out = {}
    for name, array in zip(header["variables"], arrays):
        top, _, rest = name.partition("/")
        out[rest if not re.match(r"adam(_\d+)?$", top) else f"optimizer:{rest}"] = array
    return out


def weights_of(path):
    return {k: v for k, v in state_arrays(path).items() if not k.startswith("optimizer:")}


def assert_same_weights(found, expected):
    assert set(found) == set(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(found[name], value, err_msg=name)


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


RUN = dict(steps_per_epoch=STEPS_PER_EPOCH, progress=False, log=None, tensorboard=False)


def test_training_starts_from_the_source_weights_then_moves_them(tiny_set, small_source,
                                                                 tmp_path):
    source, source_weights = small_source
    out, scratch = tmp_path / "ft", tmp_path / "scratch"
    # Stopped before any step: the state at step 0 is the source's weights, every variable.
    summary = train_run(small_config(), str(tiny_set), str(out), steps=4, init=str(source),
                        stop=lambda step: True, **RUN)
    assert summary["stopped"] is True and summary["steps"] == 0
    at_start = state_arrays(out / "state.npz")
    assert_same_weights(weights_of(out / "state.npz"), source_weights)
    train_run(small_config(), str(tiny_set), str(scratch), steps=4, stop=lambda step: True, **RUN)
    fresh = weights_of(scratch / "state.npz")  # without init: other weights (not a vacuous test)
    assert not any(np.array_equal(fresh[k], v) for k, v in source_weights.items()
                   if k.endswith("kernel"))
    # A fresh optimizer: no step counted, every Adam moment zero.
    slots = {k: v for k, v in at_start.items() if k.startswith("optimizer:")}
    assert slots["optimizer:iteration"] == 0 and len(slots) > 2
    assert all(not np.any(v) for k, v in slots.items() if "moment" in k or "velocity" in k)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "stopped"
    assert record["init"]["source"] == str(source) and record["init"]["sha256"] == sha256(source)

    # The same call again: continues (the source is not applied again), trains, finishes.
    summary = train_run(small_config(), str(tiny_set), str(out), steps=4, init=str(source), **RUN)
    assert summary["stopped"] is False and summary["steps"] == 4
    moved = weights_of(out / "state.npz")
    assert all(not np.array_equal(moved[k], v) for k, v in source_weights.items()
               if k.endswith("kernel"))
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["init"]["sha256"] == sha256(source)
    # The configured rate (--lr) is step 0's, and the configuration's x0.1 decay (every epoch
    # here) still applies from it.
    rates = [float(r["learning_rate"]) for r in csv.DictReader((out / "history.csv").open())]
    np.testing.assert_allclose(rates, [1e-4, 1e-5], rtol=1e-6)


@pytest.mark.slow  # MENET-GB's training step at depth 8 with attention
def test_a_run_starts_from_the_bundled_weights(tiny_set, tmp_path):
    from menet_tf.bundled import registry
    from menet_tf.infer.load import load_model

    bundled = {v.path.partition("/")[2]: v.numpy() for v in load_model(SOURCE).variables}
    config = released_config("MENET-GB")
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    out = tmp_path / "gb"
    train_run(config, str(tiny_set), str(out), steps=1, init=SOURCE, stop=lambda step: True,
              **RUN)
    assert len(bundled) == 126
    assert_same_weights(weights_of(out / "state.npz"), bundled)
    record = json.loads((out / "run.json").read_text())["init"]
    assert record["sha256"] == sha256(registry.weights_path(SOURCE)) and record["kind"] == "bundled"
    assert train_run(config, str(tiny_set), str(out), steps=1, init=SOURCE, **RUN)["steps"] == 1
    moved = weights_of(out / "state.npz")
    assert not np.array_equal(moved["layer1/conv/kernel"], bundled["layer1/conv/kernel"])


def test_lr_flag_sets_the_first_steps_rate(tiny_set, tmp_path):
    out = tmp_path / "lr"
    assert main(["train", "--config", "ModelShallowNewEdgeLossBalance", "--data", str(tiny_set),
                 "--depth", "1", "--crop-size", "32", "--batch-size", "4", "--steps", "2",
                 "--jit-compile", "off", "--no-tensorboard", "--quiet", "--lr", "3e-4",
                 "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["optimizer"]["learning_rate"] == 3e-4
    rows = (out / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("learning_rate")
    assert float(rows[1].split(",")[column]) == pytest.approx(3e-4, rel=1e-6)


def _sibling(name):
    """A test module of this folder, for its helpers (pytest imports tests by path here)."""
    import importlib.util
    import pathlib

    spec = importlib.util.spec_from_file_location(
        f"_finetune_{name}", pathlib.Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_another_architecture_is_refused_naming_both(tiny_set, small_source, tmp_path,
                                                     capsys):
    source, _ = small_source  # depth 1; MENET-LB is depth 8
    out = tmp_path / "deep"
    code = main(["train", "--config", "MENET-LB", "--init", str(source), "--data", str(tiny_set),
                 "--crop-size", "32", "--batch-size", "4", "--steps", "1", "--quiet",
                 "--out", str(out)])
    err = one_line_error(capsys)
    assert code == 1 and str(source) in err and "depth 1" in err and "depth 8" in err, err
    assert released_config("MENET-LB").name in err
    assert not out.exists()  # nothing left behind


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.keras", "does not exist"),
    (lambda d: (d / "damaged.keras").write_bytes(b"not a zip") and d / "damaged.keras",
     "cannot be loaded as a Keras model"),
    (lambda d: d / "nothing-here", "not a run folder"),
])
def test_a_missing_or_damaged_source_is_one_line_naming_it(tiny_set, tmp_path, capsys, make,
                                                           words):
    source = make(tmp_path)
    code = main(["train", "--init", str(source), "--data", str(tiny_set), "--crop-size", "32",
                 "--batch-size", "4", "--steps", "1", "--quiet", "--out", str(tmp_path / "o")])
    err = one_line_error(capsys)
    assert code == 1 and str(source) in err and words in err, err


def test_init_on_a_folder_of_another_run_needs_force(tiny_set, small_source, tmp_path):
    source, source_weights = small_source
    out = tmp_path / "scratch"
    run = dict(RUN, steps=4, stop=lambda step: True)
    train_run(small_config(), str(tiny_set), str(out), **run)  # a run from scratch, at step 0
    with pytest.raises(ConfigError, match="holds a run that did not start from .*--force"):
        train_run(small_config(), str(tiny_set), str(out), init=str(source), **run)
    other = tmp_path / "other.keras"  # a run from other weights: refused naming both
    other.write_bytes(source.read_bytes())
    with zipfile.ZipFile(other, "a") as z:  # same weights, another file: another sha256
        z.writestr("note.txt", "another file")
    train_run(small_config(), str(tiny_set), str(out), init=str(other), resume="restart", **run)
    with pytest.raises(ConfigError, match=f"fine-tuned from {re.escape(str(other))} .*not from"
                                          f" {re.escape(str(source))}"):
        train_run(small_config(), str(tiny_set), str(out), init=str(source), **run)
    # --force (resume="restart"): starts over from the source.
    train_run(small_config(), str(tiny_set), str(out), init=str(source), resume="restart", **run)
    assert_same_weights(weights_of(out / "state.npz"), source_weights)
    assert json.loads((out / "run.json").read_text())["init"]["source"] == str(source)


@pytest.mark.slow  # a fine-tuning subprocess killed with SIGKILL, then the same command again
def test_a_killed_fine_tune_resumes_with_the_same_command(tiny_set, small_source, tmp_path):
    resume = _sibling("test_resume")  # its SIGKILL helper; 4 pairs x 10 crops / batch 4
    PER_EPOCH, kill_mid_epoch = resume.PER_EPOCH, resume.kill_mid_epoch
    source, _ = small_source
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "menet_tf.cli.main", "train", "--config",
           "ModelShallowNewEdgeLossBalance", "--depth", "1", "--init", str(source), "--data",
           str(tiny_set), "--crop-size", "32", "--batch-size", "4", "--epochs", "2", "--lr",
           "1e-4", "--jit-compile", "off", "--quiet", "--no-tensorboard", "--save-every-steps",
           "1", "--out", str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    killed_at = kill_mid_epoch(proc, out / "state.npz", epochs=(0, 1))
    assert proc.returncode == -signal.SIGKILL
    assert (out / ".train.lock").exists()  # left by the killed run: stale, taken over below
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resuming {out} at step {killed_at['global_step']}" in result.stdout
    assert "starting from the weights" not in result.stdout  # not applied again
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["steps"] == 2 * PER_EPOCH
    assert record["init"]["sha256"] == sha256(source)
    assert [(s["from_step"], s["to_step"]) for s in record["sessions"]] == [
        (0, killed_at["global_step"]), (killed_at["global_step"], 2 * PER_EPOCH)]
    assert not (out / ".train.lock").exists()
