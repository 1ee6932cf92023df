"""The batch metrics the authors log, ``tf.image.psnr`` and ``tf.image.ssim`` (max_val 255, RGB),
computed faster: what every training step, validation and the authors' evaluation protocol use.

Why not ``tf.image.ssim`` itself: it filters each of its four maps with a full 11x11 Gaussian
(121 taps per value, one depthwise convolution each), which on a CPU without oneDNN's depthwise
kernels cost a large share of a MENET-GB training step (docs/speed.md). The Gaussian of
``tf.image.ssim`` is separable (an outer product of one 1-D Gaussian), so ``ssim`` here filters
the four maps stacked as channels, once along the width and once along the height (22 taps),
in float64: several times cheaper, and closer to the exact value than ``tf.image.ssim``'s own
float32 arithmetic (on the reference batch: 4e-8 relative off a float64 evaluation of the 2-D
filter, against 3e-6 for ``tf.image.ssim``). Same definition otherwise: k1 0.01, k2 0.03, VALID
filtering, mean over the map and the channels.

Evaluation scores thousands of crops and hundreds of whole images per run, outside any training
step, so it uses ``ssim_float64`` and ``channel_ssim_float64``: the same float64 SSIM with the blur
compiled by XLA, several times faster again; training keeps ``ssim``.

The NumPy forms of the same two rules live here too (one home for PSNR and for the Gaussian
window): the evaluation protocols and the synthetic set's report use them. TensorFlow is imported
by the functions that need it, so the NumPy forms stay light.
"""
import functools
import math

import numpy as np

FILTER_SIZE = 11
FILTER_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def gaussian_1d(size=FILTER_SIZE, sigma=FILTER_SIGMA):
    """The normalised 1-D Gaussian (float64) whose outer product is the SSIM window: the factor
    of ``tf.image.ssim``'s 2-D Gaussian and of MATLAB's ``fspecial('gaussian', size, sigma)``."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(coords**2) / (2.0 * sigma**2))
    return g / g.sum()


def psnr_float64(a, b, max_val=255.0):
    """PSNR in dB over every value of two same-shaped images, in float64; ``inf`` when equal."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr needs images of one shape, got {a.shape} and {b.shape}")
    mse = np.mean((a - b) ** 2)
    return math.inf if mse == 0 else float(10.0 * np.log10(max_val ** 2 / mse))


def _blur(maps, size):
    """Separable VALID Gaussian blur of every channel of NHWC ``maps`` (float64)."""
    import tensorflow as tf

    k = tf.constant(gaussian_1d(size), maps.dtype)
    channels = maps.shape[-1]
    along_w = tf.tile(tf.reshape(k, [1, size, 1, 1]), [1, 1, channels, 1])
    along_h = tf.tile(tf.reshape(k, [size, 1, 1, 1]), [1, 1, channels, 1])
    maps = tf.nn.depthwise_conv2d(maps, along_w, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(maps, along_h, [1, 1, 1, 1], "VALID")


def ssim(a, b, max_val=255.0):
    """Per-image SSIM of ``tf.image.ssim(a, b, max_val)`` for [N, H, W, C] (H, W >= 11): float32 [N].

    The four filtered maps (means of a and b, of a*b and of a^2 + b^2, as ``tf.image.ssim``
    forms them) come from one float64 separable blur of the maps stacked as channels.
    """
    import tensorflow as tf

    x = tf.cast(a, tf.float64)
    y = tf.cast(b, tf.float64)
    too_small = f"SSIM needs images of at least {FILTER_SIZE}x{FILTER_SIZE} pixels"
    if any(d is not None and d < FILTER_SIZE for d in x.shape[1:3]):
        from menet_tf.errors import MenetError

        raise MenetError(f"{too_small}, got {x.shape[1]}x{x.shape[2]}")
    tf.debugging.assert_greater_equal(tf.reduce_min(tf.shape(x)[1:3]), FILTER_SIZE,
                                      message=too_small)
    stacked = tf.concat([x, y, x * y, x * x + y * y], axis=-1)
    mean_x, mean_y, mean_xy, mean_sq = tf.split(_blur(stacked, FILTER_SIZE), 4, axis=-1)
    ssim_map = _ssim_map(mean_x, mean_y, mean_xy, mean_sq, max_val)
    return tf.cast(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), tf.float32)


def _ssim_map(mean_x, mean_y, mean_xy, mean_sq, max_val):
    """SSIM at every window position from the four blurred maps (``tf.image.ssim``'s formula)."""
    c1 = (K1 * max_val) ** 2
    c2 = (K2 * max_val) ** 2
    num0 = mean_x * mean_y * 2.0
    den0 = mean_x * mean_x + mean_y * mean_y
    luminance = (num0 + c1) / (den0 + c1)
    contrast_structure = (mean_xy * 2.0 - num0 + c2) / (mean_sq - den0 + c2)
    return luminance * contrast_structure


# ----------------------------------------------------------------------------------------------
# the evaluation form: the same float64 SSIM, compiled

