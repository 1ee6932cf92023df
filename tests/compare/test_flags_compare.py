"""``compare-authors --data``, ``--train-steps`` and ``--seed`` through the command: the batches
both sides are given come from --data (each crop found, pixel for pixel, as a corner or centre
224 crop of one of its rainy images, flipped or not), there are --train-steps of them, and
without --data they are the seeded synthetic batch of --seed.

The per-model comparison (the authors' graph at 20x224x224) is replaced by a recorder that stops
each model with a one-line error: what is checked is what the command hands it. The comparison
itself is tested in test_compare.py.
"""
import json

import numpy as np
import pytest
from PIL import Image

from menet_tf.cli.main import main
from menet_tf.compare import run as compare
from menet_tf.errors import MenetError

from conftest import GRAPHS


@pytest.fixture
def recorder(monkeypatch, released):
    seen = []

    def record(released_model, options=None, batches=None, **kwargs):
        seen.append((options, batches))
        raise MenetError("stopped by the test")

    monkeypatch.setattr(compare, "compare_model", record)
    return seen


def _run(tmp_path, *flags):
    out = tmp_path / "report"
    code = main(["compare-authors", str(GRAPHS), "-o", str(out), "--variant", "ModelShallowNew",
                 "--quiet", *map(str, flags)])
    assert code == 3  # the recorder's error: the model "failed"
    report = json.loads((out / "report.json").read_text())
    assert report["models"][0]["error"] == "stopped by the test"
    return report


def _windows(image, size=224):
    """The corner and centre crops of ``image`` and of its left-right mirror (the five-crop
    protocol: the same offsets on both)."""
    h, w = image.shape[:2]
    starts = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
              (round((h - size) / 2), round((w - size) / 2))]
    for picture in (image, image[:, ::-1]):
        for top, left in starts:
            yield picture[top:top + size, left:left + size]


def test_data_and_train_steps_make_the_batches(recorder, tmp_path):
    from menet_tf.data import synthesize

    data = tmp_path / "data"
    synthesize(str(data), preset="light-0.2", seed=6, count=2, test_count=0, progress=False)
    _run(tmp_path, "--data", data, "--train-steps", "3", "--seed", "1")
    options, (batches, described) = recorder[-1]
    assert (options.data, options.train_steps, options.seed) == (str(data), 3, 1)
    assert described == f"five-crop batches of {data}"
    assert len(batches) == 3 and batches[0][0].shape == (20, 224, 224, 3)
    images = [np.asarray(Image.open(p)).astype(np.float32)
              for p in sorted((data / "train").glob("rain-*.png"))]
    for crop in batches[0][0]:
        assert any(np.array_equal(crop, window) for image in images for window in _windows(image))


def test_without_data_the_batch_is_the_seeded_synthetic_one(recorder, tmp_path):
    _run(tmp_path, "--seed", "5")
    options, (batches, described) = recorder[-1]
    assert options.data is None and options.seed == 5 and len(batches) == 1
    assert described == "synthetic batch (seed 5)"
    rainy, clean = batches[0]
    again = compare.synthetic_batch(20, 224, seed=5)
    other = compare.synthetic_batch(20, 224, seed=0)
    assert np.array_equal(rainy, again[0]) and np.array_equal(clean, again[1])
    assert not np.array_equal(rainy, other[0])
