"""Batch de-raining of photo files: files, folders and globs in, de-rained files out; what
``menet-tf derain`` does.

Photos of the same size go through the network together; a photo that cannot be read is reported
by name and skipped, so one bad file in a folder of hundreds does not cost the others. Given a
folder of clean images, each output that has a clean image of the same name is scored against
it, with the rainy input's score beside it, so a user sees what the model gained on their data.
"""
import os
import time
import warnings

import numpy as np

from menet_tf.errors import DataError, MenetError
from menet_tf.infer import photos
from menet_tf.infer.tiling import TILE_OVERLAP, TILE_SIZE
from menet_tf.model.metrics import psnr_float64

#: How the clean-image scores are measured (recorded beside them in derain.json).
PSNR_PROTOCOL = "whole image, RGB, 8-bit values at max 255 (menet_tf.model.metrics.psnr_float64)"


def _output_paths(files, out, fmt):
    """(output path, format) of each input: OUT/<relative name with the format's extension>, or OUT
    itself for a single input when OUT names an image file. Clashing names (a.jpg, a.png) get
    the source extension appended to the stem."""
    if len(files) == 1 and photos.is_photo(out) and not os.path.isdir(out):
        return [(out, photos.output_format("same", out))]
    formats = [photos.output_format(fmt, source) for source, _ in files]
    exts = [photos.OUTPUT_FORMATS[f][1] for f in formats]
    return list(zip(output_names([rel for _, rel in files], exts, out), formats))


def output_names(relative_names, extensions, out):
    """OUT/<relative name with its new extension> for each input; clashing names (a.jpg and
    a.png both to PNG) get the source extension appended to the stem. Photos and clips alike."""
    paths, used = [], set()
    for rel, ext in zip(relative_names, extensions):
        stem, source_ext = os.path.splitext(rel)
        path = os.path.join(out, stem + ext)
        if path in used:
            path = os.path.join(out, f"{stem}_{source_ext.lstrip('.').lower()}{ext}")
        used.add(path)
        paths.append(path)
    return paths


def _compare_path(path):
    stem, ext = os.path.splitext(path)
    return f"{stem}_compare{ext}"


def _find_photos(inputs, recursive):
    files = photos.list_photos(inputs, recursive=recursive)
    if not files:
        raise DataError(f"no images found in {', '.join(map(str, inputs))}"
                        + ("" if recursive else " (use --recursive for sub-folders)"))
    return files


def refuse_overwrite(targets, compare=False):
    """All existing outputs named at once, before anything runs: a refused run changes no file."""
    existing = [p for p, _ in targets if os.path.exists(p)]
    existing += [_compare_path(p) for p, _ in targets if compare and os.path.exists(
        _compare_path(p))]
    if existing:
        shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more"
                                           if len(existing) > 5 else "")
        raise MenetError(f"would overwrite {shown}; use --force to replace")


def refuse_inputs(files, targets, compare=False):
    """An output that is one of the inputs is refused whatever the flags: --force replaces
    earlier outputs, never the photos being read."""
    sources = {os.path.realpath(source) for source, _ in files}
    outputs = [p for p, _ in targets] + ([_compare_path(p) for p, _ in targets] if compare else [])
    clashes = [p for p in outputs if os.path.realpath(p) in sources]
    if clashes:
        raise MenetError(f"{clashes[0]} is an input; refusing to write over it (give -o another"
                         " folder)" + (f"; {len(clashes) - 1} more" if len(clashes) > 1 else ""))


def make_folders(targets):
    """Create the output folders before anything runs, so a path under a file or an unwritable
    folder is one line naming it, not a failure after the first image."""
    for folder in sorted({os.path.dirname(os.path.abspath(p)) for p, _ in targets}):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise MenetError(f"{folder}: cannot create the output folder"
                             f" ({err.strerror or err})") from None
        if not os.access(folder, os.W_OK):
            raise MenetError(f"{folder}: output folder is not writable")


def derain_batch(derainer, images, **options):
    """``derainer.derain``, with out-of-memory as one line saying how to need less memory
    (photos here, video frames in ``menet_tf.infer.video``)."""
    import tensorflow as tf

    try:
        return derainer.derain(images, **options)
    except (tf.errors.ResourceExhaustedError, MemoryError):
        h, w = images.shape[1:3]
        raise MenetError(f"out of memory de-raining {len(images)} image(s) of {w}x{h}: use"
                         " --mode tile, a smaller --max-pixels (tiles above it) or a smaller"
                         " --batch-size") from None



def _group_by_size(files, targets, failed):
    """{(height, width): [(source, (target, format))]} from the headers only; unreadable
    headers go to ``failed``."""
    groups = {}
    for (source, _), target in zip(files, targets):
        try:
            groups.setdefault(photos.photo_size(source), []).append((source, target))
        except DataError as err:
            failed.append((source, str(err)))
    return groups


def _read_batch(members, bar, failed):
    """The readable photos of ``members`` as (members read, images); a conversion warning
    (grayscale, 16-bit, ...) is printed above the progress bar, a failure is recorded."""
    chunk, images = [], []
    for source, target in members:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                image = photos.read_photo(source)
            except DataError as err:
                failed.append((source, str(err)))
                bar.write(f"skipped: {err}")
                bar.update(1)
                continue
        for w in caught:
            bar.write(f"warning: {w.message}")
        chunk.append((source, target))
        images.append(image)
    return chunk, images


def _write_batch(chunk, images, results, compare, bar):
    written = []
    for (_, (target, target_fmt)), image, clean in zip(chunk, images, results):
        photos.write_photo(clean, target, target_fmt)
        written.append(target)
        if compare:
            photos.write_photo(photos.side_by_side(image, clean), _compare_path(target),
                               target_fmt)
        bar.update(1)
    return written


