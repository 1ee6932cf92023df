"""Synthetic rain: rainy/clean pairs that look like Rain100H/L, made offline in seconds.

Why: the real sets must be downloaded by hand; every command (training, evaluation, benchmarks,
tests) must also run without them. Streaks follow the usual recipe for Rain100-style data:
sparse random "drops" are blurred along a direction with a motion-blur (line) kernel, then added
to the clean image, ``O = clip(B + R)`` (``blend='additive'``) or screen-blended,
``O = 1 - (1 - B)(1 - R)`` (``blend='screen'``), all in 0..1.

Presets, tuned so the rainy inputs' RGB PSNR matches the real sets (Rain100L measured on the
shared copy: 25.5 dB; Rain100H: about 12-13 dB as published):

* ``heavy`` (like Rain100H; ~12.5-13 dB on the default photos): 3-4 streak layers in
  different directions, dense, long, wide and bright.
* ``light`` (like Rain100L; ~25-26 dB): one layer, one direction, sparse, short and dim.

Clean images default to the natural photographs shipped inside scikit-image (no download);
several 481x321 / 321x481 images are derived from each photo by random rescale, crop and flip.
Train and test images come from the same photos but different crops and rain. Everything is
drawn from ``numpy.random.default_rng([seed, split, index])``, so a seed reproduces the set
exactly and image N does not depend on ``count``.

Output is the JORDER layout: ``OUT/train`` and ``OUT/test``, each with ``norain-N.png``,
``rain-N.png`` and ``rainstreak-N.png`` (N from 1), plus ``OUT/synth.json`` with the settings.
"""
import os
import re
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from menet_tf.errors import DataError
from menet_tf.files import is_partial, read_json, write_json
from menet_tf.data.images import inspect_image, is_image_file, load_rgb, save_rgb
from menet_tf.model.metrics import psnr_float64 as psnr

#: Natural RGB photographs bundled with scikit-image (checked offline: all ship in the wheel).
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
#: Rain100's two image shapes as (width, height).
RAIN100_SIZES = ((481, 321), (321, 481))
MARKER = "synth.json"
_SPLIT_CODES = {"train": 0, "test": 1}
_OUR_FILES = re.compile(r"^(norain|rain|rainstreak)-\d+\.png$")


@dataclass(frozen=True)
class RainPreset:
    """Streak parameters; ranges are (low, high) drawn per image or per layer."""

    layers: tuple        # number of streak layers (directions)
    density: tuple       # fraction of pixels that start a streak, per layer
    length: tuple        # streak length in pixels
    width: tuple         # Gaussian widening of drops (sigma, pixels; 0 = 1-pixel streaks)
    brightness: tuple    # peak streak intensity in 0..1
    angle: tuple         # main direction, degrees from vertical
    spread: float        # max deviation of further layers from the main direction, degrees


PRESETS = {
    "heavy": RainPreset(layers=(3, 4), density=(0.0004, 0.0008), length=(28, 52),
                        width=(0.8, 1.4), brightness=(0.80, 1.0), angle=(-30, 30), spread=25.0),
    "light": RainPreset(layers=(1, 1), density=(0.0035, 0.005), length=(12, 24),
                        width=(0.0, 0.4), brightness=(0.45, 0.65), angle=(-20, 20), spread=0.0),
}


# ----------------------------------------------------------------------------------------------
# streaks

def motion_kernel(length, angle_deg):
    """Normalised line kernel of ``length`` pixels at ``angle_deg`` from vertical (anti-aliased)."""
    length = max(int(round(length)), 1)
    size = length + 2 + (length % 2 == 0)
    k = np.zeros((size, size), np.float64)
    c = size // 2
    theta = np.deg2rad(angle_deg)
    dy, dx = np.cos(theta), np.sin(theta)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 2 * length):
        y, x = c + t * dy, c + t * dx
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for yy, xx, w in ((y0, x0, (1 - fy) * (1 - fx)), (y0 + 1, x0, fy * (1 - fx)),
                          (y0, x0 + 1, (1 - fy) * fx), (y0 + 1, x0 + 1, fy * fx)):
            if 0 <= yy < size and 0 <= xx < size:
                k[yy, xx] += w
    return k / k.sum()


