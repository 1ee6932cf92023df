"""What the server refuses, and how: every refusal is a :class:`Problem`, an HTTP status with a
one-line message that the API returns as JSON and the page shows as it is.

The limits keep one server from being taken down by its users: an upload larger than
``upload_bytes`` (413) is cut off while it arrives, an image of more than ``pixel_limit`` pixels
(413) is refused from its header before it is decoded, and beyond ``queue`` waiting requests a
new one gets 503 at once, before its body is read, instead of holding memory while it waits.
"""
import dataclasses

#: The default largest image: about 40 MP (a 7952x5304 camera photo is 42 MP), run in tiles as
#: ``menet-tf derain`` runs anything above its ``--max-pixels``.
PIXEL_LIMIT = 40_000_000
#: The default largest upload: a 40 MP photo as a PNG or uncompressed TIFF can be ~120 MB, but
#: as a JPEG ~15 MB; 64 MB takes any usual photo.
UPLOAD_MEGABYTES = 64
#: Requests that may wait while one runs; each holds its decoded image (3 bytes a pixel).
QUEUE = 4

#: Statuses the API uses, and what each means.
STATUS_WORDS = {400: "bad request", 404: "not found", 405: "method not allowed",
                413: "too large", 415: "unsupported type", 500: "server error",
                503: "busy"}


class Problem(Exception):
    """A request the server refuses: ``status`` and a one-line ``message`` for the user."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)

    def as_json(self):
        return {"error": self.message, "status": self.status,
                "reason": STATUS_WORDS.get(self.status, "error")}


@dataclasses.dataclass(frozen=True)
class Limits:
    """The server's limits; ``tile_pixels`` is ``derain``'s ``max_pixels`` ("auto": 16 MP on a
    CPU, 8 MP on a GPU; above it an image is run in tiles whatever the mode)."""

    upload_bytes: int = UPLOAD_MEGABYTES * 1_000_000
    pixel_limit: int = PIXEL_LIMIT
    queue: int = QUEUE
    max_batch: int = 1
    tile_pixels: object = "auto"

    def __post_init__(self):
        from menet_tf.errors import MenetError

        if self.upload_bytes < 1 or self.pixel_limit < 1:
            raise MenetError("the upload and pixel limits must be positive")
        if self.queue < 0 or self.max_batch < 1:
            raise MenetError(f"need --queue >= 0 and --max-batch >= 1, got {self.queue} and"
                             f" {self.max_batch}")

    def as_json(self):
        return {"upload_bytes": self.upload_bytes, "pixel_limit": self.pixel_limit,
                "queue": self.queue, "max_batch": self.max_batch,
                "tile_pixels": self.tile_pixels}


def megapixels(pixels):
    return f"{pixels / 1e6:.1f} MP"
