"""menet-tf export: SavedModel (any size, uint8/float32) and TFLite (float, dynamic-range)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from menet_tf.cli import main as cli
from menet_tf.infer import export
from menet_tf.errors import MenetError
from menet_tf.infer.derainer import Derainer, real_image_mean
from menet_tf.infer.load import load_derainer
from menet_tf.infer.tiling import pad_to_multiple
from menet_tf.model.layers import attention_mean_hook
from menet_tf.model.network import MENET

from model_helpers import perturb_batch_norm


def _model(depth, attention, seed=0):
    tf.random.set_seed(seed)
    model = perturb_batch_norm(MENET(depth=depth, attention=attention).ensure_built(), seed)
    # A freshly initialised MENET predicts a rain layer of hundreds of grey levels (outputs
    # mostly clipped); a trained one predicts a few. Scale the last conv so outputs look like
    # images and float32 rounding (relative ~1e-6) is judged at a realistic magnitude.
    model.layer5.kernel.assign(model.layer5.kernel * 0.1)
    return model


def _keras_reference(model, images):
    """What the Keras model gives at any size: reflection pad, model(x, training=False) with
    channel attention's mean over the real image (issue 14.8), crop."""
    padded, (h, w) = pad_to_multiple(images.astype(np.float32), model.multiple)
    with attention_mean_hook(lambda e: real_image_mean(e, padded.shape[1], (h, w))):
        return model(padded, training=False).numpy()[:, :h, :w]


