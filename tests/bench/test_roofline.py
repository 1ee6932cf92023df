"""The roofline of ``menet-tf bench``: FLOPs counted from the model's graph agree with a hand
count and with TensorFlow's own statistics; the peaks are measured; the table and the JSON
carry the GFLOP/s and share-of-peak columns; ``--precision`` and ``--backend`` reach the bench.

No speed is asserted: the figures are the bench's, never a test's.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.bench import flops, report, roofline
from menet_tf.cli.main import build_parser, main
from menet_tf.model.conv_gradient import conv_gradients
from menet_tf.model.network import MENET

from bench_helpers import checked_roofline, conv, menet_forward_by_hand


def test_forward_flops_of_a_tiny_menet_equal_the_hand_count():
    model = MENET(depth=2, attention=False)
    counted = flops.forward_flops(model, 3, 32, 48)
    assert counted["dense"] == 3 * menet_forward_by_hand(2, 32, 48)
    assert counted["by_type"] == {"Conv2D": counted["dense"]}
    assert counted["tf_registered"] == {"Conv2D": counted["dense"]}  # TensorFlow's own table
    assert counted["unknown"] == []
    assert 0 < counted["elementwise"] < counted["dense"] / 20  # BN, ReLU, adds: a small part


def test_only_executed_ops_are_counted():
    """An op no output needs is pruned (TensorFlow's executor never runs it)."""
    def fn(x, k, a):
        tf.nn.conv2d(x, k, 1, "SAME")  # result unused
        return tf.linalg.matmul(a, a, transpose_a=True)

    graph = tf.function(fn).get_concrete_function(
        tf.TensorSpec([1, 8, 8, 4]), tf.TensorSpec([3, 3, 4, 5]), tf.TensorSpec([6, 7])).graph
    counted = flops.count_ops(flops.executed_ops(graph))
    assert counted["by_type"] == {"MatMul": 2 * 7 * 7 * 6}
    everything = flops.count_ops(graph.get_operations())
    assert everything["by_type"]["Conv2D"] == conv(8, 8, 4, 5)


def test_training_step_flops_hold_the_backward_pass():
    """A step: forward convolutions, their input gradients (none for the first layer, whose
    input is the image) and kernel gradients; 3-3.2x the forward pass with the loss networks."""
    config = menet_tf.released_config("MENET-GB")
    config.model.depth = 1
    with conv_gradients("native"):
        model = menet_tf.build_model(config)
        counted = flops.train_step_flops(model, 2, 32, 32)
    forward = flops.forward_flops(model, 2, 32, 32)["dense"]
    by_type = counted["by_type"]
    assert by_type["Conv2D"] == forward
    first_layer = 2 * conv(16, 16, 12, 16)
    assert by_type["Conv2DBackpropInput"] == forward - first_layer
    assert by_type["Conv2DBackpropFilter"] >= forward  # + gradient balance's layer5 gradients
    assert 3.0 <= counted["dense"] / forward <= 3.2
    assert counted["tf_registered"]["Conv2D"] == by_type["Conv2D"]
    assert counted["unknown"] == []


def test_peaks_are_measured_for_each_precision():
    shapes = roofline.Shapes(matmul=64, conv=[1, 8, 8, 64])
    peaks = roofline.measure_peaks(("fp32", "bf16"), shapes=shapes, repeats=1)
    assert set(peaks["precisions"]) == {"fp32", "bf16"}
    for precision, figures in peaks["precisions"].items():
        for kind in ("matmul", "conv"):
            f = figures[kind]
            assert f["gflops"] > 0 and f["best_gflops"] >= f["gflops"] * (1 - 1e-9)
            assert f["flops_per_call"] == f["repeats_per_call"] * (
                shapes.matmul_flops() if kind == "matmul" else shapes.conv_flops())
        assert figures["peak_gflops"] == max(figures["matmul"]["gflops"], figures["conv"]["gflops"])
        assert figures["peak_gflops_per_cpu_second"] == max(
            figures["matmul"]["gflops_per_cpu_second"], figures["conv"]["gflops_per_cpu_second"])
    assert shapes.conv_flops() == conv(8, 8, 64, 64)
    assert roofline.share(peaks["precisions"]["fp32"]["peak_gflops"] / 2, peaks, "fp32") == 0.5
    assert roofline.share(1.0, peaks, "fp16") is None


def test_float16_peak_keeps_tensorflows_cpp_lines_off_the_terminal():
    """A CPU's first float16 op makes oneDNN write an error-looking line ("oneDNN supports
    DT_HALF only ...") that no log level stops; the bench's peaks must not show it. A fresh
    process, since the line comes only once per process."""
    import os
    import subprocess
    import sys

    code = ("from menet_tf.bench import roofline\n"
            "roofline.measure_peaks(('fp16',), shapes=roofline.Shapes(matmul=64, "
            "conv=[1, 8, 8, 64]), repeats=1)\n"
            "import tensorflow as tf\n"
            "print(tf.nn.conv2d(tf.ones([1, 8, 8, 64], tf.float16),"
            " tf.ones([3, 3, 64, 64], tf.float16), 1, 'SAME').dtype)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "float16" in done.stdout  # float16 ops did run after the peaks, line or not
    assert "DT_HALF" not in done.stderr and "util.cc" not in done.stderr, done.stderr


def test_bench_precision_takes_the_old_spellings(capsys):
    parser = build_parser()
    assert parser.parse_args(["bench", "--precision", "bf16"]).precision == "bf16"
    args = parser.parse_args(["bench", "--precision", "mixed_bfloat16", "--backend", "openvino"])
    assert args.precision == "bf16" and args.backend == "openvino"
    assert "use --precision bf16" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--precision", "int8"])


def test_bench_refuses_to_overwrite_its_json_without_force(tmp_path, capsys):
    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert main(["bench", "--quick", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err and "Traceback" not in err
    assert out.read_text() == "{}"


def test_quick_bench_has_the_roofline(quick_run):
    """The roofline columns: GFLOP/s and share of peak beside every timing (issue 16, 4)."""
    r = quick_run
    rf = checked_roofline(r, "fp32")
    assert {"train_b2", "train_mse_b2", "infer_b1", "infer_b4", "infer_large"} <= set(rf["rows"])
    step = rf["flops"]["train_b2"]["dense"]
    assert 3.0 <= step / rf["flops"]["forward_train_batch"]["dense"] <= 3.2
    b, s = r["settings"]["inference"]["batches"][1], r["settings"]["inference"]["size"]
    assert rf["flops"]["infer_b4"]["dense"] == b * rf["flops"]["infer_b1"]["dense"]
    assert r["settings"]["training"]["size"] == s == 64
    printed = report.format_table(r)
    header = printed.splitlines()[0]
    assert header.count(report.ROOFLINE_HEAD) == 2 and "menet-tf (fp32)" in header
    assert "| practical peak, GFLOP/s | fp32 | bf16 | fp16 |" in printed
    assert "GFLOP per 224x224 forward pass" in printed
    lines = printed.splitlines()
    row = next(line for line in lines if line.startswith("| inference, 64x64, batch 1"))
    port = rf["rows"]["infer_b1"]["port"]
    cell = f"{port['gflops']:.0f} ({port['share_of_peak']:.0%} / {port['share_of_peak_cpu']:.0%})"
    assert f"| {cell} |" in row
    assert r["settings"]["precision"] == "fp32" and r["settings"]["backend"] == "tensorflow"


@pytest.mark.slow
def test_quick_bench_in_bf16_without_training(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--repeats", "1", "--no-pipeline", "--no-training", "--quiet",
            "--precision", "bf16", "--out", str(out)]
    assert main(argv) == 0
    r = json.loads(out.read_text())
    assert set(r["port"]) == {"infer_b1", "infer_b4", "infer_large"}
    assert r["settings"]["precision"] == "bf16" and r["gb_over_mse"] is None
    checked_roofline(r, "bf16")
    assert "menet-tf (bf16)" in capsys.readouterr().out
    assert "--precision bf16" in r["command"] and "--no-training" in r["command"]


def test_peaks_table_lists_every_precision():
    peaks = {"shapes": roofline.Shapes().as_dict(), "precisions": {
        p: {"matmul": {"gflops": g}, "conv": {"gflops": g - 1}, "peak_gflops": g}
        for p, g in (("fp32", 200.0), ("bf16", 400.0))}}
    text = report._peaks_table({"peaks": peaks})
    assert text.splitlines()[0] == "| practical peak, GFLOP/s | fp32 | bf16 |"
    assert "| matrix product 2048x2048x2048 | 200 | 400 |" in text
    assert "| 3x3 convolution 64->64 on [20x56x56x64] | 199 | 399 |" in text
    assert "| **peak** (the higher) | **200** | **400** |" in text
    assert np.isclose(roofline.Shapes().conv_flops(), conv(56, 56, 64, 64) * 20)
