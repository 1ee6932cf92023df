"""Issue 14.9: one float-to-8-bit rule for derain's files, evaluate's Y/RGB protocols and the
export's uint8 signature: round half up, clip to 0..255."""
import numpy as np
import tensorflow as tf
from PIL import Image

from menet_tf.evaluation import protocols
from menet_tf.infer import photos
from menet_tf.infer.derainer import Derainer

VALUES = np.array([0.5, 1.5, 2.5, 254.5, -3.0, 300.0, 0.49999997, 127.49, 3.0], np.float32)
EXPECTED = np.array([1, 2, 3, 255, 0, 255, 0, 127, 3], np.uint8)


class _Constant:
    """A stand-in network whose output is VALUES, whatever the input."""

    multiple = 1

    def ensure_built(self):
        return self

    def __call__(self, x, training=False):
        return tf.broadcast_to(tf.constant(VALUES)[None, None, :, None], tf.shape(x))


def _image(values):
    return np.repeat(values[None, :, None], 3, axis=-1)  # [1, W, 3]


def test_the_numpy_rule(tmp_path):
    assert np.array_equal(photos.to_uint8(VALUES), EXPECTED)


def test_derain_files_evaluate_and_export_agree(tmp_path):
    saved = tmp_path / "out.png"
    photos.write_photo(_image(VALUES), saved)
    from_file = np.asarray(Image.open(saved))[..., 0][0]
    scored = protocols.to_uint8(_image(VALUES))[..., 0][0]
    derainer = Derainer(_Constant(), fold_batch_norm=False, jit_compile=False)
    exported = derainer.serving_function(tf.zeros([1, 1, len(VALUES), 3], tf.uint8)).numpy()
    for name, got in (("derain", from_file), ("evaluate", scored),
                      ("export", exported[0, 0, :, 0])):
        assert np.array_equal(got, EXPECTED), (name, got)


def test_crop_border_applies_to_rgb():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    output = clean.astype(np.float32)
    output[:3] = 255 - output[:3]  # wrong only in the border
    assert protocols.whole_image_scores(output, clean, "rgb")[0] < 30
    assert protocols.whole_image_scores(output, clean, "rgb", border=3)[0] == float("inf") or \
        protocols.whole_image_scores(output, clean, "rgb", border=3)[0] > 90
