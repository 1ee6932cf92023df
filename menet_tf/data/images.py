"""Checking single image files with PIL before TensorFlow ever sees them.

Why up front: a corrupt PNG inside a ``tf.data`` pipeline surfaces as a bare
``InvalidArgumentError`` from a worker thread, with no file name, minutes into training. Here
each file is opened, fully decoded and classified once, so every problem is reported as a
:class:`~menet_tf.errors.DataError` that names the file, and the pipeline only reads files known to
be 8-bit RGB.

Policy (what counts as usable):

* 8-bit RGB PNG/JPEG/BMP (PIL mode ``RGB``): accepted as is.
* grayscale (``L``, ``1``), grayscale+alpha (``LA``), RGBA, palette (``P``), CMYK and 16-bit
  images: refused by default, because a de-raining pair is RGB and silently inventing colour or
  dropping alpha changes the data. With ``convert=True`` they are converted to 8-bit RGB
  (grayscale replicated, alpha dropped, 16-bit scaled by 1/257) with a warning naming the file.
* truncated, corrupt or unreadable files: always refused (or skipped with a warning in lenient
  mode, which is decided by the caller).
"""
import os
import struct
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from menet_tf.errors import DataError

#: File extensions considered images when scanning folders.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: Formats TensorFlow's ``decode_image`` reads directly (TIFF is always converted).
TF_FORMATS = ("PNG", "JPEG", "BMP", "GIF")


class DataWarning(UserWarning):
    """A data problem menet-tf worked around (converted or skipped file)."""


@dataclass(frozen=True)
class ImageInfo:
    """What PIL found in one file: size is (height, width) like an array's shape."""

    path: str
    format: str
    mode: str
    bit_depth: int
    height: int
    width: int
    problem: str = ""  # why the file cannot be used as is ("" = plain 8-bit RGB)

    @property
    def ok(self):
        return not self.problem


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def png_bit_depth(path):
    """Bit depth from the PNG IHDR chunk (PIL silently reduces 48-bit RGB to 8 bits)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return 8
    return struct.unpack(">B", head[24:25])[0]


def inspect_image(path, full=True):
    """Open ``path`` with PIL and describe it; raises DataError if it cannot be read at all.

    ``full=True`` decodes every pixel (catches truncated and corrupt data); ``full=False`` reads
    only the header, which is fast but trusts the rest of the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: file does not exist")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: file is not readable (permission denied)")
    try:
        with Image.open(path) as im:
            fmt, mode, (width, height) = im.format or "", im.mode, im.size
            if full:
                im.verify()  # checksums and structure (PNG CRCs)
        if full:
            with Image.open(path) as im:
                im.load()  # every pixel: truncated data fails here
        depth = png_bit_depth(path) if fmt == "PNG" else 8
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file PIL can identify (corrupt or wrong format)")
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as err:
        raise DataError(f"{path}: corrupt or truncated image ({err})") from None
    if mode.startswith("I;16") or mode in ("I", "F"):
        depth = 16 if mode.startswith("I;16") or mode == "I" else 32
    problem = ""
    if depth != 8:
        problem = f"{depth}-bit image (expected 8-bit RGB)"
    elif mode != "RGB":
        kind = {
            "L": "grayscale", "1": "black-and-white", "LA": "grayscale+alpha",
            "RGBA": "RGBA (has an alpha channel)", "P": "palette", "PA": "palette+alpha",
            "CMYK": "CMYK", "YCbCr": "YCbCr",
        }.get(mode, f"mode {mode}")
        problem = f"{kind} image (expected 8-bit RGB)"
    elif fmt not in TF_FORMATS:
        problem = f"{fmt or 'unknown'} file (TensorFlow reads PNG/JPEG/BMP only)"
    return ImageInfo(path, fmt, mode, depth, height, width, problem)


def load_rgb(path):
    """Read any supported image as an 8-bit RGB array of shape [H, W, 3] (used for conversion)."""
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16") or im.mode in ("I", "F") or png_bit_depth(path) == 16:
                arr = sixteen_bit_to_uint8(path, im)
            else:
                arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    return arr


def sixteen_bit_to_uint8(path, im):
    """Scale a 16-bit image to 8 bits (PIL truncates 48-bit RGB itself; grayscale needs help)."""
    if im.mode == "RGB":  # PIL already kept the high byte of each 16-bit sample
        return np.asarray(im)
    arr = np.asarray(im).astype(np.float64)
    maxval = 65535.0 if im.mode != "F" else max(float(arr.max()), 1.0)
    arr = np.clip(np.round(arr * (255.0 / maxval)), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


def save_rgb(array, path, compress_level=1):
    """Write an [H, W, 3] uint8 array as PNG (low compression: fast, size does not matter)."""
    Image.fromarray(np.asarray(array, dtype=np.uint8), "RGB").save(
        os.fspath(path), compress_level=compress_level)


def convert_to_rgb_png(info, out_dir):
    """Write an 8-bit RGB PNG copy of a non-RGB image into ``out_dir``; return its path."""
    arr = load_rgb(info.path)
    stem = os.path.splitext(os.path.basename(info.path))[0]
    tag = zlib.crc32(os.path.abspath(info.path).encode("utf-8"))
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, f"{stem}-{tag:08x}.png")
    save_rgb(arr, out)
    warnings.warn(f"{info.path}: {info.problem}; converted to 8-bit RGB", DataWarning, stacklevel=3)
    return out
