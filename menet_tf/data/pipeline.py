"""tf.data pipelines that turn validated pairs into (rainy, clean) crop batches.

Every file is checked with PIL first (:func:`~menet_tf.data.check.validate_pairs`), so the
pipeline only decodes known-good 8-bit RGB files and crop offsets are fixed in Python
(:mod:`menet_tf.data.crops`). Stages::

    pair paths -> [shuffle pairs] -> parallel decode (rainy|clean stacked as 6 channels)
      -> [cache] -> crops [K, c, c, 6] -> unbatch -> [shuffle crops] -> batch -> float32 split
      -> prefetch

Rainy and clean travel as one 6-channel tensor until the very end, so no shuffle can separate
them. Outputs are float32 in 0..255 (the network works on 0..255), shape [B, c, c, 3] each.

Shuffling is two-level because holding every crop in a shuffle buffer would need 3 GB for
RainTrainL-sized sets: the pair order is fully reshuffled each epoch, then crops are mixed in a
buffer of ``shuffle_buffer`` crops (default 500, about 150 MB at 224x224). Both are seeded, so
a seed gives the same sequence of epochs on every run.
"""
import os

from menet_tf.errors import DataError
from menet_tf.data.crops import _crop_hw, crop_indices, crop_plan
from menet_tf.data.check import validate_pairs
from menet_tf.data.pairs import Pair

MODES = ("five_crop", "random")
DEFAULT_SHUFFLE_BUFFER = 500


def _tf():
    import tensorflow as tf  # lazy: keeps `menet-tf --help` and the PIL checks fast
    return tf


def resolve_pairs(source, crop_size=None, lenient=False, convert=False, full_check=True,
                  layout="auto", progress=False):
    """Validated pairs for ``source``; already-validated Pair lists are taken as they are."""
    min_size = _crop_hw(crop_size) if crop_size is not None else None
    if (isinstance(source, (list, tuple)) and source
            and all(isinstance(p, Pair) and p.height > 0 for p in source)):
        pairs = list(source)
        if min_size:
            for p in pairs:
                if p.height < min_size[0] or p.width < min_size[1]:
                    raise DataError(f"{p.rainy}: image is {p.width}x{p.height} (width x height), "
                                    f"smaller than the {min_size[1]}x{min_size[0]} crop")
        return pairs
    return validate_pairs(source, lenient=lenient, convert=convert, full_check=full_check,
                          min_size=min_size, layout=layout, progress=progress)


def _decode_pair(rainy_path, clean_path, height, width):
    """Read both files and stack them as one [H, W, 6] uint8 tensor."""
    tf = _tf()
    images = []
    for path in (rainy_path, clean_path):
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, dtype=tf.uint8,
                                 expand_animations=False)
        same = tf.reduce_all(tf.equal(tf.shape(img)[:2], tf.stack([height, width])))
        check = tf.debugging.Assert(same, ["image size changed since it was validated:", path])
        with tf.control_dependencies([check]):
            img = tf.identity(img)
        img.set_shape([None, None, 3])
        images.append(img)
    return tf.concat(images, axis=-1)


def _five_crops(image, tops, lefts, flips, ch, cw):
    """Static list of crops (flags known in Python) at per-pair offsets: [K, ch, cw, 6]."""
    tf = _tf()
    flipped = tf.reverse(image, axis=[1]) if any(flips) else None
    crops = [tf.slice(flipped if flip else image, tf.stack([tops[k], lefts[k], 0]), [ch, cw, 6])
             for k, flip in enumerate(flips)]
    return tf.stack(crops)


