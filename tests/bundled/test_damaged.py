"""A damaged or missing bundled file is reported in one line naming it, by the library and by
`menet-tf derain --model NAME`, never as a traceback from inside Keras or h5py. The package's
registry and weights are copied to a temporary folder (MENET_BUNDLED_DIR) and damaged there."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from menet_tf.bundled import registry
from menet_tf.errors import CheckpointError

NAME = "menet-gb-rain100l"


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A copy of the package's registry and default weights, used instead of the package's."""
    monkeypatch.delenv(registry.FOLDER_VARIABLE, raising=False)
    source = registry.weights_path(NAME)
    folder = tmp_path / "bundled"
    folder.mkdir()
    shutil.copy(registry.registry_path(), folder)
    shutil.copy(source, folder)
    monkeypatch.setenv(registry.FOLDER_VARIABLE, str(folder))
    return folder / os.path.basename(source)


def flip_bytes(path, at=0.5, count=16):
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))


def one_line_naming(err, path):
    message = str(err.value)
    assert "\n" not in message and str(path) in message and NAME in message
    return message


def test_the_intact_copy_loads(copy):
    assert registry.weights_path(NAME) == str(copy)


def test_flipped_bytes_are_reported_as_damage(copy):
    flip_bytes(copy)
    with pytest.raises(CheckpointError) as err:
        registry.weights_path(NAME)
    message = one_line_naming(err, copy)
    assert "damaged" in message and "sha256" in message and "reinstall" in message


def test_a_truncated_file_is_reported_by_its_size(copy):
    copy.write_bytes(copy.read_bytes()[:1000])
    with pytest.raises(CheckpointError) as err:
        registry.weights_path(NAME)
    assert "damaged" in one_line_naming(err, copy) and "1000 bytes" in str(err.value)


def test_a_missing_file_is_reported(copy):
    copy.unlink()
    with pytest.raises(CheckpointError) as err:
        registry.weights_path(NAME)
    assert "missing" in one_line_naming(err, copy)


def test_load_model_refuses_a_damaged_file_before_keras_sees_it(copy):
    from menet_tf.infer.load import load_model
    from menet_tf.infer.pretrained import pretrained

    flip_bytes(copy, at=0.9)
    for load in (load_model, pretrained):
        with pytest.raises(CheckpointError) as err:
            load(NAME)
        assert "damaged" in one_line_naming(err, copy)


# TensorFlow's own start-up lines (absl), which its log level does not silence.
TF_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} )")


def test_derain_with_a_damaged_file_exits_1_with_one_line(copy, tmp_path):
    flip_bytes(copy)
    photo = tmp_path / "x.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(photo)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "menet_tf", "derain", str(photo), "-o", str(tmp_path / "out"),
         "--model", NAME], capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line and not TF_LOG.match(line)]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("menet-tf derain: error:") and str(copy) in lines[0]
    assert "damaged" in lines[0] and not (tmp_path / "out").exists()