def _shifted_blur(maps, size):
    """``_blur`` of [..., H, W] maps written as sums of shifted slices, which XLA fuses into one
    vectorised pass per axis (width innermost: a third faster than channels innermost)."""
    k = gaussian_1d(size)
    for axis in (-1, -2):  # along the width, then the height, as ``_blur``
        n = maps.shape[axis] - size + 1
        taps = [maps[..., i:i + n] if axis == -1 else maps[..., i:i + n, :] for i in range(size)]
        blurred = taps[0] * k[0]
        for i in range(1, size):
            blurred = blurred + taps[i] * k[i]
        maps = blurred
    return maps


def _ssim_maps(a, b, max_val):
    """SSIM at every VALID window position of [N, H, W, C] images: float64 [N, C, H-10, W-10]."""
    import tensorflow as tf

    x = tf.transpose(tf.cast(a, tf.float64), [0, 3, 1, 2])  # [N, C, H, W]
    y = tf.transpose(tf.cast(b, tf.float64), [0, 3, 1, 2])
    means = _shifted_blur(tf.stack([x, y, x * y, x * x + y * y]), FILTER_SIZE)
    return _ssim_map(*tf.unstack(means), max_val)


@functools.lru_cache(maxsize=None)
def _compiled_ssim(max_val):
    import tensorflow as tf

    @tf.function(jit_compile=True)  # one trace per batch shape (evaluation: one or two)
    def ssim64(a, b):
        return tf.reduce_mean(_ssim_maps(a, b, max_val), axis=[1, 2, 3])

    return ssim64


def _too_small(height, width):
    if min(height, width) < FILTER_SIZE:
        from menet_tf.errors import MenetError

        raise MenetError(f"SSIM needs images of at least {FILTER_SIZE}x{FILTER_SIZE} pixels, "
                         f"got {height}x{width}")


def ssim_float64(a, b, max_val=255.0):
    """``ssim`` before its float32 cast (float64 [N]), several times faster: for evaluation,
    which scores two thousand 224x224 crops per Rain100L run.

    The same maps, Gaussian and formula, in float64; only the blur's summation order differs
    (XLA-compiled shifted slices instead of the float64 depthwise convolution, which TensorFlow
    runs slowly on CPUs), so values agree to ~1e-15 (tests/evaluation/test_crop_ssim.py). Not
    used in training: its steps keep ``ssim``.
    """
    import tensorflow as tf

    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    _too_small(*(d if d is not None else FILTER_SIZE for d in a.shape[1:3]))
    return _compiled_ssim(float(max_val))(a, b)


# whole images come in many sizes: each is zero-padded up to a multiple of this, so a test set
# compiles once per padded size (Rain100L: two), and only the windows inside the image count
SIZE_STEP = 32


@functools.lru_cache(maxsize=None)
def _compiled_image_ssim(max_val):
    import tensorflow as tf

    @tf.function(jit_compile=True)  # one trace per padded size (and number of images)
    def ssim64(a, b, height, width):
        maps = _ssim_maps(a, b, max_val)  # positions past the image are computed, then dropped
        rows = tf.range(tf.shape(maps)[2]) < height - FILTER_SIZE + 1
        cols = tf.range(tf.shape(maps)[3]) < width - FILTER_SIZE + 1
        inside = tf.cast(rows[:, None] & cols[None, :], tf.float64)
        return tf.reduce_sum(maps * inside, axis=[2, 3]) / tf.reduce_sum(inside)

    return ssim64


def channel_ssim_float64(a, b, max_val=255.0):
    """Mean SSIM of each channel of whole [N, H, W, C] images of one size: float64 [N, C], the
    mean over the VALID window positions. The evaluation's whole-image SSIM: the maps of
    ``ssim_float64`` on the images zero-padded to a multiple of ``SIZE_STEP``, the padding's
    windows left out, so values agree with scikit-image to ~1e-15. All channels and images go
    in one call: scoring an output and its rainy input under Y and RGB costs one pass."""
    import tensorflow as tf

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs [N, H, W, C] images of one shape, got {a.shape} and "
                         f"{b.shape}")
    height, width = a.shape[1:3]
    _too_small(height, width)
    pad = [(0, 0), (0, -height % SIZE_STEP), (0, -width % SIZE_STEP), (0, 0)]
    return _compiled_image_ssim(float(max_val))(
        np.pad(a, pad), np.pad(b, pad),
        tf.constant(height, tf.int32), tf.constant(width, tf.int32)).numpy()


def psnr(a, b, max_val=255.0):
    """Per-image PSNR of ``tf.image.psnr`` (cheap already: one mean per image)."""
    import tensorflow as tf

    return tf.image.psnr(a, b, max_val=max_val)


def image_metrics(clean, derained):
    """Mean PSNR and SSIM of a batch (max_val 255, RGB), as the authors log them."""
    import tensorflow as tf

    return (tf.reduce_mean(psnr(derained, clean)), tf.reduce_mean(ssim(derained, clean)))
