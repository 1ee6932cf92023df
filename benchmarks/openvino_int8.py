"""Is OpenVINO faster than TensorFlow here, and does int8 cost more than 0.1 dB? (docs/speed.md)

Two parts, each timed interleaved in one process (A, B, A, B, ...) so every variant sees the
same machine, with the bundled model (MENET-GB trained on RainTrainL):

* ``speed``: TensorFlow fp32 and bf16 against ``OpenVINODerainer`` with the f32 and bf16 hints,
  each with compiled models cached per input shape (static) and with one dynamic-shape model,
  at batch 1 and 20 of 224x224 and one 481x321 Rain100L-size image through ``derain`` (padded).
* ``int8``: post-training quantisation of the OpenVINO network with NNCF, calibrated on
  ``--calibration`` (default 100) random 224x224 crops of RainTrainL's rainy images (one per
  image, seed 0); then PSNR/SSIM on the Rain100L test set under the authors' protocol (10 crops
  per image, batches of 20) and on whole images (Y of MATLAB's rgb2ycbcr), for TensorFlow fp32,
  OpenVINO f32 and bf16 and the int8 model; and its speed beside them.

    .venv/bin/python benchmarks/openvino_int8.py --data ../shared/datasets/Rain100L \\
        [--part speed|int8|all] [--repeats 5] [-o runs/bench/openvino.json]

Not part of menet-tf: docs/speed.md reports the figures and what was decided from them.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from menet_tf.bench.timing import load_average, time_interleaved  # noqa: E402
from menet_tf.infer.derainer import Derainer  # noqa: E402
from menet_tf.infer.openvino_backend import OpenVINODerainer, import_openvino  # noqa: E402
from menet_tf.infer.pretrained import pretrained  # noqa: E402

CROP = 224
#: Inference precision hints the int8 model is compiled with (the ops NNCF left in float).
HINTS = ("fp32",)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"b1_224": rng.uniform(0, 255, (1, CROP, CROP, 3)).astype(np.float32),
            "b20_224": rng.uniform(0, 255, (20, CROP, CROP, 3)).astype(np.float32),
            "481x321": rng.uniform(0, 255, (321, 481, 3)).astype(np.float32)}


def cases(images):
    """{case: (run(derainer), images per call)}."""
    return {"b1_224": (lambda d: d.predict(images["b1_224"]), 1),
            "b20_224": (lambda d: d.predict(images["b20_224"]), 20),
            "481x321": (lambda d: d.derain(images["481x321"], mode="pad"), 1)}


def time_cases(derainers, repeats):
    """{case: {variant: timing summary}}, each case's variants interleaved."""
    out = {}
    for case, (run, items) in cases(inputs()).items():
        out[case] = time_interleaved({name: (lambda d=d: run(d)) for name, d in derainers.items()},
                                     repeats=repeats, warmup=1,
                                     items={name: items for name in derainers})
        print_case(case, out[case])
    return out


def print_case(case, timings):
    base = timings["tf_fp32"]
    for name, t in timings.items():
        print(f"{case:8} {name:20} {t['per_item_s'] * 1e3:7.1f} ms/img wall"
              f" {t['cpu_per_item_s'] * 1e3:7.1f} ms/img CPU  spread {t['spread']:.2f}"
              f"  vs TF fp32 {base['per_item_s'] / t['per_item_s']:.2f}x wall,"
              f" {base['cpu_per_item_s'] / t['cpu_per_item_s']:.2f}x CPU", flush=True)


def speed_part(model, repeats):
    tf32 = Derainer(model, jit_compile=False)
    derainers = {"tf_fp32": tf32, "tf_bf16": Derainer(model, jit_compile=False, precision="bf16")}
    for precision in ("fp32", "bf16"):
        for static in (True, False):
            name = f"ov_{precision}_{'static' if static else 'dynamic'}"
            derainers[name] = OpenVINODerainer.from_derainer(tf32, precision,
                                                             static_shapes=static)
    return time_cases(derainers, repeats)


# ------------------------------------------------------------------------------------- int8
def calibration_crops(train_dir, count, seed=0):
    """``count`` random CROPxCROP crops of RainTrainL's rainy images, one per image."""
    from menet_tf.evaluation.scoring import load_test_pairs, read_pair

    _, pairs = load_test_pairs(train_dir)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(pairs), size=min(count, len(pairs)), replace=False)
    crops = []
    for i in sorted(chosen):
        rainy, _ = read_pair(pairs[i])
        y = rng.integers(0, rainy.shape[0] - CROP + 1)
        x = rng.integers(0, rainy.shape[1] - CROP + 1)
        crops.append(rainy[y:y + CROP, x:x + CROP].astype(np.float32))
    return crops


