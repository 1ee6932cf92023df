"""Synthetic rain sets: rainy/clean pairs that look like Rain100H/L, made offline.

Why: the real sets must be downloaded by hand; every command (training, evaluation, benchmarks,
tests) must also run without them, and a RainTrainH-sized training set can be rendered from any
clean photos. The rain itself (streak model, presets, blending) is ``menet_tf.data.rain``.

Two sources of clean images:

* the natural photographs shipped inside scikit-image (no download, the default): several
  481x321 / 321x481 images derived from each by random rescale, crop and flip; train and test
  come from the same photos but different crops and rain;
* ``clean_dir`` (and ``test_clean_dir``): every image used as is (native size, no crop), as
  RainTrainH/Rain100H were made, with ``variants`` different rains per image (RainTrainH: 200
  backgrounds x 9). Without ``test_clean_dir`` no test split is written unless ``test_count``
  asks for one (then from ``clean_dir`` too).

Every pair is drawn from ``numpy.random.default_rng([seed, split, index, variant])``, so a seed
reproduces the set exactly, in any number of processes, and pair N does not depend on how many
were asked for. (The presets of menet-tf 0.2, ``heavy-0.2``/``light-0.2``, keep their old streams
and give the same bytes as before.)

Output is the JORDER layout: ``OUT/train`` and ``OUT/test``, each with ``norain-N.png``,
``rain-N.png`` and ``rainstreak-N.png`` (N from 1; variants of one image are consecutive), plus
``OUT/synth.json`` (renderer version, every parameter, the clean images), written last.
"""
import functools
import os
import re

import numpy as np
from PIL import Image

from menet_tf.errors import DataError
from menet_tf.files import is_partial, read_json, replacing, write_json
from menet_tf.data.images import inspect_image, is_image_file, load_rgb
from menet_tf.data.rain import (  # noqa: F401  (the names synth has always exported)
    PRESETS, RainModel, RainPreset, add_rain, describe, motion_kernel, preset_of, rain_streaks,
    streak_layer)
from menet_tf.model.metrics import psnr_float64 as psnr

#: Natural RGB photographs bundled with scikit-image (checked offline: all ship in the wheel).
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle")
#: Rain100's two image shapes as (width, height).
RAIN100_SIZES = ((481, 321), (321, 481))
MARKER = "synth.json"
_SPLIT_CODES = {"train": 0, "test": 1}
_OUR_FILES = re.compile(r"^(norain|rain|rainstreak)-\d+\.png$")


# ----------------------------------------------------------------------------------------------
# clean images

def skimage_photos():
    """{name: RGB uint8 array} of the photos that ship with scikit-image (no network)."""
    return dict(_skimage_photos())


@functools.lru_cache(maxsize=1)
def _skimage_photos():
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
    return tuple(photos.items())


def natural_key(name):
    """'norain-10.png' after 'norain-9.png': numbers in a name compare as numbers."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name)]


def folder_images(folder, natural=True):
    """The image files of ``folder`` (paths, in natural order), each checked to decode: a
    DataError naming the folder when it has none, or the first file that cannot be read."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: clean-image folder does not exist")
    names = sorted((n for n in os.listdir(folder) if is_image_file(n)),
                   key=natural_key if natural else None)
    if not names:
        raise DataError(f"{folder}: no images in the clean-image folder")
    paths = [os.path.join(folder, n) for n in names]
    for path in paths:
        inspect_image(path)  # DataError naming the file if corrupt or unreadable
    return paths


def folder_photos(folder):
    """{file name: RGB uint8 array} for every image in ``folder`` (converted to RGB)."""
    return {os.path.basename(p): load_rgb(p) for p in folder_images(folder, natural=False)}


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
# one pair

def render_rain(clean, preset, seed=0, split="test", index=0, variant=0, blend="additive"):
    """(rainy, rain layer) for one clean image, as `synth --clean-dir` renders pair ``index``
    (variant ``variant``) of ``split`` with a calibrated preset."""
    rng = np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index), int(variant)])
    streaks = rain_streaks(rng, clean.shape[0], clean.shape[1], preset)
    return add_rain(clean, streaks, blend), streaks


def _clean_and_rng(job, photo):
    """The clean image of a job and the generator its rain is drawn from."""
    seed, split, index, variant = job["seed"], _SPLIT_CODES[job["split"]], job["index"], \
        job["variant"]
    legacy = isinstance(preset_of(job["preset"]), RainPreset)
    key = [seed, split, index] + ([variant] if variant or not legacy else [])
    if job["size"] == "native" and not legacy:
        return photo, np.random.default_rng(key)  # used as is, like RainTrainH
    rng = np.random.default_rng([seed, split, index])
    clean = derive_clean(rng, photo, job["size"])  # 0.2's stream: crop, then rain, one rng
    return clean, (rng if legacy and not variant else np.random.default_rng(key))


