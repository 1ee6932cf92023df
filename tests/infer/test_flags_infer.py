"""The flags of ``derain``, ``export`` and ``evaluate`` passed through the command, each shown
to reach what it controls: the runner the command builds (batch norm folded or not, XLA, the
tile threshold handed to ``derain``), the exported graph (batch-norm ops present or folded away,
int8 weights in a quantised TFLite file), the released configuration a TF1 checkpoint is read
as, and the border the whole-image scores leave out (against scikit-image by hand).

Spies wrap the library functions the commands call and pass every call through, so what runs
is the real thing; they only record what the command handed over.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from menet_tf.cli.main import main
from menet_tf.errors import MenetError
from menet_tf.model.network import MENET
from model_helpers import perturb_batch_norm

H, W = 40, 56


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    """A depth-1 MENET with non-trivial batch-norm statistics (folding is then not a no-op)."""
    tf.random.set_seed(1)
    model = perturb_batch_norm(MENET(depth=1).ensure_built(), seed=1)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def tf1_checkpoint(tmp_path_factory):
    """A TF1 checkpoint (SaveV2, as TF1's Saver writes) of a depth-8 MENET without attention,
    in a folder whose name says nothing about which released configuration it is."""
    from menet_tf.authors.checkpoint import variable_map

    model = perturb_batch_norm(MENET(depth=8, attention=False).ensure_built(), seed=2)
    tensors = {name: v.numpy() for name, v in variable_map(model).items()}
    prefix = str(tmp_path_factory.mktemp("tf1") / "model.final-100")
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    return prefix


@pytest.fixture
def photo(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


@pytest.fixture
def loader_spy(monkeypatch):
    """Records load_derainer's arguments and the derainer it returned, and every derain call's
    keyword arguments; ``stop=True`` stops the command after recording (nothing runs)."""
    from menet_tf.infer import load

    real = load.load_derainer
    seen = {"calls": [], "derain": [], "stop": False}

    def spy(source, model_name=None, **kwargs):
        seen["calls"].append(dict(kwargs, source=source, model_name=model_name))
        if seen["stop"]:
            raise MenetError("stopped by the test after the loader was called")
        derainer = real(source, model_name, **kwargs)
        seen["derainer"] = derainer
        inner = derainer.derain

        def derain(*args, **options):
            seen["derain"].append(options)
            return inner(*args, **options)

        derainer.derain = derain
        return derainer

    monkeypatch.setattr(load, "load_derainer", spy)
    return seen


def _derain(*argv):
    return main(["derain", "--quiet", *map(str, argv)])


# ---- derain -------------------------------------------------------------------------------------

def test_derain_no_fold_runs_batch_norm_unfolded(tiny_keras, photo, tmp_path, loader_spy):
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "folded") == 0
    assert loader_spy["calls"][-1]["fold_batch_norm"] is True
    assert loader_spy["derainer"].fold_batch_norm is True
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "plain", "--no-fold") == 0
    assert loader_spy["calls"][-1]["fold_batch_norm"] is False
    assert loader_spy["derainer"].fold_batch_norm is False
    assert json.loads((tmp_path / "plain" / "derain.json").read_text())["fold_batch_norm"] is False
    assert json.loads((tmp_path / "folded" / "derain.json").read_text())["fold_batch_norm"] is True
    # Folding is exact up to rounding: the two 8-bit outputs agree within one level.
    a, b = (np.asarray(Image.open(tmp_path / d / "a.png")).astype(int) for d in ("folded", "plain"))
    assert np.abs(a - b).max() <= 1


def test_derain_max_pixels_is_the_tile_threshold_handed_to_the_runner(tiny_keras, photo, tmp_path,
                                                                       loader_spy):
    """Above --max-pixels an image runs in tiles: the threshold reaches Derainer.derain, and a
    40x56 image (2240 pixels) over a threshold of 1000 comes out of 32-pixel tiles (which an
    untrained network's edges make visibly different), under a threshold of 5000 whole."""
    def output(folder, *flags):
        assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / folder, "--tile-size", "32",
                       "--overlap", "8", *flags) == 0
        return np.asarray(Image.open(tmp_path / folder / "a.png")).astype(int)

    whole = output("whole")
    assert loader_spy["derain"][-1]["max_pixels"] == "auto"
    tiled = output("tiled", "--max-pixels", "1000")
    options = loader_spy["derain"][-1]
    assert (options["max_pixels"], options["tile_size"], options["overlap"]) == (1000, 32, 8)
    assert tiled.shape == whole.shape == (H, W, 3) and (tiled != whole).any()
    assert np.array_equal(output("under", "--max-pixels", "5000"), whole)


def test_derain_jit_compile_reaches_the_runner(tiny_keras, photo, tmp_path, loader_spy):
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "off", "--jit-compile", "off") == 0
    assert loader_spy["calls"][-1]["jit_compile"] is False
    assert loader_spy["derainer"].jit_compile is False
    assert json.loads((tmp_path / "off" / "derain.json").read_text())["jit_compile"] is False
    loader_spy["stop"] = True  # XLA would compile: only what the command hands over is checked
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "on", "--jit-compile", "on") == 1
    assert loader_spy["calls"][-1]["jit_compile"] is True
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "auto") == 1
    assert loader_spy["calls"][-1]["jit_compile"] == "auto"


