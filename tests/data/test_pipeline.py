"""The tf.data pipeline: exact five-crop + flip, alignment under shuffling, batching, modes."""
import os

import numpy as np
import pytest
from PIL import Image

from menet_tf.data import (
    count_crops, crop_name, crop_plan, eval_dataset, five_crop_offsets, image_dataset,
    ten_crops_numpy, train_dataset, validate_pairs)
from menet_tf.errors import DataError

from data_helpers import H, W, make_jorder

C = 16  # crop size for the small test images


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """5 pairs, landscape and portrait, clean = 255 - rainy."""
    root = tmp_path_factory.mktemp("pipe") / "set"
    return make_jorder(root, n=5, sizes=[(H, W), (W, H), (H, W), (33, 47), (H, W)])


def as_uint8(batches):
    rainy = np.concatenate([r.numpy() for r, _ in batches])
    clean = np.concatenate([c.numpy() for _, c in batches])
    return rainy, clean


# --- offsets ---------------------------------------------------------------------------------

def test_centre_offset_uses_python_round_half_to_even():
    # the paper's images: 481x321 (width x height) -> centre offset (48, 128)
    assert five_crop_offsets(321, 481, 224)[4] == (48, 128)
    assert five_crop_offsets(481, 321, 224)[4] == (128, 48)
    assert five_crop_offsets(224 + 99, 224 + 1, 224)[4] == (50, 0)  # 49.5 -> 50, 0.5 -> 0
    assert five_crop_offsets(321, 481, 224)[:4] == [(0, 0), (0, 257), (97, 0), (97, 257)]


def test_crop_order_and_subsets():
    plan = crop_plan(321, 481, 224)
    assert [crop_name(i) for i in range(10)][:5] == [
        "top-left", "top-right", "bottom-left", "bottom-right", "centre"]
    assert crop_name(9) == "flipped centre"
    assert [f for _, _, f in plan] == [False] * 5 + [True] * 5
    assert plan[5][:2] == plan[0][:2]
    assert crop_plan(321, 481, 224, 1) == [(48, 128, False)]
    assert crop_plan(321, 481, 224, 2) == [(48, 128, False), (48, 128, True)]
    with pytest.raises(DataError, match="num_crops=3"):
        crop_plan(321, 481, 224, 3)


def test_numpy_reference_by_hand():
    img = np.arange(5 * 7).reshape(5, 7, 1)
    crops = ten_crops_numpy(img, 3)
    assert crops.shape == (10, 3, 3, 1)
    np.testing.assert_array_equal(crops[1], img[0:3, 4:7])        # top-right
    np.testing.assert_array_equal(crops[4], img[1:4, 2:5])        # centre: round(1)=1, round(2)=2
    np.testing.assert_array_equal(crops[6], img[0:3, ::-1][:, 4:7])  # flipped top-right
    np.testing.assert_array_equal(crops[6], img[0:3, 0:3][:, ::-1])


# --- evaluation pipeline ---------------------------------------------------------------------

def test_eval_crops_equal_numpy_reference(small_set):
    batches = list(eval_dataset(small_set, batch_size=7, crop_size=C))
    assert len(batches) == 8 and batches[-1][0].shape[0] == 50 - 7 * 7  # last batch kept
    rainy, clean = as_uint8(batches)
    assert rainy.dtype == np.float32 and rainy.shape == (50, C, C, 3)
    expected = []
    for pair in validate_pairs(small_set):
        expected.append(ten_crops_numpy(np.asarray(Image.open(pair.rainy)), C))
    np.testing.assert_array_equal(rainy, np.concatenate(expected).astype(np.float32))
    np.testing.assert_array_equal(clean, 255 - rainy)
    assert rainy.min() >= 0 and rainy.max() <= 255 and rainy.max() > 1  # 0..255, not 0..1


def test_eval_num_crops_and_rectangular_crop(small_set):
    rainy, _ = as_uint8(eval_dataset(small_set, batch_size=4, crop_size=(8, 12), num_crops=5))
    assert rainy.shape == (25, 8, 12, 3)
    first = np.asarray(Image.open(os.path.join(small_set, "rain-1.png")))
    np.testing.assert_array_equal(rainy[:5], ten_crops_numpy(first, (8, 12), 5))


# --- training pipeline -----------------------------------------------------------------------

