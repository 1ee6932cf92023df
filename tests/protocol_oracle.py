"""The scoring protocols computed outside menet-tf, as oracles for its own scoring code.

Written from the spec (MENET_SPEC.md, Evaluation), not from menet_tf.evaluation: crops cut in
NumPy, PSNR and SSIM from scikit-image in float64 (SSIM of Wang et al.: 11x11 Gaussian window,
sigma 1.5, K1 0.01, K2 0.03, population statistics, the mean over the valid window positions
and over the channels, as tf.image.ssim). Only the network's prediction comes from menet-tf.
"""
import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def psnr(output, clean):
    return float(peak_signal_noise_ratio(np.asarray(clean, np.float64),
                                         np.asarray(output, np.float64), data_range=255))


def ssim(output, clean):
    """[H, W] or [H, W, C] images (0..255)."""
    output, clean = np.asarray(output, np.float64), np.asarray(clean, np.float64)
    channels = {"channel_axis": -1} if output.ndim == 3 else {}
    return float(structural_similarity(clean, output, data_range=255, gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False, **channels))


def ten_crops(image, size):
    """The corners TL, TR, BL, BR and the centre (offset round(d / 2), halves to even), then the
    same five of the horizontally flipped image."""
    h, w = image.shape[:2]
    dy, dx = h - size, w - size
    corners = [(0, 0), (0, dx), (dy, 0), (dy, dx), (round(dy / 2), round(dx / 2))]
    return [img[t:t + size, s:s + size] for img in (image, image[:, ::-1])
            for t, s in corners]


def authors_protocol(predict, pairs, crop_size=224, batch_size=20):
    """The paper's figures: 10 crops an image, images in the given order, batches of
    ``batch_size`` crops (the last one partial), crops scored on RGB as float outputs; the mean
    of the batch means. ``pairs``: [(rainy path, clean path)]; ``predict``: [N,h,w,3] float32 ->
    same. Returns {psnr, ssim, input_psnr, input_ssim} and "per_image" {psnr: [...]}."""
    rainy, clean = [], []
    for rainy_path, clean_path in pairs:
        rainy += ten_crops(read(rainy_path), crop_size)
        clean += ten_crops(read(clean_path), crop_size)
    batches = {"psnr": [], "ssim": [], "input_psnr": [], "input_ssim": []}
    per_crop = {"psnr": []}
    for start in range(0, len(rainy), batch_size):
        x = np.stack(rainy[start:start + batch_size]).astype(np.float32)
        y = clean[start:start + batch_size]
        out = predict(x)
        for prefix, images in (("", out), ("input_", x)):
            p = [psnr(o, c) for o, c in zip(images, y)]
            batches[prefix + "psnr"].append(np.mean(p))
            batches[prefix + "ssim"].append(np.mean([ssim(o, c) for o, c in zip(images, y)]))
            if not prefix:
                per_crop["psnr"] += p
    result = {k: float(np.mean(v)) for k, v in batches.items()}
    result["per_image"] = {"psnr": np.reshape(per_crop["psnr"], (len(pairs), 10)).mean(1)}
    result["batches"] = len(batches["psnr"])
    return result


def to_uint8(image):
    """A float output as the 8-bit image it is saved as: round half up, clip."""
    return np.clip(np.floor(np.asarray(image, np.float64) + 0.5), 0, 255).astype(np.uint8)


def y_channel(rgb):
    """MATLAB's rgb2ycbcr Y of an 8-bit image, rounded as MATLAB rounds (halves up here)."""
    x = np.asarray(rgb, np.float64)
    y = 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0
    return np.clip(np.floor(y + 0.5), 0, 255)


def whole_image_scores(output, clean, protocol):
    """(psnr, ssim) of one float output against its 8-bit clean image, on ``y`` or ``rgb``."""
    a, b = to_uint8(output), np.asarray(clean, np.uint8)
    if protocol == "y":
        a, b = y_channel(a), y_channel(b)
    return psnr(a, b), ssim(a, b)
