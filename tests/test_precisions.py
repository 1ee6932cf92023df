"""One precision vocabulary, fp32 | bf16 | fp16, for every command and configuration
(menet_tf.precisions); the 0.1/0.2 spellings still taken with a one-line notice, and the
configuration files of those versions still loading as the same run."""
import json

import pytest

from menet_tf import precisions
from menet_tf.cli import options
from menet_tf.cli.main import build_parser
from menet_tf.config import ExperimentConfig, load_config, released_config
from menet_tf.errors import ConfigError

COMMANDS = ("train", "derain", "evaluate", "export", "bench", "serve")
# The arguments each command needs besides --precision to parse.
NEEDED = {"train": [], "derain": ["x.png", "-o", "o"], "evaluate": ["m", "--data", "d", "-o", "o"],
          "export": ["-o", "o"], "bench": [], "serve": []}


def test_every_spelling_has_one_name():
    assert precisions.NAMES == ("fp32", "bf16", "fp16")
    hand = {"fp32": "fp32", "FP32": "fp32", "float32": "fp32", "bf16": "bf16",
            "mixed_bfloat16": "bf16", "bfloat16": "bf16", "fp16": "fp16",
            "mixed_float16": "fp16", "float16": "fp16", "half": "fp16"}
    assert {text: precisions.canonical(text) for text in hand} == hand
    assert [precisions.policy(n) for n in ("fp32", "bf16", "fp16")] == [
        "float32", "mixed_bfloat16", "mixed_float16"]
    with pytest.raises(ConfigError, match="unknown precision 'int8'"):
        precisions.canonical("int8")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_the_new_names_and_the_old_ones_with_a_notice(command, capsys):
    parser = build_parser()
    for name in precisions.NAMES:
        args = parser.parse_args([command, *NEEDED[command], "--precision", name])
        assert args.precision == name
    assert "deprecated" not in capsys.readouterr().err
    for old, new in precisions.OLD_NAMES.items():
        args = parser.parse_args([command, *NEEDED[command], "--precision", old])
        assert args.precision == new
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--precision {old} is deprecated" in err
        assert f"use --precision {new}" in err and f"menet-tf {options.REMOVED_IN}" in err
    with pytest.raises(SystemExit):
        parser.parse_args([command, *NEEDED[command], "--precision", "int8"])


def test_train_help_says_mixed_precision_keeps_float32_variables(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "{fp32,bf16,fp16}" in text and "mixed_bfloat16" not in text
    assert "variables, losses and optimizer stay float32" in text


def test_old_configuration_files_load_as_the_same_configuration(tmp_path):
    """A 0.1/0.2 config.json (policy names) reads as today's: same fields, same fingerprint."""
    from menet_tf.train.state import fingerprint

    for old, new in precisions.OLD_NAMES.items():
        data = released_config("MENET-GB").to_dict()
        data["train"]["precision"] = old
        path = tmp_path / f"{old}.json"
        path.write_text(json.dumps(data))
        loaded = load_config(path)
        fresh = released_config("MENET-GB")
        fresh.train.precision = new
        assert loaded == fresh and loaded.train.precision == new
        assert fingerprint(loaded, 0, 5, tmp_path, None) == fingerprint(fresh, 0, 5, tmp_path, None)
    assert ExperimentConfig().train.precision == "fp32"


def test_a_configuration_file_with_an_unknown_precision_names_the_file(tmp_path):
    data = released_config("MENET-GB").to_dict()
    data["train"]["precision"] = "float8"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"bad\.json\.train: unknown precision 'float8'"):
        load_config(path)


def test_a_run_folder_of_0_2_spelling_its_precision_the_old_way_is_the_same_run():
    from menet_tf.train.state import differences

    assert differences({"train.precision": "float32", "seed": 0},
                       {"train.precision": "fp32", "seed": 0}) == []
    assert differences({"train.precision": "mixed_bfloat16"}, {"train.precision": "bf16"}) == []
    changed = differences({"train.precision": "float32"}, {"train.precision": "bf16"})
    assert len(changed) == 1 and "train.precision" in changed[0]
