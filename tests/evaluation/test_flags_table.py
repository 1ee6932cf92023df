"""``menet-tf table`` flags through the command, on a one-row table (``menet``: MENET-GB, one or
two steps of a depth-1 network on a tiny synthetic set): --dataset picks the paper column the
table prints, --vgg-weights lets the VGG row train with that file, --quick marks the table as a
quick run, and the training overrides (--epochs, --steps-per-epoch, --save-every-steps, --seed,
--cache, --quiet) reach each row's ``train_run`` and show in the row's run.
"""
import csv
import json

import pytest

from menet_tf.cli.main import main
from data_helpers import synthetic_set

TINY = ["--crop-size", "32", "--batch-size", "4", "--depth", "1", "--eval-crop-size", "32",
        "--jit-compile", "off", "--grid-images", "1"]
PAPER = {"Rain100H": "| 28.15 |", "Rain100L": "| 34.19 |"}  # MENET-GB, experiments/menet.json


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return synthetic_set(tmp_path_factory, "table", preset="light-0.2", seed=2, count=2,
                         test_count=1, size="72x56")


@pytest.fixture
def trainer_spy(monkeypatch):
    from menet_tf.train import run

    calls, real = [], run.train_run

    def spy(config, *args, **kwargs):
        calls.append(dict(kwargs, config=config))
        return real(config, *args, **kwargs)

    monkeypatch.setattr(run, "train_run", spy)
    return calls


@pytest.mark.slow  # a row trained, evaluated and tabulated, twice over: ~30 s here
def test_dataset_picks_the_paper_column_and_training_flags_reach_the_row(tiny_set, tmp_path,
                                                                          trainer_spy, capsys):
    runs = tmp_path / "runs"
    argv = ["table", "menet", "-o", str(runs), "--data", str(tiny_set), "--epochs", "2",
            "--steps-per-epoch", "1", "--save-every-steps", "1", "--seed", "3", "--cache",
            "--quiet", *TINY]
    assert main([*argv, "--dataset", "Rain100H"]) == 0
    md = (runs / "table.md").read_text()
    assert PAPER["Rain100H"] in md and PAPER["Rain100L"] not in md
    kwargs = trainer_spy[-1]
    assert (kwargs["seed"], kwargs["steps_per_epoch"], kwargs["save_every_steps"], kwargs["cache"],
            kwargs["progress"]) == (3, 1, 1, True, False)
    assert kwargs["config"].train.epochs == 2
    row = runs / "MENET-GB"
    record = json.loads((row / "run.json").read_text())
    assert record["seed"] == 3 and record["sessions"][-1]["to_step"] == 2  # 2 epochs of 1 step
    assert [r["epoch"] for r in csv.DictReader((row / "history.csv").open())] == ["0", "1"]
    assert not (row / ".menet-train-cache").exists()  # --cache's folder is the run's, removed
    # The same finished row, tabulated against the other column.
    assert main([*argv, "--dataset", "Rain100L"]) == 0
    md = (runs / "table.md").read_text()
    assert PAPER["Rain100L"] in md and PAPER["Rain100H"] not in md


@pytest.mark.slow  # VGG19 built and saved, and a row trained with it: ~30 s here
def test_vgg_weights_let_the_vgg_row_train_with_that_file(tiny_set, tmp_path, trainer_spy):
    import keras

    weights = tmp_path / "vgg19_notop.weights.h5"
    keras.applications.VGG19(include_top=False, weights=None).save_weights(weights)
    runs = tmp_path / "runs"
    base = ["table", "table4", "--rows", "MSE-VGG", "-o", str(runs), "--data", str(tiny_set),
            "--steps", "1", "--quiet", *TINY]
    assert main(base) == 0  # without the file: the row is skipped
    rows = list(csv.DictReader((runs / "table.csv").open()))
    assert rows[0]["status"].startswith("skipped") and not trainer_spy
    assert main([*base, "--vgg-weights", str(weights)]) == 0
    rows = list(csv.DictReader((runs / "table.csv").open()))
    assert rows[0]["status"] == "done" and int(rows[0]["steps"]) == 1
    assert trainer_spy[-1]["config"].loss.vgg_weights == str(weights)
    config = json.loads((runs / "MSE-VGG" / "config.json").read_text())
    assert config["loss"]["vgg_weights"] == str(weights) and "vgg" in config["loss"]["tasks"]


@pytest.mark.slow  # a row trained and evaluated: ~15 s here
def test_quick_marks_the_table_as_a_quick_run(tiny_set, tmp_path):
    runs = tmp_path / "runs"
    assert main(["table", "menet", "--quick", "-o", str(runs), "--data", str(tiny_set),
                 "--steps", "1", "--quiet", *TINY]) == 0
    assert "Quick-run" in (runs / "table.md").read_text()
