"""Any image size into a network whose desubpixel steps need sides in multiples of 4 (16 with
channel attention): reflection padding, the released script's bicubic resize, blended tiles.

The three ways are the modes of ``Derainer.derain``:

* ``pad`` (default): reflection-pad bottom/right to the multiple, de-rain, crop back. No
  resampling, so the output pixels of the original area are the network's own.
* ``resize``: the authors' released inference script: bicubic resize up to the next multiple of
  16, de-rain, bicubic resize back (MENET_SPEC.md, Evaluation).
* ``tile``: overlapping tiles blended with raised-cosine weights, for images too large for
  memory; chosen automatically for images above ``max_pixels``.
"""
import numpy as np
import tensorflow as tf

from menet_tf.errors import MenetError

MODES = ("pad", "resize", "tile")

#: The released inference script resizes to multiples of this (MENET_SPEC.md, Evaluation).
RESIZE_MULTIPLE = 16

#: Default tile side and overlap of ``tile`` mode (pixels; the tile is rounded to the multiple).
TILE_SIZE = 512
TILE_OVERLAP = 128

#: Largest image run in one piece by default. Memory grows with the pixel count (docs/derain.md
#: gives the figure per megapixel), so 16 MP stays under 2 GB of RAM; a GPU also needs
#: convolution workspace and TF's allocator slack, so 8 MP keeps an 8 GB card safe. Larger
#: photos (a 24 MP camera image) are tiled.
MAX_PIXELS_GPU = 8_000_000
MAX_PIXELS_CPU = 16_000_000


def default_max_pixels():
    """The size above which ``derain`` switches to tiles on this machine."""
    return MAX_PIXELS_GPU if tf.config.list_physical_devices("GPU") else MAX_PIXELS_CPU


def round_up(n, multiple):
    """The smallest multiple of ``multiple`` not below ``n``."""
    return -(-int(n) // multiple) * multiple


# ------------------------------------------------------------------------------------- padding
def _reflect_indices(size, padded_size):
    """Source index of each output index when mirroring [0, size) without repeating the edge.

    Periodic with period 2 (size - 1), so pads longer than the image keep mirroring (tf.pad's
    REFLECT refuses them); a 1-pixel side repeats its pixel.
    """
    i = tf.range(padded_size)
    period = tf.maximum(2 * (size - 1), 1)
    j = i % period
    return tf.where(j < size, j, period - j)


def pad_to_multiple(x, multiple):
    """Reflection-pad images at the bottom and right so both sides are multiples of ``multiple``.

    ``x``: [H, W, C] or [N, H, W, C] (array or tensor; works inside a tf.function with unknown
    sizes, which is how the exported graph takes any size). Returns (padded tensor, (h, w))
    where (h, w) is the original size for cropping back: ``padded[..., :h, :w, :]``.
    """
    x = tf.convert_to_tensor(x)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise MenetError(f"pad_to_multiple expects [H, W, C] or [N, H, W, C], got shape {x.shape}")
    axis = rank - 3
    static = x.shape[axis:axis + 2]
    h, w = (static[0] if static[0] is not None else tf.shape(x)[axis],
            static[1] if static[1] is not None else tf.shape(x)[axis + 1])
    multiple = int(multiple)
    if isinstance(h, int) and isinstance(w, int) and h % multiple == 0 and w % multiple == 0:
        return x, (h, w)
    ph = (h + multiple - 1) // multiple * multiple
    pw = (w + multiple - 1) // multiple * multiple
    x = tf.gather(x, _reflect_indices(h, ph), axis=axis)
    x = tf.gather(x, _reflect_indices(w, pw), axis=axis + 1)
    return x, (h, w)


def resize_bicubic(images, size):
    """Bicubic resize as the released script does it (float result, no antialiasing)."""
    return tf.image.resize(images, size, method="bicubic", antialias=False)


# ------------------------------------------------------------------------------------- tiling
def tile_starts(size, tile, overlap):
    """Start offsets of tiles of side ``tile`` covering [0, size), consecutive tiles overlapping
    by at least ``overlap``; the last one ends exactly at ``size`` so every tile is full."""
    if tile >= size:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def _ramp(length, overlap, ramp_start, ramp_end):
    """Per-axis blend weight of one tile, 1 except on sides that overlap another tile.

    On such a side the outer 3/8 of the overlap is (almost) ignored, the middle quarter ramps up
    with a raised cosine and the inner 3/8 counts fully. Why: a tile's outputs near its edge
    differ from the untiled output (the convolutions there saw zero padding instead of image),
    and this error decays with the distance from the edge, so seams are placed as far from both
    tiles' edges as possible while staying smooth (docs/derain.md gives the measured seam
    error). Weights stay strictly positive, so the normalised blend is defined everywhere.
    """
    w = np.ones(length, np.float32)
    n = min(overlap, length // 2)
    if n > 0:
        margin = (3 * n) // 8
        k = n - 2 * margin
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k, dtype=np.float64) + 0.5) / k)
        r = np.concatenate([np.full(margin, 1e-4), ramp, np.ones(margin)]).astype(np.float32)
        if ramp_start:
            w[:n] = r
        if ramp_end:
            w[length - n:] = r[::-1]
    return w


class TileLayout:
    """The tiles covering an ``height`` x ``width`` image and each tile's blend weight.

    Tile side and overlap are rounded up to ``multiple``, which keeps every tile on the 1/16
    grid of channel attention's e map (see ``blend``).
    """

    def __init__(self, height, width, tile_size, overlap, multiple):
        tile = max(round_up(tile_size, multiple), multiple)
        self.height, self.width = height, width
        self.tile = (min(tile, height), min(tile, width))
        th, tw = self.tile
        overlap = round_up(max(int(overlap), 0), multiple)
        self.boxes = [(y, x) for y in tile_starts(height, th, overlap)
                      for x in tile_starts(width, tw, overlap)]
        self.weights = {}
        for y, x in self.boxes:
            wy = _ramp(th, overlap, y > 0, y + th < height)
            wx = _ramp(tw, overlap, x > 0, x + tw < width)
            self.weights[y, x] = (wy[:, None] * wx[None, :])[..., None]

    def blend(self, image, run, batch_size):
        """Weighted blend over the tiles of ``image`` [H, W, C] of ``run(tiles)``, tiles taken
        ``batch_size`` at a time. ``run`` may return a coarser grid (e is at 1/16 resolution):
        tile weights are then sampled at each cell's centre."""
        th, tw = self.tile
        num = den = None
        for i in range(0, len(self.boxes), batch_size):
            chunk = self.boxes[i:i + batch_size]
            results = run(np.stack([image[y:y + th, x:x + tw] for y, x in chunk]))
            scale = th // results.shape[1]
            if num is None:
                cells = (self.height // scale, self.width // scale)
                num = np.zeros((*cells, results.shape[-1]), np.float32)
                den = np.zeros((*cells, 1), np.float32)
            for (y, x), r in zip(chunk, results):
                weight = self.weights[y, x][scale // 2::scale, scale // 2::scale]
                box = (slice(y // scale, (y + th) // scale), slice(x // scale, (x + tw) // scale))
                num[box] += weight * r
                den[box] += weight
        return num / den
