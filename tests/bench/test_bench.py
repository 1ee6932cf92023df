"""``menet-tf bench`` runs (quick form) and writes what it promises; the compiled training step
and inference function trace once per input shape and keep everything in the graph.

No timing is asserted: speed is measured by the bench itself, never by a test.
"""

import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.bench import speed as bench
from menet_tf.bench import timing
from menet_tf.bench.keys import keys_of
from menet_tf.cli.main import main

from bench_helpers import GRAPHS, HAVE_GRAPHS
PY_OPS = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}


def test_quick_bench_writes_every_figure(quick_run, capsys):
    r = quick_run
    # Keys say the batch that ran: 4 and 2 under --quick (menet_tf.bench.keys).
    assert keys_of(r["settings"])["infer_batch"] == "infer_b4"
    assert keys_of(r["settings"])["train"] == "train_b2"
    for key in ("infer_b1", "infer_b4", "infer_large", "train_b2", "train_mse_b2"):
        figure = r["port"][key]
        assert figure["median_s"] > 0 and figure["cpu_median_s"] >= 0, key
        assert figure["min_s"] <= figure["median_s"] <= figure["max_s"], key
        assert len(figure["runs_s"]) == r["settings"]["repeats"] == 1
        assert figure["per_item_s"] == pytest.approx(figure["median_s"] / figure["items"])
    assert r["port"]["infer_b4"]["items"] == r["settings"]["inference"]["batches"][1] == 4
    assert r["gb_over_mse"]["wall"] > 0 and r["gb_over_mse"]["cpu"] > 0
    assert r["pipeline"]["crops_per_s"] > 0 and r["pipeline"]["crops"] > 0
    assert r["memory"]["peak_rss_mb"] > 100  # TensorFlow alone takes more
    machine = r["machine"]
    assert machine["versions"]["tensorflow"] == tf.__version__
    assert machine["device"] in ("CPU", "GPU")
    assert isinstance(machine["cpu"]["flags"], list) and "amx" in machine["cpu"]
    assert {"intra_op", "inter_op"} <= set(machine["threads"])
    assert isinstance(machine["onednn"], bool)
    assert r["settings"]["conv_gradient"] in ("native", "convolution")
    assert r["settings"]["quick"] is True and r["settings"]["precision"] == "fp32"
    assert r["command"].startswith("menet-tf bench") and "--quick" in r["command"]
    assert [g["target"] for g in r["goals"]] == [1.15, 1.25, 1.15, 1.10]
    assert all(g["met"] is None for g in r["goals"]), "--quick must not claim goals"


@pytest.mark.skipif(not HAVE_GRAPHS, reason=f"authors' graphs not found at {GRAPHS}")
def test_quick_bench_times_the_authors_graph_interleaved(quick_run):
    r = quick_run
    assert r["authors"]["name"] == "ModelShallowNewCaEdgeGramGradBalance"
    # Inference is timed on both sides; the authors' training graph only takes batch 20 of 224.
    assert set(r["authors_graph"]) == {"infer_b1", "infer_b4", "infer_large"}
    assert set(r["ratios"]) == set(r["authors_graph"])
    for key, ratio in r["ratios"].items():
        expected = r["authors_graph"][key]["median_s"] / r["port"][key]["median_s"]
        assert ratio["wall"] == pytest.approx(expected), key
    assert any("exactly [20, 224, 224, 3]" in n for n in r["notes"])


def test_bench_refuses_a_missing_authors_folder(tmp_path, capsys):
    assert main(["bench", "--quick", "--authors", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "b.json")]) == 1
    err = capsys.readouterr().err
    assert "nope: no such folder" in err and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()


def test_summaries_and_interleaving():
    s = timing.summarize([3.0, 1.0, 2.0], [0.5, 0.5, 0.7], items=4)
    assert s["median_s"] == 2.0 and s["spread"] == 1.0 and s["per_item_s"] == 0.5
    assert s["cpu_median_s"] == 0.5
    order = []
    timed = timing.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                                   repeats=2, warmup=1)
    assert order == ["a", "b"] * 3  # turns, warm-up round included
    assert len(timed["a"]["runs_s"]) == 2


def test_cpu_info_reads_the_flags():
    from menet_tf.machine import cpu_info

    info = cpu_info()
    assert bench.machine_info()["cpu"] == info  # the bench records the one environment record
    assert info["logical_cpus"] >= 1
    assert info["avx512"] == any(f.startswith("avx512") for f in info["flags"])


def _tiny_batch(size, batch=2):
    rng = np.random.default_rng(size)
    clean = rng.uniform(0, 255, [batch, size, size, 3]).astype("float32")
    return np.clip(clean + 30, 0, 255).astype("float32"), clean


