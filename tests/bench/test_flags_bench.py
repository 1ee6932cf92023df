"""``menet-tf bench --conv-gradient``, ``--jit-compile`` and ``--data`` through the command:
the convolution gradient the training step is traced with (a spy counts the traced
convolutions that take their gradients as forward convolutions), the XLA setting the runner
gets, and the folder the input pipeline is timed on.
"""
import json

import pytest

from menet_tf.cli.main import main
from menet_tf.model import conv_gradient

QUICK = ["bench", "--quick", "--repeats", "1", "--no-pipeline", "--no-roofline", "--quiet"]


@pytest.fixture
def forward_convolution_gradients(monkeypatch):
    """How many convolutions were traced with forward-convolution gradients."""
    count, real = [], conv_gradient._conv_with_convolution_gradients

    def spy(*args, **kwargs):
        count.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(conv_gradient, "_conv_with_convolution_gradients", spy)
    return count


@pytest.mark.slow  # two quick benches with their training steps: ~40 s here
@pytest.mark.parametrize("mode", ["native", "convolution"])
def test_conv_gradient_sets_how_the_training_step_differentiates(mode, tmp_path,
                                                                 forward_convolution_gradients):
    out, before = tmp_path / "bench.json", conv_gradient.conv_gradient()
    assert main([*QUICK, "--conv-gradient", mode, "--jit-compile", "off", "--out", str(out)]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert (settings["conv_gradient_setting"], settings["conv_gradient"]) == (mode, mode)
    assert settings["jit_compile"] is False
    traced = len(forward_convolution_gradients)
    assert (traced > 0) == (mode == "convolution"), traced
    assert conv_gradient.conv_gradient() == before  # for this run only


def test_jit_compile_and_data_reach_the_bench(tmp_path, monkeypatch):
    from menet_tf.bench import speed

    seen = {}

    def record(**kwargs):
        seen.update(kwargs)
        raise SystemExit(0)  # what the command hands over is all this test looks at

    monkeypatch.setattr(speed, "run_bench", record)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--jit-compile", "on", "--data", str(data)])
    assert (seen["jit_compile"], seen["data"]) == (True, str(data))
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--jit-compile", "off"])
    assert (seen["jit_compile"], seen["data"]) == (False, None)
    assert "--jit-compile off" in seen["command"]
    # A --data folder that is not there: one line, before anything is timed.
    assert main(["bench", "--quick", "--data", str(tmp_path / "nowhere")]) == 1
