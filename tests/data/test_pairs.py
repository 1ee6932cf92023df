"""Pair discovery in every layout, known sets and the check report (no TensorFlow needed)."""
import os

import pytest

from menet_tf.data import (
    check_dataset, detect_layout, discover, discover_splits, guess_known_set, known_set,
    validate_pairs)
from menet_tf.errors import DataError

from data_helpers import H, W, make_jorder, make_rainy_subfolder, make_twin


def names(pairs):
    return [(os.path.basename(p.rainy), os.path.basename(p.clean)) for p in pairs]


def test_jorder_layout_with_streaks_and_natural_order(tmp_path):
    root = make_jorder(tmp_path / "set", n=11)
    (tmp_path / "set" / "readme.txt").write_text("ignored")
    d = discover(root)
    assert d.layout == "jorder" and "JORDER" in d.detail
    assert [p.key for p in d.pairs] == [str(i) for i in range(1, 12)]  # 2 before 10
    assert names(d.pairs)[1] == ("rain-2.png", "norain-2.png")
    assert all(p.streak and p.streak.endswith(f"rainstreak-{p.key}.png") for p in d.pairs)
    assert len(d.ignored) == 1 and not d.unpaired_rainy and not d.unpaired_clean


def test_twin_folders_shared_copy_naming(tmp_path):
    # the shared Rain100L copy: rainy files are also called norain-N.png
    d = discover(make_twin(tmp_path / "s"))
    assert d.layout == "twin_folders" and "rain/ + norain/" in d.detail
    assert [os.path.relpath(p.rainy, tmp_path / "s") for p in d.pairs][0] == \
        os.path.join("rain", "norain-1.png")
    assert len(d.pairs) == 3


@pytest.mark.parametrize("rdir,cdir,rname,cname", [
    ("input", "target", "{}.png", "{}.png"),
    ("rainy", "clean", "img_{}.png", "img_{}.png"),
    ("rain", "norain", "rain-{}.png", "norain-{}.png"),   # prefixes differ, numbers pair
    ("Rain", "GT", "{}.jpg", "{}.png"),                   # extension ignored, case-insensitive
])
def test_twin_folder_variants(tmp_path, rdir, cdir, rname, cname):
    root = make_twin(tmp_path / "s", 4, rdir, cdir, rname, cname)
    d = discover(root)
    assert d.layout == "twin_folders" and len(d.pairs) == 4
    assert not d.unpaired_rainy and not d.unpaired_clean


def test_rainy_subfolder_layout(tmp_path):
    d = discover(make_rainy_subfolder(tmp_path / "Rain100H"))
    assert d.layout == "rainy_subfolder"
    assert names(d.pairs) == [(f"rain-{i:03d}.png", f"norain-{i:03d}.png") for i in (1, 2, 3)]
    assert d.known.name == "Rain100H"


@pytest.mark.parametrize("sep", ["\t", ",", " "])
def test_explicit_pair_list_file(tmp_path, sep):
    make_jorder(tmp_path / "a", n=2)
    lst = tmp_path / "pairs.txt"
    lst.write_text("# rainy clean\n" + "".join(
        f"a/rain-{i}.png{sep}a/norain-{i}.png\n" for i in (1, 2)) + "\n")
    assert detect_layout(lst) == "list"
    pairs = validate_pairs(str(lst))
    assert names(pairs) == [("rain-1.png", "norain-1.png"), ("rain-2.png", "norain-2.png")]
    assert (pairs[0].height, pairs[0].width) == (H, W)


def test_explicit_python_list(tmp_path):
    root = make_jorder(tmp_path / "a", n=2)
    pairs = validate_pairs([(os.path.join(root, "rain-2.png"), os.path.join(root, "norain-2.png"))])
    assert len(pairs) == 1 and pairs[0].width == W


def test_bad_pair_list_line_names_file_and_line(tmp_path):
    lst = tmp_path / "pairs.txt"
    lst.write_text("only-one-path.png\n")
    with pytest.raises(DataError, match=r"pairs.txt:1"):
        discover(str(lst))


def test_dataset_root_with_splits(tmp_path):
    root = tmp_path / "Rain100L"
    make_twin(root / "train", n=4)
    make_twin(root / "test", n=2)
    splits = discover_splits(root)
    assert list(splits) == ["train", "test"]
    assert splits["train"].known.name == "RainTrainL" and len(splits["train"].pairs) == 4
    assert splits["test"].known.name == "Rain100L" and len(splits["test"].pairs) == 2
    with pytest.raises(DataError, match="sub-folders with pairs"):
        discover(root)


@pytest.mark.parametrize("path,name", [
    ("Rain100L/train", "RainTrainL"), ("Rain100L/test", "Rain100L"), ("Rain100H", "Rain100H"),
    ("datasets/train/RainTrainH", "RainTrainH"), ("rain_data_train_Light", "RainTrainL"),
    ("rain_data_test_Heavy", "Rain100H"), ("rain100H/training", "RainTrainH"),
    ("my_photos", None),
])
def test_guess_known_set(tmp_path, path, name):
    ks = guess_known_set(tmp_path / path)
    assert (ks.name if ks else None) == name


def test_known_set_counts():
    assert known_set("rain100h").counts == (100,)
    assert known_set("Rain100L").counts == (100,)
    assert 1800 in known_set("RainTrainH").counts and 1254 in known_set("RainTrainH").counts
    assert known_set("RainTrainL").counts == (200,)
    with pytest.raises(DataError, match="unknown data set"):
        known_set("Rain1400")


def test_check_report_lists_missing_and_unpaired(tmp_path):
    root = make_jorder(tmp_path / "rain_data_test_Light", n=4)
    os.remove(os.path.join(root, "norain-2.png"))
    os.remove(os.path.join(root, "rain-3.png"))
    report = check_dataset(discover(root), progress=False, min_size=(16, 16))
    d = report.discovery
    assert d.known.name == "Rain100L" and len(d.pairs) == 2 and not report.ok
    assert [os.path.basename(p) for p in d.unpaired_rainy] == ["rain-2.png"]
    assert [os.path.basename(p) for p in d.unpaired_clean] == ["norain-3.png"]
    assert report.sizes == {(W, H): 2} and report.good_pairs == 2


def test_twin_folders_with_nested_x2_folder(tmp_path):
    root = make_twin(tmp_path / "s", 3, rainy_dir=os.path.join("rain", "X2"),
                     rainy_name="norain-{}x2.png", clean_name="norain-{}.png")
    d = discover(root)
    assert d.layout == "twin_folders" and len(d.pairs) == 3
    assert os.path.join("rain", "X2") in d.detail
    assert d.pairs[0].rainy.endswith(os.path.join("X2", "norain-1x2.png"))


def test_splits_further_down(tmp_path):
    for name in ("heavy", "light"):
        for split, n in (("test", 1), ("train", 2)):
            make_jorder(tmp_path / "synthetic" / name / split, n=n)
    splits = discover_splits(tmp_path / "synthetic")
    assert list(splits) == [os.path.join(a, b) for a in ("heavy", "light") for b in ("train", "test")]
    assert [len(d.pairs) for d in splits.values()] == [2, 1, 2, 1]
