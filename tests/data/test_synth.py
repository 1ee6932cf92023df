"""Synthetic rain: reproducible, readable by every reader, heavy measurably heavier than light."""
import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from menet_tf.data import add_rain, discover, synthesize, train_dataset, validate_pairs
from menet_tf.data.synth import motion_kernel, parse_size, skimage_photos
from menet_tf.errors import DataError

from data_helpers import rainy_image, save

SMALL = dict(count=3, test_count=2, size="96x64", progress=False)


def read_all(folder):
    return {n: np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))}


def test_same_seed_same_files_other_seed_differs(tmp_path):
    synthesize(tmp_path / "a", seed=7, **SMALL)
    synthesize(tmp_path / "b", seed=7, **SMALL)
    synthesize(tmp_path / "c", seed=8, **SMALL)
    for split in ("train", "test"):
        a, b, c = (read_all(tmp_path / x / split) for x in "abc")
        assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
        assert not np.array_equal(a["rain-1.png"], c["rain-1.png"])
    # image N does not depend on how many were asked for
    synthesize(tmp_path / "d", seed=7, **{**SMALL, "count": 1})
    assert np.array_equal(read_all(tmp_path / "d" / "train")["rain-1.png"],
                          read_all(tmp_path / "a" / "train")["rain-1.png"])


def test_jorder_layout_and_pipeline_readable(tmp_path):
    summary = synthesize(tmp_path / "out", preset="light", seed=0, **SMALL)
    d = discover(summary["folders"]["train"])
    assert d.layout == "jorder" and len(d.pairs) == 3 and all(p.streak for p in d.pairs)
    assert len(validate_pairs(summary["folders"]["test"])) == 2
    assert (validate_pairs(d)[0].height, validate_pairs(d)[0].width) == (64, 96)
    ds = train_dataset(summary["folders"]["train"], batch_size=10, crop_size=32)
    assert len(list(ds)) == 3
    meta = json.load(open(tmp_path / "out" / "synth.json"))
    assert meta["preset"] == "light" and meta["seed"] == 0


def test_rainy_is_clean_plus_streaks(tmp_path):
    synthesize(tmp_path / "out", seed=1, **SMALL)
    files = read_all(tmp_path / "out" / "train")
    clean, rainy, streak = (files[f"{k}-2.png"].astype(int)
                            for k in ("norain", "rain", "rainstreak"))
    # additive model: O = clip(B + R), up to rounding of R to 8 bits
    assert np.abs(np.clip(clean + streak, 0, 255) - rainy).max() <= 1
    assert np.all(rainy >= clean)


def _pixels_digest(folder):
    h = hashlib.sha256()
    for split in ("train", "test"):
        for name in sorted(os.listdir(os.path.join(folder, split))):
            h.update(name.encode())
            h.update(np.asarray(Image.open(os.path.join(folder, split, name))).tobytes())
    return h.hexdigest()


# Digests of the pixels menet-tf 0.2's own synth wrote for these settings (run from the 0.2
# source before the renderer changed): the old presets must keep drawing exactly that rain.
DIGESTS_0_2 = {
    "heavy-0.2": "dfd00949615d916959321c0f40b05317217ea453bc11682b96b842851ab61da5",
    "light-0.2": "0d5cd085391863b8c10dec2b8d25627e69dfd8117f5e937911df081174ea2984",
}


@pytest.mark.parametrize("preset", sorted(DIGESTS_0_2))
def test_the_presets_of_0_2_give_the_same_pixels_as_0_2(tmp_path, preset):
    synthesize(tmp_path / "s", preset=preset, seed=5, count=2, test_count=1, size="96x64",
               progress=False)
    assert _pixels_digest(tmp_path / "s") == DIGESTS_0_2[preset]
    meta = json.load(open(tmp_path / "s" / "synth.json"))
    assert meta["renderer_version"] == "0.2" and meta["preset_params"]["spread"] in (25.0, 0.0)


def test_heavy_is_heavier_than_light(tmp_path):
    opts = dict(count=4, test_count=0, size="mixed", progress=False, seed=0)
    heavy = synthesize(tmp_path / "h", preset="heavy", **opts)["input_psnr_db"]["train"]
    light = synthesize(tmp_path / "l", preset="light", **opts)["input_psnr_db"]["train"]
    assert heavy < light - 6, (heavy, light)
    assert 8 < heavy < 20 and 20 < light < 35  # near Rain100H (~12-13 dB), Rain100L (25.5 dB)


