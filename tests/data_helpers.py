"""Small image folders in every layout, for the data tests (fast: 40x56 images, crop 16)."""
import os
import struct
import zlib

import numpy as np
from PIL import Image

H, W = 40, 56  # non-square on purpose: catches height/width mix-ups


def rainy_image(seed, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def clean_of(rainy):
    """A deterministic function of the rainy image, so alignment can be checked per crop."""
    return 255 - rainy


def save(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array), mode).save(path) if mode else \
        Image.fromarray(np.asarray(array)).save(path)
    return str(path)


def write_png16_rgb(path, h=H, w=W):
    """A 48-bit RGB PNG written by hand (PIL cannot write one)."""
    data = np.random.default_rng(0).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    raw = b"".join(b"\x00" + data[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)
    return str(path)


def make_jorder(root, n=3, sizes=None, streaks=True):
    """norain-N.png + rain-N.png (+ rainstreak-N.png) in one folder, N from 1."""
    os.makedirs(root, exist_ok=True)
    for i in range(1, n + 1):
        h, w = sizes[i - 1] if sizes else (H, W)
        r = rainy_image(i, h, w)
        save(os.path.join(root, f"rain-{i}.png"), r)
        save(os.path.join(root, f"norain-{i}.png"), clean_of(r))
        if streaks:
            save(os.path.join(root, f"rainstreak-{i}.png"), r // 2)
    return str(root)


def make_twin(root, n=3, rainy_dir="rain", clean_dir="norain", rainy_name="norain-{}.png",
              clean_name="norain-{}.png"):
    """A rainy folder and a clean folder with matching names (shared Rain100L copy by default)."""
    for i in range(1, n + 1):
        r = rainy_image(i)
        save(os.path.join(root, rainy_dir, rainy_name.format(i)), r)
        save(os.path.join(root, clean_dir, clean_name.format(i)), clean_of(r))
    return str(root)


def make_rainy_subfolder(root, n=3):
    """PReNet-style copies: rainy/rain-001.png with norain-001.png beside the folder."""
    for i in range(1, n + 1):
        r = rainy_image(i)
        save(os.path.join(root, "rainy", f"rain-{i:03d}.png"), r)
        save(os.path.join(root, f"norain-{i:03d}.png"), clean_of(r))
    return str(root)


def synthetic_set(tmp_path_factory, name, preset="light", **settings):
    """A tiny synthetic data root (train/ and test/) made once per module: tmp/<name>/data."""
    from menet_tf.data.synth import synthesize

    root = tmp_path_factory.mktemp(name) / "data"
    synthesize(str(root), preset=preset, progress=False, **settings)
    return root
