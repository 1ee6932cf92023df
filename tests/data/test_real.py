"""The real Rain100L copy in ../shared/datasets/Rain100L (never committed), when present.

Located through MENET_REAL_DATA (the Makefile sets it), falling back to
../shared/datasets/Rain100L relative to the repository root; skipped only if it does not exist.
"""
import os

import numpy as np
import pytest
from PIL import Image

from menet_tf.data import check_dataset, discover_splits, eval_dataset, ten_crops_numpy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def real_data_dir():
    path = os.environ.get("MENET_REAL_DATA") or os.path.join("..", "shared", "datasets", "Rain100L")
    if not os.path.isabs(path) and not os.path.isdir(path):
        path = os.path.join(REPO, path)
    return path


REAL = real_data_dir()
pytestmark = pytest.mark.skipif(not os.path.isdir(REAL), reason=f"{REAL} does not exist")


@pytest.fixture(scope="module")
def splits():
    return discover_splits(REAL)


def test_check_recognises_rain100l_with_counts(splits):
    assert list(splits) == ["train", "test"]
    train, test = splits["train"], splits["test"]
    assert train.layout == test.layout == "twin_folders"
    assert train.known.name == "RainTrainL" and len(train.pairs) == 200
    assert test.known.name == "Rain100L" and len(test.pairs) == 100
    report = check_dataset(test, full_check=True, progress=False, min_size=(224, 224))
    assert report.ok and report.good_pairs == 100
    assert set(report.sizes) == {(481, 321), (321, 481)}
    assert check_dataset(train, full_check=False, progress=False).ok


def test_eval_pipeline_yields_1000_test_crops(splits):
    ds = eval_dataset(splits["test"])
    assert len(ds) == 50
    total, first = 0, None
    for rainy, clean in ds:
        assert rainy.shape[1:] == (224, 224, 3) and clean.shape == rainy.shape
        first = first if first is not None else (rainy.numpy(), clean.numpy())
        total += int(rainy.shape[0])
    assert total == 1000
    pair = splits["test"].pairs[0]
    for got, path in ((first[0], pair.rainy), (first[1], pair.clean)):
        np.testing.assert_array_equal(got[:10], ten_crops_numpy(np.asarray(Image.open(path)), 224))