def test_derain_precision_and_backend_reach_the_runner(tiny_keras, photo, tmp_path, loader_spy):
    """A setting silently ignored would still give a good image, only slower: the runner the
    command built must be the bf16 one, or OpenVINO's."""
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "bf16", "--precision", "bf16",
                   "--jit-compile", "off") == 0
    assert loader_spy["calls"][-1]["precision"] == "bf16"
    assert loader_spy["derainer"].precision == "bf16"
    assert json.loads((tmp_path / "bf16" / "derain.json").read_text())["precision"] == "bf16"
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    assert _derain(photo, "--model", tiny_keras, "-o", tmp_path / "ov", "--backend", "openvino") == 0
    assert loader_spy["calls"][-1]["backend"] == "openvino"
    assert "OpenVINO" in type(loader_spy["derainer"]).__name__
    assert json.loads((tmp_path / "ov" / "derain.json").read_text())["backend"] == "openvino"


def _architecture_refusal(capsys, code, name):
    err = capsys.readouterr().err
    assert code == 1 and f"but {name} has depth 8, attention" in err and err.count("\n") == 1


def test_model_name_says_which_released_network_a_tf1_checkpoint_is(tf1_checkpoint, photo,
                                                                     tmp_path, capsys):
    """A depth-8 checkpoint without attention, read as MENET-GB (attention): refused, naming
    MENET-GB, by derain and export alike; read as ModelShallowNewEdgeFixed it runs, and the
    export carries that configuration's network."""
    _architecture_refusal(capsys, _derain(photo, "--model", tf1_checkpoint, "--model-name",
                                          "MENET-GB", "-o", tmp_path / "gb"), "MENET-GB")
    assert _derain(photo, "--model", tf1_checkpoint, "--model-name", "ModelShallowNewEdgeFixed",
                   "-o", tmp_path / "edge") == 0
    assert (tmp_path / "edge" / "a.png").is_file()
    code = main(["export", tf1_checkpoint, "--model-name", "MENET-GB", "-o", str(tmp_path / "x")])
    _architecture_refusal(capsys, code, "MENET-GB")
    assert not (tmp_path / "x").exists()


def test_import_tf1_out_and_model_name(tf1_checkpoint, tmp_path, capsys):
    """--model-name makes the import that configuration's multi-task model (tasks, weighting);
    without it the checkpoint's bare network; a name that does not fit is refused, naming it.
    --out is where it goes, and an existing one is not replaced without --force."""
    import keras

    import menet_tf.model.multitask  # noqa: F401  (registers MultiTaskMENET for load_model)

    named, bare = tmp_path / "edge.keras", tmp_path / "bare.keras"
    assert main(["import-tf1", tf1_checkpoint, "--out", str(named), "--model-name",
                 "ModelShallowNewEdgeFixed"]) == 0
    model = keras.saving.load_model(named)
    assert (model.task_names, model.weighting_scheme) == (("mse", "edge"), "fixed")
    assert main(["import-tf1", tf1_checkpoint, "--out", str(bare)]) == 0
    assert keras.saving.load_model(bare).task_names != ("mse", "edge")
    capsys.readouterr()
    code = main(["import-tf1", tf1_checkpoint, "--out", str(tmp_path / "gb.keras"),
                 "--model-name", "MENET-GB"])  # MENET-GB has attention, the checkpoint none
    assert code == 1 and "does not fit this model" in capsys.readouterr().err
    assert not (tmp_path / "gb.keras").exists()
    before = named.read_bytes()
    assert main(["import-tf1", tf1_checkpoint, "--out", str(named)]) == 1
    assert "pass --force" in capsys.readouterr().err and named.read_bytes() == before
    assert main(["import-tf1", tf1_checkpoint, "--out", str(named), "--force"]) == 0
    assert keras.saving.load_model(named).task_names != ("mse", "edge")


# ---- export -------------------------------------------------------------------------------------