def test_screen_blend():
    clean = np.full((4, 4, 3), 200, np.uint8)
    r = np.full((4, 4), 0.5)
    assert np.all(add_rain(clean, r, "screen") == round(255 * (1 - (1 - 200 / 255) * 0.5)))
    assert np.all(add_rain(clean, r, "additive") == 255)
    with pytest.raises(DataError, match="unknown blend"):
        add_rain(clean, r, "multiply")


def test_motion_kernel_is_normalised_line():
    k = motion_kernel(9, 0.0)
    assert abs(k.sum() - 1) < 1e-9
    assert k[:, k.shape[1] // 2].sum() > 0.99  # vertical at 0 degrees


def test_user_clean_dir_and_native_size(tmp_path):
    save(str(tmp_path / "mine" / "a.png"), rainy_image(1, 50, 70))
    save(str(tmp_path / "mine" / "b.png"), rainy_image(2, 60, 40))
    synthesize(tmp_path / "out", clean_dir=tmp_path / "mine", size="native", count=2,
               test_count=0, progress=False)
    sizes = sorted(p.height for p in validate_pairs(tmp_path / "out" / "train"))
    assert sizes == [50, 60]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no images"):
        synthesize(tmp_path / "o2", clean_dir=tmp_path / "empty", progress=False)


def test_rerun_needs_force_and_foreign_files_are_protected(tmp_path):
    synthesize(tmp_path / "out", seed=0, **{**SMALL, "count": 4})
    before = read_all(tmp_path / "out" / "train")
    with pytest.raises(DataError, match="already holds a synthetic set; pass --force"):
        synthesize(tmp_path / "out", seed=1, **SMALL)
    after = read_all(tmp_path / "out" / "train")  # refused: nothing was touched
    assert list(after) == list(before) and all(np.array_equal(before[k], after[k]) for k in after)
    synthesize(tmp_path / "out", seed=0, force=True, **SMALL)  # fewer pairs: stale ones must go
    assert len(discover(tmp_path / "out" / "train").pairs) == 3
    (tmp_path / "out" / "train" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="notes.txt"):
        synthesize(tmp_path / "out", seed=0, force=True, **SMALL)
    assert (tmp_path / "out" / "train" / "notes.txt").read_text() == "mine"


def test_bundled_photos_are_rgb():
    photos = skimage_photos()
    assert len(photos) >= 4
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in photos.values())


def test_parse_size():
    assert parse_size("481x321") == (481, 321)
    assert parse_size("mixed") == "mixed"
    with pytest.raises(DataError, match="WIDTHxHEIGHT"):
        parse_size("big")


def test_a_set_killed_while_generated_is_incomplete_and_regenerated(tmp_path):
    """A synthetic set cut short (SIGKILL mid-way) has no marker: it is regenerated, not used."""
    import signal
    import subprocess
    import sys
    import time

    from menet_tf.data.synth import MARKER, ensure_synthetic, is_complete

    out = tmp_path / "synthetic"
    code = (f"from menet_tf.data import synthesize; "
            f"synthesize({str(out)!r}, preset='light', count=40, test_count=0, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 120
    while not list((out / "train").glob("rain-3.png")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "train" / "rain-1.png").is_file() and not (out / MARKER).exists()
    assert not is_complete(out)
    lines = []
    assert ensure_synthetic(out, preset="light", log=lines.append, count=3, test_count=1,
                            progress=False)
    assert "incomplete" in lines[0]
    assert is_complete(out) and len(list((out / "train").glob("rain-*.png"))) == 3
    assert not ensure_synthetic(out, preset="light", log=lines.append)  # complete: used as is


def test_a_marker_cut_short_is_incomplete(tmp_path):
    """A marker that is not complete JSON (or not synth's) marks the set as incomplete."""
    from menet_tf.data.synth import MARKER, is_complete

    synthesize(tmp_path, preset="light", count=1, test_count=1, progress=False)
    assert is_complete(tmp_path)
    (tmp_path / MARKER).write_text('{"preset": "light", "input_psn')  # a marker cut short
    assert not is_complete(tmp_path)
