"""An upload's bytes to the RGB image ``menet-tf derain`` would read from the same file, and a
result back to the bytes of an image file.

Decoding goes through ``menet_tf.infer.photos.read_photo`` itself (EXIF orientation, grayscale,
16-bit, CMYK: one rule for the command and the server), so the server's output equals
``derain``'s. Before that, the header alone says whether the upload is an image at all (400),
one of the formats ``derain`` reads (415) and small enough (413): an oversized image is refused
without decoding a pixel.
"""
import io
import os
import tempfile
import warnings

from PIL import Image, UnidentifiedImageError

from menet_tf.data.images import DataWarning
from menet_tf.errors import DataError
from menet_tf.infer import photos
from menet_tf.serve.limits import Problem, megapixels

#: PIL formats the server reads (MPO: the JPEG variant phones write), as ``derain`` does.
READ_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF",
                "BMP": "BMP"}
READ_WORDS = "JPEG, PNG, WebP, TIFF or BMP"
#: Declared types that say nothing about the body (curl's default, a generic upload).
_GENERIC_TYPES = {"", "application/octet-stream", "application/x-www-form-urlencoded",
                  "binary/octet-stream"}
_IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp",
                "image/tiff", "image/bmp", "image/x-ms-bmp", "image/x-bmp"}

#: ``format`` values -> (``photos.OUTPUT_FORMATS`` key, media type).
WRITE_FORMATS = {"png": ("png", "image/png"), "jpg": ("jpg", "image/jpeg"),
                 "jpeg": ("jpg", "image/jpeg"), "webp": ("webp", "image/webp"),
                 "bmp": ("bmp", "image/bmp"), "tiff": ("tiff", "image/tiff")}


def media_type(content_type):
    """``image/png; charset=x`` -> ``image/png``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _unidentified(name, declared):
    """Not an image PIL knows: 415 when the sender said it is something else, else 400."""
    if declared in _GENERIC_TYPES or declared in _IMAGE_TYPES:
        return Problem(400, f"{name}: not an image file (corrupt or unknown format)")
    return Problem(415, f"{name}: {declared} is not a supported type; send a {READ_WORDS}"
                        " image")


def check_header(data, name, declared, pixel_limit):
    """(format, width, height) from the header, or the Problem that refuses the upload."""
    if not data:
        raise Problem(400, f"{name}: empty upload; send the image as the body or as the"
                           " multipart field 'image'")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format or "", im.size
    except UnidentifiedImageError:
        raise _unidentified(name, declared) from None
    except Image.DecompressionBombError as err:
        raise Problem(413, f"{name}: image too large ({err})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise Problem(400, f"{name}: corrupt or unreadable image ({err})") from None
    if fmt not in READ_FORMATS:
        raise Problem(415, f"{name}: {fmt or 'this'} images are not supported; send a"
                           f" {READ_WORDS} image")
    if width * height > pixel_limit:
        raise Problem(413, f"{name}: image is {width}x{height} ({megapixels(width * height)}),"
                           f" more than the server's limit of {megapixels(pixel_limit)}")
    return READ_FORMATS[fmt], width, height


def decode(data, name, declared, pixel_limit):
    """(uint8 [H, W, 3] RGB image, [warning lines]) of an upload, read as ``derain`` reads a file.

    ``read_photo`` reads paths (it peeks at a PNG's bit depth in the file), so the bytes go to
    a private temporary file for the moment of reading; it is removed at once."""
    check_header(data, name, declared, pixel_limit)
    fd, path = tempfile.mkstemp(prefix="menet-serve-", suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = photos.read_photo(path)
    except DataError as err:
        raise Problem(400, str(err).replace(path, name)) from None
    finally:
        os.remove(path)
    lines = [str(w.message).replace(path, name) for w in caught
             if issubclass(w.category, DataWarning)]
    return image, lines


def output_format(value):
    """(``photos.OUTPUT_FORMATS`` key, media type) of a ``format`` parameter."""
    key = (value or "png").strip().lower()
    if key not in WRITE_FORMATS:
        raise Problem(400, f"format {value!r} is not one of {', '.join(WRITE_FORMATS)}")
    return WRITE_FORMATS[key]


def encode(image, fmt):
    """The bytes of ``image`` (float 0..255, rounded as ``derain`` saves) as ``fmt``."""
    pil_format, _, options = photos.OUTPUT_FORMATS[fmt]
    buffer = io.BytesIO()
    Image.fromarray(photos.to_uint8(image), "RGB").save(buffer, format=pil_format, **options)
    return buffer.getvalue()