def test_training_step_traces_once_per_input_shape():
    model = menet_tf.build_model("MENET-GB")
    traces = []
    train_step = model.train_step

    def counted(data):
        traces.append(1)  # Python runs only while tracing
        return train_step(data)

    model.train_step = counted
    for _ in range(3):
        model.train_on_batch(*_tiny_batch(32))
    assert len(traces) == 1
    for _ in range(2):
        model.train_on_batch(*_tiny_batch(48))
    assert len(traces) <= 2
    model.train_on_batch(*_tiny_batch(32))
    assert len(traces) <= 2


def test_training_step_stays_in_the_graph():
    """No py_function and no host round trip inside the step (so it runs on a GPU unchanged)."""
    model = menet_tf.build_model("MENET-GB")
    spec = tf.TensorSpec([2, 32, 32, 3], tf.float32)
    graph = tf.function(model.train_step).get_concrete_function((spec, spec)).graph
    ops = {op.type for op in graph.get_operations()}
    assert not ops & PY_OPS
    assert "FusedBatchNormV3" in ops  # the fused batch norm is what trains


def test_inference_function_traces_once_per_shape():
    from menet_tf.infer.derainer import Derainer

    model = menet_tf.build_model("MENET-GB")
    derainer = Derainer(model, jit_compile=False)
    x = _tiny_batch(32)[0]
    for _ in range(3):
        derainer.predict(x)
    assert derainer.trace_count == 1
    derainer.predict(_tiny_batch(48)[0])
    derainer.predict(x)
    assert derainer.trace_count <= 2
    graph = derainer.concrete_function(32, 32).graph
    assert not {op.type for op in graph.get_operations()} & PY_OPS


def test_per_task_shared_gradients_from_layer5_output_equal_the_kernel_gradients():
    """The GB norms taken from layer5's output (one stacked kernel-gradient op) equal the norms
    of one tape.gradient per task on the layer5 kernel."""
    from menet_tf.model.network import record_shared_layer

    model = menet_tf.build_model("MENET-GB")
    rainy, clean = _tiny_batch(32)
    with tf.GradientTape(persistent=True) as tape, record_shared_layer() as shared:
        derained = model(rainy, training=True)
        losses = model.compute_task_losses(clean, derained)
    assert len(shared) == 1 and shared[0][1].shape[-1] == 12
    fast = model._shared_gradient_norms(tape, losses, shared[0])
    plain = [tf.norm(tape.gradient(loss, model.shared_kernel)) for loss in losses]
    np.testing.assert_allclose([float(n) for n in fast], [float(n) for n in plain], rtol=1e-5)
    assert all(float(n) > 0 for n in fast)


def test_objective_gradient_from_layer5_output_equals_the_full_backward_pass():
    """GB's training gradient reuses the per-task gradients at layer5's output; it equals one
    tape.gradient of sum_i w_i L_i over every trainable variable."""
    model = menet_tf.build_model("MENET-GB")
    rainy, clean = _tiny_batch(32)
    tape, _, _, losses, _, weights = model._forward((rainy, clean), training=True)
    assert getattr(tape, "menet_shared_tail", None) is not None
    fast = model._objective_gradients(tape, losses, weights)
    plain = tape.gradient(losses, model.trainable_variables, output_gradients=weights)
    assert len(fast) == len(plain) == len(model.trainable_variables)
    for f, p, v in zip(fast, plain, model.trainable_variables):
        scale = float(tf.reduce_max(tf.abs(p))) + 1e-12
        np.testing.assert_allclose(f.numpy(), p.numpy(), rtol=0, atol=1e-4 * scale, err_msg=v.path)


def test_bench_without_out_writes_no_file(tmp_path, monkeypatch, capsys):
    """bench prints its table; it writes bench.json only where -o/--out says (issue 14)."""
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--quick", "--repeats", "1", "--no-pipeline", "--no-training",
                 "--no-roofline", "--quiet"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert "wrote" not in capsys.readouterr().out


def test_pipeline_bench_removes_its_temporary_synthetic_set(tmp_path, monkeypatch):
    """With no data and no synthetic set, the pipeline bench makes one in a temporary folder and
    removes it afterwards (issue 14, point 11: temporary folders are removed)."""
    import tempfile

    from menet_tf.bench import pipeline

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.chdir(tmp_path)  # no data/synthetic/heavy here
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = pipeline.benchmark(batch_size=2, crop_size=64, num_crops=1, epochs=1, max_batches=1)
    assert result["synthetic_temp"] and result["batches"] == 1
    assert not list(temp.glob("menet-tf-bench-*"))  # (TensorFlow's own .py temporaries aside)
