"""What menet-tf 0.1.0 wrote keeps working (fixtures/v0.1.0, see its README): its saved model
loads and de-rains as it did, its interrupted run resumes with the same command and finishes, and
its import paths still answer, with a DeprecationWarning.
"""
import fcntl
import importlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from menet_tf import _compat

FIXTURE = pathlib.Path(__file__).with_name("fixtures") / "v0.1.0"
# The command the 0.1.0 run was started with, in its folder (flags spelled as 0.1.0 spelled them).
TRAIN_ARGS = ["train", "--config", "MENET-GB", "--data", "data", "--out", "run", "--epochs", "1",
              "--batch-size", "2", "--crop-size", "16", "--depth", "1", "--steps-per-epoch", "12",
              "--save-every-steps", "4", "--no-tensorboard", "--quiet"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


# A new user's process: nothing but `import menet_tf` before Keras loads the file.
LOAD_SCRIPT = """
import sys
import numpy as np
from PIL import Image
import menet_tf
import keras
assert "menet_tf.model.multitask" not in sys.modules
model = keras.saving.load_model(sys.argv[1])
x = np.asarray(Image.open(sys.argv[2]).convert("RGB"), dtype="float32")[None]
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(x, training=False))[0])
print(type(model).__name__)
"""


def test_v0_1_model_loads_after_a_plain_import_and_derains_as_it_did(tmp_path):
    out = tmp_path / "output.npy"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(FIXTURE / "model.keras"),
         str(FIXTURE / "data" / "test" / "rain-1.png"), str(out)],
        capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "MultiTaskMENET"
    recorded = np.load(FIXTURE / "model_output_rain-1.npy")
    np.testing.assert_allclose(np.load(out), recorded, rtol=0, atol=1e-3)


@pytest.fixture
def old_run_place():
    """The fixture copied to where the 0.1.0 run was started: its state's data fingerprint holds
    absolute paths (recorded in run.json), and a resume must find the same data there. One
    place per machine, so concurrent test runs take turns (a lock file beside it)."""
    started_in = json.loads((FIXTURE / "run" / "run.json").read_text())["data"]["train"]
    place = pathlib.Path(started_in).parents[1]
    with open(place.with_name(place.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(place, ignore_errors=True)
        shutil.copytree(FIXTURE, place)
        yield place
        shutil.rmtree(place, ignore_errors=True)


def _menet_tf():
    """The installed command of this environment (python -m when it is not installed)."""
    script = pathlib.Path(sys.executable).with_name("menet-tf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "menet_tf.cli.main"]


def test_v0_1_run_killed_at_step_8_resumes_with_the_same_command_and_finishes(old_run_place):
    result = subprocess.run(_menet_tf() + TRAIN_ARGS, cwd=old_run_place, capture_output=True,
                            text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "at step 8" in result.stdout
    record = json.loads((old_run_place / "run" / "run.json").read_text())
    assert record["status"] == "finished" and record["steps"] == 12
    assert [(s["from_step"], s["to_step"]) for s in record["sessions"]] == [(0, 8), (8, 12)]
    assert (old_run_place / "run" / "model.keras").is_file()


@pytest.mark.parametrize("old", sorted(_compat.OLD_MODULES))
def test_v0_1_import_path_warns_and_gives_the_new_module(old, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)  # imported before: import it afresh
    new = _compat.OLD_MODULES[old]
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated"):
        module = importlib.import_module(old)
    if isinstance(new, str):
        assert module is importlib.import_module(new)
        return
    # Split into several modules: the old path answers each name from the first that has it.
    homes = [importlib.import_module(h) for h in new]
    names = {n for home in homes for n in vars(home) if not n.startswith("_")}
    assert names
    for name in names:
        first = next(home for home in homes if hasattr(home, name))
        assert getattr(module, name) is getattr(first, name), name
