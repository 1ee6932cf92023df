"""Figures for the README's "De-raining your photos" and "Serving" sections.

    python benchmarks/derain_figures.py --model runs/demo --data ../shared/datasets/Rain100L \
        --out derain_figures.json [--images 20]

Measures, on the Rain100L test set with the given model:
* tiles vs whole image: |tiled - untiled| on 0..255, in the tile-overlap (seam) bands and
  elsewhere, for several tile sizes/overlaps (images upscaled 2x, 962x642, so tiles have seams);
* PSNR (RGB, tf.image, 0..255) against the clean images in pad mode and in the authors' resize
  mode, and of the tiled output;
* seconds per megapixel of the compiled network (1024x1024, batch 1, folded and not folded);
* SavedModel and TFLite (float / dynamic-range) against the Keras model, and the quantised
  model's PSNR against the float output and against the clean image.
Prints a table and writes everything to --out (JSON).
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from menet_tf.model.metrics import psnr_float64 as _psnr  # noqa: E402


def _pairs(data, limit):
    from menet_tf.data import discover

    root = os.path.join(data, "test") if os.path.isdir(os.path.join(data, "test")) else data
    pairs = discover(root).pairs[:limit]
    return [(p.rainy, p.clean) for p in pairs]


def _seam_mask(h, w, tile, overlap):
    """True where two or more tiles overlap (the blend bands)."""
    from menet_tf.infer.tiling import tile_starts

    count = np.zeros((h, w), np.int32)
    th, tw = min(tile, h), min(tile, w)
    for y in tile_starts(h, th, overlap):
        for x in tile_starts(w, tw, overlap):
            count[y:y + th, x:x + tw] += 1
    return count > 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="derain_figures.py")
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="../shared/datasets/Rain100L")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--out", default="derain_figures.json")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from menet_tf.infer import export
    from menet_tf.infer.photos import read_photo
    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.load import load_derainer, load_model
    from menet_tf.infer.tiling import pad_to_multiple

    model = load_model(args.model)
    derainer = Derainer(model)
    pairs = _pairs(args.data, args.images)
    figures = {"model": args.model, "images": len(pairs)}

    # -- quality of the modes against the clean images -----------------------------------
    scores = {"pad": [], "resize": [], "tile_256_128": []}
    for rainy_path, clean_path in pairs:
        rainy, clean = read_photo(rainy_path), read_photo(clean_path)
        scores["pad"].append(_psnr(np.round(derainer.derain(rainy)), clean))
        scores["resize"].append(_psnr(np.round(derainer.derain(rainy, mode="resize")), clean))
        tiled = derainer.derain(rainy, mode="tile", tile_size=256, overlap=128)
        scores["tile_256_128"].append(_psnr(np.round(tiled), clean))
    figures["psnr_rgb"] = {k: float(np.mean(v)) for k, v in scores.items()}

    # -- tiles vs whole image, 2x upscaled test images ----------------------------------------
    seams = {}
    for tile, overlap in [(512, 128), (512, 64), (256, 128), (256, 64), (512, 32)]:
        seam_max, other_max, seam_mean, other_mean = 0.0, 0.0, [], []
        for rainy_path, _ in pairs[:5]:
            rainy = read_photo(rainy_path)
            big = tf.image.resize(rainy[None].astype(np.float32), (rainy.shape[0] * 2,
                                  rainy.shape[1] * 2), method="bicubic")
            big = np.clip(np.round(big.numpy()[0]), 0, 255)
            whole = derainer.derain(big, max_pixels=None)
            tiled = derainer.derain(big, mode="tile", tile_size=tile, overlap=overlap)
            diff = np.abs(tiled - whole).max(axis=-1)
            padded_h, padded_w = pad_to_multiple(big, derainer.multiple)[0].shape[:2]
            mask = _seam_mask(padded_h, padded_w, tile, overlap)[:big.shape[0], :big.shape[1]]
            seam_max = max(seam_max, float(diff[mask].max()))
            other_max = max(other_max, float(diff[~mask].max()))
            seam_mean.append(float(diff[mask].mean()))
            other_mean.append(float(diff[~mask].mean()))
        seams[f"{tile}/{overlap}"] = {
            "seam_max": seam_max, "seam_mean": float(np.mean(seam_mean)),
            "elsewhere_max": other_max, "elsewhere_mean": float(np.mean(other_mean))}
    figures["tiles_vs_whole"] = seams

    # -- speed ----------------------------------------------------------------------------------
    x = np.random.default_rng(0).uniform(0, 255, (1, 1024, 1024, 3)).astype(np.float32)
    speed = {}
    for fold in (True, False):
        d = Derainer(model, fold_batch_norm=fold)
        d.predict(x)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            d.predict(x)
            runs.append(time.perf_counter() - start)
        speed["folded" if fold else "not_folded"] = float(np.median(runs) / 1.048576)
    figures["seconds_per_megapixel"] = speed

    # -- exports --------------------------------------------------------------------------------
    rainy, clean = read_photo(pairs[0][0]), read_photo(pairs[0][1])
    h, w = rainy.shape[:2]
    keras_out = derainer.derain(rainy)
    with tempfile.TemporaryDirectory() as tmp:
        export.export_saved_model(derainer, os.path.join(tmp, "sm"))
        sm_out = load_derainer(os.path.join(tmp, "sm")).derain(rainy)
        float_bytes = export.tflite_bytes(derainer, (h, w))
        quant_bytes = export.tflite_bytes(derainer, (h, w), quantize="dynamic")
    tfl = export.run_tflite(float_bytes, rainy[None].astype(np.float32))[0]
    tfq = export.run_tflite(quant_bytes, rainy[None].astype(np.float32))[0]
    figures["export"] = {
        "image": os.path.basename(pairs[0][0]), "size": [h, w],
        "savedmodel_max_abs_diff": float(np.abs(sm_out - keras_out).max()),
        "tflite_float_max_abs_diff": float(np.abs(tfl - keras_out).max()),
        "tflite_float_bytes": len(float_bytes), "tflite_dynamic_bytes": len(quant_bytes),
        "tflite_dynamic_psnr_vs_float": _psnr(tfq, tfl),
        "tflite_dynamic_max_abs_diff_vs_float": float(np.abs(tfq - tfl).max()),
        "psnr_vs_clean_keras": _psnr(np.round(keras_out), clean),
        "psnr_vs_clean_tflite_dynamic": _psnr(np.round(tfq), clean),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    with open(args.out, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
