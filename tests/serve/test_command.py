"""``menet-tf serve`` as a user runs it: the one line without the serve extra, the warning for
an address other than 127.0.0.1, a real server process that prints its address, answers and
stops on Ctrl+C, and an exported SavedModel served like the Keras model."""
import importlib.util
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from serve_helpers import example_bytes, image_of, need_serve_extra

need_serve_extra()
REPO = pathlib.Path(__file__).resolve().parents[2]


def test_without_the_extra_one_line_says_how_to_install_it(monkeypatch, capsys):
    from menet_tf.cli import main as cli
    from menet_tf.cli import serve

    real = importlib.util.find_spec
    monkeypatch.setattr(serve.importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err == "menet-tf serve: error: needs uvicorn: pip install 'menet-tf[serve]'\n"


def test_another_address_is_warned_about_and_a_bad_one_is_one_line(capsys):
    from menet_tf.cli import main as cli

    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never this machine's, so nothing ever listens there.
    assert cli.main(["serve", "--host", "192.0.2.1", "--port", "8000"]) == 1
    out, err = capsys.readouterr()
    assert "warning: listening on 192.0.2.1: anyone who can reach this address" in out
    assert err.startswith("menet-tf serve: error: 192.0.2.1:8000: cannot listen there")
    assert err.count("\n") == 1


@pytest.mark.slow  # a fresh Python: TensorFlow's import and the model's load, ~25 s here
def test_the_command_prints_its_address_answers_and_stops_on_ctrl_c():
    import httpx

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "menet_tf", "serve", "--port", "0"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        lines, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "the server stopped before printing its address:\n" + "".join(lines)
            lines.append(line)
            if "open http://127.0.0.1:" in line:
                break
        url = line.split("open ", 1)[1].split()[0]
        from menet_tf.bundled.registry import default_name

        assert lines[0].startswith(f"model: {default_name()}: MENET-GB")
        assert httpx.get(url + "v1/health", timeout=30).json()["status"] == "ok"
        response = httpx.post(url + "v1/derain", content=example_bytes(size=(64, 64)),
                              timeout=60)
        assert response.status_code == 200 and image_of(response).shape == (64, 64, 3)
        assert httpx.get(url, timeout=30).text.startswith("<!doctype html>")
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert rest.strip().endswith("menet-tf serve: stopped")
    assert "Traceback" not in rest


def test_an_exported_savedmodel_serves_what_the_keras_model_serves(serve, derainer, tmp_path):
    from menet_tf.infer.export import export_saved_model
    from menet_tf.infer.load import load_derainer
    from menet_tf.serve.describe import describe

    path = export_saved_model(derainer, tmp_path / "savedmodel")
    saved = load_derainer(path)
    info = describe(path, saved)
    assert info["kind"] == "savedmodel" and info["configuration"] == derainer.model.name
    image = example_bytes("coffee.jpg", (70, 50))
    keras = image_of(serve().post("/v1/derain", content=image))
    exported = image_of(serve(derainer=saved).post("/v1/derain", content=image))
    assert exported.shape == (50, 70, 3)
    assert np.abs(exported - keras).max() <= 1
