"""What menet-tf loads stays data, not code (issue 14, "Security, stated").

A `.keras` file is read with Keras' safe mode on, so a file whose config carries a Python lambda
is refused instead of run; a training state (`state.npz`) is read with `allow_pickle=False`, so a
state holding a pickled object is refused, with one line, instead of unpickled. (SavedModels and
the authors' `.meta` graphs are programs: loading one runs its ops. That is stated in
docs/reliability.md; it cannot be made safe here.)
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from menet_tf.config import released_config
from menet_tf.data import synthesize
from menet_tf.errors import MenetError
from menet_tf.train.run import train_run


class _Payload:
    """Unpickling this creates MARKER: proof that a pickle inside a file was run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _lambda_writing(marker):
    """A lambda that creates ``marker`` when it runs (the path is baked into its code, which
    Keras stores marshalled in the file)."""
    return eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x * 2)[1]")  # noqa: S307


def test_keras_file_with_a_lambda_is_refused(tmp_path):
    """A `.keras` holding a Lambda layer (arbitrary Python) does not load: safe mode is on.
    The lambda creates a marker file when run; with safe mode off, loading runs it (checked
    below), so a loader that turned safe mode off fails this test."""
    import keras

    import menet_tf

    marker = tmp_path / "lambda-ran"
    path = tmp_path / "evil.keras"
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Lambda(_lambda_writing(marker))(inputs)).save(path)
    assert marker.exists()  # building the model ran the payload once: it does write
    marker.unlink()
    with pytest.raises(MenetError) as refused:
        menet_tf.load_model(str(path))
    assert not marker.exists(), "loading the .keras file ran its lambda (safe mode off)"
    message = str(refused.value)
    assert str(path) in message and "\n" not in message, message
    assert "safe_mode" in message or "arbitrary code" in message, \
        f"refused for another reason than safe mode: {message}"
    # The control: the same file loaded with safe mode off runs the payload.
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished two-step run of a depth-1 MENET, with the data it was trained on."""
    root = tmp_path_factory.mktemp("security")
    synthesize(str(root / "data"), preset="light", seed=0, count=2, test_count=1, progress=False)
    config = released_config("ModelShallowNewCaEdgeGramGradBalance")
    config.model.depth = 1
    config.train.crop_size, config.train.batch_size, config.train.jit_compile = 32, 4, False
    train_run(config, root / "data", root / "run", steps=2, tensorboard=False, progress=False,
              log=None)
    return root


def test_state_holding_a_pickle_is_refused_on_resume(tiny_run, tmp_path):
    """Resuming from a `state.npz` whose arrays are pickled objects: one line naming the file,
    a non-zero exit, and the pickle is never run (np.load(..., allow_pickle=False))."""
    marker = tmp_path / "pickle-ran"
    state = tiny_run / "run" / "state.npz"
    assert state.is_file()
    np.savez(state, state=np.array([_Payload(str(marker))], dtype=object))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-m", "menet_tf", "train", "--data",
                           str(tiny_run / "data"), "-o", str(tiny_run / "run"), "--steps", "4",
                           "--resume"], env=env, capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stderr.splitlines()
              if line.strip() and not line.startswith(("I0000", "W0000", "E0000", "WARNING: All"))]
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert len(errors) == 1 and "state.npz" in errors[0], done.stderr
    assert not marker.exists(), "the pickle in state.npz was run"
