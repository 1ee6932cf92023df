"""``make gpu-check`` (benchmarks/gpu_check.py), and the GPU-only tests it runs (``pytest -m gpu``).

Without a GPU the check prints one line and exits 0; its CPU dry run (``--allow-cpu --tiny``)
writes every section of the JSON, so the whole path is exercised here. The tests marked ``gpu``
need a GPU and are skipped without one; on a GPU, ``make gpu-check`` runs them and records the
counts. No speed is asserted.
"""
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from model_helpers import random_pairs

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
HAVE_GPU = bool(tf.config.list_physical_devices("GPU"))
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU (make gpu-check runs it on one)")
SECTIONS = ("gpu_tests", "train_step", "inference", "training_run", "tiling")


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, timeout):
    """The script in a fresh process that sees no GPU (as on a machine without one)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------ the script
def test_without_a_gpu_it_prints_one_line_and_exits_0(tmp_path):
    out = tmp_path / "gpu-check.json"
    done = _run("-o", out, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no GPU visible to TensorFlow"), lines
    assert "pip install -e '.[gpu]'" in lines[0]
    assert done.stderr == ""  # TensorFlow's import chatter (cuInit...) is not shown either
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The whole check on the CPU at tiny sizes; the pytest section runs this file's GPU tests
    (skipped here). A generous budget, so that a busy machine skips no section."""
    out = tmp_path_factory.mktemp("gpu-check") / "dry.json"
    done = _run("--allow-cpu", "--tiny", "--budget", 1200, "--tests", __file__, "-o", out,
                timeout=900)
    assert out.exists(), done.stdout + done.stderr
    return done, json.loads(out.read_text())


@pytest.mark.slow  # a process training and de-raining tiny models: 1-2 minutes on 2 busy cores
def test_dry_run_writes_every_section(dry_run):
    done, r = dry_run
    assert set(r["sections"]) == set(SECTIONS)
    for name, section in r["sections"].items():
        # Ran (neither skipped nor missing) and passed: a CPU dry run has no reason to fail one.
        assert section["ok"] is True, (name, section)
        assert section["seconds"] > 0, name
    assert r["works"] is True
    assert done.returncode == (0 if r["works"] else 1), done.stdout + done.stderr
    assert r["verdict"].startswith(f"menet-tf {menet_tf.__version__} ")
    assert r["verdict"].endswith("[CPU dry run: no GPU figure]")
    assert done.stdout.splitlines()[-2:] == [r["verdict"], f"gpu-check: wrote {done.args[-1]}"
                                             f" ({r['seconds']:.0f} s)"]
    device = r["device"]
    assert device["device"] == "CPU" and device["gpus"] == []
    assert device["versions"]["menet-tf"] == menet_tf.__version__
    assert device["versions"]["tensorflow"] == tf.__version__
    assert {"cuda_build", "cudnn_build", "is_cuda_build"} <= set(device["versions"])
    assert r["settings"]["tiny"] is True and r["settings"]["jit_compile"] is False
    assert r["seconds"] > 0 and r["started"] <= r["finished"]


@pytest.mark.slow
def test_dry_run_ran_the_gpu_tests_as_a_subprocess(dry_run):
    tests = dry_run[1]["sections"]["gpu_tests"]
    assert tests["ok"] is True, tests
    assert (tests["passed"], tests["failed"], tests["errors"]) == (0, 0, 0)
    marked = [name for name, test in globals().items() if name.startswith("test_")
              and any(mark.name == "gpu" for mark in getattr(test, "pytestmark", []))]
    assert len(marked) >= 7 and tests["skipped"] == len(marked)  # this file's, skipped on a CPU
    assert "-m gpu" in tests["command"]


@pytest.mark.slow
def test_dry_run_training_figures(dry_run):
    r = dry_run[1]["sections"]
    step = r["train_step"]
    assert step["ok"] is True, step
    assert set(step["contenders"]) == {"float32", "mixed_float16"}  # no XLA on a CPU: no third
    for name, c in step["contenders"].items():
        assert c["first_call_s"] > 0 and c["step"]["median_s"] > 0, name
        assert c["step"]["images_per_s"] > 0, name
        # Steps are applied (mixed float16 skips a fresh model's first steps: its loss scale
        # starts too high), and every step taken is counted.
        assert 1 <= c["first_applied_step"] <= c["steps_taken"], name
        assert 1 <= c["optimizer_steps"] <= c["steps_taken"] - c["first_applied_step"] + 1, name
        assert math.isfinite(c["last_step_logs"]["loss"]) and c["last_step_logs"]["loss"] > 0
    assert "loss_scale" in step["contenders"]["mixed_float16"]["last_step_logs"]
    assert step["mixed_float16_speedup"] > 0
    run = r["training_run"]
    assert run["ok"] is True, run
    assert run["steps_done"] == run["steps_planned"] == 4 and run["epochs"] == 2
    assert run["loss_first_epoch"] > 0 and run["loss_final_epoch"] > 0
    assert run["s_per_step"] > 0 and run["s_per_step_overall"] > 0
    assert "stopped" not in run


