"""The paper's five-crop + flip: which crops, at which offsets, in which order.

MENET trains on 224x224 crops: the four corners and the centre of each image, then the same five
from the horizontally flipped image, 10 crops per pair, rainy and clean cropped identically.

Crop order (index: crop), fixed and relied on by the pipeline and the tests::

    0 top-left      1 top-right      2 bottom-left      3 bottom-right      4 centre
    5-9: the same five, taken from the horizontally flipped image

The centre offset is ``round((h - c) / 2)``, ``round((w - c) / 2)`` with Python 3's ``round``
(halves to even): 48 and 128 for a 481x321 (width x height) image with c = 224. Crops of the
flipped image use the same offsets on the flipped image (so crop 9 is *not* simply crop 4
mirrored when ``w - c`` is odd).

``num_crops`` selects a documented subset: 10 = all of the above, 5 = the five unflipped,
2 = centre and flipped centre, 1 = centre only.

Offsets are computed here in plain Python from the sizes found at validation time, so the
TensorFlow pipeline and the NumPy reference (:func:`ten_crops_numpy`) share one definition.
"""
import numpy as np

from menet_tf.errors import DataError

CROP_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")
CROP_SUBSETS = {10: tuple(range(10)), 5: (0, 1, 2, 3, 4), 2: (4, 9), 1: (4,)}


def crop_indices(num_crops):
    """The crop indices (0..9, see module docstring) used for ``num_crops`` crops per image."""
    try:
        return CROP_SUBSETS[int(num_crops)]
    except (KeyError, ValueError, TypeError):
        raise DataError(f"num_crops={num_crops!r} is not supported by five-crop mode; choose "
                        f"one of {sorted(CROP_SUBSETS)} (or use mode='random')") from None


def crop_name(index):
    """Human-readable name of crop ``index`` (e.g. 'flipped centre')."""
    return ("flipped " if index >= 5 else "") + CROP_NAMES[index % 5]


def five_crop_offsets(height, width, crop_size):
    """(top, left) of the five crops in the order TL, TR, BL, BR, centre.

    The same offsets apply to the flipped image (which has the same size).
    """
    ch, cw = _crop_hw(crop_size)
    if height < ch or width < cw:
        raise DataError(f"a {width}x{height} image is smaller than the {cw}x{ch} crop")
    dy, dx = height - ch, width - cw
    return [(0, 0), (0, dx), (dy, 0), (dy, dx), (round(dy / 2), round(dx / 2))]


def crop_plan(height, width, crop_size, num_crops=10):
    """List of (top, left, flipped) for the selected crops, in crop order."""
    offsets = five_crop_offsets(height, width, crop_size)
    return [(*offsets[i % 5], i >= 5) for i in crop_indices(num_crops)]


def ten_crops_numpy(image, crop_size, num_crops=10):
    """Reference implementation on an [H, W, C] array: returns [num_crops, c, c, C]."""
    image = np.asarray(image)
    ch, cw = _crop_hw(crop_size)
    flipped = image[:, ::-1]
    out = []
    for top, left, flip in crop_plan(image.shape[0], image.shape[1], crop_size, num_crops):
        src = flipped if flip else image
        out.append(src[top:top + ch, left:left + cw])
    return np.stack(out)


def _crop_hw(crop_size):
    if isinstance(crop_size, (tuple, list)):
        ch, cw = (int(v) for v in crop_size)
    else:
        ch = cw = int(crop_size)
    if ch <= 0 or cw <= 0:
        raise DataError(f"crop size must be positive, got {crop_size!r}")
    return ch, cw
