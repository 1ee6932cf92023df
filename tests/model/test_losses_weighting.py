"""Tasks and task weighting, checked against direct NumPy computations of their definitions."""
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.model import losses
from menet_tf.model.weighting import (
    WEIGHTINGS,
    GradientBalance,
    LossBalance,
    TaskWeighting,
    make_weighting,
    register_weighting,
)

RNG = np.random.default_rng(0)


def _images(n=2, h=16, w=24):
    return RNG.uniform(0, 255, [n, h, w, 3]).astype("float32")


def _gram_mean_numpy(x):
    n, h, w, c = x.shape
    # space_to_depth(4): patch (i, j) -> 48 values ordered (row in block, col in block, channel)
    patches = x.reshape(n, h // 4, 4, w // 4, 4, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, 48)
    grams = np.einsum("npi,npj->nij", patches.astype(np.float64), patches.astype(np.float64))
    return grams


def test_reconstruction_and_edge_losses():
    clean, out = _images(), _images()
    assert float(losses.reconstruction_loss(clean, out)) == pytest.approx(np.mean((out - clean) ** 2), rel=1e-5)
    # Sobel with reflect padding, written out directly.
    def sobel(x):
        p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect").astype(np.float64)
        ky = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float64)
        kx = ky.T
        out = np.zeros(x.shape + (2,))
        for i in range(3):
            for j in range(3):
                win = p[:, i : i + x.shape[1], j : j + x.shape[2]]
                out[..., 0] += ky[i, j] * win
                out[..., 1] += kx[i, j] * win
        return out

    expected = np.mean((sobel(out) - sobel(clean)) ** 2)
    assert float(losses.edge_loss(clean, out)) == pytest.approx(expected, rel=1e-4)


def test_texture_released_form_is_mean_of_gram_per_image():
    clean, out = _images(), _images()
    g_out = _gram_mean_numpy(out).mean(axis=(1, 2))
    g_clean = _gram_mean_numpy(clean).mean(axis=(1, 2))
    expected = np.mean((g_out - g_clean) ** 2)
    assert float(losses.texture_loss_released(clean, out)) == pytest.approx(expected, rel=1e-4)


def test_texture_paper_form_is_frobenius_of_normalised_gram_difference():
    clean, out = _images(), _images()
    patches = (16 // 4) * (24 // 4)
    diff = (_gram_mean_numpy(out) - _gram_mean_numpy(clean)) / patches
    expected = np.mean(np.sum(diff**2, axis=(1, 2)))
    assert float(losses.texture_loss_paper(clean, out)) == pytest.approx(expected, rel=1e-4)
    assert float(losses.texture_loss_paper(clean, clean)) == 0.0


def test_unknown_task_and_form_are_refused():
    with pytest.raises(menet_tf.ConfigError, match="unknown task 'ssim'"):
        losses.make_task("ssim")
    with pytest.raises(menet_tf.ConfigError, match="texture_form"):
        losses.make_task("texture", texture_form="gram")


def test_vgg_loss_needs_weights_file(tmp_path):
    with pytest.raises(menet_tf.ConfigError, match="needs ImageNet VGG19 weights"):
        losses.make_task("vgg")
    with pytest.raises(menet_tf.ConfigError, match="not found"):
        losses.make_task("vgg", vgg_weights=str(tmp_path / "missing.h5"))


def test_vgg_loss_uses_conv3_4_with_caffe_preprocessing():
    vgg = losses.make_task("vgg", vgg_weights="random")
    assert vgg.features.output.shape[-1] == 256 and vgg.features.layers[-1].name == "block3_conv4"
    clean, out = _images(1, 32, 32), _images(1, 32, 32)
    caffe = lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)  # noqa: E731
    expected = np.mean((vgg.features(caffe(out)).numpy() - vgg.features(caffe(clean)).numpy()) ** 2)
    assert float(vgg(clean, out)) == pytest.approx(expected, rel=1e-4)
    assert not vgg.trainable_variables


def test_gradient_and_loss_balance_formulas():
    values = [tf.constant(3.0), tf.constant(1.0), tf.constant(0.0)]
    gb = GradientBalance(("mse", "texture", "edge"))
    lb = LossBalance(("mse", "texture", "edge"))
    np.testing.assert_allclose([float(w) for w in gb(None, values)], [0.25, 0.75, 1.0])
    np.testing.assert_allclose([float(w) for w in lb(values, None)], [0.25, 0.75, 1.0])


def test_zero_sums_give_no_nan():
    zeros = [tf.constant(0.0), tf.constant(0.0)]
    for weights in (GradientBalance(("mse", "edge"))(None, zeros), LossBalance(("mse", "edge"))(zeros)):
        assert [float(w) for w in weights] == [1.0, 1.0]


def test_texture_dominates_gb_weight_exactly_zero_in_float32():
    norms = [tf.constant(16.9), tf.constant(3.7e12), tf.constant(0.2)]
    weights = [float(w) for w in GradientBalance(("mse", "texture", "edge"))(None, norms)]
    assert weights[1] == 0.0 and weights[0] == pytest.approx(1.0) and weights[2] == pytest.approx(1.0)


def test_weights_are_constants():
    loss = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        l1, l2 = loss * 3.0, loss * 1.0
        w = LossBalance(("mse", "edge"))([l1, l2])
        objective = w[0] * l1 + w[1] * l2
    # d/dx (0.25 * 3x + 0.75 * x) with the weights held constant
    assert float(tape.gradient(objective, loss)) == pytest.approx(0.25 * 3 + 0.75)


def test_balance_needs_two_tasks_and_fixed_checks_names():
    with pytest.raises(menet_tf.ConfigError, match="at least two tasks"):
        make_weighting("gb", ("mse",))
    with pytest.raises(menet_tf.ConfigError, match="tasks the model does not have"):
        make_weighting("fixed", ("mse",), {"edge": 0.1})
    with pytest.raises(menet_tf.ConfigError, match="unknown weighting"):
        make_weighting("uncertainty", ("mse", "edge"))


def test_a_new_scheme_is_a_new_class_not_an_edit_of_train_step():
    @register_weighting("equal_test")
    class Equal(TaskWeighting):
        def weights(self, task_losses, gradient_norms=None):
            return [0.5 for _ in task_losses]

    try:
        config = menet_tf.ExperimentConfig(
            model=menet_tf.ModelConfig(depth=1),
            loss=menet_tf.LossConfig(tasks=("mse", "edge"), weighting="equal_test"),
        )
        config.train.jit_compile = False
        model = menet_tf.build_model(config)
        clean, rainy = _images(2, 16, 16), _images(2, 16, 16)
        logs = model.train_on_batch(rainy, clean, return_dict=True)
        assert logs["weight_mse"] == logs["weight_edge"] == 0.5
        assert logs["loss"] == pytest.approx(0.5 * (logs["mse"] + logs["edge"]), rel=1e-5)
    finally:
        WEIGHTINGS.pop("equal_test")
