"""The runner protocol (menet_tf.infer.runner): ``Derainer`` pads, resizes and tiles around any
runner, so a runner that is not the Keras one gives the images the Keras runner gives."""
import numpy as np
import pytest
import tensorflow as tf

from menet_tf.errors import MenetError
from menet_tf.infer.derainer import Derainer
from menet_tf.infer.runner import Runner
from menet_tf.model.layers import attention_mean_hook
from menet_tf.model.network import MENET

from model_helpers import perturb_batch_norm


def _model(attention):
    tf.random.set_seed(0)
    model = perturb_batch_norm(MENET(depth=1, attention=attention).ensure_built(), 0)
    model.layer5.kernel.assign(model.layer5.kernel * 0.1)
    return model


def _images(n, h, w, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


def _padded_mean(e, height, size):
    """Channel attention's mean over the real image, in float64 NumPy: each 1/16 cell weighted
    by the share of real pixels it covers (an oracle independent of the library's)."""
    e = np.asarray(e, np.float64)
    scale = height // e.shape[1]
    rows = np.clip(size[0] - np.arange(e.shape[1]) * scale, 0, scale) / scale
    cols = np.clip(size[1] - np.arange(e.shape[2]) * scale, 0, scale) / scale
    weight = rows[:, None] * cols[None, :]
    return (e * weight[None, :, :, None]).sum(axis=(1, 2), keepdims=True) / weight.sum()


class EagerRunner(Runner):
    """Not the Keras runner: the model called eagerly (no tf.function, batch norm not folded),
    channel attention's mean handed in from NumPy."""

    def __init__(self, model):
        super().__init__("eager", model.multiple)
        self.keras = model
        self.calls = 0

    def _call(self, batch, hook=None):
        self.calls += 1
        with attention_mean_hook(hook):
            return np.asarray(self.keras(tf.constant(batch), training=False), np.float32)

    def run(self, batch):
        return self._call(batch)

    def run_padded(self, batch, size):
        if not self.keras.attention:
            return self.run(batch)
        return self._call(batch, lambda e: tf.constant(
            _padded_mean(e.numpy(), batch.shape[1], size), e.dtype))

    def has_attention(self):
        return bool(self.keras.attention)

    def excitation(self, tiles):
        seen = []
        self._call(tiles, lambda e: seen.append(e.numpy()) or tf.reduce_mean(
            e, axis=[1, 2], keepdims=True))
        return seen[0]

    def run_with_mean(self, tiles, mean):
        return self._call(tiles, lambda e: tf.cast(mean, e.dtype))


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("mode, options", [("pad", {}), ("resize", {}),
                                           ("tile", {"tile_size": 32, "overlap": 16})])
def test_another_runner_gives_the_keras_runners_images(attention, mode, options):
    model = _model(attention)
    keras = Derainer(model, jit_compile=False)
    runner = EagerRunner(model)
    other = Derainer(runner)
    x = _images(2, 37, 45)
    reference = keras.derain(x, mode=mode, **options)
    out = other.derain(x, mode=mode, **options)
    assert runner.calls > 0 and out.shape == x.shape and out.dtype == np.float32
    assert np.abs(reference - x).max() > 1.0  # the network changes the image
    np.testing.assert_allclose(out, reference, atol=2e-3)


class Invert(Runner):
    """A network-free runner (255 - x) taking sides in multiples of 8."""

    def __init__(self):
        super().__init__("invert", 8)
        self.shapes = []

    def run(self, batch):
        self.shapes.append(batch.shape)
        return 255.0 - batch


def test_pad_and_tile_wrap_any_runner():
    runner = Invert()
    derainer = Derainer(runner)
    x = _images(1, 21, 30, seed=1)
    np.testing.assert_array_equal(derainer.derain(x), 255.0 - x)  # padded, cropped back
    assert runner.shapes == [(1, 24, 32, 3)]
    runner.shapes.clear()
    tiled = derainer.derain(x, mode="tile", tile_size=12, overlap=4)
    assert runner.shapes and all(s[1:3] == (16, 16) for s in runner.shapes)  # rounded to 8
    np.testing.assert_allclose(tiled, 255.0 - x, atol=1e-3)


def test_what_a_runner_cannot_do_is_one_line():
    derainer = Derainer(Invert())
    assert derainer.model is None and derainer.precision == "fp32" and derainer.multiple == 8
    assert not derainer.has_attention()
    with pytest.raises(MenetError, match="^invert: cannot be exported$"):
        derainer.serving_function(tf.zeros([1, 8, 8, 3]))
    with pytest.raises(MenetError, match="no TensorFlow function"):
        derainer.concrete_function(8, 8)
    with pytest.raises(MenetError, match="not a multiple of 8"):
        derainer.predict(np.zeros((1, 12, 8, 3), np.float32))
    with pytest.raises(MenetError, match="brings its own options"):
        Derainer(Invert(), precision="bf16")
