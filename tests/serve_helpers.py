"""What the serve tests share: the example images as upload bytes, a response as pixels, and
the real model behind a gate that a test opens."""
import io
import pathlib
import threading

import numpy as np
import pytest
from PIL import Image

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
EXTRA = "the serve extra is not installed (pip install 'menet-tf[serve]')"


def need_serve_extra():
    for module in ("starlette", "uvicorn", "python_multipart"):
        pytest.importorskip(module, reason=EXTRA)


def example_bytes(name="cat.png", size=None, fmt="PNG"):
    """An example image (cropped to ``size`` (w, h) from its top left) as ``fmt`` bytes."""
    with Image.open(EXAMPLES / name) as im:
        im = im.convert("RGB")
        if size:
            im = im.crop((0, 0, *size))
        buffer = io.BytesIO()
        im.save(buffer, format=fmt)
    return buffer.getvalue()


def image_of(response):
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)


class GatedDerainer:
    """The real model behind a gate: ``derain`` waits until the test opens it, so a test can
    hold the model thread busy while it sends more requests. ``entered`` is set when a call
    has started waiting."""

    def __init__(self, derainer):
        self.derainer = derainer
        self.multiple = derainer.multiple
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.warming = True

    def warm_up(self, *size):
        self.derainer.warm_up(*size)

    def derain(self, images, **options):
        if not self.warming:
            self.entered.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return self.derainer.derain(images, **options)