def streak_layer(rng, height, width, density, length, angle, sigma, brightness):
    """One layer of streaks in one direction: [H, W] float in 0..brightness."""
    from scipy.ndimage import gaussian_filter
    from scipy.signal import fftconvolve

    drops = (rng.random((height, width)) < density) * rng.uniform(0.4, 1.0, (height, width))
    if sigma > 0.05:
        drops = gaussian_filter(drops, sigma) * (2 * np.pi * sigma ** 2) ** 0.5
    layer = fftconvolve(drops, motion_kernel(length, angle), mode="same") * length
    return np.clip(layer, 0.0, None) * brightness


def rain_streaks(rng, height, width, preset):
    """All layers of a preset combined: [H, W] float in 0..1."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    layers = int(rng.integers(p.layers[0], p.layers[1] + 1))
    base = rng.uniform(*p.angle)
    total = np.zeros((height, width))
    for i in range(layers):
        angle = base if i == 0 else base + rng.uniform(-p.spread, p.spread)
        total += streak_layer(rng, height, width, rng.uniform(*p.density), rng.uniform(*p.length),
                              angle, rng.uniform(*p.width), rng.uniform(*p.brightness))
    return np.clip(total, 0.0, 1.0)


def add_rain(clean, streaks, blend="additive"):
    """Compose a rainy image from clean [H, W, 3] uint8 and streaks [H, W] in 0..1 -> uint8."""
    b = clean.astype(np.float64) / 255.0
    r = streaks[..., None]
    if blend == "additive":
        o = b + r
    elif blend == "screen":
        o = 1.0 - (1.0 - b) * (1.0 - r)
    else:
        raise DataError(f"unknown blend {blend!r}; choose additive or screen")
    return np.clip(np.round(o * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# clean images

def skimage_photos():
    """{name: RGB uint8 array} of the photos that ship with scikit-image (no network)."""
    import skimage.data

    photos = {}
    for name in SKIMAGE_PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # missing in this scikit-image version or needs pooch: skip
            continue
        img = img[0] if isinstance(img, tuple) else img
        if img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8:
            photos[name] = img
    if not photos:
        raise DataError("no bundled scikit-image photos available; pass --clean-dir")
    return photos


def folder_photos(folder):
    """{file name: RGB uint8 array} for every image in ``folder`` (converted to RGB)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: clean-image folder does not exist")
    names = sorted(n for n in os.listdir(folder) if is_image_file(n))
    if not names:
        raise DataError(f"{folder}: no images in the clean-image folder")
    photos = {}
    for n in names:
        path = os.path.join(folder, n)
        inspect_image(path)  # DataError naming the file if corrupt
        photos[n] = load_rgb(path)
    return photos


def parse_size(text):
    """'481x321' -> (481, 321) as (width, height); 'mixed' and 'native' pass through."""
    if text in (None, "mixed", "native"):
        return text or "mixed"
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) <= 0 or int(m.group(2)) <= 0:
        raise DataError(f"size {text!r}: expected WIDTHxHEIGHT (e.g. 481x321), mixed or native")
    return int(m.group(1)), int(m.group(2))


