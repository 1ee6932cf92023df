"""Scoring a de-raining model on a paired test set under three protocols.

- ``authors``: what the paper's tables (and ``menet-tf train``'s validation) report: the 10 crops
  of every test image (five-crop + flip), run in batches of 20, ``tf.image.psnr``/``ssim`` on RGB
  at max 255, averaged per batch, then over batches.
- ``y``: whole images, PSNR and SSIM on the Y channel of MATLAB's ``rgb2ycbcr``, SSIM of Wang et
  al. (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, data range 255): how later papers (PReNet,
  BRN, Restormer) report, so MENET can be put beside them.
- ``rgb``: whole images, the same PSNR/SSIM on the three RGB channels (SSIM averaged over them).

Whole-image protocols score the output as later papers do: saved as an 8-bit image (rounded),
then read back, so Y is MATLAB's rounded uint8 Y. The metrics are numpy/scipy in float64 (MATLAB
computes in double); they run outside the model, after inference, never inside a step.
"""
import csv
import json
import math
import os
import time
import warnings

import numpy as np

from menet_tf.errors import DataError, MenetError
from menet_tf.files import write_all
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


class EvaluationWarning(UserWarning):
    """Something evaluation worked around (e.g. an image too small for the authors' crops)."""


# ----------------------------------------------------------------------------------------------
# metrics (numpy, float64)

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


def ssim(a, b, data_range=255.0, size=11, sigma=1.5, k1=0.01, k2=0.03):
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
        raise ValueError(f"--crop-border {n} leaves nothing of a {img.shape[1]}x{img.shape[0]} image")
    return img[n:-n, n:-n]


def to_uint8(img):
    """Round a 0..255 float image to 8 bits, as saving it as PNG does."""
    return np.clip(np.floor(np.asarray(img, np.float64) + 0.5), 0, 255).astype(np.uint8)


def whole_image_scores(output, clean, protocol, border=0):
    """(psnr, ssim) of one whole output against its clean image under ``y`` or ``rgb``."""
    output, clean = to_uint8(output), np.asarray(clean).astype(np.uint8)
    if protocol == "y":
        a, b = crop_border(rgb_to_y(output), border), crop_border(rgb_to_y(clean), border)
    elif protocol == "rgb":
        a, b = output, clean
    else:
        raise ValueError(f"whole-image protocols are y and rgb, not {protocol!r}")
    return psnr(a, b), ssim(a, b)


# ----------------------------------------------------------------------------------------------
# the test set and the model

def _image_files(path):
    from menet_tf.data.images import is_image_file

    found = 0
    for _, _, files in os.walk(path):
        found += sum(1 for f in files if is_image_file(f))
    return found


def load_test_pairs(data):
    """Validated (rainy, clean) pairs of a test set: ``data`` is a test folder in any supported
    layout, or a data root whose ``test/`` split is used."""
    from menet_tf.data import validate_pairs
    from menet_tf.data.splits import named_splits

    data = os.fspath(data)
    if not os.path.exists(data):
        raise DataError(f"{data}: test set not found")
    try:
        splits = named_splits(data)
    except DataError as err:
        if os.path.isdir(data) and _image_files(data):
            raise DataError(
                f"{data}: holds {_image_files(data)} images but no rainy/clean pairs; evaluate "
                f"scores outputs against clean images, so the test set needs both (rain/ + "
                f"norain/ folders, or rain-N.png + norain-N.png). To derain without scoring use "
                f"`menet-tf derain`. ({err})") from None
        raise
    if len(splits.found) > 1:
        if splits.test is None:
            raise DataError(f"{data}: holds several sets ({', '.join(sorted(splits.found))}) "
                            f"and no test/ folder: point --data at the one to score")
        disc = splits.test
    else:
        disc = next(iter(splits.found.values()))
    if not disc.pairs:
        raise DataError(f"{disc.root}: no rainy/clean pairs: evaluate needs the clean images "
                        f"to score against ({len(disc.unpaired_rainy)} rainy images without a "
                        f"clean twin)")
    return disc.root, validate_pairs(disc)


