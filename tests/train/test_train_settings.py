"""``train --precision``, ``--strategy mirrored`` and ``--sync-bn`` through the command, each
checked where it must take effect, not only that the run finished: the trained model's dtype
policy and variable dtypes, the strategy and replica count the run recorded (from the strategy
object the loop ran under), the batch norms of the saved model; and a run stopped under the
strategy continues from its saved step when the command is run again.
"""
import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

import menet_tf.model.multitask  # noqa: F401  (registers MultiTaskMENET for load_model)
from menet_tf.cli.main import build_parser, main
from data_helpers import synthetic_set

TINY = ["--config", "MENET-GB", "--crop-size", "16", "--batch-size", "4", "--depth", "1",
        "--jit-compile", "off", "--no-tensorboard", "--quiet"]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return synthetic_set(tmp_path_factory, "settings", seed=4, count=2, test_count=1,
                         size="40x40")


def _batch_norms(model):
    return [layer for layer in model._flatten_layers() if "BatchNorm" in type(layer).__name__]


def _bf16_spellings():
    """bf16, and the 0.2 spelling mixed_bfloat16 while the command still takes it."""
    import contextlib
    import io

    taken = []
    for spelling in ("bf16", "mixed_bfloat16"):
        with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(SystemExit):
            build_parser().parse_args(["train", "--precision", spelling])
            taken.append(spelling)
    assert "bf16" in taken
    return taken


@pytest.mark.parametrize("spelling", _bf16_spellings())
def test_precision_bf16_trains_the_network_in_bfloat16_with_float32_variables(
        tiny_set, tmp_path, spelling, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data", str(tiny_set), "--steps", "2", "--precision", spelling,
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("deprecated" in err) == (spelling != "bf16")  # the old spelling: one notice
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["precision"] in ("bf16", "mixed_bfloat16")
    model = keras.saving.load_model(out / "model.keras")
    layers = [model, *model._flatten_layers()]
    assert {layer.dtype_policy.name for layer in layers} == {"mixed_bfloat16"}
    assert {layer.compute_dtype for layer in layers} == {"bfloat16"}
    assert {v.dtype for v in model.variables} == {"float32"}
    assert {v.dtype for v in model.optimizer.variables} <= {"float32", "int64"}
    assert int(model.optimizer.iterations.numpy()) == 2
    assert not (out / "tensorboard").exists()  # --no-tensorboard (in TINY)


def test_without_precision_and_sync_bn_the_run_is_float32_with_plain_batch_norm(tiny_set, tmp_path):
    """The other side of the two checks above and below: the defaults are not bf16 or synced.
    (--tensorboard after TINY's --no-tensorboard: the last one given wins, logs are written.)"""
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data", str(tiny_set), "--steps", "1", "--tensorboard",
                 "-o", str(out)]) == 0
    assert list((out / "tensorboard" / "train").glob("events.*"))
    model = keras.saving.load_model(out / "model.keras")
    assert {layer.compute_dtype for layer in [model, *model._flatten_layers()]} == {"float32"}
    assert _batch_norms(model) and not any(bn.synchronized for bn in _batch_norms(model))
    record = json.loads((out / "run.json").read_text())
    assert (record["strategy"], record["replicas"]) == ("default", 1)


# Two logical CPUs must be made before TensorFlow starts: a fresh Python. Session 1 runs through
# train_run with a stop hook after step 2 (as a time budget or a signal stops it: state saved),
# session 2 is the same command line run again, which must continue from step 2.
STRATEGY_SCRIPT = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from menet_tf.cli.main import build_parser, main
    from menet_tf.cli.train import apply_overrides
    from menet_tf.train.run import resolve_config, train_run

    argv = json.loads(sys.argv[1])
    args = build_parser().parse_args(argv)
    config = apply_overrides(resolve_config(args.config), args)
    summary = train_run(config, args.data, args.out, steps=args.steps, tensorboard=False,
                        progress=False, strategy=args.strategy, sync_bn=args.sync_bn,
                        stop=lambda step: step >= 2)
    print("FIRST", json.dumps({"stopped": bool(summary.get("stopped")),
                               "steps": summary.get("steps")}))
    sys.exit(main(argv))
""")


@pytest.mark.slow  # a fresh Python with two logical CPUs, two sessions: ~30 s here
def test_mirrored_strategy_with_sync_bn_on_two_cpus_runs_and_resumes(tiny_set, tmp_path):
    out = tmp_path / "run"
    argv = ["train", *TINY, "--data", str(tiny_set), "--steps", "4", "--strategy", "mirrored",
            "--sync-bn", "-o", str(out)]
    done = subprocess.run([sys.executable, "-c", STRATEGY_SCRIPT, json.dumps(argv)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    first = json.loads(done.stdout.split("FIRST ", 1)[1].splitlines()[0])
    assert first == {"stopped": True, "steps": 2}
    assert "resuming" in done.stdout and "at step 2" in done.stdout

    record = json.loads((out / "run.json").read_text())
    assert (record["strategy"], record["replicas"]) == ("MirroredStrategy", 2)
    sessions = [(s["from_step"], s["to_step"]) for s in record["sessions"]]
    assert sessions == [(0, 2), (2, 4)]
    model = keras.saving.load_model(out / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 4
    norms = _batch_norms(model)
    assert norms and all(bn.synchronized for bn in norms)
    assert json.loads((out / "config.json").read_text())["train"]["sync_batch_norm"] is True