_PHOTOS = {}


def _photo(source):
    """The clean photo of a job (cached per process: workers load each file once)."""
    if source not in _PHOTOS:
        kind, name = source
        _PHOTOS[source] = load_rgb(name) if kind == "file" else skimage_photos()[name]
    return _PHOTOS[source]


def _save(array, path):
    with replacing(path, suffix=".png", error=DataError) as tmp:
        Image.fromarray(np.asarray(array, np.uint8), "RGB").save(tmp, compress_level=1)


def write_pair(job):
    """Render and write norain-N, rain-N and rainstreak-N of one job; return (split, PSNR)."""
    clean, rng = _clean_and_rng(job, _photo(job["source"]))
    streaks = rain_streaks(rng, clean.shape[0], clean.shape[1], job["preset"])
    rainy = add_rain(clean, streaks, job["blend"])
    folder, n = job["folder"], job["number"]
    _save(clean, os.path.join(folder, f"norain-{n}.png"))
    _save(rainy, os.path.join(folder, f"rain-{n}.png"))
    streak_rgb = np.repeat(np.round(streaks * 255).astype(np.uint8)[..., None], 3, axis=-1)
    _save(streak_rgb, os.path.join(folder, f"rainstreak-{n}.png"))
    return job["split"], psnr(rainy, clean)


# ----------------------------------------------------------------------------------------------
# writing a set

def _sources(split, clean_dir, test_clean_dir, legacy):
    """(source descriptors, offset, folder recorded) of a split's clean images. The test split
    of a single source starts one image later than train (as in menet-tf 0.2)."""
    folder = test_clean_dir if split == "test" and test_clean_dir else clean_dir
    offset = _SPLIT_CODES[split] if not (split == "test" and test_clean_dir) else 0
    if folder is None:
        photos = skimage_photos()
        return [("skimage", n) for n in sorted(photos)], offset, None
    paths = folder_images(folder, natural=not legacy)
    return [("file", os.path.abspath(p)) for p in paths], offset, os.path.abspath(folder)


def _counts(count, test_count, clean_dir, test_clean_dir, n_train, n_test):
    """Clean images used per split: 40/10 photos by default, every image of a folder; no test
    split from a training folder unless asked for."""
    if count is None:
        count = n_train if clean_dir else 40
    if test_count is None:
        test_count = n_test if test_clean_dir else (0 if clean_dir else 10)
    return count, test_count


def _sizes(size, clean_dir, test_clean_dir):
    """Each split's size: as asked, else native for a folder's images, mixed for the photos."""
    native = {"train": bool(clean_dir), "test": bool(test_clean_dir or clean_dir)}
    return {s: parse_size(size or ("native" if native[s] else "mixed")) for s in native}


def plan_jobs(out, preset, seed, counts, sources, variants, sizes, blend):
    """One job (a dict a worker process can take) per pair, numbered image-major."""
    jobs = []
    for split, n in counts.items():
        photos, offset, _ = sources[split]
        for i in range(n):
            this_size = (RAIN100_SIZES[1] if i % 3 == 2 else RAIN100_SIZES[0]) \
                if sizes[split] == "mixed" else sizes[split]
            for v in range(variants[split]):
                jobs.append({"split": split, "index": i, "variant": v, "seed": int(seed),
                             "preset": preset, "blend": blend, "size": this_size,
                             "source": photos[(i + offset) % len(photos)],
                             "folder": os.path.join(out, split),
                             "number": i * variants[split] + v + 1})
    return jobs


