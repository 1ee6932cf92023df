"""The paper's learning-rate schedule under ``train_run``: 1e-3, times 0.1 at epoch 40 and again
at epoch 80 of the training set being used (its batches per epoch, capped by steps_per_epoch).

Two views, both through ``train_run``: the optimizer a real run of MENET-GB saves
(model.keras), read at the step boundaries 40 and 80 epochs make; and the rate every step of a
short run applied (TensorBoard's per-step ``learning_rate``), with the decay every epoch so
that three rates fit in 6 steps. Expected rates are written out by hand here, not computed by
the schedule under test.
"""
import glob
import os

import keras
import pytest
import tensorflow as tf

from menet_tf.config import released_config
from menet_tf.train.run import train_run
from data_helpers import synthetic_set

PER_EPOCH = 2  # steps_per_epoch: 40 epochs = 80 steps


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return synthetic_set(tmp_path_factory, "lr", seed=3, count=2, test_count=1, size="40x40")


def _tiny(config):
    config = released_config(config) if isinstance(config, str) else config
    config.model.depth = 1
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 16, 2, False
    return config


def test_menet_gb_config_is_the_papers_schedule():
    """Adam at 1e-3, times 0.1 every 40 epochs, in steps (staircase)."""
    optimizer = released_config("MENET-GB").optimizer
    assert (optimizer.learning_rate, optimizer.decay_rate, optimizer.decay_epochs,
            optimizer.staircase) == (1e-3, 0.1, 40, True)


def test_a_run_decays_at_epoch_40_and_80_of_its_own_epochs(tiny_set, tmp_path):
    out = tmp_path / "run"
    train_run(_tiny("MENET-GB"), str(tiny_set), str(out), steps=3, steps_per_epoch=PER_EPOCH,
              tensorboard=False, progress=False, log=None)
    optimizer = keras.saving.load_model(out / "model.keras").optimizer
    rate = optimizer.learning_rate if callable(optimizer.learning_rate) else None
    schedule = getattr(optimizer, "_learning_rate", rate)
    assert callable(schedule), "the saved optimizer has a constant learning rate, not the schedule"
    # step -> rate applied by the update that step counts (optimizer.iterations before it)
    expected = {0: 1e-3, 1: 1e-3, 79: 1e-3,   # epochs 1..40
                80: 1e-4, 81: 1e-4, 159: 1e-4,  # epochs 41..80
                160: 1e-5, 161: 1e-5, 199: 1e-5}  # from epoch 81
    got = {step: float(schedule(step)) for step in expected}
    assert got == pytest.approx(expected, rel=1e-6)


def _per_step(out, tag):
    """{global step: value} of a per-step TensorBoard scalar of a run."""
    values = {}
    for path in glob.glob(os.path.join(out, "tensorboard", "train", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_every_step_applies_the_rate_of_its_epoch(tiny_set, tmp_path):
    """Decay every epoch of 2 steps: steps 1-2 at 1e-3, 3-4 at 1e-4, 5-6 at 1e-5."""
    config = _tiny("MENET-GB")
    config.optimizer.decay_epochs = 1
    out = tmp_path / "run"
    train_run(config, str(tiny_set), str(out), steps=6, steps_per_epoch=PER_EPOCH,
              progress=False, log=None)
    rates = _per_step(str(out), "step/learning_rate")
    expected = {1: 1e-3, 2: 1e-3, 3: 1e-4, 4: 1e-4, 5: 1e-5, 6: 1e-5}
    assert rates == pytest.approx(expected, rel=1e-6)
    # The optimizer that took those steps has applied 6 updates; a 7th (epoch 4) would be at 1e-6.
    optimizer = keras.saving.load_model(out / "model.keras").optimizer
    assert int(optimizer.iterations.numpy()) == 6
    assert float(optimizer.learning_rate) == pytest.approx(1e-6, rel=1e-6)
