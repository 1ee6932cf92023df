"""The faster forms of the training step's arithmetic compute what the plain forms compute:
convolution gradients taken by forward convolutions, the separable float64 SSIM, the texture
loss without Gram matrices and the edge loss of the difference. (Speed: ``menet-tf bench``.)"""
import keras
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf.model import losses
from menet_tf.model import metrics
from menet_tf.model import conv_gradient
from menet_tf.errors import MenetError


@pytest.mark.parametrize("shape, kernel", [((2, 9, 7, 5), (3, 3, 5, 4)), ((1, 6, 10, 3), (5, 5, 3, 2)),
                                           ((2, 8, 8, 16), (1, 1, 16, 8))])
def test_conv_gradients_by_convolution_equal_tensorflows(shape, kernel):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=shape), tf.float64)
    w = tf.constant(rng.normal(size=kernel), tf.float64)
    dy = tf.constant(rng.normal(size=shape[:3] + kernel[3:]), tf.float64)
    native_dx = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=shape, filter=w, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    native_dw = tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=kernel, out_backprop=dy, strides=[1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(conv_gradient.conv_input_gradient(dy, w), native_dx, rtol=1e-10, atol=1e-10)
    with conv_gradient.conv_gradients("convolution"):
        np.testing.assert_allclose(conv_gradient.conv_filter_gradient(x, dy, kernel), native_dw,
                                   rtol=1e-10, atol=1e-10)


def _gradients(mode, x, y):
    with conv_gradient.conv_gradients(mode):
        keras.utils.set_random_seed(0)
        config = menet_tf.released_config("MENET-GB")
        config.model.depth = 2
        model = menet_tf.build_model(config)
        gradients, terms = tf.function(model.compute_gradients)((tf.constant(x), tf.constant(y)))
    return [g.numpy() for g in gradients], [float(t) for t in terms[2]]


def test_training_gradients_are_the_same_either_way():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 255, (2, 32, 48, 3)).astype("float32")
    x = np.clip(y + rng.uniform(0, 80, y.shape) * (rng.random(y.shape) < 0.05), 0, 255).astype("float32")
    native, native_losses = _gradients("native", x, y)
    convolution, convolution_losses = _gradients("convolution", x, y)
    assert native_losses == pytest.approx(convolution_losses, rel=1e-6)
    for a, b in zip(native, convolution):
        assert np.abs(a - b).max() <= 1e-4 * np.abs(a).max() + 1e-12


def test_auto_uses_native_gradients_with_onednn(monkeypatch):
    with conv_gradient.conv_gradients("auto"):
        monkeypatch.setattr(conv_gradient, "onednn_enabled", lambda: True)
        assert conv_gradient.conv_gradient() == "native"
        monkeypatch.setattr(conv_gradient, "onednn_enabled", lambda: False)
        expected = "native" if tf.config.list_physical_devices("GPU") else "convolution"
        assert conv_gradient.conv_gradient() == expected
    with pytest.raises(MenetError, match="conv gradient must be one of"):
        conv_gradient.set_conv_gradient("fast")


def test_ssim_equals_tf_image_ssim():
    rng = np.random.default_rng(2)
    clean = rng.uniform(0, 255, (3, 40, 56, 3)).astype("float32")
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype("float32")
    # Another image pair with smooth content, where the variance terms cancel most.
    smooth = np.kron(rng.uniform(0, 255, (1, 5, 7, 3)), np.ones((1, 8, 8, 1))).astype("float32")
    for a, b in ((noisy, clean), (smooth + 1.5, smooth), (clean, clean)):
        expected = tf.image.ssim(tf.constant(a), tf.constant(b), max_val=255.0).numpy()
        np.testing.assert_allclose(metrics.ssim(a, b).numpy(), expected, rtol=2e-5)


def test_ssim_matches_the_authors_per_image_values(reference_dir):
    expected = np.load(reference_dir / "ModelShallowNewCaEdgeGramGradBalance" / "expected.npz")
    out = expected["train_output"].astype("float32")
    clean = expected["batch_bg"][: len(out)].astype("float32")
    np.testing.assert_allclose(metrics.ssim(out, clean).numpy(),
                               expected["metric_per_image/ssim"][: len(out)], rtol=2e-5)


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(MenetError, match="at least 11x11"):
        metrics.ssim(np.zeros((1, 8, 32, 3), "float32"), np.zeros((1, 8, 32, 3), "float32"))


def test_texture_without_gram_matrix_equals_mean_gram_entry():
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(0, 255, (2, 16, 24, 3)), tf.float32)
    np.testing.assert_allclose(losses.gram_mean(images).numpy(),
                               tf.reduce_mean(losses.patch_gram(images), axis=[1, 2]).numpy(),
                               rtol=1e-5)


def test_edge_loss_gradient_equals_two_sobel_form():
    rng = np.random.default_rng(4)
    clean = tf.constant(rng.uniform(0, 255, (2, 12, 20, 3)), tf.float64)
    out = tf.Variable(rng.uniform(0, 255, (2, 12, 20, 3)), dtype=tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        fast = losses.edge_loss(clean, out)
        plain = tf.reduce_mean(tf.math.squared_difference(tf.image.sobel_edges(out),
                                                          tf.image.sobel_edges(clean)))
    assert float(fast) == pytest.approx(float(plain), rel=1e-12)
    np.testing.assert_allclose(tape.gradient(fast, out), tape.gradient(plain, out), rtol=1e-9)
