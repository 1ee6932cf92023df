"""Every kind of bad input gives a DataError that names the file (or a warned skip if lenient)."""
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from menet_tf.data import DataWarning, inspect_image, validate_pairs
from menet_tf.errors import DataError

from data_helpers import H, W, make_jorder, make_twin, rainy_image, save, write_png16_rgb


def corrupt_truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])


def corrupt_garbage(path):
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + os.urandom(200))


def make_gray(path):
    save(path, rainy_image(9)[..., 0])


def make_rgba(path):
    save(path, np.dstack([rainy_image(9), np.full((H, W), 128, np.uint8)]))


def make_gray16(path):
    Image.fromarray(np.full((H, W), 40000, np.uint16)).save(path)  # 16-bit grayscale PNG


def make_rgb16(path):
    write_png16_rgb(path)


def not_an_image(path):
    with open(path, "w") as fh:
        fh.write("hello")


BAD = {
    "truncated": (corrupt_truncate, r"corrupt or truncated|cannot identify|not an image"),
    "garbage": (corrupt_garbage, r"corrupt|not an image"),
    "text": (not_an_image, r"not an image"),
    "grayscale": (make_gray, r"grayscale image"),
    "rgba": (make_rgba, r"RGBA"),
    "gray16": (make_gray16, r"16-bit"),
    "rgb16": (make_rgb16, r"16-bit"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_is_named(tmp_path, case):
    root = make_jorder(tmp_path / "s", n=3, streaks=False)
    bad = os.path.join(root, "rain-2.png")
    BAD[case][0](bad)
    with pytest.raises(DataError, match=BAD[case][1]) as err:
        validate_pairs(root)
    assert bad in str(err.value)


@pytest.mark.parametrize("case", ["truncated", "grayscale", "rgb16"])
def test_lenient_skips_with_warning(tmp_path, case):
    root = make_jorder(tmp_path / "s", n=3, streaks=False)
    bad = os.path.join(root, "norain-3.png")
    BAD[case][0](bad)
    with pytest.warns(DataWarning, match="norain-3.png"):
        pairs = validate_pairs(root, lenient=True)
    assert [p.key for p in pairs] == ["1", "2"]


@pytest.mark.parametrize("case", ["grayscale", "rgba", "gray16", "rgb16"])
def test_convert_makes_rgb_copy_with_warning(tmp_path, case):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    bad = os.path.join(root, "rain-1.png")
    BAD[case][0](bad)
    with pytest.warns(DataWarning, match="rain-1.png.*converted"):
        pairs = validate_pairs(root, convert=True, convert_dir=str(tmp_path / "conv"))
    info = inspect_image(pairs[0].rainy)
    assert info.ok and info.mode == "RGB" and info.bit_depth == 8
    assert pairs[0].rainy.startswith(str(tmp_path / "conv"))
    arr = np.asarray(Image.open(pairs[0].rainy))
    if case == "gray16":
        assert np.all(arr == round(40000 / 257))


def test_convert_never_fixes_a_corrupt_file(tmp_path):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    corrupt_truncate(os.path.join(root, "rain-1.png"))
    with pytest.raises(DataError, match="rain-1.png"):
        validate_pairs(root, convert=True)


def test_pair_sizes_differ(tmp_path):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    save(os.path.join(root, "norain-2.png"), rainy_image(5, H + 1, W))
    with pytest.raises(DataError, match=r"rain-2.png is 56x40 but its clean twin .*norain-2.png"
                                        r" is 56x41"):
        validate_pairs(root)


def test_rainy_without_clean_twin(tmp_path):
    root = make_twin(tmp_path / "s", n=3)
    os.remove(os.path.join(root, "norain", "norain-2.png"))
    with pytest.raises(DataError, match=r"rain[/\\]norain-2.png: rainy image without its clean"):
        validate_pairs(root)
    with pytest.warns(DataWarning, match="without its clean twin"):
        assert len(validate_pairs(root, lenient=True)) == 2


def test_clean_without_rainy_twin(tmp_path):
    root = make_jorder(tmp_path / "s", n=3, streaks=False)
    os.remove(os.path.join(root, "rain-3.png"))
    with pytest.raises(DataError, match=r"norain-3.png: clean image without its rainy twin"):
        validate_pairs(root)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*folder is empty"):
        validate_pairs(str(tmp_path / "empty"))


def test_folder_without_pairs(tmp_path):
    save(str(tmp_path / "x" / "photo.png"), rainy_image(1))
    with pytest.raises(DataError, match=r"x: no rainy/clean pairs found"):
        validate_pairs(str(tmp_path / "x"))


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="nowhere: does not exist"):
        validate_pairs(str(tmp_path / "nowhere"))


def test_listed_file_missing(tmp_path):
    with pytest.raises(DataError, match="ghost.png: file does not exist"):
        validate_pairs([(str(tmp_path / "ghost.png"), str(tmp_path / "ghost2.png"))])


def test_unreadable_folder(tmp_path, monkeypatch):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    real_listdir = os.listdir

    def listdir(path):  # chmod does not stop root, so simulate the permission error
        if os.path.abspath(path) == os.path.abspath(root):
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(DataError, match=r"s: folder is not readable \(permission denied\)"):
        validate_pairs(root)


def test_unreadable_file(tmp_path, monkeypatch):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    path = os.path.join(root, "rain-1.png")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if p == path else real_access(p, m))
    with pytest.raises(DataError, match="rain-1.png: file is not readable"):
        validate_pairs(root)


def test_file_where_folder_expected(tmp_path):
    path = save(str(tmp_path / "photo.png"), rainy_image(1))
    with pytest.raises(DataError, match="photo.png: cannot read pair list"):
        validate_pairs(path)


def test_duplicate_names_in_twin_folders(tmp_path):
    root = make_twin(tmp_path / "s", n=2, rainy_name="{}.png", clean_name="{}.png")
    save(os.path.join(root, "rain", "1.jpg"), rainy_image(1))
    with pytest.raises(DataError, match="several files pair under the name '1'"):
        validate_pairs(root)


def test_smaller_than_crop_is_named(tmp_path):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    with pytest.raises(DataError, match=r"rain-1.png: image is 56x40 .*smaller than the 48x48"):
        validate_pairs(root, min_size=(48, 48))


def test_warnings_are_not_raised_in_strict_success(tmp_path):
    root = make_jorder(tmp_path / "s", n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(validate_pairs(root)) == 2
