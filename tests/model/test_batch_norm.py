"""The fused batch norm layer (layers.FusedBatchNorm): TF1's batch norm, computed by the fused
kernel. Checked against the formulas in float64 (forward, gradients, TF1's moving-statistics
update with the unbiased variance), in both training paths, in inference mode, in bfloat16,
and as a saved layer.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf.model import network
from menet_tf.model.layers import FusedBatchNorm

SHAPE = (4, 6, 5, 3)
EPS = 1e-3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = (50.0 + 8.0 * rng.standard_normal(SHAPE)).astype("float32")  # far from zero mean
    dy = rng.standard_normal(SHAPE).astype("float32")
    return x, dy


def _layer(seed=1):
    rng = np.random.default_rng(seed)
    layer = FusedBatchNorm(momentum=0.99, epsilon=EPS)
    layer.build(SHAPE)
    layer.gamma.assign(rng.uniform(0.5, 1.5, 3))
    layer.beta.assign(rng.standard_normal(3))
    layer.moving_mean.assign(rng.standard_normal(3))
    layer.moving_variance.assign(rng.uniform(0.5, 2.0, 3))
    return layer


def _reference(layer, x, dy):
    """float64 batch norm in training mode and its gradients (the textbook formulas)."""
    x = x.astype(np.float64)
    g, b = layer.gamma.numpy().astype(np.float64), layer.beta.numpy().astype(np.float64)
    n = x.size // x.shape[-1]
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    xhat = (x - mean) / np.sqrt(var + EPS)
    dx = g / np.sqrt(var + EPS) * (dy - dy.mean((0, 1, 2)) - xhat * (dy * xhat).mean((0, 1, 2)))
    return {"y": xhat * g + b, "dx": dx, "dgamma": (dy * xhat).sum((0, 1, 2)),
            "dbeta": dy.sum((0, 1, 2)), "mean": mean, "unbiased": var * n / (n - 1)}


@pytest.mark.parametrize("precise", [True, False], ids=["moments", "kernel-statistics"])
def test_training_mode_matches_the_formulas(monkeypatch, precise):
    monkeypatch.setattr(FusedBatchNorm, "precise_statistics", staticmethod(lambda: precise))
    layer = _layer()
    x, dy = _data()
    old_mean, old_var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    ref = _reference(layer, x, dy)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
    dx, dgamma, dbeta = tape.gradient(y, [xt, layer.gamma, layer.beta], output_gradients=tf.constant(dy))
    np.testing.assert_allclose(y.numpy(), ref["y"], atol=2e-5)
    np.testing.assert_allclose(dx.numpy(), ref["dx"], atol=2e-5)
    np.testing.assert_allclose(dgamma.numpy(), ref["dgamma"], atol=1e-4)
    np.testing.assert_allclose(dbeta.numpy(), ref["dbeta"], atol=1e-4)
    # TF1: moving -= (moving - batch) * (1 - momentum), with the unbiased batch variance.
    np.testing.assert_allclose(layer.moving_mean.numpy(), old_mean * 0.99 + ref["mean"] * 0.01, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), old_var * 0.99 + ref["unbiased"] * 0.01,
                               rtol=1e-5)


def test_training_step_in_a_compiled_function_and_with_xla():
    x, dy = _data()
    for jit in (False, True):
        layer = _layer()
        ref = _reference(layer, x, dy)

        @tf.function(jit_compile=jit)
        def step(x, dy):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=True)
            return y, tape.gradient(y, x, output_gradients=dy)

        y, dx = step(tf.constant(x), tf.constant(dy))
        np.testing.assert_allclose(y.numpy(), ref["y"], atol=1e-4)
        np.testing.assert_allclose(dx.numpy(), ref["dx"], atol=1e-4)


def test_inference_uses_moving_statistics_and_leaves_them():
    layer = _layer()
    x, _ = _data()
    mean, var = layer.moving_mean.numpy(), layer.moving_variance.numpy()
    expected = (x - mean) / np.sqrt(var + EPS) * layer.gamma.numpy() + layer.beta.numpy()
    for training in (False, None):
        np.testing.assert_allclose(layer(x, training=training).numpy(), expected, atol=1e-4)
    layer.trainable = False  # a frozen layer normalises with its moving statistics, like Keras'
    np.testing.assert_allclose(layer(x, training=True).numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)
    np.testing.assert_array_equal(layer.moving_variance.numpy(), var)


def test_variables_are_tf1s():
    layer = _layer()
    assert [v.name for v in layer.trainable_weights] == ["gamma", "beta"]
    assert [v.name for v in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert all(v.dtype == "float32" for v in layer.weights)


def test_bfloat16_inputs_with_float32_statistics():
    layer = FusedBatchNorm(dtype="mixed_bfloat16")
    x, dy = _data()
    with tf.GradientTape() as tape:
        xt = tf.cast(tf.constant(x), tf.bfloat16)
        tape.watch(xt)
        y = layer(xt, training=True)
    assert y.dtype == tf.bfloat16 and layer.moving_mean.dtype == "float32"
    assert tape.gradient(y, xt, output_gradients=tf.cast(dy, tf.bfloat16)).dtype == tf.bfloat16
    ref = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + EPS)
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), ref, atol=0.1)


def test_float64_models_fall_back_to_separate_ops():
    layer = FusedBatchNorm(dtype="float64")
    x = _data()[0].astype(np.float64)
    y = layer(tf.constant(x, tf.float64), training=True)
    ref = (x - x.mean((0, 1, 2))) / np.sqrt(x.var((0, 1, 2)) + EPS)
    assert y.dtype == tf.float64
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-6)


def test_saved_and_reloaded(tmp_path):
    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, FusedBatchNorm(momentum=0.9, epsilon=1e-2, name="bn")(inputs))
    model.layers[-1].moving_mean.assign([1.0, 2.0, 3.0])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    bn = loaded.get_layer("bn")
    assert isinstance(bn, FusedBatchNorm) and bn.momentum == 0.9 and bn.epsilon == 1e-2
    np.testing.assert_array_equal(bn.moving_mean.numpy(), [1.0, 2.0, 3.0])


def test_menet_uses_it_and_tf1_names_map():
    from menet_tf.authors.checkpoint import variable_map

    model = network.MENET(depth=1, attention=True).ensure_built()
    assert isinstance(model.layer1.bn, FusedBatchNorm)
    names = variable_map(model)
    assert names["derain/batch_normalization/moving_variance"] is model.layer1.bn.moving_variance
    assert names["derain/ca/batch_normalization_4/gamma"] is model.ca.excitation_1.bn.gamma


def test_brelu_gradient_is_clip_by_values():
    x = tf.constant([-3.0, 0.0, 5.0, 255.0, 300.0])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours, theirs = network.brelu(x), tf.clip_by_value(x, 0.0, 255.0)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(ours, x).numpy(), tape.gradient(theirs, x).numpy())
