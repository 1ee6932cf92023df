"""The three ways a de-rained test set is scored, and their arithmetic.

- ``authors``: what the paper's tables (and ``menet-tf train``'s validation) report: the 10 crops
  of every test image (five-crop + flip), run in batches of 20, ``tf.image.psnr``/``ssim`` on RGB
  at max 255, averaged per batch, then over batches.
- ``y``: whole images, PSNR and SSIM on the Y channel of MATLAB's ``rgb2ycbcr``, SSIM of Wang et
  al. (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, data range 255): how later papers (PReNet,
  BRN, Restormer) report, so MENET can be put beside them.
- ``rgb``: whole images, the same PSNR/SSIM on the three RGB channels (SSIM averaged over them).

Whole-image protocols score the output as later papers do: saved as an 8-bit image (rounded),
then read back, so Y is MATLAB's rounded uint8 Y. Their metrics are in float64 (MATLAB computes
in double), run after inference, never inside a step: PSNR in NumPy, SSIM compiled by XLA, both
from :mod:`menet_tf.model.metrics` (the one home of the Gaussian window and the formulas).
"""
import numpy as np

from menet_tf.infer.photos import to_uint8  # the one float-to-8-bit rule, as derain saves
from menet_tf.model.metrics import channel_ssim_float64
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


def ssim(a, b, data_range=255.0):
    """Mean SSIM of Wang et al. over the 'valid' window positions ([H, W] or [H, W, C] images;
    the mean of the per-channel SSIMs for several, as ``tf.image.ssim`` and scikit-image).
    Images smaller than the window cannot be scored."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"ssim needs [H, W] or [H, W, C] images of one shape, got {a.shape} "
                         f"and {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return float(np.mean(channel_ssim_float64(a[None], b[None], data_range)))


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
    return score_whole_images([output], clean, [protocol], border)[protocol][0]


# what each whole-image protocol scores: the 8-bit RGB values, or MATLAB's rounded Y
_PLANES = {"rgb": lambda rgb: rgb.astype(np.float64), "y": lambda rgb: rgb_to_y(rgb)[..., None]}


def score_whole_images(outputs, clean, protocols, border=0):
    """{protocol: [(psnr, ssim) of each output]} of whole outputs (e.g. the model's and the
    rainy input) against one clean image, under the whole-image ``protocols`` (``y``, ``rgb``).

    Each output is scored as its 8-bit image; every protocol's planes of every output go through
    one SSIM call (``metrics.channel_ssim_float64``), so a test image costs one compiled pass.
    """
    unknown = [p for p in protocols if p not in _PLANES]
    if unknown:
        raise ValueError(f"whole-image protocols are y and rgb, not {unknown[0]!r}")

    def planes(image):
        rgb = to_uint8(image)
        return [crop_border(_PLANES[p](rgb), border) for p in protocols]

    ref = planes(np.asarray(clean).astype(np.uint8))
    scored = [planes(o) for o in outputs]
    stacked = np.stack([np.concatenate(o, axis=-1) for o in scored])
    ssims = channel_ssim_float64(stacked, np.broadcast_to(np.concatenate(ref, -1), stacked.shape))
    scores, first = {}, 0
    for j, p in enumerate(protocols):
        channels = slice(first, first + ref[j].shape[-1])
        scores[p] = [(psnr(o[j], ref[j]), float(np.mean(ssims[i, channels])))
                     for i, o in enumerate(scored)]
        first = channels.stop
    return scores


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
    from menet_tf.progress import bar as progress_bar

    from menet_tf.data import eval_dataset
    from menet_tf.model import metrics

    ds = eval_dataset(pairs, batch_size=batch_size, crop_size=crop_size, num_crops=num_crops)
    batch = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    crops = {k: [] for k in batch}
    bar = progress_bar(ds, total=int(ds.cardinality()), desc="authors' protocol (crops)", unit="batch",
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
