"""`menet-tf train` end to end on a tiny synthetic set: every result file is written."""
import csv
import json

import keras
import pytest

from menet_tf.cli.main import main
from menet_tf.data import eval_dataset, synthesize


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthesize(str(root), preset="light", seed=0, count=4, test_count=2, progress=False)
    return root


def test_train_writes_config_history_curves_model_and_eval(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "ModelShallowNewEdgeLossBalance", "--data", str(tiny_set),
            "--epochs", "2", "--crop-size", "32", "--batch-size", "8", "--depth", "1",
            "--jit-compile", "off", "--out", str(out)]
    assert main(args) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "history.csv", "curves.png", "model.keras",
                                               "eval.json", "run.json", "state.npz", "tensorboard"}
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 2 and {"loss", "mse", "edge", "weight_mse", "weight_edge", "val_psnr"} <= set(rows[0])
    result = json.loads((out / "eval.json").read_text())
    assert result["config"] == "ModelShallowNewEdgeLossBalance" and 0 < result["psnr"] < 100
    assert json.loads((out / "config.json").read_text())["model"]["depth"] == 1
    model = keras.saving.load_model(out / "model.keras")
    assert model.weighting_scheme == "lb"
    # eval.json is the final weights scored by the authors' protocol, as model.evaluate does it.
    scores = model.evaluate(eval_dataset(str(tiny_set / "test"), batch_size=8, crop_size=32),
                            return_dict=True, verbose=0)
    assert abs(scores["psnr"] - result["psnr"]) < 1e-4 and abs(scores["ssim"] - result["ssim"]) < 1e-6
    # A finished run is not overwritten by accident.
    assert main(args) == 1
    assert "already holds a run, finished after 10 steps" in capsys.readouterr().err


def test_train_refuses_unknown_configuration(tiny_set, tmp_path, capsys):
    assert main(["train", "--config", "NoSuchModel", "--data", str(tiny_set), "--out", str(tmp_path)]) == 1
    assert "unknown released model 'NoSuchModel'" in capsys.readouterr().err


def test_default_run_folder_is_named_as_the_user_typed_the_configuration(tmp_path):
    import os

    from menet_tf.cli.main import build_parser
    from menet_tf.config import released_config
    from menet_tf.train.run import default_out

    assert default_out(build_parser().parse_args(["train"]).config) == os.path.join("runs", "MENET-GB")
    assert default_out("MENET-LB") == os.path.join("runs", "MENET-LB")
    assert default_out("ModelShallowNewCa") == os.path.join("runs", "ModelShallowNewCa")
    assert default_out(str(tmp_path / "mine.json")) == os.path.join("runs", "mine")
    config = released_config("MENET-LB")  # a configuration object: its own name
    assert default_out(config) == os.path.join("runs", config.name)


def test_train_flags_and_their_old_spellings(capsys):
    from menet_tf.cli.main import build_parser
    from menet_tf.cli.train import apply_overrides
    from menet_tf.config import released_config

    parse = build_parser().parse_args
    args = parse(["train", "-o", "runs/x", "--jit-compile", "on", "--quiet"])
    assert args.out == "runs/x" and args.quiet
    assert apply_overrides(released_config("MENET-GB"), args).train.jit_compile is True
    args = parse(["train"])  # no flag: the configuration's own setting
    assert args.out is None and not args.quiet
    assert apply_overrides(released_config("MENET-GB"), args).train.jit_compile == "auto"
    args = parse(["train", "--no-jit"])
    assert apply_overrides(released_config("MENET-GB"), args).train.jit_compile is False
    assert "--no-jit is deprecated" in capsys.readouterr().err
