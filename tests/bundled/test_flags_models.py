"""``menet-tf models add`` and ``menet-tf configs`` flags through the commands, into a registry
of the test's own (MENET_BUNDLED_DIR): --default moves the default, --heavy-count sets how many
synthetic heavy images the model is scored on (0: none), --work keeps the evaluation outputs,
--model-name names the configuration of a plain network's weights, --quiet drops the progress
bars; configs --write writes one loadable JSON per released model.
"""
import json
import os

import pytest

from menet_tf.bundled import registry
from menet_tf.cli.main import main
from menet_tf.config import RELEASED, load_config, released_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data root, a MENET-GB .keras file, a plain MENET .keras file of its network)."""
    from menet_tf.data.synth import synthesize
    from menet_tf.model.multitask import build_model
    from menet_tf.model.network import MENET

    root = tmp_path_factory.mktemp("models")
    synthesize(root / "data", preset="light-0.2", seed=1, count=2, test_count=2, progress=False)
    build_model(released_config("MENET-GB")).save(root / "gb.keras")
    MENET(depth=8, attention=True).ensure_built().save(root / "plain.keras")
    (root / "history.csv").write_text("epoch,loss\n1,2.0\n2,1.5\n")  # the epochs, read beside
    return root


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    folder = tmp_path / "bundle"
    folder.mkdir()
    monkeypatch.setenv(registry.FOLDER_VARIABLE, str(folder))
    return folder


def _add(root, source, name, *flags):
    return main(["models", "add", str(root / source), "--name", name, "--data",
                 str(root / "data"), *map(str, flags)])


@pytest.mark.slow  # four models scored on the test set (and two on synthetic heavy rain): ~60 s
def test_models_add_flags(setup, bundle, tmp_path, capsys):
    work = tmp_path / "work"
    assert _add(setup, "gb.keras", "first", "--heavy-count", "2", "--work", work, "--quiet") == 0
    err = capsys.readouterr().err
    assert "it/s" not in err and "%|" not in err  # --quiet: no progress bars
    assert registry.entry("first")["heavy"]["images"] == 2
    assert "--test-count 2" in registry.entry("first")["heavy"]["data"]
    kept = {p.name for p in work.iterdir()}
    assert {"test-scores", "heavy-scores", "heavy-data"} <= kept
    assert len(os.listdir(work / "heavy-data" / "test")) >= 2 * 2  # rain-N + norain-N (+ streaks)

    assert _add(setup, "gb.keras", "second", "--heavy-count", "0") == 0
    assert registry.entry("second")["heavy"] is None
    assert registry.default_name() == "first"  # the first model added is the default
    assert _add(setup, "gb.keras", "third", "--heavy-count", "0", "--default") == 0
    assert registry.default_name() == "third"
    capsys.readouterr()

    # A plain network's weights: refused without --model-name, bundled as the named one with it.
    assert _add(setup, "plain.keras", "plain", "--heavy-count", "0") == 1
    assert "--model-name" in capsys.readouterr().err
    assert _add(setup, "plain.keras", "plain", "--heavy-count", "0", "--model-name",
                "MENET-GB") == 0
    assert registry.entry("plain")["configuration"] == "ModelShallowNewCaEdgeGramGradBalance"
    assert registry.default_name() == "third"


def test_configs_write_writes_every_released_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["configs"]) == 0  # without --write: the names, nothing written
    assert "ModelShallowNewCaEdgeGramGradBalance" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "configs"
    assert main(["configs", "--write", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.json" for n in RELEASED)
    for name in RELEASED:
        assert load_config(out / f"{name}.json") == released_config(name)
    gb = json.loads((out / "ModelShallowNewCaEdgeGramGradBalance.json").read_text())
    assert (gb["loss"]["weighting"], gb["model"]["attention"]) == ("gb", True)
