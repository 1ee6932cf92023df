"""The OpenVINO backend (issue 16.2): the same images as TensorFlow, shape caching, the IR export
and its way back, and one line for what can go wrong (extra missing, bad IR)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("openvino", reason="the OpenVINO backend needs the openvino extra"
                    " (pip install 'menet-tf[openvino]')")

from menet_tf.cli import main as cli  # noqa: E402
from menet_tf.errors import MenetError  # noqa: E402
from menet_tf.infer import export  # noqa: E402
from menet_tf.infer import openvino_backend  # noqa: E402
from menet_tf.infer.derainer import Derainer  # noqa: E402
from menet_tf.infer.load import load_derainer, source_kind  # noqa: E402
from menet_tf.infer.openvino_backend import OpenVINODerainer  # noqa: E402
from menet_tf.model.network import MENET  # noqa: E402

from model_helpers import perturb_batch_norm  # noqa: E402


def _model(depth, attention, seed=0):
    """A small MENET whose outputs look like images (see tests/infer/test_export.py)."""
    tf.random.set_seed(seed)
    model = perturb_batch_norm(MENET(depth=depth, attention=attention).ensure_built(), seed)
    model.layer5.kernel.assign(model.layer5.kernel * 0.1)
    return model


def _images(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([yy / h * 200, xx / w * 200, (yy + xx) / (h + w) * 255], -1)
    return np.clip(np.round(base[None] + rng.normal(0, 25, (n, h, w, 3))), 0, 255).astype(
        np.float32)


@pytest.fixture(scope="module")
def tf_derainer():
    return Derainer(_model(2, True), jit_compile=False)


@pytest.fixture(scope="module")
def ov_fp32(tf_derainer):
    return OpenVINODerainer.from_derainer(tf_derainer, "fp32")


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ov") / "m.keras"
    _model(2, True, seed=3).save(path)
    return path


@pytest.mark.parametrize("mode, options", [("pad", {}), ("resize", {}),
                                           ("tile", {"tile_size": 32, "overlap": 16})])
def test_fp32_gives_the_tensorflow_images(tf_derainer, ov_fp32, mode, options):
    """Every mode, at a size that needs padding: attention's mean over the real image (pad) and
    the whole image's mean in every tile, as TensorFlow takes them."""
    x = _images(2, 37, 45, seed=1)
    reference = tf_derainer.derain(x, mode=mode, **options)
    out = ov_fp32.derain(x, mode=mode, **options)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(reference - x).max() > 1.0  # the network changes the image
    # Measured worst 7.6e-5 over the three modes (this test, CPU); bf16 would be ~0.4.
    np.testing.assert_allclose(out, reference, rtol=0, atol=3e-4)


def test_bf16_within_a_few_grey_levels(tf_derainer):
    ov_bf16 = OpenVINODerainer.from_derainer(tf_derainer, "bf16")
    x = _images(1, 40, 48, seed=2)
    diff = np.abs(ov_bf16.derain(x) - tf_derainer.derain(x))
    # Measured max 0.43, mean 0.058 (this test, a CPU with AVX512_BF16).
    assert diff.max() <= 1.5 and diff.mean() <= 0.2, (diff.max(), diff.mean())
    if _has_bf16_arithmetic():  # else OpenVINO may compute in float32 (diff ~1e-4)
        assert diff.max() > 0.02, "bf16 asked for, float32 computed"


