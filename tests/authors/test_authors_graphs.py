"""The authors' released graphs and checkpoint indexes (../shared/reference/authors_graphs):
found, read (architecture and tasks of all 16), run by menet_tf.authors.graphs as the authors ran them.
"""
import shutil

import numpy as np
import pytest

import menet_tf
from menet_tf.authors import graphs as authors
from menet_tf.authors import session
from menet_tf.authors import checkpoint as tf1
from menet_tf.cli.main import main
from menet_tf.model.network import MENET

RELEASED_16 = {
    "light": ["ModelShallowNew", "ModelShallowNewCa", "ModelShallowNewEdgeFixed",
              "ModelShallowNewEdgeGradBalance", "ModelShallowNewEdgeLossBalance",
              "ModelShallowNewEdgeGramGradBalance", "ModelShallowNewEdgeGramLossBalance",
              "ModelShallowNewCaEdgeGramGradBalance", "ModelShallowNewCaEdgeGramLossBalance",
              "ModelDeepNewCaEdgeGramGradBalance", "ModelDeepNewCaEdgeGramLossBalance"],
    "heavy": ["ModelShallowNewCaformer", "ModelShallowNewCaformerEdgeGradBalance",
              "ModelShallowNewCaformerEdgeLossBalance", "ModelShallowNewCaformerEdgeGramGradBalance",
              "ModelShallowNewCaformerEdgeGramLossBalance"],
}
KEYS = sorted(f"{r}/{n}" for r, names in RELEASED_16.items() for n in names)
GB = "ModelShallowNewCaEdgeGramGradBalance"


def test_finds_all_16_released_models_and_says_their_data_is_missing(released):
    assert sorted(released) == KEYS
    assert not any(m.has_data for m in released.values())
    note = authors.missing_data_note(released["light/ModelShallowNew"])
    assert "\n" not in note and "no .data file" in note and "SumiHui/MENET" in note
    assert [m.key for m in authors.select(released.values(), ["MENET-GB"])] == [f"light/{GB}"]
    with pytest.raises(menet_tf.MenetError, match="no released model 'Nope'"):
        authors.select(released.values(), ["Nope"])


def test_finds_models_in_a_clone_of_the_authors_repository(released, tmp_path, reference_dir):
    """Clone layout: heavy|light/model_params/<Model>/model.final-100.*, with .data files."""
    folder = tmp_path / "MENET" / "light" / "model_params" / GB
    folder.mkdir(parents=True)
    shutil.copy(released[f"light/{GB}"].meta_path, folder)
    for f in (reference_dir / GB / "checkpoint").iterdir():
        shutil.copy(f, folder)
    (found,) = authors.find_released(tmp_path / "MENET")
    assert (found.key, found.has_data) == (f"light/{GB}", True)
    assert found.checkpoint_prefix == str(folder / "model.final-100")
    (tmp_path / "empty").mkdir()
    with pytest.raises(menet_tf.MenetError, match="no released model found"):
        authors.find_released(tmp_path / "empty")
    with pytest.raises(menet_tf.MenetError, match="not a folder"):
        authors.find_released(tmp_path / "missing")


@pytest.mark.parametrize("key", KEYS)
def test_architecture_read_off_every_released_index(released, key):
    """The .index alone (no .data) gives names and shapes; the port's TF1 names and shapes equal
    the checkpoint's weights and BN statistics exactly."""
    model = released[key]
    _, _, shapes = tf1.read_checkpoint(model.checkpoint_prefix)
    depth, attention = tf1.architecture_of(shapes)
    config = menet_tf.released_config(model.name)
    assert (depth, attention) == (config.model.depth, config.model.attention)
    port = MENET(depth, attention)
    mapping = {n: list(v.shape) for n, v in tf1.variable_map(port).items()}
    weights = {n: list(s) for n, s in shapes.items()
               if n.startswith("derain/") and not n.endswith(("/Adam", "/Adam_1"))}
    assert mapping == weights


