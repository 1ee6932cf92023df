"""A model saved by `menet-tf train` loads with `keras.saving.load_model` after a plain
`import menet_tf`, as a new user would do it (fresh interpreter, nothing else imported), and
resumes training with its optimizer state and learning-rate schedule.
"""
import importlib
import json
import os
import subprocess
import sys

import pytest

from menet_tf.config import released_config
from menet_tf.data import synthesize
from menet_tf.train.run import train_run

STEPS = 6


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("load")
    synthesize(str(root / "data"), preset="light", seed=0, count=2, test_count=1, progress=False)
    config = released_config("ModelShallowNewCaEdgeGramGradBalance")  # MENET-GB, attention
    config.model.depth = 1
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    config.optimizer.decay_epochs = 1  # 5 batches per epoch -> decay every 5 steps
    train_run(config, root / "data", root / "run", steps=STEPS, tensorboard=False, progress=False,
              log=None)
    return root / "run" / "model.keras"


# Run in a fresh interpreter: the point is what a new user's process has imported.
USER_SCRIPT = """
import sys, json
{imports}
import numpy as np
assert "menet_tf.model.multitask" not in sys.modules, "the test must start without menet_tf.model.multitask"
model = keras.saving.load_model(sys.argv[1])
opt = model.optimizer
before = int(opt.iterations.numpy())
lr_before = float(opt.learning_rate)
x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
logs = model.train_on_batch(x, x, return_dict=True)
print(json.dumps({{"cls": type(model).__name__, "iterations_before": before,
                  "iterations_after": int(opt.iterations.numpy()), "lr_before": lr_before,
                  "lr_after": float(opt.learning_rate), "loss": float(logs["loss"]),
                  "decay_steps": int(opt._learning_rate.decay_steps),
                  "slots_nonzero": bool(np.abs(opt.variables[2].numpy()).sum() > 0),
                  "weighting": model.weighting_scheme}}))
"""


# Both orders: Keras imported after menet_tf (registered when Keras finishes importing) and before
# (registered by `import menet_tf` itself).
@pytest.mark.parametrize("imports", ["import menet_tf\nimport keras", "import keras\nimport menet_tf"])
def test_load_model_after_plain_import_resumes_with_optimizer_and_schedule(saved_model, imports):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", USER_SCRIPT.format(imports=imports), str(saved_model)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["cls"] == "MultiTaskMENET" and got["weighting"] == "gb"
    assert got["iterations_before"] == STEPS and got["iterations_after"] == STEPS + 1
    assert got["decay_steps"] == 5  # the schedule the run trained with (5 batches per epoch)
    assert got["lr_before"] == pytest.approx(1e-4)  # step 6: one decay (5 steps) done
    assert got["lr_after"] == pytest.approx(1e-4)
    assert got["slots_nonzero"]  # Adam's moments came back, not fresh zeros


def test_without_the_registration_keras_cannot_find_the_class(saved_model):
    """The failure the registration fixes is real: a bare keras cannot locate the class."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    script = "import sys, keras\nkeras.saving.load_model(sys.argv[1])"
    result = subprocess.run([sys.executable, "-c", script, str(saved_model)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode != 0 and "Could not locate class 'MultiTaskMENET'" in result.stderr


def test_import_menet_tf_does_not_import_tensorflow_or_keras():
    script = ("import sys, menet_tf, menet_tf.cli.main\nmenet_tf.cli.main.build_parser()\n"
              "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_registered_menet_tf_class_has_a_stand_in():
    """KERAS_CLASSES must list every class menet_tf registers with Keras, or models using it
    would not load after a plain import."""
    import keras

    import menet_tf

    for module in ("menet_tf.model.network", "menet_tf.model.multitask", "menet_tf.model.losses", "menet_tf.model.weighting"):
        importlib.import_module(module)
    registered = {name for name, obj in keras.saving.get_custom_objects().items()
                  if name.startswith("menet_tf>") and isinstance(obj, type)}
    assert registered <= set(menet_tf.KERAS_CLASSES), sorted(registered - set(menet_tf.KERAS_CLASSES))
    for name, module in menet_tf.KERAS_CLASSES.items():
        assert getattr(importlib.import_module(module), name.split(">")[1]) is \
            keras.saving.get_custom_objects()[name]