def device_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return ", ".join(d.name for d in gpus)
    from menet_tf.machine import cpu_info

    return f"CPU ({cpu_info()['model']}, {os.cpu_count()} cores)"


def _load(model, model_name):
    """(keras model, description) from a model object, run folder, .keras file or TF1 prefix."""
    if not isinstance(model, (str, os.PathLike)):
        return model, getattr(model, "name", "model")
    from menet_tf.infer.derainer import load_model

    return load_model(os.fspath(model), model_name=model_name), os.path.abspath(os.fspath(model))


# ----------------------------------------------------------------------------------------------
# protocols

def authors_protocol(derainer, pairs, crop_size=224, batch_size=20, num_crops=10, progress=False):
    """The paper's figure: returns dict with mean ``psnr``/``ssim`` (per batch, then over
    batches), the same for the rainy input, and per-image means over each image's crops.

    Exactly the arithmetic of ``MultiTaskMENET.test_step`` (``image_metrics``) under
    ``fit(validation_data=eval_dataset(...))``: an unweighted mean of batch means.
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
            p, s = metrics.image_metrics(clean, image)
            batch[prefix + "psnr"].append(float(p))
            batch[prefix + "ssim"].append(float(s))
            crops[prefix + "psnr"].extend(metrics.psnr(image, clean).numpy())
            crops[prefix + "ssim"].extend(metrics.ssim(image, clean).numpy())
    result = {k: float(np.mean(v)) for k, v in batch.items()}
    result["per_image"] = {k: np.asarray(v, np.float64).reshape(len(pairs), num_crops).mean(1)
                           for k, v in crops.items()}
    result["batches"] = len(batch["psnr"])
    return result


def _load_pair(pair):
    from PIL import Image

    with Image.open(pair.rainy) as im:
        rainy = np.asarray(im.convert("RGB"))
    with Image.open(pair.clean) as im:
        clean = np.asarray(im.convert("RGB"))
    return rainy, clean


def _fmt(value, digits=4):
    return "inf" if value == math.inf else f"{value:.{digits}f}"


def _json_number(value):
    """JSON has no infinity: identical images' PSNR is written as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def evaluate(model, data, out=None, *, protocols=PROTOCOLS, model_name=None, crop_size=224,
             batch_size=20, border=0, mode="pad", save_images=0, progress=True):
    """Score ``model`` (a Keras model, run folder, ``.keras`` file or TF1 prefix) on the test set
    ``data`` under ``protocols``; write ``metrics.csv`` and ``summary.json`` into ``out``.

    Returns the summary dict; per-image rows are under ``"images"`` (not written to the JSON).
    Whole images go through ``Derainer.derain(mode="pad")``: reflection padding to the model's
    multiple, cropped back. Images smaller than ``crop_size`` are left out of the authors'
    protocol (its crops need them at least that big) with a warning, and listed in the summary;
    they are still scored whole.
    """
    from tqdm import tqdm

    from menet_tf.infer.derainer import Derainer

    protocols = tuple(protocols)
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown or not protocols:
        raise MenetError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    root, pairs = load_test_pairs(data)
    keras_model, model_desc = _load(model, model_name)
    derainer = Derainer(keras_model)

    summary = {"model": model_desc, "data": os.path.abspath(root), "images": len(pairs)}
    rows = [{"name": os.path.basename(p.rainy), "height": p.height, "width": p.width}
            for p in pairs]
    if "authors" in protocols:
        big = [i for i, p in enumerate(pairs) if p.height >= crop_size and p.width >= crop_size]
        small = [rows[i]["name"] for i in range(len(pairs)) if i not in set(big)]
        if small and big:
            warnings.warn(
                f"{root}: {len(small)} image(s) smaller than the {crop_size}x{crop_size} crop of "
                f"the authors' protocol left out of it (first: {small[0]}); scored whole only",
                EvaluationWarning, stacklevel=2)
        if not big:
            raise DataError(f"{root}: every image is smaller than the {crop_size}x{crop_size} "
                            f"crop of the authors' protocol; use --crop-size or --protocol y rgb")
        res = authors_protocol(derainer, [pairs[i] for i in big], crop_size, batch_size,
                               progress=progress)
        summary["authors"] = {"psnr": res["psnr"], "ssim": res["ssim"],
                              "input_psnr": res["input_psnr"], "input_ssim": res["input_ssim"],
                              "crop_size": crop_size, "batch_size": batch_size,
                              "crops": 10 * len(big), "left_out": small,
                              "description": DESCRIPTIONS["authors"]}
        for j, i in enumerate(big):
            for key, values in res["per_image"].items():
                rows[i][f"authors_{key}"] = float(values[j])

    whole = [p for p in protocols if p != "authors"]
    seconds, outputs_dir = [], None
    if save_images and out:
        outputs_dir = os.path.join(out, "images")
        os.makedirs(outputs_dir, exist_ok=True)
    if whole or save_images:
        bar = tqdm(list(enumerate(pairs)), desc="whole images", unit="image",
                   disable=not progress, leave=False)
        for i, pair in bar:
            rainy, clean = _load_pair(pair)
            start = time.perf_counter()
            derained = derainer.derain(rainy.astype(np.float32), mode=mode)
            if i > 0:  # the first image also traces the model for its shape
                seconds.append(time.perf_counter() - start)
            for protocol in whole:
                for prefix, image in (("", derained), ("input_", rainy)):
                    p, s = whole_image_scores(image, clean, protocol, border)
                    rows[i][f"{protocol}_{prefix}psnr"] = p
                    rows[i][f"{protocol}_{prefix}ssim"] = s
            if outputs_dir and i < save_images:
                from PIL import Image

                Image.fromarray(to_uint8(derained)).save(
                    os.path.join(outputs_dir, os.path.splitext(rows[i]["name"])[0] + ".png"))
        for protocol in whole:
            entry = {}
            for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
                entry[key] = float(np.mean([r[f"{protocol}_{key}"] for r in rows]))
            if protocol == "y":
                entry["crop_border"] = border
            entry["description"] = DESCRIPTIONS[protocol]
            summary[protocol] = entry
    summary["seconds_per_image"] = float(np.mean(seconds)) if seconds else None
    summary["device"] = device_name()
    summary["protocols"] = {p: DESCRIPTIONS[p] for p in protocols}
    if out:
        write_results(out, summary, rows)
    summary["images_scored"] = rows
    return summary


def write_results(out, summary, rows):
    """metrics.csv (one row per image) and summary.json, each written whole or not at all."""
    import io

    os.makedirs(out, exist_ok=True)
    keys = ["name", "height", "width"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (_fmt(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    clean = {k: ({kk: _json_number(vv) for kk, vv in v.items()} if isinstance(v, dict) else
                 _json_number(v)) for k, v in summary.items() if k != "images_scored"}
    write_all({os.path.join(out, "metrics.csv"): buf.getvalue(),
                os.path.join(out, "summary.json"): json.dumps(clean, indent=2) + "\n"})


def format_summary(summary):
    """A short plain-text table of every protocol's means (model and rainy input)."""
    lines = [f"{'protocol':<9} {'PSNR':>9} {'SSIM':>7}   {'input PSNR':>10} {'input SSIM':>10}"]
    for p in PROTOCOLS:
        if p in summary:
            e = summary[p]
            lines.append(f"{p:<9} {_fmt(e['psnr']):>9} {_fmt(e['ssim']):>7}   "
                         f"{_fmt(e['input_psnr']):>10} {_fmt(e['input_ssim']):>10}")
    return "\n".join(lines)