@pytest.mark.parametrize("key", KEYS)
def test_tasks_and_weighting_read_off_every_released_graph(released, key):
    model = released[key]
    layout = authors.analyse(authors.read_meta_graph(model.meta_path), model.meta_path)
    config = menet_tf.released_config(model.name)
    assert layout.tasks == tuple(config.loss.tasks)
    kinds = {t: ("StopGradient" if isinstance(w, str) and w.startswith("StopGradient") else "fixed")
             for t, w in layout.weights.items()}
    expected = "StopGradient" if config.loss.weighting in ("gb", "lb") else "fixed"
    assert set(kinds.values()) == {expected}
    assert layout.learning_rate == pytest.approx(1e-3) and layout.epsilon == pytest.approx(1e-8)
    # Rain100H's schedule decays every 36000 steps, Rain100L's every 4000 (40 epochs each).
    assert layout.decay_steps == (36000 if key.startswith("heavy/") else 4000)
    assert layout.batch_size == (20 if "texture" in layout.tasks else 0)


def test_missing_data_file_is_said_in_one_line(released, tmp_path, capsys):
    prefix = released["heavy/ModelShallowNewCaformer"].checkpoint_prefix
    model = MENET(8, "caformer")
    with pytest.raises(menet_tf.CheckpointError, match=r"no \.data file") as err:
        tf1.load_checkpoint(model, prefix)
    assert "\n" not in str(err.value)
    assert main(["import-tf1", prefix, "-o", str(tmp_path / "m.keras")]) == 1
    assert "no .data file" in capsys.readouterr().err and not (tmp_path / "m.keras").exists()


@pytest.fixture(scope="module")
def gb_graph(released, reference_dir):
    graph = session.AuthorsGraph(released[f"light/{GB}"].meta_path)
    graph.restore(reference_dir / GB / "checkpoint" / "model.final-100")
    yield graph
    graph.close()


@pytest.mark.slow  # the authors' graph at its fixed shape, 20x224x224
def test_authors_graph_reproduces_what_the_authors_graph_computed(gb_graph, reference_dir):
    """The fixture's numbers came from the same graph: the loader must run it faithfully."""
    expected = np.load(reference_dir / GB / "expected.npz")
    before = gb_graph.variables()
    for key in ("a", "b"):  # [2, 96, 160] and [1, 224, 224]: any batch and size
        out = gb_graph.infer(expected[f"infer_{key}_input"].astype("float32"))
        np.testing.assert_allclose(out, expected[f"infer_{key}_output"], atol=1e-3)
    rainy, clean = expected["batch_syn"].astype("float32"), expected["batch_bg"].astype("float32")
    logs = gb_graph.step(rainy, clean, ssim=True)  # ssim: what the port also logs (bench)
    assert logs["ssim"] == pytest.approx(float(expected["metric/ssim"]), rel=2e-5)
    for task in ("mse", "texture", "edge"):
        assert logs[task] == pytest.approx(float(expected[f"loss/{task}"]), rel=1e-5)
        assert logs[f"weight_{task}"] == pytest.approx(float(expected[f"loss/weight_{task}"]), abs=1e-6)
    assert logs["loss"] == pytest.approx(float(expected["loss/objective"]), rel=1e-5)
    assert logs["psnr"] == pytest.approx(float(expected["metric/psnr"]), abs=1e-3)
    grads = gb_graph.gradients(rainy, clean)
    assert len(grads) == len([k for k in expected.files if k.startswith("grad/")])
    for name, g in grads.items():
        ref = expected[f"grad/{name}"]
        np.testing.assert_allclose(g, ref, atol=1e-2 * np.abs(ref).max(), err_msg=name)
    after = gb_graph.variables()  # nothing above trained or moved a statistic
    assert all(np.array_equal(before[n], after[n]) for n in before)
    with pytest.raises(menet_tf.MenetError, match=r"exactly \[20, 224, 224, 3\]"):
        gb_graph.step(rainy[:2], clean[:2])
    gb_graph.step(rainy, clean, train=True)
    values = gb_graph.variables()
    assert int(values["global_step"]) == 1
    for name in ("derain/layer5/layer5_conv/kernel", "derain/batch_normalization_3/moving_mean"):
        np.testing.assert_allclose(values[name], expected[f"step1/{name}"], atol=2e-4, rtol=1e-4)


