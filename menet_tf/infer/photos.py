"""Users' photos in and out of ``menet-tf derain``: listing, reading (EXIF, odd modes), writing.

Training data are checked strictly by ``menet_tf.data.images``; a user's photo is instead
converted to 8-bit RGB with a warning (grayscale, RGBA, palette, CMYK, 16-bit) and turned upright
by its EXIF orientation, because the user wants the picture de-rained, not a refusal.
Writes go to a temporary file first and are moved into place, so an interrupted run never leaves
a half-written image.
"""
import glob
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from menet_tf.data.images import DataWarning, png_bit_depth, sixteen_bit_to_uint8
from menet_tf.errors import DataError
from menet_tf.files import replacing

#: What ``derain`` reads from folders.
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: --format choices -> (PIL format, file extension, save options).
OUTPUT_FORMATS = {
    "png": ("PNG", ".png", {"compress_level": 6}),
    "jpg": ("JPEG", ".jpg", {"quality": 95, "subsampling": 0}),
    "webp": ("WEBP", ".webp", {"lossless": True}),
    "bmp": ("BMP", ".bmp", {}),
    "tiff": ("TIFF", ".tif", {"compression": "tiff_deflate"}),
}
_FORMAT_OF_EXTENSION = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp",
                        ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff"}

#: PIL modes -> the words of the conversion warning.
_MODE_NAMES = {"L": "grayscale", "1": "black-and-white", "LA": "grayscale+alpha",
               "RGBA": "RGBA (alpha dropped)", "P": "palette", "PA": "palette+alpha",
               "CMYK": "CMYK"}


def is_photo(name):
    return name.lower().endswith(PHOTO_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _folder_photos(folder, recursive):
    """[(path, path inside ``folder``)] of the photos in ``folder``, sorted, hidden entries
    skipped; sub-folders only with ``recursive``."""
    if not recursive:
        return [(os.path.join(folder, f), f) for f in sorted(os.listdir(folder))
                if is_photo(f) and os.path.isfile(os.path.join(folder, f))]
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if is_photo(f):
                path = os.path.join(root, f)
                found.append((path, os.path.relpath(path, folder)))
    return found


def list_photos(inputs, recursive=False):
    """[(path, relative name)] for files, folders (their images; sub-folders with ``recursive``)
    and glob patterns, in the order given, each file once. The relative name (path inside its
    folder, or the file name) is what the output is named after."""
    found, seen = [], set()
    for item in map(os.fspath, inputs):
        if os.path.isdir(item):
            entries = _folder_photos(item, recursive)
        elif os.path.isfile(item):
            entries = [(item, os.path.basename(item))]
        elif glob.has_magic(item):
            matches = sorted(p for p in glob.glob(item, recursive=recursive) if os.path.isfile(p))
            if not matches:
                raise DataError(f"{item}: no file matches this pattern")
            entries = [(path, os.path.basename(path)) for path in matches]
        else:
            raise DataError(f"{item}: no such file or folder")
        for path, rel in entries:
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                found.append((path, rel))
    return found


def photo_size(path):
    """(height, width) as the photo will be de-rained (after EXIF rotation), header only."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: cannot read image ({err})") from None
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def read_photo(path):
    """[H, W, 3] uint8 RGB, upright by EXIF; other modes converted with a DataWarning."""
    path = os.fspath(path)
    try:
        with Image.open(path) as im:
            im.load()
            sixteen = (im.mode.startswith("I;16") or im.mode in ("I", "F")
                       or (im.format == "PNG" and png_bit_depth(path) == 16))
            mode = im.mode
            im = ImageOps.exif_transpose(im)
            if sixteen:
                arr = sixteen_bit_to_uint8(path, im)
            else:
                arr = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (corrupt or unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: corrupt or unreadable image ({err})") from None
    if sixteen:
        warnings.warn(f"{path}: 16-bit image, converted to 8 bits", DataWarning, stacklevel=2)
    elif mode != "RGB":
        kind = _MODE_NAMES.get(mode, f"mode {mode}")
        warnings.warn(f"{path}: {kind} image, converted to RGB", DataWarning, stacklevel=2)
    return arr


def output_format(fmt, source_path):
    """The --format choice for one file ("same" keeps the input's format)."""
    if fmt == "same":
        return _FORMAT_OF_EXTENSION.get(os.path.splitext(source_path)[1].lower(), "png")
    if fmt not in OUTPUT_FORMATS:
        raise DataError(f"unknown output format {fmt!r}; choose from"
                        f" {', '.join(OUTPUT_FORMATS)} or same")
    return fmt


def to_uint8(images):
    """THE float-to-8-bit rule of menet-tf: round half up, clip to 0..255.

    What ``derain`` saves, what the whole-image protocols of ``evaluate`` score ("the output
    rounded to 8 bits, as a saved PNG") and what an export's ``serve_uint8`` signature returns
    (``menet_tf.infer.derainer.to_uint8_tf``, the same rule in TensorFlow). Written as
    ``floor(x) + (x - floor(x) >= 0.5)``, which is exact in float32; ``floor(x + 0.5)`` is not
    (0.49999997 + 0.5 rounds to 1.0), and ``np.round``/``tf.round`` round halves to even.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    x = images.astype(np.float32)
    whole = np.floor(x)
    return np.clip(whole + (x - whole >= 0.5), 0, 255).astype(np.uint8)


def write_photo(array, path, fmt="png"):
    """Write [H, W, 3] (float 0..255 is rounded by :func:`to_uint8`) as 8-bit ``fmt``,
    atomically."""
    array = to_uint8(array)
    pil_format, _, options = OUTPUT_FORMATS[fmt]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replacing(path, suffix=OUTPUT_FORMATS[fmt][1], error=DataError) as tmp:
        Image.fromarray(array, "RGB").save(tmp, format=pil_format, **options)


def side_by_side(left, right, gap=8):
    """rainy | de-rained, separated by a white gap, as one uint8 image."""
    left, right = to_uint8(left), to_uint8(right)
    spacer = np.full((left.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, spacer, right], axis=1)