def test_train_alignment_coverage_and_drop_remainder(small_set):
    ds = train_dataset(small_set, batch_size=7, crop_size=C, seed=3, shuffle_buffer=13)
    batches = list(ds)
    assert len(ds) == len(batches) == 50 // 7
    assert all(r.shape == (7, C, C, 3) for r, _ in batches)
    rainy, clean = as_uint8(batches)
    np.testing.assert_array_equal(clean, 255 - rainy)   # each crop still with its twin
    # every crop is one of the 50 reference crops, none twice
    ref, _ = as_uint8(eval_dataset(small_set, batch_size=50, crop_size=C))
    ref_keys = {r.tobytes(): i for i, r in enumerate(ref)}
    idx = [ref_keys[r.tobytes()] for r in rainy]
    assert len(set(idx)) == len(idx) == 49
    assert idx != sorted(idx)  # shuffled


def test_train_shuffle_is_seeded_and_changes_each_epoch(small_set):
    def epochs(seed, n=2):
        ds = train_dataset(small_set, batch_size=10, crop_size=C, seed=seed)
        return [as_uint8(list(ds))[0] for _ in range(n)]

    a1, a2 = epochs(0)
    b1, b2 = epochs(0)
    c1, _ = epochs(1)
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)
    assert not np.array_equal(a1, c1)


def test_cache_gives_the_same_batches(small_set):
    plain = as_uint8(list(train_dataset(small_set, batch_size=10, crop_size=C, seed=5)))[0]
    ds = train_dataset(small_set, batch_size=10, crop_size=C, seed=5, cache=True)
    cached1 = as_uint8(list(ds))[0]
    cached2 = as_uint8(list(ds))[0]
    np.testing.assert_array_equal(np.sort(plain.reshape(50, -1), 0),
                                  np.sort(cached1.reshape(50, -1), 0))
    assert not np.array_equal(cached1, cached2)  # still reshuffled after the cache


def test_random_mode(small_set):
    ds = train_dataset(small_set, batch_size=6, crop_size=C, num_crops=3, mode="random", seed=2)
    assert len(ds) == 15 // 6
    e1 = as_uint8(list(ds))
    e2 = as_uint8(list(ds))
    np.testing.assert_array_equal(e1[1], 255 - e1[0])
    assert not np.array_equal(e1[0], e2[0])
    again = train_dataset(small_set, batch_size=6, crop_size=C, num_crops=3, mode="random", seed=2)
    np.testing.assert_array_equal(as_uint8(list(again))[0], e1[0])
    # each random crop is a window of some rainy image, possibly mirrored
    images = [np.asarray(Image.open(p.rainy)) for p in validate_pairs(small_set)]
    for crop in e1[0].astype(np.uint8)[:4]:
        found = any(
            np.array_equal(win, crop) or np.array_equal(win[:, ::-1], crop)
            for img in images
            for y in range(img.shape[0] - C + 1) for x in range(img.shape[1] - C + 1)
            for win in [img[y:y + C, x:x + C]])
        assert found


def test_too_small_image_refused_with_name(small_set):
    with pytest.raises(DataError, match=r"rain-4.png: image is 47x33 .*smaller than the 34x34"):
        train_dataset(small_set, crop_size=34, batch_size=2)


def test_fewer_crops_than_a_batch(small_set):
    with pytest.raises(DataError, match="fewer than one batch"):
        train_dataset(small_set, crop_size=C, batch_size=100)


def test_bad_file_fails_before_tensorflow(tmp_path):
    root = make_jorder(tmp_path / "s", n=2, streaks=False)
    with open(os.path.join(root, "rain-2.png"), "wb") as fh:
        fh.write(b"not a png")
    with pytest.raises(DataError, match="rain-2.png"):
        train_dataset(root, crop_size=C, batch_size=2)


def test_image_dataset_full_images(small_set):
    items = list(image_dataset(small_set))
    assert len(items) == 5
    assert items[1][0].shape == (1, W, H, 3) and items[3][1].shape == (1, 33, 47, 3)
    np.testing.assert_array_equal(items[0][1].numpy(), 255 - items[0][0].numpy())


def test_count_crops():
    assert count_crops(1800) == (18000, 900)
    assert count_crops(200) == (2000, 100)
    assert count_crops(100, drop_remainder=False) == (1000, 50)
    assert count_crops(3, 10, 20, drop_remainder=False) == (30, 2)