def test_assign_reset_and_save_round_trip_to_the_port(gb_graph, tmp_path):
    values = gb_graph.variables()
    gb_graph.reset_optimizer()
    fresh = gb_graph.variables()
    assert int(fresh["global_step"]) == 0 and fresh["beta1_power"] == pytest.approx(0.9)
    assert not fresh["derain/layer5/layer5_conv/kernel/Adam"].any()
    with pytest.raises(menet_tf.CheckpointError, match="has shape"):
        gb_graph.assign({"derain/layer5/layer5_conv/kernel": np.zeros([3, 3, 16, 3])})
    prefix = gb_graph.save(tmp_path / "saved")
    port = MENET(8, True)
    tf1.load_checkpoint(port, prefix)
    for name, variable in tf1.variable_map(port).items():
        np.testing.assert_array_equal(variable.numpy(), values[name])


def test_seeded_initialisation_is_reproducible_and_gives_real_images(released):
    graph = session.AuthorsGraph(released["light/ModelShallowNewEdgeFixed"].meta_path)
    try:
        rainy, _ = session.synthetic_batch(2, 64, seed=3)
        graph.initialise(seed=0)
        a, out = graph.variables(), graph.infer(rainy)
        graph.initialise(seed=0)
        b = graph.variables()
        assert all(np.array_equal(a[n], b[n]) for n in a)
        graph.initialise(seed=1)
        assert not np.array_equal(graph.variables()["derain/layer1/layer1_conv/kernel"], a["derain/layer1/layer1_conv/kernel"])
        # Moving statistics near the batch's: outputs are images, not clipped to 0 or 255.
        assert ((out > 0) & (out < 255)).mean() > 0.9
        assert int(a["global_step"]) == 0 and not a["derain/layer1/layer1_conv/kernel/Adam"].any()
    finally:
        graph.close()


def test_caformer_block_rescales_without_the_residual():
    """What the Caformer graphs compute (read off them): h * s, the Ca block h + h * s."""
    import tensorflow as tf

    from menet_tf.model.layers import CaformerAttention, ChannelAttention

    h = tf.random.uniform([2, 16, 16, 64], seed=1)
    ca, caformer = ChannelAttention(), CaformerAttention()
    ca(h), caformer(h)
    for a, b in zip(ca.weights, caformer.weights):
        b.assign(a)
    np.testing.assert_allclose(ca(h, training=False) - h, caformer(h, training=False), atol=1e-5)
    model = MENET(8, "caformer")
    assert model.attention and model.multiple == 16
    assert MENET.from_config(model.get_config()).attention_block == "caformer"
    assert all(n.startswith("derain/channel_att/") for n in tf1.variable_map(model) if "att" in n)


def test_import_tf1_reads_a_caformer_checkpoint_off_its_variables(released, tmp_path, capsys):
    """A Caformer checkpoint (seeded values in the released layout) imports as a Caformer
    model that de-rains exactly as the authors' graph does."""
    import keras

    graph = session.AuthorsGraph(released["heavy/ModelShallowNewCaformer"].meta_path)
    try:
        graph.initialise(seed=2)
        prefix = graph.save(tmp_path / "caformer" / "model.final-100")
        rainy, _ = session.synthetic_batch(2, 48, seed=5)
        expected = graph.infer(rainy)
    finally:
        graph.close()
    out = tmp_path / "caformer.keras"
    assert main(["import-tf1", prefix, "-o", str(out)]) == 0
    assert "depth 8, attention caformer" in capsys.readouterr().out
    model = keras.saving.load_model(out)
    assert model.attention_block == "caformer"
    # Measured 1.5e-5 on this 48x48 batch (this test, CPU).
    np.testing.assert_allclose(model(rainy, training=False).numpy(), expected, rtol=0, atol=6e-5)