def derive_clean(rng, photo, size):
    """A random rescale + crop (+ flip) of ``photo`` at ``size`` = (width, height)."""
    if size == "native":
        out = photo
    else:
        tw, th = size
        h, w = photo.shape[:2]
        scale = max(tw / w, th / h) * rng.uniform(1.0, 1.5)
        nw, nh = max(tw, int(round(w * scale))), max(th, int(round(h * scale)))
        img = np.asarray(Image.fromarray(photo).resize((nw, nh), Image.BICUBIC))
        top, left = int(rng.integers(0, nh - th + 1)), int(rng.integers(0, nw - tw + 1))
        out = img[top:top + th, left:left + tw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


# ----------------------------------------------------------------------------------------------
# writing a set

def _prepare_dir(path):
    """Create ``path``; clear files a previous synth run wrote, refuse foreign files."""
    os.makedirs(path, exist_ok=True)
    names = os.listdir(path)
    foreign = [n for n in names if not (_OUR_FILES.match(n) or is_partial(n))]
    if foreign:
        raise DataError(f"{path}: folder holds files menet-tf synth did not write "
                        f"(e.g. {foreign[0]}); choose an empty or new --out folder")
    for n in names:
        os.remove(os.path.join(path, n))


def synthesize(out, preset="heavy", seed=0, count=40, test_count=10, clean_dir=None,
               size="mixed", blend="additive", progress=True):
    """Write a synthetic set (train and test split, JORDER layout) to ``out``.

    Returns a dict with the folders written and the mean input PSNR of each split.
    ``size``: 'mixed' (481x321 and 321x481 like Rain100, 2:1), 'native' (photo as is) or a
    (width, height) tuple / 'WxH' string.
    """
    _check_settings(preset, blend, count, test_count)
    size = parse_size(size)
    out = os.fspath(out)
    _check_out(out)
    _remove_marker(out)  # from here until the new marker is written the set is incomplete
    photos = folder_photos(clean_dir) if clean_dir else skimage_photos()
    names = sorted(photos)
    jobs = [("train", i) for i in range(count)] + [("test", i) for i in range(test_count)]
    for split, n in (("train", count), ("test", test_count)):
        split_dir = os.path.join(out, split)
        if n or os.path.isdir(split_dir):
            _prepare_dir(split_dir)
    psnrs = {"train": [], "test": []}
    for split, i in _progress(jobs, progress, f"synth {preset}"):
        rng = np.random.default_rng([int(seed), _SPLIT_CODES[split], i])
        photo = photos[names[(i + _SPLIT_CODES[split]) % len(names)]]
        this_size = (RAIN100_SIZES[1] if i % 3 == 2 else RAIN100_SIZES[0]) \
            if size == "mixed" else size
        psnrs[split].append(_write_pair(rng, photo, this_size, preset, blend,
                                        os.path.join(out, split), i + 1))
    summary = {
        "preset": preset, "preset_params": asdict(PRESETS[preset]), "seed": int(seed),
        "count": int(count), "test_count": int(test_count), "blend": blend,
        "size": size if isinstance(size, str) else f"{size[0]}x{size[1]}",
        "clean_source": (os.path.abspath(clean_dir) if clean_dir
                         else "skimage.data: " + ", ".join(names)),
        "input_psnr_db": {k: round(float(np.mean(v)), 2) for k, v in psnrs.items() if v},
    }
    write_json(os.path.join(out, MARKER), summary)  # last, and atomic: the set is complete
    summary["folders"] = {s: os.path.join(out, s) for s, n in
                          (("train", count), ("test", test_count)) if n}
    return summary


def is_complete(out):
    """Whether ``out`` holds a finished synthetic set: its marker is written last (atomically),
    so a set cut short (killed while it was being generated) has none, or an unreadable one."""
    marker = read_json(os.path.join(os.fspath(out), MARKER))
    return isinstance(marker, dict) and "input_psnr_db" in marker


def ensure_synthetic(out, preset, seed=0, log=print, **settings):
    """``out`` as a complete synthetic set: generated (with a line to ``log``) unless one is
    there. An incomplete one is regenerated, never used. Returns True when it generated."""
    if is_complete(out):
        return False
    state = "is incomplete" if os.path.isdir(out) else "not found"
    log(f"{out} {state}: generating the synthetic {preset}-rain set there (seed {seed})")
    synthesize(out, preset=preset, seed=seed, **settings)
    return True


def _remove_marker(out):
    marker = os.path.join(out, MARKER)
    if os.path.isfile(marker):
        os.remove(marker)


def _check_settings(preset, blend, count, test_count):
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if blend not in ("additive", "screen"):
        raise DataError(f"unknown blend {blend!r}; choose additive or screen")
    if count < 0 or test_count < 0 or count + test_count == 0:
        raise DataError("--count and --test-count must be >= 0 and not both 0")


def _check_out(out):
    """``out`` is new, or a folder that holds only what synth writes (never a user's files)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"{out}: exists and is not a folder")
    if os.path.isdir(out):
        extra = {n for n in os.listdir(out) if not is_partial(n)} - {"train", "test", MARKER}
        if extra:
            raise DataError(f"{out}: folder holds files menet-tf synth did not write "
                            f"(e.g. {sorted(extra)[0]}); choose an empty or new --out folder")


def _progress(jobs, progress, desc):
    if not progress:
        return jobs
    from tqdm import tqdm

    return tqdm(jobs, desc=desc, unit="pair")


def _write_pair(rng, photo, size, preset, blend, folder, number):
    """Write norain-N, rain-N and rainstreak-N; return the rainy image's PSNR."""
    clean = derive_clean(rng, photo, size)
    streaks = rain_streaks(rng, clean.shape[0], clean.shape[1], preset)
    rainy = add_rain(clean, streaks, blend)
    save_rgb(clean, os.path.join(folder, f"norain-{number}.png"))
    save_rgb(rainy, os.path.join(folder, f"rain-{number}.png"))
    streak_rgb = np.repeat(np.round(streaks * 255).astype(np.uint8)[..., None], 3, axis=-1)
    save_rgb(streak_rgb, os.path.join(folder, f"rainstreak-{number}.png"))
    return psnr(rainy, clean)
