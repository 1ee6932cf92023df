"""Data for menet-tf: paired-image discovery, the paper's five-crop pipeline, synthetic rain.

    from menet_tf.data import train_dataset, eval_dataset
    ds = train_dataset("data/Rain100H/train", seed=0)      # (rainy, clean) [20, 224, 224, 3]
    test = eval_dataset("data/Rain100H/test")              # 1000 crops, fixed order

TensorFlow is imported only when a pipeline is built, so the PIL-based checks and the CLI's
``--help`` stay light.
"""
from menet_tf.data.crops import (
    CROP_NAMES, crop_indices, crop_name, crop_plan, five_crop_offsets, ten_crops_numpy)
from menet_tf.data.images import DataWarning, ImageInfo, inspect_image, load_rgb
from menet_tf.data.check import CheckReport, check_dataset, validate_pairs
from menet_tf.data.pairs import (
    KNOWN_SETS, LAYOUTS, Discovery, KnownSet, Pair, detect_layout, discover, discover_splits,
    guess_known_set, known_set)
from menet_tf.data.pipeline import (
    count_crops, crop_dataset, eval_dataset, image_dataset, resolve_pairs, train_dataset)
from menet_tf.data.synth import (PRESETS, RainModel, RainPreset, add_rain, ensure_synthetic,
                                 rain_streaks, synthesize)

__all__ = [
    "CROP_NAMES", "crop_indices", "crop_name", "crop_plan", "five_crop_offsets",
    "ten_crops_numpy",
    "DataWarning", "ImageInfo", "inspect_image", "load_rgb",
    "KNOWN_SETS", "LAYOUTS", "CheckReport", "Discovery", "KnownSet", "Pair", "check_dataset",
    "detect_layout", "discover", "discover_splits", "guess_known_set", "known_set",
    "validate_pairs",
    "count_crops", "crop_dataset", "eval_dataset", "image_dataset", "resolve_pairs",
    "train_dataset",
    "PRESETS", "RainModel", "RainPreset", "add_rain", "rain_streaks", "synthesize",
    "ensure_synthetic",
]
