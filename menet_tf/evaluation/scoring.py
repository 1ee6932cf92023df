"""``evaluate``: score a de-raining model on a paired test set under the protocols of
:mod:`menet_tf.evaluation.protocols`, and write what it found.

A model is scored on whole images and on the authors' crops from one test set, so that the
paper's figure and the figures of later papers come from the same outputs. Per-image scores go
to ``metrics.csv`` and the means to ``summary.json``; both are written whole or not at all, so a
failed run never leaves results that look finished.
"""
import csv
import io
import json
import math
import os
import time
import warnings

import numpy as np

from menet_tf.errors import DataError, MenetError
from menet_tf.evaluation.protocols import (
    DESCRIPTIONS, PROTOCOLS, authors_protocol, score_whole_images, to_uint8)
from menet_tf import interrupts
from menet_tf.machine import cpu_info, environment
from menet_tf.files import write_all

SCORE_KEYS = ("psnr", "ssim", "input_psnr", "input_ssim")


class EvaluationWarning(UserWarning):
    """Something evaluation worked around (e.g. an image too small for the authors' crops)."""


# ----------------------------------------------------------------------------------------------
# scores as text: PSNR of identical images is infinite, which JSON cannot hold

def format_score(value, digits=4):
    return "inf" if value == math.inf else f"{value:.{digits}f}"


def json_number(value):
    """JSON has no infinity: identical images' PSNR is written as the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def read_number(value):
    """A score as read back from summary.json or metrics.csv: None when absent, inf for "inf"."""
    if value is None or value == "":
        return None
    if value == "inf":
        return math.inf
    return float(value)


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
    layout, or a data root whose test split (menet_tf.data.splits) is used."""
    root, pairs, _ = _scored_split(data)
    return root, pairs


def _scored_split(data):
    """(folder, validated pairs, split) of what ``data``'s test scores come from. ``split`` names
    it for eval.json: {"folder": "test" (relative to ``data``; "." = ``data`` itself), "role":
    "test" or "validation" (a root without test/ whose val/ stands in), "described": "test/"}."""
    from menet_tf.data import validate_pairs

    splits = _splits(os.fspath(data))
    if len(splits.found) > 1:
        if splits.test is None:
            raise DataError(f"{data}: holds several sets ({', '.join(sorted(splits.found))}) "
                            f"and no test/ folder: point --data at the one to score")
        disc = splits.test
        split = {"folder": splits.folder_of(disc), "role": splits.test_role,
                 "described": splits.describe_test()}
    else:
        disc = next(iter(splits.found.values()))
        split = {"folder": splits.folder_of(disc), "role": "test",
                 "described": splits.folder_of(disc).rstrip("/") + "/"}
    if not disc.pairs:
        raise DataError(f"{disc.root}: no rainy/clean pairs: evaluate needs the clean images "
                        f"to score against ({len(disc.unpaired_rainy)} rainy images without a "
                        f"clean twin)")
    return disc.root, validate_pairs(disc), split


def _splits(data):
    """The splits of ``data``, with the advice for a folder of images without clean twins."""
    from menet_tf.data.splits import named_splits

    if not os.path.exists(data):
        raise DataError(f"{data}: test set not found")
    try:
        return named_splits(data)
    except DataError as err:
        if os.path.isdir(data) and _image_files(data):
            raise DataError(
                f"{data}: holds {_image_files(data)} images but no rainy/clean pairs; evaluate "
                f"scores outputs against clean images, so the test set needs both (rain/ + "
                f"norain/ folders, or rain-N.png + norain-N.png). To derain without scoring use "
                f"`menet-tf derain`. ({err})") from None
        raise


def read_pair(pair):
    """(rainy, clean) of a validated pair as [H, W, 3] uint8 arrays."""
    from menet_tf.data.images import load_rgb

    return load_rgb(pair.rainy), load_rgb(pair.clean)


def device_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return ", ".join(d.name for d in gpus)
    cpu = cpu_info()
    return f"CPU ({cpu['model']}, {cpu['logical_cpus']} cores)"


