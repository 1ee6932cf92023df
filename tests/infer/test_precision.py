"""--precision bf16 / fp16 inference (menet_tf.infer.precision, Derainer(precision=)): close to
float32, float32 out, weights folded and cast once, every mode and hook still right, the CPU
note, and the derain / evaluate records."""
import collections
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from menet_tf.cli import main as cli
from menet_tf.errors import MenetError
from menet_tf.infer import precision
from menet_tf.infer.derainer import Derainer, SavedModelDerainer
from menet_tf.infer.pretrained import pretrained
from menet_tf.model.network import MENET

from data_helpers import make_jorder
from model_helpers import perturb_batch_norm

BF16_CPU = {"model": "test CPU", "avx512_bf16": True, "amx": False}
PLAIN_CPU = {"model": "test CPU", "avx512_bf16": False, "amx": False}


def _small_model(depth=1, attention=False):
    """A small MENET with non-trivial batch norm whose outputs look like images (a fresh one
    predicts a rain layer of hundreds of grey levels, so its last conv is scaled down)."""
    tf.random.set_seed(0)
    model = perturb_batch_norm(MENET(depth=depth, attention=attention).ensure_built())
    model.layer5.kernel.assign(model.layer5.kernel * 0.1)
    return model


def _image(h, w, seed=0):
    """A smooth-ish image (gradients + noise), closer to a photo than white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([yy / h * 200, xx / w * 200, (yy + xx) / (h + w) * 255], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bundled():
    """The bundled MENET-GB (channel attention, multiple 16) in fp32 and in bf16."""
    model = pretrained()
    return model, Derainer(model), Derainer(model, precision="bf16")


# ----------------------------------------------------------------------------- the rule
def test_resolve_names_and_aliases():
    assert precision.resolve("bf16").dtype == "bfloat16"
    assert precision.resolve("mixed_bfloat16").name == "bf16"
    assert precision.resolve("float16").policy == "mixed_float16"
    assert precision.resolve("FP32").name == "fp32"
    assert precision.tf_dtype("bf16") == tf.bfloat16
    with pytest.raises(MenetError, match="unknown precision 'int4'"):
        precision.resolve("int4")
    with pytest.raises(MenetError, match="unknown precision"):
        Derainer(MENET(depth=1), precision="fp8")


def test_cpu_note_says_when_half_precision_is_slower():
    note = precision.cpu_note
    assert note("fp32", PLAIN_CPU, gpu=False, onednn=True) is None
    # A CPU with bfloat16 instructions and oneDNN: bf16 is the fast path, nothing to say.
    assert note("bf16", BF16_CPU, gpu=False, onednn=True) is None
    assert note("bf16", dict(PLAIN_CPU, amx=True), gpu=False, onednn=True) is None
    # Without them (or without oneDNN), one line that says it will be slower.
    for line in (note("bf16", PLAIN_CPU, gpu=False, onednn=True),
                 note("bf16", PLAIN_CPU, gpu=False, onednn=False),
                 note("bf16", BF16_CPU, gpu=False, onednn=False)):
        assert line.startswith("note: ") and "than fp32" in line and "\n" not in line
    assert "2.5x slower" in note("bf16", PLAIN_CPU, gpu=False, onednn=True)
    assert "oneDNN is off" in note("bf16", BF16_CPU, gpu=False, onednn=False)
    fp16 = note("fp16", BF16_CPU, gpu=False, onednn=True)
    assert fp16 and "GPUs" in fp16 and "\n" not in fp16
    # On a GPU both half precisions are what it is made for.
    assert note("bf16", PLAIN_CPU, gpu=True) is None and note("fp16", PLAIN_CPU, gpu=True) is None


# ----------------------------------------------------------------------------- numerics
def test_bf16_is_close_to_fp32_and_float32_out(bundled):
    model, fp32, bf16 = bundled
    image = _image(64, 64)
    a, b = fp32.derain(image), bf16.derain(image)
    assert b.dtype == np.float32 and b.shape == image.shape and bf16.precision == "bf16"
    diff = np.abs(a - b)
    # Measured: mean 0.05, max 0.6 grey levels.
    assert diff.mean() < 0.15 and diff.max() < 3.0
    assert diff.max() > 0  # it really ran in bfloat16
    # A bug is far outside this: the twin with the batch norm of ONE layer applied on top of
    # its folded kernel (as an unfolded twin would do everywhere).
    from menet_tf.model.layers import folded_batch_norm

    x = tf.constant(image[None].astype(np.float32))
    names = ("gamma", "moving_mean", "moving_variance")
    layer, original = bf16.network.layer3.bn, model.layer3.bn
    kept = {name: getattr(layer, name).numpy() for name in names}
    try:
        for name in names:
            getattr(layer, name).assign(getattr(original, name))
        with folded_batch_norm(True):
            wrong = bf16.network(x, training=False).numpy()[0]
    finally:
        for name in names:
            getattr(layer, name).assign(kept[name])
    assert np.abs(a - wrong).mean() > 10 * 0.15  # measured 7.7


def test_fp16_is_closer_still():
    model = _small_model(attention=True)
    image = _image(32, 48)
    out = Derainer(model, precision="fp16").derain(image)
    diff = np.abs(Derainer(model).derain(image) - out)
    bf16 = np.abs(Derainer(model).derain(image) - Derainer(model, precision="bf16").derain(image))
    assert out.dtype == np.float32 and 0 < diff.mean() < bf16.mean() / 2


def test_weights_are_folded_and_cast_once_not_per_call(bundled):
    """The graph run per call reads no variable: fold and cast are constant-folded when it is
    first run, so the optimised graph casts only images (in, out) and the attention mean."""
    _, _, bf16 = bundled
    function = bf16.concrete_function(None, None)
    graph_def = function.graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    assert not [n.op for n in nodes if n.op in ("ReadVariableOp", "VarHandleOp")]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        feed = {function.inputs[0].name: np.zeros((1, 32, 32, 3), np.float32)}
        session.run(function.outputs[0].name, feed)
        session.run(function.outputs[0].name, feed, run_metadata=metadata,
                    options=tf.compat.v1.RunOptions(trace_level=3))
    ran = collections.Counter(
        stat.timeline_label.split(" = ")[1].split("(")[0]
        for device in metadata.step_stats.dev_stats for stat in device.node_stats
        if " = " in stat.timeline_label)
    convolutions = sum(n for op, n in ran.items() if "Conv2D" in op)
    assert convolutions == 26  # MENET-GB: 25 conv -> BN pairs and layer5
    assert ran["Cast"] <= 4 and ran["Rsqrt"] == 0  # per-kernel casts would be 50 or more
    # One trace for every size (no XLA on a CPU), and the weights stay cast.
    count = bf16.trace_count
    for size in ((16, 32), (48, 16), (32, 32)):
        bf16.predict(np.zeros((2, *size, 3), np.float32))
    assert bf16.trace_count == count


def test_twin_is_a_copy_taken_once():
    model = _small_model()
    bf16 = Derainer(model, precision="bf16")
    assert bf16.network is not model and bf16.network.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)  # the model is left as it was
    x = np.full((1, 16, 16, 3), 100.0, np.float32)
    before = bf16.predict(x)
    model.layer5.kernel.assign(model.layer5.kernel * 3.0)
    np.testing.assert_array_equal(bf16.predict(x), before)


def test_pad_tile_and_resize_modes_in_bf16(bundled):
    """Channel attention's hooks (image-wide mean over the real image, tiles given the whole
    image's mean) behave in bf16 as in fp32: each mode agrees with its fp32 self, and tiles
    agree with the padded image as closely as they do in fp32 ("resize" runs the plain network,
    as in the test above)."""
    _, fp32, bf16 = bundled
    image = _image(72, 100, seed=1)
    out = {}
    for name, d in (("fp32", fp32), ("bf16", bf16)):
        out[name] = {"pad": d.derain(image),
                     "tile": d.derain(image, mode="tile", tile_size=64, overlap=32)}
    for mode in ("pad", "tile"):
        assert np.abs(out["bf16"][mode] - out["fp32"][mode]).mean() < 0.15
    seam_fp32 = np.abs(out["fp32"]["tile"] - out["fp32"]["pad"]).mean()
    seam_bf16 = np.abs(out["bf16"]["tile"] - out["bf16"]["pad"]).mean()
    assert seam_bf16 < seam_fp32 + 0.15
    # The padding does not leak into the attention mean (taken over the real image): padding
    # the image further moves the output as little in bf16 as in fp32 (near the border only).
    padded = np.pad(image, [(0, 40), (0, 12), (0, 0)], mode="reflect")
    leak = {name: np.abs(d.predict_padded(padded[None].astype(np.float32), (72, 100))
                         [0, :72, :100] - out[name]["pad"]).mean()
            for name, d in (("fp32", fp32), ("bf16", bf16))}
    assert leak["bf16"] < leak["fp32"] + 0.15


def test_serving_function_in_bf16():
    model = _small_model(attention=True)
    plain = Derainer(model, jit_compile=False, precision="bf16")
    image = _image(40, 56)
    expected = plain.derain(image)
    served = plain.serving_function(tf.constant(image[None].astype(np.float32)))
    assert served.dtype == tf.float32
    np.testing.assert_allclose(served.numpy()[0], expected, atol=1e-3)
    rounded = plain.serving_function(tf.constant(image[None]))
    assert rounded.dtype == tf.uint8


def test_xla_in_bf16():
    """XLA (GPUs' default) compiles the frozen bf16 graph; its bf16 arithmetic differs a little
    from oneDNN's, so both are compared with fp32."""
    model = _small_model(attention=True)
    image = _image(32, 48)
    fp32 = Derainer(model, jit_compile=False).derain(image)
    plain = np.abs(Derainer(model, jit_compile=False, precision="bf16").derain(image) - fp32)
    xla = np.abs(Derainer(model, jit_compile=True, precision="bf16").derain(image) - fp32)
    assert xla.mean() < 2 * plain.mean() + 0.1


# ----------------------------------------------------------------------------- SavedModel
def test_exported_bf16_savedmodel_runs_as_exported_and_refuses_another(tmp_path):
    from menet_tf.infer.export import export_saved_model

    bf16 = Derainer(_small_model(), precision="bf16")
    path = export_saved_model(bf16, tmp_path / "bf16")
    image = _image(20, 28)
    loaded = SavedModelDerainer(path)
    np.testing.assert_allclose(loaded.derain(image), bf16.derain(image), atol=1e-3)
    # It runs as exported: another precision is one clear error, before anything loads.
    with pytest.raises(MenetError, match="not fp16; export it again with `menet-tf export"):
        SavedModelDerainer(path, precision="fp16")
    (tmp_path / "bf16" / "export.json").write_text(json.dumps({"format": "savedmodel"}))
    with pytest.raises(MenetError, match="exported in \\(fp32\\), not bf16"):
        SavedModelDerainer(path, precision="bf16")


# ----------------------------------------------------------------------------- commands
def test_derain_cli_runs_bf16_and_records_it(tmp_path, capsys, monkeypatch):
    import menet_tf.machine

    Image.fromarray(_image(40, 56)).save(tmp_path / "photo.png")
    _small_model().save(tmp_path / "model.keras")
    out = tmp_path / "out"
    run = ["derain", str(tmp_path / "photo.png"), "-o", str(out), "--quiet", "--model",
           str(tmp_path / "model.keras"), "--precision", "bf16"]
    # A CPU without bfloat16 instructions: it still runs, and one line says it is slower.
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    monkeypatch.setattr(precision, "_onednn", lambda: True)
    monkeypatch.setattr(menet_tf.machine, "cpu_info", lambda: dict(PLAIN_CPU))
    assert cli.main(run) == 0
    printed = capsys.readouterr().out
    notes = [line for line in printed.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "no bfloat16 instructions" in notes[0]
    written = np.asarray(Image.open(out / "photo.png"))
    assert written.shape == (40, 56, 3)
    record = json.loads((out / "derain.json").read_text())
    assert record["precision"] == "bf16" and record["backend"] == "tensorflow"
    # With bfloat16 instructions and oneDNN there is nothing to say.
    monkeypatch.setattr(menet_tf.machine, "cpu_info", lambda: dict(BF16_CPU))
    assert cli.main([*run, "--force"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_evaluate_records_precision_and_backend(tmp_path):
    from menet_tf.cli.main import main
    from menet_tf.evaluation.scoring import evaluate

    data = make_jorder(tmp_path / "test", n=2, streaks=False)
    model = _small_model()
    summary = evaluate(model, data, tmp_path / "ev", protocols=("y",), precision="bf16",
                       progress=False)
    assert summary["precision"] == "bf16" and summary["backend"] == "tensorflow"
    written = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert written["precision"] == "bf16" and written["backend"] == "tensorflow"
    reference = evaluate(model, data, None, protocols=("y",), progress=False)
    assert reference["precision"] == "fp32"
    assert abs(summary["y"]["psnr"] - reference["y"]["psnr"]) < 0.05
    model.save(tmp_path / "model.keras")
    assert main(["evaluate", str(tmp_path / "model.keras"), "--data", data, "-o",
                 str(tmp_path / "cli"), "--protocol", "rgb", "--precision", "bf16",
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["precision"] == "bf16"