def _derain_groups(derainer, groups, bar, failed, compare, batch_size, derain_options):
    """De-rain and write every group, ``batch_size`` photos at a time: (written paths, pixels,
    network seconds). The clock runs around the network only (padding and tiling included),
    after one warm-up, so seconds per megapixel do not depend on disks or tracing."""
    written, pixels, seconds = [], 0, 0.0
    if groups:
        derainer.warm_up(*next(iter(groups)))
    for (h, w), members in groups.items():
        for i in range(0, len(members), batch_size):
            chunk, images = _read_batch(members[i:i + batch_size], bar, failed)
            if not images:
                continue
            start = time.perf_counter()
            results = derain_batch(derainer, np.stack(images), batch_size=batch_size,
                                   **derain_options)
            seconds += time.perf_counter() - start
            pixels += h * w * len(images)
            written += _write_batch(chunk, images, results, compare, bar)
    return written, pixels, seconds


def _clean_twin(clean_dir, rel):
    """The clean image of the input named ``rel``: CLEAN/rel, else the same name with another
    image extension (a JPEG input may have a PNG twin); None when there is none."""
    exact = os.path.join(clean_dir, rel)
    if os.path.isfile(exact):
        return exact
    stem = os.path.splitext(rel)[0]
    for ext in photos.PHOTO_EXTENSIONS + tuple(e.upper() for e in photos.PHOTO_EXTENSIONS):
        if os.path.isfile(os.path.join(clean_dir, stem + ext)):
            return os.path.join(clean_dir, stem + ext)
    return None


def _check_same_size(source, twin):
    """A clean image of another size than its rainy input has no meaningful PSNR: refused."""
    try:
        height, width = photos.photo_size(source)
    except DataError:
        return  # an unreadable input is reported with the failures when it is read
    twin_height, twin_width = photos.photo_size(twin)
    if (twin_height, twin_width) != (height, width):
        raise DataError(f"{twin}: clean image is {twin_width}x{twin_height}, but its rainy"
                        f" input {source} is {width}x{height}")


def clean_twins(files, clean_dir):
    """{input path: clean image path} for the inputs ([(path, relative name)]) that have a clean
    image of the same relative name in ``clean_dir``; checked before anything runs."""
    clean_dir = os.fspath(clean_dir)
    if not os.path.isdir(clean_dir):
        raise DataError(f"{clean_dir}: clean-image folder does not exist")
    twins = {}
    for source, rel in files:
        twin = _clean_twin(clean_dir, rel)
        if twin is not None:
            _check_same_size(source, twin)
            twins[source] = twin
    return twins


def score_outputs(outputs, twins, clean_dir):
    """PSNR of each output and of its rainy input against the clean twin, both read back from
    their files, so an output is scored as the user gets it (8 bits, or JPEG if asked).

    ``outputs``: [(input path, written output path)]. Returns the ``psnr`` record of
    derain.json: the protocol, the folder, one entry per scored image and the means.
    """
    images = []
    for source, target in outputs:
        if source in twins:
            clean = photos.read_photo(twins[source])
            images.append({"file": source, "output": target, "clean": twins[source],
                           "input_psnr": psnr_float64(photos.read_photo(source), clean),
                           "output_psnr": psnr_float64(photos.read_photo(target), clean)})
    means = {f"mean_{k}": (float(np.mean([i[k] for i in images])) if images else None)
             for k in ("input_psnr", "output_psnr")}
    return {"protocol": PSNR_PROTOCOL, "clean_dir": os.fspath(clean_dir), "images": images,
            **means}


def derain_files(derainer, inputs, out, *, recursive=False, mode="pad", fmt="png", force=False,
                 compare=False, batch_size=4, max_pixels="auto", tile_size=TILE_SIZE,
                 overlap=TILE_OVERLAP, clean_dir=None, progress=True):
    """De-rain photos (files, folders, globs) into ``out``.

    Images of the same size go through the network together, ``batch_size`` at a time. A file
    that cannot be read is reported by name and skipped; the others are still processed.
    Existing outputs are refused unless ``force``. With ``clean_dir``, outputs whose input has a
    clean image of the same name there are scored (:func:`score_outputs`). Returns a summary dict
    with ``failed`` [(path, message)], ``written`` paths, ``megapixels``, ``network_seconds``,
    ``seconds_per_megapixel`` (network time: inference, padding, tiling; not file I/O) and
    ``psnr`` (None without ``clean_dir``).
    """
    from menet_tf.progress import bar as progress_bar

    out = os.fspath(out)
    files = _find_photos(inputs, recursive)
    targets = _output_paths(files, out, fmt)
    refuse_inputs(files, targets, compare)
    if not force:
        refuse_overwrite(targets, compare)
    twins = clean_twins(files, clean_dir) if clean_dir is not None else None
    make_folders(targets)
    failed = []
    groups = _group_by_size(files, targets, failed)
    bar = progress_bar(total=len(files), unit="img", disable=not progress, dynamic_ncols=True)
    bar.update(len(failed))
    for _, message in failed:
        bar.write(f"skipped: {message}")
    written, pixels, seconds = _derain_groups(
        derainer, groups, bar, failed, compare, batch_size,
        dict(mode=mode, max_pixels=max_pixels, tile_size=tile_size, overlap=overlap))
    bar.close()
    megapixels = pixels / 1e6
    source_of = {target: source for (source, _), (target, _) in zip(files, targets)}
    return {
        "images": len(files),
        "written": written,
        "failed": failed,
        "megapixels": megapixels,
        "network_seconds": seconds,
        "seconds_per_megapixel": seconds / megapixels if megapixels else None,
        "mode": mode,
        "psnr": None if twins is None else score_outputs(
            [(source_of[t], t) for t in written], twins, clean_dir),
    }
