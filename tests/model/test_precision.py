"""Mixed precision (--precision) and the NaN/Inf guard of the training step."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from model_helpers import random_pairs


def _config(precision, name="MENET-GB"):
    config = menet_tf.released_config(name)
    config.model.depth = 1
    config.train.jit_compile = False
    config.train.precision = precision
    return config


def _pairs(n=2, size=32, seed=0):
    return random_pairs(n, size, seed)


def _model(precision, name="MENET-GB", weights=None):
    keras.utils.set_random_seed(0)
    model = menet_tf.build_model(_config(precision, name))
    if weights is not None:
        model.set_weights(weights)
    return model


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_policy_on_the_layers_float32_variables_output_and_losses(precision, tmp_path):
    model = _model(precision)
    half = precision.split("_")[1]
    bns = [l for l in model._flatten_layers() if isinstance(l, menet_tf.model.layers.FusedBatchNorm)]
    convs = [l for l in model._flatten_layers() if isinstance(l, keras.layers.Conv2D)]
    assert bns and convs
    assert all(l.compute_dtype == half for l in bns + convs)
    assert all(v.dtype == "float32" for v in model.variables)
    rainy, clean = _pairs()
    out = model(rainy, training=False)
    assert out.dtype == tf.float32
    assert all(l.dtype == tf.float32 for l in model.compute_task_losses(clean, out))
    # Reloads as mixed.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layer5.compute_dtype == half and loaded.dtype_policy.name == precision
    np.testing.assert_array_equal(loaded.predict_on_batch(rainy), model.predict_on_batch(rainy))


def test_bfloat16_trains_close_to_float32():
    reference = _model("float32")
    weights = reference.get_weights()
    mixed = _model("mixed_bfloat16", weights=weights)
    rainy, clean = _pairs()
    a = reference.train_on_batch(rainy, clean, return_dict=True)
    b = mixed.train_on_batch(rainy, clean, return_dict=True)
    assert b["skipped_steps"] == 0 and int(mixed.optimizer.iterations) == 1
    assert b["mse"] == pytest.approx(a["mse"], rel=2e-2)
    assert b["texture"] == pytest.approx(a["texture"], rel=2e-2)
    for t in ("mse", "texture", "edge"):
        assert b[f"weight_{t}"] == pytest.approx(a[f"weight_{t}"], abs=1e-3)
    assert "loss_scale" not in b  # no loss scaling without float16


def test_float16_gradient_balance_norms_do_not_overflow():
    """The texture loss (~1e12 here) back-propagated in float16 overflows; the GB norms are taken
    of S * L_i / L_i and rescaled in float32, so they match float32's."""
    reference = _model("float32")
    half = _model("mixed_float16", weights=reference.get_weights())
    rainy, clean = _pairs()

    def norms(model):
        with tf.GradientTape(persistent=True) as tape:
            losses = model.compute_task_losses(clean, model(rainy, training=True))
        naive = [tape.gradient(loss, model.shared_kernel) for loss in losses]
        return [float(n) for n in model._shared_gradient_norms(tape, losses)], naive

    expected, _ = norms(reference)
    got, naive = norms(half)
    assert not np.all(np.isfinite(naive[1].numpy())), "texture gradient did not overflow in float16"
    np.testing.assert_allclose(got, expected, rtol=2e-2)
    logs = half.train_on_batch(rainy, clean, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["weight_texture"] < 1e-3 < logs["weight_mse"]


def _inf_batch():
    rainy, clean = _pairs()
    clean[0, 0, 0, 0] = np.inf  # -> infinite losses -> NaN weights and gradients
    return rainy, clean


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_non_finite_step_is_skipped_and_counted(precision):
    model = _model(precision, name="MENET-LB")
    before = [v.numpy().copy() for v in model.variables]
    optimizer_before = [v.numpy().copy() for v in model.optimizer.variables]
    logs = model.train_on_batch(*_inf_batch(), return_dict=True)
    assert logs["skipped_steps"] == 1
    assert int(model.optimizer.iterations) == 0
    # Trainable weights and Adam slots untouched. (BN moving statistics are updated by the
    # forward pass itself, as in the authors' graph, where they are finite here.)
    for b, v in zip(before, model.variables):
        if "moving" not in v.path:
            np.testing.assert_array_equal(b, v.numpy(), err_msg=v.path)
    for b, v in zip(optimizer_before, model.optimizer.variables):
        np.testing.assert_array_equal(b, v.numpy())
    logs = model.train_on_batch(*_pairs(), return_dict=True)
    assert logs["skipped_steps"] == 0 and int(model.optimizer.iterations) == 1


def test_skipped_steps_are_counted_over_an_epoch():
    model = _model("float32", name="MENET-LB")
    rainy, clean = _pairs(n=6)
    clean[2, 0, 0, 0] = np.nan  # batch 2 of 3
    data = tf.data.Dataset.from_tensor_slices((rainy, clean)).batch(2)
    history = model.fit(data, epochs=1, verbose=0)
    assert history.history["skipped_steps"] == [1.0]
    assert int(model.optimizer.iterations) == 2


def test_float16_overflow_halves_the_loss_scale_and_skips():
    model = _model("mixed_float16", name="MENET-LB")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    scale = float(model.optimizer.dynamic_scale)
    weights = model.get_weights()
    logs = model.train_on_batch(*_inf_batch(), return_dict=True)
    assert logs["skipped_steps"] == 1 and logs["loss_scale"] == scale / 2
    assert int(model.optimizer.iterations) == 0
    kernel = model.layer5.kernel.path
    index = [v.path for v in model.weights].index(kernel)
    np.testing.assert_array_equal(model.get_weights()[index], weights[index])
    # The scale then finds its level: after a few steps the steps go through.
    for _ in range(6):
        logs = model.train_on_batch(*_pairs(), return_dict=True)
    assert logs["skipped_steps"] == 0 and int(model.optimizer.iterations) >= 1


def test_unknown_precision_is_a_config_error():
    with pytest.raises(menet_tf.ConfigError, match="precision must be one of"):
        menet_tf.build_model(_config("float8"))
