"""Configurations, build_model, the training step's logs, fit, and the .keras round trip."""
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import menet_tf
from menet_tf import config as config_lib
from model_helpers import random_pairs

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "released"


def _small(name, depth=1, **loss):
    config = menet_tf.released_config(name)
    config.model.depth = depth
    config.train.jit_compile = False  # tiny models: skip XLA compilation time in tests
    for key, value in loss.items():
        setattr(config.loss, key, value)
    return config


def _pairs(n=4, size=32, seed=0):
    return random_pairs(n, size, seed)


def test_every_released_name_has_a_configuration_file_equal_to_it():
    files = {p.stem for p in EXPERIMENTS.glob("*.json")}
    assert files == set(config_lib.RELEASED)
    for name in files:
        assert menet_tf.load_config(EXPERIMENTS / f"{name}.json") == menet_tf.released_config(name)


def test_released_configurations_say_what_the_spec_says():
    gb = menet_tf.released_config("MENET-GB")
    assert gb.name == "ModelShallowNewCaEdgeGramGradBalance"
    assert (gb.model.depth, gb.model.attention) == (8, True)
    assert gb.loss.tasks == ("mse", "texture", "edge") and gb.loss.weighting == "gb"
    assert menet_tf.released_config("MENET-LB-deep").model.depth == 16
    assert menet_tf.released_config("ModelShallowNewEdgeFixed").loss.task_weights == {"mse": 1.0, "edge": 1e-2}
    assert menet_tf.released_config("ModelShallowNewVGGFixed").loss.task_weights == {"mse": 1.0, "vgg": 1e-3}
    opt = gb.optimizer
    assert (opt.learning_rate, opt.epsilon, opt.decay_steps, opt.decay_rate) == (1e-3, 1e-8, 36000, 0.1)
    # A copy: changing it leaves the registry alone.
    gb.model.depth = 3
    assert menet_tf.released_config("MENET-GB").model.depth == 8


def test_config_file_round_trip_and_errors(tmp_path):
    config = _small("ModelShallowNewEdgeGramLossBalance", texture_form="paper")
    menet_tf.save_config(config, tmp_path / "c.json")
    assert menet_tf.load_config(tmp_path / "c.json") == config
    data = json.loads((tmp_path / "c.json").read_text())
    data["loss"]["weigthing"] = "gb"
    (tmp_path / "typo.json").write_text(json.dumps(data))
    with pytest.raises(menet_tf.ConfigError, match=r"typo.json.loss: unknown keys \['weigthing'\]"):
        menet_tf.load_config(tmp_path / "typo.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(menet_tf.ConfigError, match="bad.json: not valid JSON"):
        menet_tf.load_config(tmp_path / "bad.json")
    with pytest.raises(menet_tf.ConfigError, match="unknown released model"):
        menet_tf.released_config("ModelShallowNewEdge")


def test_staircase_schedule_of_the_released_scripts():
    opt = menet_tf.build_model(_small("ModelShallowNew")).optimizer
    schedule = opt._learning_rate  # the schedule (opt.learning_rate is its current value)
    lrs = [float(schedule(step)) for step in (0, 35999, 36000, 71999, 72000)]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5], rtol=1e-6)
    assert opt.epsilon == 1e-8
    per_epoch = menet_tf.model.multitask.make_optimizer(menet_tf.OptimizerConfig(), steps_per_epoch=100)
    assert float(per_epoch._learning_rate(4000)) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "name", ["ModelShallowNew", "ModelShallowNewEdgeFixed", "ModelShallowNewCaEdgeGramGradBalance",
             "ModelShallowNewEdgeGramLossBalance"]
)
def test_train_on_batch_logs(name):
    model = menet_tf.build_model(_small(name))
    rainy, clean = _pairs()
    before = [v.numpy().copy() for v in model.trainable_variables]
    stats = model.layer1.bn.moving_mean.numpy().copy()
    logs = model.train_on_batch(rainy, clean, return_dict=True)
    tasks = model.task_names
    assert set(logs) == {"loss", "psnr", "ssim", "skipped_steps", *tasks, *(f"weight_{t}" for t in tasks)}
    assert logs["skipped_steps"] == 0
    objective = sum(logs[f"weight_{t}"] * logs[t] for t in tasks)
    assert logs["loss"] == pytest.approx(objective, rel=1e-5)
    assert all(np.isfinite(v) for v in logs.values())
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.trainable_variables))
    assert not np.array_equal(stats, model.layer1.bn.moving_mean.numpy()), "BN statistics not updated"
    assert int(model.optimizer.iterations) == 1


def test_fit_on_a_dataset_and_evaluate():
    model = menet_tf.build_model(_small("ModelShallowNewEdgeGradBalance"))
    rainy, clean = _pairs(n=8)
    data = tf.data.Dataset.from_tensor_slices((rainy, clean)).batch(4)
    history = model.fit(data, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and "weight_edge" in history.history
    results = model.evaluate(data, verbose=0, return_dict=True)
    assert {"loss", "mse", "edge", "psnr", "ssim"} <= set(results)


def test_vgg_model_trains_with_frozen_vgg():
    config = _small("ModelShallowNewVGGFixed", vgg_weights="random")
    model = menet_tf.build_model(config)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == sum(
        int(np.prod(v.shape)) for v in menet_tf.MENET(1, False).ensure_built().trainable_variables
    )
    logs = model.train_on_batch(*_pairs(n=2), return_dict=True)
    assert logs["weight_vgg"] == pytest.approx(1e-3) and logs["vgg"] > 0


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = menet_tf.build_model(_small("ModelShallowNewCaEdgeGramLossBalance"))
    rainy, clean = _pairs()
    model.train_on_batch(rainy, clean)  # non-trivial BN statistics and optimiser state
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is menet_tf.MultiTaskMENET
    assert loaded.task_names == model.task_names and loaded.weighting_scheme == "lb"
    np.testing.assert_array_equal(model.predict_on_batch(rainy), loaded.predict_on_batch(rainy))
    # Training resumes where it stopped.
    assert int(loaded.optimizer.iterations) == 1
    a = model.train_on_batch(rainy, clean, return_dict=True)
    b = loaded.train_on_batch(rainy, clean, return_dict=True)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