def quantize(ov_derainer, crops, preset, ignore_ends=False):
    """The NNCF int8 model of ``ov_derainer``'s network, calibrated on ``crops``;
    ``ignore_ends``: the first and last convolution stay in float."""
    import nncf

    size = np.array([CROP, CROP], np.int32)
    dataset = nncf.Dataset(crops, lambda crop: (crop[None], size))
    convs = [op.get_friendly_name() for op in ov_derainer.network.get_ordered_ops()
             if op.get_type_name() == "Convolution"]
    ignored = nncf.IgnoredScope(names=[convs[0], convs[-1]]) if ignore_ends else None
    return nncf.quantize(ov_derainer.network, dataset, subset_size=len(crops),
                         preset=getattr(nncf.QuantizationPreset, preset), ignored_scope=ignored)


def scores(derainer, test_dir):
    """The authors' protocol and whole-image Y PSNR/SSIM of ``derainer`` on the test set."""
    from menet_tf.evaluation.protocols import authors_protocol, whole_image_scores
    from menet_tf.evaluation.scoring import load_test_pairs, read_pair

    _, pairs = load_test_pairs(test_dir)
    start = time.perf_counter()
    authors = authors_protocol(derainer, pairs, CROP, 20)
    y = np.array([whole_image_scores(derainer.derain(rainy.astype(np.float32)), clean, "y")
                  for rainy, clean in map(read_pair, pairs)])
    return {"authors_psnr": authors["psnr"], "authors_ssim": authors["ssim"],
            "y_psnr": float(y[:, 0].mean()), "y_ssim": float(y[:, 1].mean()),
            "seconds": time.perf_counter() - start}


def int8_part(model, data, count, repeats, presets, scored, result, save, ignore_ends=False):
    """Fills ``result`` (calibration, scores, speed), calling ``save()`` after each score."""
    tf32 = Derainer(model, jit_compile=False)
    variants = {"tf_fp32": tf32,
                "ov_fp32": OpenVINODerainer.from_derainer(tf32, "fp32"),
                "ov_bf16": OpenVINODerainer.from_derainer(tf32, "bf16")}
    crops = calibration_crops(os.path.join(data, "train"), count)
    result.update(calibration_crops=len(crops), quantisation={})
    for preset in presets:
        start = time.perf_counter()
        network = quantize(variants["ov_fp32"], crops, preset, ignore_ends)
        result["quantisation"][preset] = {"seconds": time.perf_counter() - start,
                                          "first_and_last_conv_in_float": ignore_ends}
        for hint in HINTS:
            variants[f"ov_int8_{preset.lower()}{'_ends' * ignore_ends}_{hint}"] = OpenVINODerainer(
                network, hint, tf32.multiple, tf_derainer=tf32, name=f"int8 {preset}")
    result["scores"] = {}
    order = [n for prefix in scored or [""] for n in variants if n.startswith(prefix)]
    for name in dict.fromkeys(order):  # in the order asked for
        result["scores"][name] = s = scores(variants[name], os.path.join(data, "test"))
        print(f"{name:24} authors PSNR {s['authors_psnr']:.4f} SSIM {s['authors_ssim']:.4f}"
              f"  Y PSNR {s['y_psnr']:.4f} SSIM {s['y_ssim']:.4f}  [{s['seconds']:.0f} s]",
              flush=True)
        save()
    result["speed"] = time_cases(variants, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/datasets/Rain100L",
                        help="folder with train/ (RainTrainL) and test/ (Rain100L)")
    parser.add_argument("--part", choices=("speed", "int8", "all"), default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calibration", type=int, default=100, help="calibration crops")
    parser.add_argument("--presets", nargs="+", default=["PERFORMANCE", "MIXED"],
                        choices=("PERFORMANCE", "MIXED"),
                        help="NNCF presets: symmetric (PERFORMANCE) or asymmetric (MIXED)"
                        " activations")
    parser.add_argument("--ignore-ends", action="store_true",
                        help="leave the first and last convolution in float")
    parser.add_argument("--score", nargs="*", default=None, metavar="PREFIX",
                        help="score only the variants whose names start so (tf_fp32, ov_fp32,"
                        " ov_bf16, ov_int8_performance, ov_int8_mixed); default all")
    parser.add_argument("-o", "--out", default=None,
                        help="JSON file of the figures (rewritten after each step)")
    args = parser.parse_args(argv)

    ov = import_openvino()
    from menet_tf.machine import cpu_info

    model = pretrained()
    record = {"command": " ".join([os.path.basename(sys.executable), *sys.argv]),
              "cpu": cpu_info(), "openvino": ov.__version__,
              "load_average_before": load_average()}
    def save():
        if args.out:
            from menet_tf.files import write_json

            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            write_json(args.out, record, default=str)

    if args.part in ("speed", "all"):
        record["speed"] = speed_part(model, args.repeats)
        save()
    if args.part in ("int8", "all"):
        import nncf

        record["nncf"] = nncf.__version__
        record["int8"] = {}
        int8_part(model, args.data, args.calibration, args.repeats, args.presets, args.score,
                  record["int8"], save, args.ignore_ends)
    record["load_average_after"] = load_average()
    print("load average before/after:", record["load_average_before"],
          record["load_average_after"])
    save()


if __name__ == "__main__":
    main()