@pytest.mark.slow
def test_dry_run_inference_and_tiling_figures(dry_run):
    r = dry_run[1]["sections"]
    infer = r["inference"]
    assert set(infer["precisions"]) | {f.split(":")[0] for f in infer.get("failures", [])} \
        == {"fp32", "fp16", "bf16"}  # each precision timed, or its failure recorded in one line
    for p, figures in infer["precisions"].items():
        for b in (1, 2):
            assert figures[f"batch_{b}"]["ms_per_image"] > 0, (p, b)
            assert figures["first_call_s"][f"batch_{b}"] > 0
            if p != "fp32":
                assert figures[f"psnr_vs_fp32_batch_{b}"] > 35, (p, b)
    assert all("\n" not in f for f in infer.get("failures", []))
    assert math.isfinite(infer["fp32_gain_db_batch_2"])
    tiles = r["tiling"]
    assert tiles["ok"] is True, tiles
    assert tiles["max_pixels"] == 16_000_000 and tiles["tiled_by_default"] is False  # a CPU's
    for name in ("default", "tiles"):
        assert tiles[name]["seconds"] > 0 and tiles[name]["s_per_megapixel"] > 0
        assert tiles[name]["gpu_peak_mb"] is None
    assert 0 <= tiles["tiles_vs_default"]["mean_abs"] < 2.0


def test_a_failing_section_is_recorded_and_the_next_still_runs():
    check = _load_script()
    result = {"sections": {}}
    budget = check.Budget(100)

    def boom(failures):
        raise RuntimeError("out of memory\n  while allocating")

    def partial(failures):
        failures.append("fp16: TypeError: no")
        return {"figure": 1.5}

    check.run_section("a", boom, result, budget)
    check.run_section("b", partial, result, budget)
    check.run_section("c", lambda failures: {"figure": 2}, result, budget)
    check.run_section("d", lambda failures: {}, result, budget, needs=1000)
    a, b, c, d = (result["sections"][k] for k in "abcd")
    assert a["ok"] is False and a["error"] == "RuntimeError: out of memory while allocating"
    assert a["traceback"][-1].strip() == 'raise RuntimeError("out of memory\\n  while allocating")'
    assert b["ok"] is False and b["failures"] == ["fp16: TypeError: no"] and b["figure"] == 1.5
    assert c["ok"] is True and c["figure"] == 2 and c["error"] is None
    assert d["ok"] is None and d["not_run"].startswith("time budget")
    result.update(device={"device": "GPU", "name": "Test GPU", "versions": {"menet-tf": "9"}},
                  settings={"inference": {"batches": [1, 20]}})
    works, line = check.verdict(result)
    assert works is False
    assert line.startswith("menet-tf 9 does NOT fully work on Test GPU: 1/4 sections ok"
                           " (failed: a, b)")
    assert "(skipped for time: d)" in line


def test_refuses_to_replace_its_json_without_force(tmp_path, capsys):
    check = _load_script()
    out = tmp_path / "gpu-check.json"
    out.write_text("{}")
    assert check.main(["--allow-cpu", "-o", str(out)]) == 1
    assert out.read_text() == "{}"
    assert capsys.readouterr().err.strip().endswith("already exists; pass --force to replace it")


# ------------------------------------------------------------- GPU-only (pytest -m gpu)
def _config(precision="float32", jit="auto", depth=1):
    config = menet_tf.released_config("MENET-GB")
    config.model.depth = depth
    config.train.precision, config.train.jit_compile = precision, jit
    return config


def _model(**options):
    keras.utils.set_random_seed(0)
    return menet_tf.build_model(_config(**options))


@pytest.fixture
def no_tf32():
    """Full float32 matrix products (Ampere+ GPUs use TF32 by default), for tight tolerances."""
    before = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(before)


@pytest.mark.gpu
@needs_gpu
def test_gpu_defaults_xla_native_gradients_8mp_tiles():
    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.tiling import MAX_PIXELS_GPU, default_max_pixels
    from menet_tf.model import conv_gradient
    from menet_tf.model.multitask import resolve_jit_compile

    assert resolve_jit_compile("auto") is True
    assert Derainer(menet_tf.pretrained()).jit_compile is True
    assert default_max_pixels() == MAX_PIXELS_GPU
    with conv_gradient.conv_gradients("auto"):
        assert conv_gradient.conv_gradient() == "native"


