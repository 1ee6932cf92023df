"""The three ways a de-rained test set is scored, and their arithmetic.

- ``authors``: what the paper's tables (and ``menet-tf train``'s validation) report: the 10 crops
  of every test image (five-crop + flip), run in batches of 20, ``tf.image.psnr``/``ssim`` on RGB
  at max 255, averaged per batch, then over batches.
- ``y``: whole images, PSNR and SSIM on the Y channel of MATLAB's ``rgb2ycbcr``, SSIM of Wang et
  al. (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, data range 255): how later papers (PReNet,
  BRN, Restormer) report, so MENET can be put beside them.
- ``rgb``: whole images, the same PSNR/SSIM on the three RGB channels (SSIM averaged over them).

Whole-image protocols score the output as later papers do: saved as an 8-bit image (rounded),
then read back, so Y is MATLAB's rounded uint8 Y. Their metrics are NumPy/SciPy in float64
(MATLAB computes in double), run after inference, never inside a step. PSNR and the Gaussian
window are the ones of :mod:`menet_tf.model.metrics`.
"""
import numpy as np

from menet_tf.infer.photos import to_uint8  # the one float-to-8-bit rule, as derain saves
from menet_tf.model.metrics import FILTER_SIGMA, FILTER_SIZE, K1, K2
from menet_tf.model.metrics import gaussian_1d as gaussian_window
from menet_tf.model.metrics import psnr_float64 as psnr

PROTOCOLS = ("authors", "y", "rgb")
DESCRIPTIONS = {
    "authors": "the paper's: 10 crops (five-crop + flip) per test image, tf.image PSNR/SSIM on RGB,"
               " max_val 255, averaged per batch of 20 crops, then over batches",
    "y": "whole images, output rounded to 8 bits, Y of MATLAB rgb2ycbcr (uint8), PSNR and SSIM"
         " (Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 255) on Y",
    "rgb": "whole images, output rounded to 8 bits, PSNR over all RGB values, SSIM (Gaussian 11x11,"
           " sigma 1.5) per RGB channel, averaged",
}


# ----------------------------------------------------------------------------------------------
# whole images (NumPy, float64)

def rgb_to_y(rgb):
    """Y of MATLAB's ``rgb2ycbcr``: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (R in 0..255).

    Like MATLAB, a uint8 image gives a rounded uint8 Y (returned as float64 for scoring); a float
    image (0..255) gives the unrounded Y. Not ``tf.image.rgb_to_yuv``, whose Y has no offset and
    a full 0..1 range.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs [..., 3] images, got shape {rgb.shape}")
    x = rgb.astype(np.float64)
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    if rgb.dtype == np.uint8:
        y = np.clip(np.floor(y + 0.5), 0, 255)  # MATLAB rounds halves away from zero (y > 0)
    return y


def _filter_valid(img, g):
    """2-D 'valid' correlation of an [H, W] image with the separable window g x g."""
    from scipy.ndimage import correlate1d

    k = len(g)
    r = (k - 1) // 2
    out = correlate1d(img, g, axis=0, mode="constant")
    out = correlate1d(out, g, axis=1, mode="constant")
    return out[r:img.shape[0] - (k - 1 - r), r:img.shape[1] - (k - 1 - r)]


def ssim(a, b, data_range=255.0, size=FILTER_SIZE, sigma=FILTER_SIGMA, k1=K1, k2=K2):
    """Mean SSIM of Wang et al. over the 'valid' window positions ([H, W] or [H, W, C] images).

    A multi-channel image gives the mean of the per-channel SSIMs (as ``tf.image.ssim`` and
    scikit-image do). Images smaller than the window cannot be scored.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim needs images of one shape, got {a.shape} and {b.shape}")
    if a.ndim == 3:
        return float(np.mean([ssim(a[..., c], b[..., c], data_range, size, sigma, k1, k2)
                              for c in range(a.shape[-1])]))
    if a.ndim != 2 or min(a.shape) < size:
        raise ValueError(f"ssim needs [H, W] images of at least {size}x{size}, got {a.shape}")
    g = gaussian_window(size, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a ** 2
    var_b = _filter_valid(b * b, g) - mu_b ** 2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def crop_border(img, n):
    """``img`` without ``n`` pixels on every side (some papers score so)."""
    if not n:
        return img
    if 2 * n >= min(img.shape[:2]):
        raise ValueError(f"--crop-border {n} leaves nothing of a "
                         f"{img.shape[1]}x{img.shape[0]} image")
    return img[n:-n, n:-n]


def whole_image_scores(output, clean, protocol, border=0):
    """(psnr, ssim) of one whole output against its clean image under ``y`` or ``rgb``."""
    output, clean = to_uint8(output), np.asarray(clean).astype(np.uint8)
    if protocol == "y":
        a, b = crop_border(rgb_to_y(output), border), crop_border(rgb_to_y(clean), border)
    elif protocol == "rgb":
        a, b = crop_border(output, border), crop_border(clean, border)
    else:
        raise ValueError(f"whole-image protocols are y and rgb, not {protocol!r}")
    return psnr(a, b), ssim(a, b)


# ----------------------------------------------------------------------------------------------
# the authors' crops (TensorFlow, as in training)

def authors_protocol(derainer, pairs, crop_size=224, batch_size=20, num_crops=10, progress=False):
    """The paper's figure: returns dict with mean ``psnr``/``ssim`` (per batch, then over
    batches), the same for the rainy input, and per-image means over each image's crops.

    Exactly the arithmetic of ``MultiTaskMENET.test_step`` (``image_metrics``) under
    ``fit(validation_data=eval_dataset(...))``: an unweighted mean of batch means, so the
    figure equals what ``menet-tf train`` reported for the same model. SSIM comes from
    ``metrics.ssim_float64``, training's float64 SSIM compiled (equal to ~1e-15 before the
    float32 cast), computed once per crop.
    """
    import tensorflow as tf
    from tqdm import tqdm

    from menet_tf.data import eval_dataset
    from menet_tf.model import metrics

    ds = eval_dataset(pairs, batch_size=batch_size, crop_size=crop_size, num_crops=num_crops)
    batch = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    crops = {k: [] for k in batch}
    bar = tqdm(ds, total=int(ds.cardinality()), desc="authors' protocol (crops)", unit="batch",
               disable=not progress, leave=False)
    for rainy, clean in bar:
        derained = tf.constant(derainer.predict(rainy.numpy()), tf.float32)
        for prefix, image in (("", derained), ("input_", rainy)):
            # image_metrics(clean, image) is the mean of these float32 per-crop values: each
            # crop is scored once, and the batch mean taken from the same values
            p = metrics.psnr(image, clean)
            s = tf.cast(metrics.ssim_float64(image, clean), tf.float32)  # as metrics.ssim
            batch[prefix + "psnr"].append(float(tf.reduce_mean(p)))
            batch[prefix + "ssim"].append(float(tf.reduce_mean(s)))
            crops[prefix + "psnr"].extend(p.numpy())
            crops[prefix + "ssim"].extend(s.numpy())
    result = {k: float(np.mean(v)) for k, v in batch.items()}
    result["per_image"] = {k: np.asarray(v, np.float64).reshape(len(pairs), num_crops).mean(1)
                           for k, v in crops.items()}
    result["batches"] = len(batch["psnr"])
    return result