def _has_bf16_arithmetic():
    """Whether this CPU does bf16 arithmetic (what OpenVINO's bf16 hint needs to take effect)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_compiled_once_per_shape(tf_derainer, ov_fp32, monkeypatch):
    derainer = OpenVINODerainer(ov_fp32.network, "fp32", ov_fp32.multiple, tf_derainer)
    a, b = _images(1, 32, 48), _images(2, 32, 48)
    first = derainer.predict(a)
    derainer.predict(a)
    assert derainer.compile_count == 1
    derainer.predict(b)
    np.testing.assert_array_equal(derainer.predict(a), first)
    assert derainer.compile_count == 2
    monkeypatch.setattr(openvino_backend, "CACHE_SIZE", 2)
    for size in (16, 64, 80):
        derainer.predict(_images(1, size, 32))
    assert len(derainer.runner.compiled) == 2 and derainer.compile_count == 5
    dynamic = OpenVINODerainer(ov_fp32.network, "fp32", ov_fp32.multiple, tf_derainer,
                               static_shapes=False)
    np.testing.assert_allclose(dynamic.predict(b), derainer.predict(b), rtol=0, atol=3e-4)
    dynamic.predict(a)
    assert dynamic.compile_count == 1


def test_export_and_back_through_the_cli(keras_file, tmp_path, capsys):
    from PIL import Image

    folder, single = tmp_path / "ov", tmp_path / "single.xml"
    assert cli.main(["export", str(keras_file), "-o", str(folder), "--format", "openvino"]) == 0
    assert cli.main(["export", str(keras_file), "-o", str(single), "--format", "openvino",
                     "--precision", "bf16"]) == 0
    info = json.loads((folder / "export.json").read_text())
    assert info["format"] == "openvino" and info["precision"] == "fp32"
    assert (folder / "model.bin").stat().st_size > 0 and (tmp_path / "single.bin").exists()
    # float16 weights: about half the float32 file
    assert (tmp_path / "single.bin").stat().st_size < 0.6 * (folder / "model.bin").stat().st_size
    assert source_kind(folder) == ("openvino", str(folder / "model.xml"))

    photo = tmp_path / "photo.png"
    image = _images(1, 37, 45, seed=4)[0]
    Image.fromarray(image.astype(np.uint8)).save(photo)
    tf_out, ov_out = tmp_path / "tf.png", tmp_path / "ovout.png"
    assert cli.main(["derain", str(photo), "-o", str(tf_out), "--model", str(keras_file),
                     "--quiet"]) == 0
    assert cli.main(["derain", str(photo), "-o", str(ov_out), "--model",
                     str(folder / "model.xml"), "--backend", "openvino", "--quiet"]) == 0
    a = np.asarray(Image.open(tf_out), np.int16)
    b = np.asarray(Image.open(ov_out), np.int16)
    assert np.abs(a - b).max() <= 1 and np.abs(a - image).max() > 1  # rounding may differ
    loaded = load_derainer(single, backend="openvino", precision="bf16")
    assert np.abs(loaded.derain(image) - a).max() <= 4.0
    capsys.readouterr()


def test_force_replaces_only_an_openvino_export(keras_file, tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert cli.main(["export", str(keras_file), "-o", str(user), "--format", "openvino",
                     "--force"]) == 1
    err = capsys.readouterr().err
    assert str(user) in err and len(err.strip().splitlines()) == 1
    assert (user / "notes.txt").read_text() == "keep"
    folder = tmp_path / "ov"
    assert cli.main(["export", str(keras_file), "-o", str(folder), "--format", "openvino"]) == 0
    assert cli.main(["export", str(keras_file), "-o", str(folder), "--format", "openvino"]) == 1
    assert "--force" in capsys.readouterr().err
    assert cli.main(["export", str(keras_file), "-o", str(folder), "--format", "openvino",
                     "--force"]) == 0
    assert sorted(os.listdir(folder)) == ["export.json", "model.bin", "model.xml"]
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".export")]


def test_saved_model_source(tf_derainer, tmp_path):
    path = export.export_saved_model(tf_derainer, tmp_path / "sm")
    derainer = load_derainer(path, backend="openvino")
    x = _images(1, 37, 45, seed=5)
    # Measured 6.9e-5 (this test, CPU); as test_fp32_gives_the_tensorflow_images.
    np.testing.assert_allclose(derainer.derain(x), tf_derainer.derain(x), rtol=0, atol=3e-4)


def _one_line_error(argv, capsys):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_extra_is_one_line(keras_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` sees without it
    with pytest.raises(MenetError, match=r"pip install 'menet-tf\[openvino\]'"):
        load_derainer(keras_file, backend="openvino")
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)
    err = _one_line_error(["derain", str(photo), "-o", str(tmp_path / "o.png"), "--model",
                           str(keras_file), "--backend", "openvino"], capsys)
    assert "menet-tf[openvino]" in err
    err = _one_line_error(["export", str(keras_file), "-o", str(tmp_path / "x"), "--format",
                           "openvino"], capsys)
    assert "menet-tf[openvino]" in err and not (tmp_path / "x").exists()


def test_bad_ir_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.xml"
    bad.write_text("<net><layers>not a model")
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)
    argv = ["derain", str(photo), "-o", str(tmp_path / "o.png"), "--model", str(bad),
            "--backend", "openvino"]
    assert "bad.bin" in _one_line_error(argv, capsys)  # no weights beside it
    (tmp_path / "bad.bin").write_bytes(b"\0" * 16)
    assert str(bad) in _one_line_error(argv, capsys)
    assert "--backend openvino" in _one_line_error(argv[:-2], capsys)  # TensorFlow cannot


def test_lazy_import_and_no_telemetry(tmp_path):
    """Importing menet_tf never imports OpenVINO; using the backend keeps OpenVINO's
    telemetry package unloaded, so converting a model opens no network connection."""
    code = (
        "import socket, sys\n"
        "import menet_tf, menet_tf.cli.main, menet_tf.infer.load\n"
        "assert 'openvino' not in sys.modules, 'openvino imported by menet_tf'\n"
        "tried = []\n"
        "def refuse(self, *args): tried.append(args); raise OSError('no network in tests')\n"
        "socket.socket.connect = socket.socket.connect_ex = refuse\n"
        "import numpy as np\n"
        "from menet_tf.infer.derainer import Derainer\n"
        "from menet_tf.infer.openvino_backend import OpenVINODerainer\n"
        "from menet_tf.model.network import MENET\n"
        "d = OpenVINODerainer.from_derainer(Derainer(MENET(depth=1).ensure_built(),"
        " jit_compile=False))\n"
        "assert d.derain(np.zeros((9, 11, 3), np.float32)).shape == (9, 11, 3)\n"
        "assert sys.modules['openvino_telemetry'] is None, 'telemetry loaded'\n"
        "assert not tried, tried\n"
        "print('ok')\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


def test_unknown_precision_is_one_line(keras_file):
    with pytest.raises(MenetError, match="precision"):
        load_derainer(str(keras_file), backend="openvino", precision="int4")


def test_no_telemetry_when_openvino_came_first(tf_derainer, monkeypatch):
    """This process imported openvino (importorskip) before the backend, and with it the
    telemetry package: the converter is pointed at its stub, and converting connects nowhere."""
    import socket

    from openvino.tools.ovc import convert_impl, telemetry_stub, telemetry_utils

    tried = []

    def refuse(self, *args):
        tried.append(args)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    derainer = OpenVINODerainer.from_derainer(tf_derainer, "fp32")
    assert convert_impl.tm is telemetry_stub and telemetry_utils.tm is telemetry_stub
    assert derainer.predict(_images(1, 16, 16)).shape == (1, 16, 16, 3)
    assert not tried