def synthesize(out, preset="heavy", seed=0, count=None, test_count=None, clean_dir=None,
               size=None, blend="additive", progress=True, *, variants=1, test_clean_dir=None,
               test_variants=1, force=False, jobs=1):
    """Write a synthetic set (train and test split, JORDER layout) to ``out``.

    ``count``/``test_count``: clean images per split (default: 40/10 photos; every image of
    ``clean_dir``/``test_clean_dir``); each gets ``variants``/``test_variants`` rains.
    ``size``: 'mixed' (481x321 and 321x481 like Rain100, 2:1; the default for the photos),
    'native' (as is; the default for a folder's images) or (width, height) / 'WxH'.
    ``force``: replace a set synth wrote before (never anyone else's files). ``jobs``: worker
    processes (the files do not depend on it). Returns a summary dict (also in synth.json).
    """
    legacy = isinstance(preset_of(preset), RainPreset)
    _check_settings(preset, blend, variants, test_variants, jobs)
    sizes = _sizes(size, clean_dir, test_clean_dir)
    out = os.fspath(out)
    sources = {s: _sources(s, clean_dir, test_clean_dir, legacy) for s in ("train", "test")}
    n_train, n_test = _counts(count, test_count, clean_dir, test_clean_dir,
                              len(sources["train"][0]), len(sources["test"][0]))
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise DataError("--count and --test-count must be >= 0 and not both 0")
    counts, variants_of = {"train": n_train, "test": n_test}, \
        {"train": int(variants), "test": int(test_variants)}
    _check_out(out, force)
    _remove_marker(out)  # from here until the new marker is written the set is incomplete
    for split, n in counts.items():
        split_dir = os.path.join(out, split)
        if n or os.path.isdir(split_dir):
            _prepare_dir(split_dir)
    work = plan_jobs(out, preset, seed, counts, sources, variants_of, sizes, blend)
    psnrs = {"train": [], "test": []}
    for split, value in _run(work, jobs, progress, f"synth {preset}"):
        psnrs[split].append(value)
    summary = {
        "preset": preset, **describe(preset), "seed": int(seed),
        "count": n_train * variants_of["train"], "test_count": n_test * variants_of["test"],
        "variants": variants_of,
        "clean_images": counts, "blend": blend,
        "size": {s: v if isinstance(v, str) else f"{v[0]}x{v[1]}" for s, v in sizes.items()},
        "clean_source": {s: _describe_source(sources[s], counts[s]) for s in counts if counts[s]},
        "input_psnr_db": {k: round(float(np.mean(v)), 2) for k, v in psnrs.items() if v},
    }
    write_json(os.path.join(out, MARKER), summary)  # last, and atomic: the set is complete
    summary["folders"] = {s: os.path.join(out, s) for s, n in counts.items() if n}
    return summary


def _describe_source(source, n):
    photos, offset, folder = source
    used = [os.path.basename(photos[(i + offset) % len(photos)][1]) for i in range(n)]
    if folder is None:
        return {"skimage.data": sorted(set(used))}
    return {"folder": folder, "images": used}


def _run(work, jobs, progress, desc):
    """(split, PSNR) of every job, in one process or a pool of ``jobs``."""
    bar = _progress(len(work), progress, desc)
    try:
        if jobs <= 1 or len(work) < 2:
            for job in work:
                yield write_pair(job)
                bar.update(1)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # never fork a process holding TF
        with ProcessPoolExecutor(min(jobs, len(work)), mp_context=context) as pool:
            for result in pool.map(write_pair, work, chunksize=4):
                yield result
                bar.update(1)
    finally:
        bar.close()


def is_complete(out):
    """Whether ``out`` holds a finished synthetic set: its marker is written last (atomically),
    so a set cut short (killed while it was being generated) has none, or an unreadable one."""
    marker = read_json(os.path.join(os.fspath(out), MARKER))
    return isinstance(marker, dict) and "input_psnr_db" in marker


def ensure_synthetic(out, preset, seed=0, log=print, **settings):
    """``out`` as a complete synthetic set: generated (with a line to ``log``) unless one is
    there. An incomplete one (synth's own files) is regenerated, never used. Returns True when
    it generated."""
    if is_complete(out):
        return False
    state = "is incomplete" if os.path.isdir(out) else "not found"
    log(f"{out} {state}: generating the synthetic {preset}-rain set there (seed {seed})")
    synthesize(out, preset=preset, seed=seed, force=True, **settings)
    return True


def _remove_marker(out):
    marker = os.path.join(out, MARKER)
    if os.path.isfile(marker):
        os.remove(marker)


def _check_settings(preset, blend, variants, test_variants, jobs):
    preset_of(preset)
    if blend not in ("additive", "screen"):
        raise DataError(f"unknown blend {blend!r}; choose additive or screen")
    for flag, value in (("--variants", variants), ("--test-variants", test_variants),
                        ("--jobs", jobs)):
        if int(value) < 1:
            raise DataError(f"{flag} {value}: must be 1 or more")


def _check_out(out, force):
    """``out`` is new, or a folder that holds only what synth writes (never a user's files);
    a set synth wrote before is replaced only with ``force``."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"{out}: exists and is not a folder")
    if not os.path.isdir(out):
        return
    names = {n for n in os.listdir(out) if not is_partial(n)}
    extra = names - {"train", "test", MARKER}
    if extra:
        raise DataError(f"{out}: folder holds files menet-tf synth did not write "
                        f"(e.g. {sorted(extra)[0]}); choose an empty or new --out folder")
    ours = MARKER in names or any(_split_files(os.path.join(out, s)) for s in names - {MARKER})
    if ours and not force:
        what = "a synthetic set" if MARKER in names else "an unfinished synthetic set"
        raise DataError(f"{out}: already holds {what}; pass --force to replace it, "
                        f"or choose a new --out folder")


def _split_files(path):
    return [n for n in os.listdir(path) if not is_partial(n)] if os.path.isdir(path) else []


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


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total, progress, desc):
    if not progress:
        return _NoBar()
    from menet_tf.progress import bar as progress_bar  # a few lines in a log, no \r

    return progress_bar(total=total, desc=desc, unit="pair")
