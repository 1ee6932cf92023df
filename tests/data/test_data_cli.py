"""`menet-tf data check|bench` and `menet-tf synth`, through their own argparse registration."""
import argparse
import os

import pytest

from menet_tf.cli import data as cli
from menet_tf.errors import DataError

from data_helpers import make_jorder, make_twin


def run(argv):
    parser = argparse.ArgumentParser(prog="menet-tf")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_check_dataset_root_with_expect(tmp_path, capsys):
    make_twin(tmp_path / "set" / "train", n=3)
    make_twin(tmp_path / "set" / "test", n=2)
    code = run(["data", "check", str(tmp_path / "set"), "--expect", "Rain100L",
                "--crop-size", "16"])
    out = capsys.readouterr().out
    assert code == 1  # 3 and 2 pairs are not RainTrainL's 200 and Rain100L's 100
    assert "train/" in out and "RainTrainL" in out and "Rain100L" in out
    assert "pairs found: 3  [MISMATCH]" in out and "result: PROBLEMS" in out


def test_check_reports_unpaired_and_bad_files(tmp_path, capsys):
    root = make_jorder(tmp_path / "s", n=4)
    os.remove(os.path.join(root, "norain-2.png"))
    with open(os.path.join(root, "rain-3.png"), "wb") as fh:
        fh.write(b"junk")
    code = run(["data", "check", root, "--crop-size", "16"])
    out = capsys.readouterr().out
    assert code == 1
    assert "rainy images without a clean twin: 1" in out and "rain-2.png" in out
    assert "bad files: 1" in out and "rain-3.png" in out
    assert "usable pairs: 2 of 3" in out


def test_check_ok(tmp_path, capsys):
    assert run(["data", "check", make_jorder(tmp_path / "s", n=2), "--crop-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "layout: jorder" in out and "result: OK" in out


def test_check_errors_are_data_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        run(["data", "check", str(tmp_path / "empty")])
    with pytest.raises(DataError, match="unknown data set"):
        run(["data", "check", str(tmp_path), "--expect", "Rain12"])


def test_synth_then_bench(tmp_path, capsys):
    out = tmp_path / "syn"
    assert run(["synth", "--preset", "light", "--out", str(out), "--count", "2",
                "--test-count", "1", "--size", "64x48", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert "train: 2 pairs" in text and "input PSNR" in text
    assert run(["data", "bench", str(out / "train"), "--crop-size", "16", "--batch-size", "5",
                "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "crops/s" in text and "pairs: 2" in text


def test_help_texts(capsys):
    for argv in (["data", "check", "--help"], ["data", "bench", "--help"], ["synth", "--help"]):
        with pytest.raises(SystemExit):
            run(argv)
        assert "usage: menet-tf" in capsys.readouterr().out