def _images(n, h, w, seed=0):
    """Photo-like batches (gradients + noise, integer values), not full-range white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([yy / h * 200, xx / w * 200, (yy + xx) / (h + w) * 255], -1)
    noisy = base[None] + rng.normal(0, 25, (n, h, w, 3))
    return np.clip(np.round(noisy), 0, 255).astype(np.float32)


@pytest.fixture(scope="module")
def attention_model():
    return _model(2, True)


@pytest.fixture(scope="module")
def saved_model(attention_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "menet_savedmodel"
    export.export_saved_model(Derainer(attention_model), path)
    return path


def test_saved_model_equals_keras_at_an_odd_size(attention_model, saved_model):
    loaded = tf.saved_model.load(str(saved_model))
    assert set(loaded.signatures) == {"serving_default", "serve_uint8"}
    x = _images(2, 37, 29)
    out = loaded.signatures["serving_default"](images=tf.constant(x))["derained"].numpy()
    reference = _keras_reference(attention_model, x)
    assert out.shape == x.shape
    np.testing.assert_allclose(out, reference, atol=1e-3)
    assert np.abs(reference - x).max() > 1.0
    out8 = loaded.signatures["serve_uint8"](images=tf.constant(x.astype(np.uint8)))["derained"]
    assert out8.dtype == tf.uint8
    assert np.abs(out8.numpy().astype(np.float32) - reference).max() <= 0.5 + 1e-3


def test_saved_model_runs_without_menet_tf(saved_model, tmp_path):
    """A fresh Python with only TensorFlow (menet_tf not importable) serves the export."""
    code = (
        "import sys; sys.modules['menet_tf'] = None\n"
        "import numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(saved_model)!r})\n"
        "x = tf.constant(np.full((1, 19, 23, 3), 120, np.uint8))\n"
        "y = m.signatures['serve_uint8'](images=x)['derained']\n"
        "print(y.shape, y.dtype.name)\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 19, 23, 3) uint8" in result.stdout


def test_saved_model_behind_the_derainer_interface(attention_model, saved_model):
    derainer = load_derainer(saved_model)
    x = _images(1, 41, 35, seed=1)[0]
    reference = _keras_reference(attention_model, x[None])[0]
    np.testing.assert_allclose(derainer.derain(x), reference, atol=1e-3)
    assert derainer.derain(x, mode="resize").shape == x.shape
    assert derainer.derain(x, mode="tile", tile_size=32, overlap=16).shape == x.shape
    info = json.loads((saved_model / "export.json").read_text())
    assert info["multiple"] == 16 and info["attention"] == "ca"


def test_export_refuses_to_overwrite(attention_model, saved_model):
    with pytest.raises(MenetError, match="--force"):
        export.export_saved_model(Derainer(attention_model), saved_model)


def test_tflite_float_and_dynamic_range(capsys):
    model = _model(1, False, seed=2)
    derainer = Derainer(model)
    size = (21, 27)
    x = _images(1, *size, seed=3)
    reference = _keras_reference(model, x)
    float_bytes = export.tflite_bytes(derainer, size)
    out = export.run_tflite(float_bytes, x)
    assert out.shape == x.shape
    # Measured 1.0e-4 (this test, CPU, printed below): the SavedModel beside it is 1.2e-4.
    assert np.abs(out - reference).max() <= 5e-4
    quant_bytes = export.tflite_bytes(derainer, size, quantize="dynamic")
    quant = export.run_tflite(quant_bytes, x)
    psnr = float(tf.image.psnr(quant, out, max_val=255.0)[0])
    with capsys.disabled():
        print(f"\n[tflite] float max |diff| vs Keras {np.abs(out - reference).max():.4f};"
              f" dynamic-range PSNR vs float {psnr:.2f} dB;"
              f" sizes {len(float_bytes)} / {len(quant_bytes)} bytes")
    assert len(quant_bytes) < 0.6 * len(float_bytes)  # int8 weights
    assert psnr > 30.0
    assert not np.array_equal(quant, out)


def test_export_cli(tmp_path, capsys):
    model = _model(1, False, seed=4)
    model.save(tmp_path / "m.keras")
    assert cli.main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "sm")]) == 0
    assert (tmp_path / "sm" / "saved_model.pb").exists()
    assert cli.main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "t"),
                     "--format", "tflite", "--size", "16", "24"]) == 0
    info = json.loads((tmp_path / "t" / "export.json").read_text())
    assert info["input_shape"] == [1, 16, 24, 3] and (tmp_path / "t" / "model.tflite").exists()
    assert cli.main(["export", str(tmp_path / "m.keras"), "-o", str(tmp_path / "t2"),
                     "--format", "tflite"]) == 1
    assert "--size" in capsys.readouterr().err


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "m.keras"
    _model(1, False, seed=5).save(path)
    return path


def test_force_replaces_only_a_previous_export(small_keras, tmp_path, capsys):
    """Issue 14.2: --force never deletes a run folder, '.' or a folder of a user's files."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(small_keras.read_bytes())
    (run / "state.npz").write_bytes(b"state")
    user = tmp_path / "thesis"
    (user / "src").mkdir(parents=True)
    (user / "thesis.tex").write_text("chapter 1")
    for target in (run, user):
        code = cli.main(["export", str(small_keras), "-o", str(target), "--force"])
        err = capsys.readouterr().err
        assert code == 1 and str(target) in err and len(err.strip().splitlines()) == 1
    assert (run / "state.npz").read_bytes() == b"state"
    assert (user / "thesis.tex").read_text() == "chapter 1" and (user / "src").is_dir()
    not_tflite = tmp_path / "dir.tflite"
    not_tflite.mkdir()
    (not_tflite / "keep.txt").write_text("keep")
    assert cli.main(["export", str(small_keras), "-o", str(not_tflite), "--format", "tflite",
                     "--size", "8", "8", "--force"]) == 1
    assert (not_tflite / "keep.txt").read_text() == "keep"
    capsys.readouterr()
    sm = tmp_path / "sm"
    assert cli.main(["export", str(small_keras), "-o", str(sm)]) == 0
    (sm / "export.json").write_text((sm / "export.json").read_text())  # a real export's marker
    assert cli.main(["export", str(small_keras), "-o", str(sm), "--force"]) == 0
    assert (sm / "saved_model.pb").exists()


def test_force_refuses_the_current_folder(small_keras, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("chapter 1")
    assert cli.main(["export", str(small_keras), "-o", ".", "--force"]) == 1
    assert "." in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "chapter 1"


def test_tflite_into_a_saved_model_keeps_its_marker(small_keras, tmp_path, capsys):
    sm = tmp_path / "sm"
    assert cli.main(["export", str(small_keras), "-o", str(sm)]) == 0
    marker = (sm / "export.json").read_text()
    assert cli.main(["export", str(small_keras), "-o", str(sm), "--format", "tflite",
                     "--size", "8", "8"]) == 1
    assert "export.json" in capsys.readouterr().err
    assert (sm / "export.json").read_text() == marker


def test_exported_folder_follows_the_umask(small_keras, tmp_path):
    """Issue 14.14: not 0700, so a TF Serving process running as another user can read it."""
    old = os.umask(0o022)
    try:
        assert cli.main(["export", str(small_keras), "-o", str(tmp_path / "sm")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "sm").stat().st_mode & 0o777 == 0o755