def _random_crops(image, height, width, seed, num, ch, cw):
    """``num`` uniformly placed crops, each flipped with probability 1/2 (stateless, seeded)."""
    tf = _tf()
    crops = []
    for k in range(num):
        s = tf.stack([seed, tf.constant(k, tf.int64)])
        top = tf.random.stateless_uniform([], s, 0, height - ch + 1, dtype=tf.int32)
        left = tf.random.stateless_uniform([], s + [0, 1000], 0, width - cw + 1, dtype=tf.int32)
        flip = tf.random.stateless_uniform([], s + [0, 2000]) < 0.5
        crop = tf.slice(image, tf.stack([top, left, 0]), [ch, cw, 6])
        crops.append(tf.where(flip, tf.reverse(crop, axis=[1]), crop))
    return tf.stack(crops)


def _to_float_pair(batch):
    tf = _tf()
    x = tf.cast(batch, tf.float32)
    return x[..., :3], x[..., 3:]


def crop_dataset(source, *, batch_size=20, crop_size=224, num_crops=10, mode="five_crop",
                 seed=0, cache=False, shuffle=True, drop_remainder=True,
                 shuffle_buffer=DEFAULT_SHUFFLE_BUFFER, lenient=False, convert=False,
                 full_check=True, layout="auto", num_parallel_calls=None, progress=False):
    """Build the (rainy, clean) crop pipeline; see :func:`train_dataset` for the arguments."""
    tf = _tf()
    _check_crop_arguments(mode, batch_size, num_crops)
    ch, cw = _crop_hw(crop_size)
    flips = [i >= 5 for i in crop_indices(num_crops)] if mode == "five_crop" else None
    pairs = resolve_pairs(source, (ch, cw), lenient, convert, full_check, layout, progress)
    n, k = len(pairs), (len(flips) if flips else int(num_crops))
    parallel = num_parallel_calls or tf.data.AUTOTUNE

    ds = _pair_table(pairs, mode, (ch, cw), num_crops)
    ds = _decoded(ds, cache, shuffle, n, seed, parallel)
    if mode == "five_crop":
        ds = ds.map(lambda el: _five_crops(el["image"], el["tops"], el["lefts"], flips, ch, cw),
                    num_parallel_calls=parallel)
    else:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda el, s: _random_crops(el["image"], el["height"], el["width"], s, k, ch, cw),
            num_parallel_calls=parallel)
    ds = ds.unbatch()
    if shuffle and shuffle_buffer and shuffle_buffer > 1:
        ds = ds.shuffle(int(shuffle_buffer), seed=None if seed is None else seed + 1,
                        reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)
    batches = _batch_count(n, k, batch_size, drop_remainder)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    ds = ds.map(_to_float_pair, num_parallel_calls=parallel)
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_crop_arguments(mode, batch_size, num_crops):
    if mode not in MODES:
        raise DataError(f"unknown crop mode {mode!r}; choose from {', '.join(MODES)}")
    if int(batch_size) <= 0:
        raise DataError(f"batch size must be positive, got {batch_size}")
    if mode == "random" and int(num_crops) <= 0:
        raise DataError(f"num_crops must be positive, got {num_crops}")


def _pair_table(pairs, mode, crop_hw, num_crops):
    """One dataset element per pair: its two paths, its size and (five_crop) its crop corners."""
    tf = _tf()
    columns = {
        "rainy": [p.rainy for p in pairs], "clean": [p.clean for p in pairs],
        "height": [p.height for p in pairs], "width": [p.width for p in pairs],
    }
    if mode == "five_crop":
        plans = [crop_plan(p.height, p.width, crop_hw, num_crops) for p in pairs]
        columns["tops"] = [[t for t, _, _ in plan] for plan in plans]
        columns["lefts"] = [[l for _, l, _ in plan] for plan in plans]
    return tf.data.Dataset.from_tensor_slices(
        {key: tf.constant(val, tf.string if key in ("rainy", "clean") else tf.int32)
         for key, val in columns.items()})


def _decoded(ds, cache, shuffle, n, seed, parallel):
    """Decode each pair (once per session with ``cache``) and shuffle the pairs."""
    def decode(el):
        out = dict(el)
        out["image"] = _decode_pair(el["rainy"], el["clean"], el["height"], el["width"])
        return out

    if cache:  # decode once, keep decoded pairs (memory, or a file prefix if cache is a path)
        ds = ds.map(decode, num_parallel_calls=parallel)
        ds = ds.cache("" if cache is True else os.fspath(cache))
        if shuffle:  # cached tensors are shared, not copied, by the shuffle buffer
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return ds.map(decode, num_parallel_calls=parallel)