@pytest.mark.gpu
@needs_gpu
def test_training_step_runs_on_the_gpu_and_learns():
    model = _model()
    rainy, clean = random_pairs(2, 32)
    assert "GPU" in model(tf.constant(rainy), training=False).device
    mse = []
    for _ in range(8):
        logs = model.train_on_batch(rainy, clean, return_dict=True)
        assert logs["skipped_steps"] == 0 and all(math.isfinite(float(v)) for v in logs.values())
        mse.append(float(logs["mse"]))
    assert mse[-1] < mse[0], mse


@pytest.mark.gpu
@needs_gpu
def test_xla_gradients_agree_with_the_plain_graph_on_gpu(no_tf32):
    """The step's gradients and task losses compiled by XLA (the GPU default) and as a plain
    graph (cuDNN); tolerances leave room for XLA's own convolution algorithms (TF32 included)."""
    model = _model(jit=False)
    rainy, clean = random_pairs(2, 32, seed=1)
    data = (tf.constant(rainy), tf.constant(clean))
    plain_gradients, plain_terms = tf.function(model.compute_gradients)(data)
    xla_gradients, xla_terms = tf.function(model.compute_gradients, jit_compile=True)(data)
    for a, b in zip(xla_terms[2], plain_terms[2]):  # task losses
        assert float(a) == pytest.approx(float(b), rel=5e-3)
    for a, b in zip(xla_gradients, plain_gradients):
        a, b = a.numpy(), b.numpy()
        assert np.abs(a - b).max() <= 1e-2 * np.abs(b).max() + 1e-12


@pytest.mark.gpu
@needs_gpu
def test_mixed_float16_step_with_loss_scaling_on_gpu():
    rainy, clean = random_pairs(2, 32, seed=2)
    reference = _model().train_on_batch(rainy, clean, return_dict=True)
    model = _model(precision="mixed_float16")
    logs = []
    while int(model.optimizer.iterations) < 2 and len(logs) < 20:  # the loss scale settles
        logs.append(model.train_on_batch(rainy, clean, return_dict=True))
    assert int(model.optimizer.iterations) == 2, [step["loss_scale"] for step in logs]
    assert all(math.isfinite(float(v)) for step in logs for v in step.values())
    assert logs[0]["mse"] == pytest.approx(reference["mse"], rel=2e-2)
    assert 1 <= logs[-1]["loss_scale"] <= 2**15


@pytest.mark.gpu
@needs_gpu
def test_derainer_on_the_gpu_matches_the_cpu(no_tf32):
    from menet_tf.infer.derainer import Derainer

    model = menet_tf.pretrained()
    rainy = tf.constant(random_pairs(2, 64, seed=3)[0])
    plain = Derainer(model, jit_compile=False).predict_tensor(rainy)
    xla = Derainer(model, jit_compile=True).predict_tensor(rainy)
    with tf.device("/CPU:0"):
        cpu = Derainer(model, jit_compile=False).predict_tensor(rainy)
    assert "GPU" in plain.device and "GPU" in xla.device and "CPU" in cpu.device
    np.testing.assert_allclose(plain.numpy(), cpu.numpy(), atol=0.05)  # 0..255, TF32 off
    np.testing.assert_allclose(xla.numpy(), cpu.numpy(), atol=0.5)  # XLA: its own algorithms


@pytest.mark.gpu
@needs_gpu
def test_half_precision_inference_on_gpu_is_close_to_fp32():
    from menet_tf.infer.derainer import Derainer
    from menet_tf.model.metrics import psnr_float64

    model = menet_tf.pretrained()
    rainy = random_pairs(2, 64, seed=4)[0]
    reference = Derainer(model).predict(rainy)
    for precision, floor_db in (("fp16", 50.0), ("bf16", 40.0)):
        out = Derainer(model, precision=precision).predict(rainy)
        assert out.dtype == np.float32 and np.all(np.isfinite(out))
        assert psnr_float64(out, reference) > floor_db, precision


@pytest.mark.gpu
@needs_gpu
def test_gpu_peak_memory_is_reported():
    from menet_tf.bench.timing import peak_memory
    from menet_tf.infer.derainer import Derainer

    Derainer(menet_tf.pretrained()).predict(random_pairs(1, 64)[0])
    assert peak_memory()["gpu_peak_mb"] > 0