def _load(model, model_name, jit_compile, precision, backend):
    """(Derainer, description) of a Keras model object, or of any source ``load_derainer``
    takes (bundled name, run folder, .keras file, TF1 prefix, SavedModel), in ``precision``
    on ``backend``."""
    from menet_tf.infer.load import derainer_of, load_derainer, source_kind

    if not isinstance(model, (str, os.PathLike)):
        return (derainer_of(model, jit_compile=jit_compile, precision=precision,
                            backend=backend), getattr(model, "name", "model"))
    source = os.fspath(model)
    kind, _ = source_kind(source)
    described = source if kind == "bundled" else os.path.abspath(source)
    return load_derainer(source, model_name, jit_compile=jit_compile, precision=precision,
                         backend=backend), described


def _checked(protocols):
    protocols = tuple(protocols)
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown or not protocols:
        raise MenetError(f"unknown protocol(s) {unknown}; choose from {', '.join(PROTOCOLS)}")
    return protocols


# ----------------------------------------------------------------------------------------------
# evaluate

def evaluate(model, data, out=None, *, protocols=PROTOCOLS, model_name=None, crop_size=224,
             batch_size=20, border=0, mode="pad", save_images=0, jit_compile="auto",
             precision="fp32", backend="tensorflow", progress=True):
    """Score ``model`` (a Keras model, bundled name, run folder, ``.keras`` file, TF1 prefix or
    SavedModel) on the test set ``data`` under ``protocols``; write ``metrics.csv`` and
    ``summary.json`` into ``out``.

    Returns the summary dict; per-image rows are under ``"images_scored"`` (not written to the
    JSON). Whole images go through ``Derainer.derain(mode="pad")``: reflection padding to the
    model's multiple, cropped back. Images smaller than ``crop_size`` are left out of the
    authors' protocol (its crops need them at least that big) with a warning, and listed in the
    summary; they are still scored whole. ``jit_compile`` is the Derainer's ("auto": XLA on GPUs).
    ``precision`` ("fp32", "bf16", "fp16") and ``backend`` ("tensorflow", "openvino") choose how
    the network runs (``menet_tf.infer.load.load_derainer``); the summary records both.
    """
    protocols = _checked(protocols)
    root, pairs, split = _scored_split(data)
    derainer, model_desc = _load(model, model_name, jit_compile, precision, backend)

    summary = {"model": model_desc, "data": os.path.abspath(root), "split": split,
               "images": len(pairs),
               "precision": getattr(derainer, "precision", precision), "backend": backend}
    rows = [{"name": os.path.basename(p.rainy), "height": p.height, "width": p.width}
            for p in pairs]
    if "authors" in protocols:
        summary["authors"] = _score_crops(derainer, pairs, rows, root, crop_size, batch_size,
                                         progress)
    whole = [p for p in protocols if p != "authors"]
    seconds = []
    if whole or save_images:
        images_dir = os.path.join(out, "images") if save_images and out else None
        seconds = _score_whole_images(derainer, pairs, rows, whole, border, mode, images_dir,
                                       save_images, progress)
        for protocol in whole:
            summary[protocol] = _whole_image_means(rows, protocol, border)
    summary["seconds_per_image"] = float(np.mean(seconds)) if seconds else None
    summary["device"] = device_name()
    summary["environment"] = environment()  # versions, CPU: the keys of run.json and the bench
    summary["protocols"] = {p: DESCRIPTIONS[p] for p in protocols}
    interrupts.check()  # a signal during the authors' crops: stop before writing
    if out:
        write_results(out, summary, rows)
    summary["images_scored"] = rows
    return summary