def _batch_count(n, k, batch_size, drop_remainder):
    total = n * k
    batches = total // batch_size if drop_remainder else -(-total // batch_size)
    if batches == 0:
        raise DataError(f"{n} pairs x {k} crops = {total} crops: fewer than one batch of "
                        f"{batch_size} (use a smaller batch size or keep the last partial batch)")
    return batches


def train_dataset(pairs_or_dir, batch_size=20, crop_size=224, num_crops=10, mode="five_crop",
                  seed=0, cache=False, shuffle=True, **kwargs):
    """Training crops: shuffled each epoch (seeded), last partial batch dropped.

    ``pairs_or_dir``: a folder in any supported layout, a pair-list file, a list of
    ``(rainy, clean)`` paths or of validated :class:`Pair`. ``mode='five_crop'`` gives the
    paper's 10 fixed crops per pair (RainTrainH: 18000 crops = 900 batches of 20);
    ``mode='random'`` gives ``num_crops`` random crops (random flip) per pair, new each epoch.
    ``cache=True`` keeps decoded images in memory after the first epoch (a string caches to that
    file prefix). Other keywords: ``shuffle_buffer`` (crops, default 500), ``lenient``,
    ``convert``, ``full_check``, ``layout``, ``num_parallel_calls``, ``drop_remainder``.
    Yields ``(rainy, clean)`` float32 tensors in 0..255 of shape [B, c, c, 3].
    """
    kwargs.setdefault("drop_remainder", True)
    return crop_dataset(pairs_or_dir, batch_size=batch_size, crop_size=crop_size,
                        num_crops=num_crops, mode=mode, seed=seed, cache=cache, shuffle=shuffle,
                        **kwargs)


def eval_dataset(pairs_or_dir, batch_size=20, crop_size=224, num_crops=10, cache=False,
                 **kwargs):
    """Evaluation crops: fixed order (pairs sorted by name, crops in crop order), last batch kept.

    Rain100L gives 100 pairs x 10 = 1000 crops = 50 batches of 20.
    """
    kwargs.setdefault("drop_remainder", False)
    kwargs.setdefault("mode", "five_crop")
    return crop_dataset(pairs_or_dir, batch_size=batch_size, crop_size=crop_size,
                        num_crops=num_crops, seed=None, cache=cache, shuffle=False, **kwargs)


def image_dataset(pairs_or_dir, **kwargs):
    """Whole images, one pair at a time, in name order: ([1, H, W, 3], [1, H, W, 3]) float32.

    For full-image PSNR/SSIM on a test set (sizes differ between images, so no batching).
    Keywords as for :func:`train_dataset` (``lenient``, ``convert``, ``full_check``, ``layout``).
    """
    tf = _tf()
    opts = {k: kwargs.pop(k) for k in ("lenient", "convert", "full_check", "layout") if k in kwargs}
    if kwargs:
        raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
    pairs = resolve_pairs(pairs_or_dir, None, **opts)
    ds = tf.data.Dataset.from_tensor_slices((
        [p.rainy for p in pairs], [p.clean for p in pairs],
        tf.constant([p.height for p in pairs], tf.int32),
        tf.constant([p.width for p in pairs], tf.int32)))
    ds = ds.map(_decode_pair, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(lambda x: _to_float_pair(x[None]), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(pairs)))
    return ds.prefetch(tf.data.AUTOTUNE)


def count_crops(num_pairs, num_crops=10, batch_size=20, drop_remainder=True):
    """(crops, batches) per epoch, e.g. (18000, 900) for RainTrainH."""
    total = num_pairs * num_crops
    return total, (total // batch_size if drop_remainder else -(-total // batch_size))