def _graph_ops(folder):
    """Op types of every function and the graph of a SavedModel folder."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    ops = set()
    for meta in proto.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def test_export_no_fold_keeps_batch_norm_ops_in_the_graph(tiny_keras, tmp_path):
    assert main(["export", str(tiny_keras), "-o", str(tmp_path / "folded")]) == 0
    assert main(["export", str(tiny_keras), "-o", str(tmp_path / "plain"), "--no-fold"]) == 0
    folded, plain = _graph_ops(tmp_path / "folded"), _graph_ops(tmp_path / "plain")
    batch_norm = {op for op in plain if "BatchNorm" in op or op == "Rsqrt"}
    assert batch_norm, f"no batch-norm op in the --no-fold export: {sorted(plain)}"
    assert not batch_norm & folded
    info = json.loads((tmp_path / "plain" / "export.json").read_text())
    assert info["fold_batch_norm"] is False


@pytest.mark.slow  # two TFLite conversions: ~25 s here
def test_export_quantize_dynamic_stores_int8_weights(tiny_keras, tmp_path):
    base = ["export", str(tiny_keras), "--format", "tflite", "--size", "32", "32"]
    assert main([*base, "-o", str(tmp_path / "float.tflite")]) == 0
    assert main([*base, "-o", str(tmp_path / "int8.tflite"), "--quantize", "dynamic"]) == 0

    def dtypes(path):
        interpreter = tf.lite.Interpreter(model_path=str(path))
        return {d["dtype"] for d in interpreter.get_tensor_details()}

    assert np.int8 not in dtypes(tmp_path / "float.tflite")
    assert np.int8 in dtypes(tmp_path / "int8.tflite")
    assert os.path.getsize(tmp_path / "int8.tflite") < 0.6 * os.path.getsize(tmp_path / "float.tflite")


# ---- evaluate -----------------------------------------------------------------------------------

def _framed_pairs(root, n=2, border=4):
    """Pairs whose rainy image is the clean one plus small noise inside and heavy noise in a
    ``border``-pixel frame: the score with the frame cropped differs by many dB."""
    rng = np.random.default_rng(3)
    for i in range(1, n + 1):
        clean = rng.integers(40, 216, (H, W, 3)).astype(np.int16)
        noise = rng.integers(-3, 4, clean.shape)
        frame = np.ones((H, W), bool)
        frame[border:-border, border:-border] = False
        noise[frame] = rng.integers(-40, 41, noise[frame].shape)
        rainy = np.clip(clean + noise, 0, 255).astype(np.uint8)
        Image.fromarray(rainy).save(root / f"rain-{i}.png")
        Image.fromarray(clean.astype(np.uint8)).save(root / f"norain-{i}.png")
    return root


def _input_psnr_by_hand(root, border):
    scores = []
    for i in (1, 2):
        rainy, clean = (np.asarray(Image.open(root / f"{k}-{i}.png")).astype(np.float64)
                        for k in ("rain", "norain"))
        if border:
            rainy, clean = rainy[border:-border, border:-border], clean[border:-border, border:-border]
        scores.append(peak_signal_noise_ratio(clean, rainy, data_range=255))
    return float(np.mean(scores))


def test_evaluate_crop_border_leaves_the_frame_out_of_the_whole_image_scores(tiny_keras, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _framed_pairs(data)
    scores = {}
    for border in (0, 4):
        out = tmp_path / f"eval{border}"
        argv = ["evaluate", str(tiny_keras), "--data", str(data), "-o", str(out), "--protocol",
                "rgb", "--quiet", "--jit-compile", "off"]
        assert main(argv + (["--crop-border", str(border)] if border else [])) == 0
        scores[border] = json.loads((out / "summary.json").read_text())["rgb"]
        assert scores[border]["crop_border"] == border
        assert scores[border]["input_psnr"] == pytest.approx(_input_psnr_by_hand(data, border),
                                                             abs=1e-3)
    assert scores[4]["input_psnr"] > scores[0]["input_psnr"] + 10


def test_evaluate_backend_openvino_runs_there(tiny_keras, tmp_path):
    """--backend reaches the runner: summary.json names the backend the scores came from, and
    OpenVINO's scores are TensorFlow's within its float32 rounding."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    data = tmp_path / "data"
    data.mkdir()
    _framed_pairs(data)
    summaries = {}
    for backend in ("tensorflow", "openvino"):
        out = tmp_path / backend
        assert main(["evaluate", str(tiny_keras), "--data", str(data), "-o", str(out), "--protocol",
                     "rgb", "--quiet", "--backend", backend]) == 0
        summaries[backend] = json.loads((out / "summary.json").read_text())
        assert summaries[backend]["backend"] == backend
    assert summaries["openvino"]["rgb"]["psnr"] == pytest.approx(
        summaries["tensorflow"]["rgb"]["psnr"], abs=0.05)
