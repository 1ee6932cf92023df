"""``menet-tf serve``'s flags, passed through the command: each limit flag lands in the server's
``Limits`` (and the server built from them refuses what the limit says), and the model flags
reach the loader (the runner's precision and backend, XLA, the model and its released name).

The command runs for real up to the application; a spy around ``create_app`` keeps the app and
stops the command there, before uvicorn would listen.
"""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from serve_helpers import need_serve_extra

need_serve_extra()

from menet_tf.cli.main import main  # noqa: E402
from menet_tf.errors import MenetError  # noqa: E402
from menet_tf.model.network import MENET  # noqa: E402


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    tf.random.set_seed(2)
    path = tmp_path_factory.mktemp("serve") / "tiny.keras"
    MENET(depth=1).ensure_built().save(path)
    return path


@pytest.fixture
def served(monkeypatch):
    """Runs ``menet-tf serve ARGS`` up to its application; returns what the command built:
    load_derainer's arguments, the derainer, the Limits and the app."""
    from menet_tf.infer import load
    from menet_tf.serve import app as app_module

    seen = {}
    real_load, real_create = load.load_derainer, app_module.create_app

    def load_spy(source, model_name=None, **kwargs):
        seen["load"] = dict(kwargs, source=source, model_name=model_name)
        seen["derainer"] = real_load(source, model_name, **kwargs)
        return seen["derainer"]

    def create_spy(derainer, info, limits, on_ready=None):
        seen["limits"], seen["app"] = limits, real_create(derainer, info, limits)
        raise MenetError("stopped by the test before the server starts")

    monkeypatch.setattr(load, "load_derainer", load_spy)
    monkeypatch.setattr(app_module, "create_app", create_spy)

    def run(*argv):
        assert main(["serve", "--port", "0", *map(str, argv)]) == 1
        return seen

    return run


def test_limit_flags_become_the_servers_limits(served, tiny_keras):
    from menet_tf.serve.limits import Limits

    seen = served("--model", tiny_keras)
    assert seen["limits"] == Limits()  # the defaults: 64 MB, 40 MP, 4 waiting, batch 1, auto
    seen = served("--model", tiny_keras, "--upload-limit", "2.5", "--pixel-limit", "3000",
                  "--queue", "7", "--max-batch", "3", "--max-pixels", "5000")
    assert seen["limits"] == Limits(upload_bytes=2_500_000, pixel_limit=3000, queue=7,
                                    max_batch=3, tile_pixels=5000)


def _png(h, w):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_server_the_command_built_refuses_by_its_flags(served, tiny_keras):
    """--pixel-limit 3000: a 64x48 image (3072 pixels) is refused (413), a 48x48 one is not;
    --upload-limit 0.001 (1000 bytes): a larger upload is refused."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    app = served("--model", tiny_keras, "--pixel-limit", "3000", "--jit-compile", "off")["app"]
    with TestClient(app) as client:
        response = client.post("/v1/derain", content=_png(48, 64))
        assert response.status_code == 413 and "64x48" in response.json()["error"]
        assert client.post("/v1/derain", content=_png(48, 48)).status_code == 200
        assert client.get("/v1/model").json()["limits"]["pixel_limit"] == 3000
    app = served("--model", tiny_keras, "--upload-limit", "0.001", "--jit-compile", "off")["app"]
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    with TestClient(app) as client:
        assert client.post("/v1/derain", content=buffer.getvalue()).status_code == 413


def test_model_flags_reach_the_loader(served, tiny_keras):
    seen = served("--model", tiny_keras, "--jit-compile", "off", "--precision", "bf16")
    assert seen["load"]["source"] == str(tiny_keras)
    assert (seen["load"]["jit_compile"], seen["load"]["precision"]) == (False, "bf16")
    assert seen["derainer"].precision == "bf16"
    seen = served("--model", tiny_keras, "--model-name", "MENET-GB", "--jit-compile", "on")
    assert (seen["load"]["model_name"], seen["load"]["jit_compile"]) == ("MENET-GB", True)


def test_backend_openvino_serves_from_openvino(served, tiny_keras):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    seen = served("--model", tiny_keras, "--backend", "openvino")
    assert seen["load"]["backend"] == "openvino"
    assert "OpenVINO" in type(seen["derainer"]).__name__