def _score_crops(derainer, pairs, rows, root, crop_size, batch_size, progress):
    """The summary entry of the authors' protocol over the images big enough for its crops;
    each such image's crop means go into its row."""
    big = [i for i, p in enumerate(pairs) if p.height >= crop_size and p.width >= crop_size]
    small = [rows[i]["name"] for i in range(len(pairs)) if i not in set(big)]
    if small and big:
        warnings.warn(
            f"{root}: {len(small)} image(s) smaller than the {crop_size}x{crop_size} crop of "
            f"the authors' protocol left out of it (first: {small[0]}); scored whole only",
            EvaluationWarning, stacklevel=3)
    if not big:
        raise DataError(f"{root}: every image is smaller than the {crop_size}x{crop_size} "
                        f"crop of the authors' protocol; use --crop-size or --protocol y rgb")
    res = authors_protocol(derainer, [pairs[i] for i in big], crop_size, batch_size,
                           progress=progress)
    for j, i in enumerate(big):
        for key, values in res["per_image"].items():
            rows[i][f"authors_{key}"] = float(values[j])
    return {**{k: res[k] for k in SCORE_KEYS},
            "crop_size": crop_size, "batch_size": batch_size, "crops": 10 * len(big),
            "left_out": small, "description": DESCRIPTIONS["authors"]}


def _score_whole_images(derainer, pairs, rows, whole, border, mode, images_dir, save_images,
                        progress):
    """De-rain every whole test image, score it (and the rainy input) under the ``whole``
    protocols into its row, save the first ``save_images`` outputs; returns the seconds each
    image took, leaving out the first (which also traces the model for its shape)."""
    from menet_tf.progress import bar as progress_bar

    if images_dir:
        os.makedirs(images_dir, exist_ok=True)
    seconds = []
    bar = progress_bar(list(enumerate(pairs)), desc="whole images", unit="image",
               disable=not progress, leave=False)
    for i, pair in bar:
        interrupts.check()
        rainy, clean = read_pair(pair)
        start = time.perf_counter()
        derained = derainer.derain(rainy.astype(np.float32), mode=mode)
        if i > 0:
            seconds.append(time.perf_counter() - start)
        scores = score_whole_images([derained, rainy], clean, whole, border) if whole else {}
        for protocol, pairs_scored in scores.items():
            for prefix, (p, s) in zip(("", "input_"), pairs_scored):
                rows[i][f"{protocol}_{prefix}psnr"] = p
                rows[i][f"{protocol}_{prefix}ssim"] = s
        if images_dir and i < save_images:
            _save_output(derained, os.path.join(
                images_dir, os.path.splitext(rows[i]["name"])[0] + ".png"))
    return seconds


def _save_output(derained, path):
    """The output as the 8-bit PNG the whole-image protocols scored."""
    from PIL import Image

    Image.fromarray(to_uint8(derained)).save(path)


def _whole_image_means(rows, protocol, border):
    entry = {key: float(np.mean([r[f"{protocol}_{key}"] for r in rows])) for key in SCORE_KEYS}
    if protocol in ("y", "rgb"):  # the whole-image protocols crop the border alike
        entry["crop_border"] = border
    entry["description"] = DESCRIPTIONS[protocol]
    return entry


# ----------------------------------------------------------------------------------------------
# results

def write_results(out, summary, rows):
    """metrics.csv (one row per image) and summary.json, each written whole or not at all."""
    os.makedirs(out, exist_ok=True)
    keys = ["name", "height", "width"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (format_score(v, 6) if isinstance(v, float) else v)
                         for k, v in row.items()})
    clean = {k: ({kk: json_number(vv) for kk, vv in v.items()} if isinstance(v, dict) else
                 json_number(v)) for k, v in summary.items() if k != "images_scored"}
    write_all({os.path.join(out, "metrics.csv"): buf.getvalue(),
               os.path.join(out, "summary.json"): json.dumps(clean, indent=2) + "\n"})


def format_summary(summary):
    """A short plain-text table of every protocol's means (model and rainy input)."""
    lines = [f"{'protocol':<9} {'PSNR':>9} {'SSIM':>7}   {'input PSNR':>10} {'input SSIM':>10}"]
    for p in PROTOCOLS:
        if p in summary:
            e = summary[p]
            lines.append(f"{p:<9} {format_score(e['psnr']):>9} {format_score(e['ssim']):>7}   "
                         f"{format_score(e['input_psnr']):>10} "
                         f"{format_score(e['input_ssim']):>10}")
    return "\n".join(lines)
