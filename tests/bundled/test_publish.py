"""`menet-tf models add` end to end on a tiny synthetic set, into a registry of its own
(MENET_BUNDLED_DIR): weights only from a run folder whose model.keras carries its optimizer,
the training facts from the run's files, scores written by the command, the card beside the
registry, and the bundled model computing what the source computed."""
import json
import shutil

import numpy as np
import pytest

from menet_tf.bundled import card, registry
from menet_tf.errors import MenetError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data root, run folder, registry folder) with one model bundled from the run folder."""
    from menet_tf.publish.bundle import add_model
    from menet_tf.config import released_config, save_config
    from menet_tf.data.synth import synthesize
    from menet_tf.model.multitask import build_model

    root = tmp_path_factory.mktemp("publish")
    synthesize(root / "data", preset="light", seed=1, count=2, test_count=2, progress=False)
    run = root / "run"
    run.mkdir()
    config = released_config("MENET-GB")
    build_model(config).save(run / "model.keras")  # with Adam's slots
    save_config(config, run / "config.json")
    (run / "run.json").write_text(json.dumps({"seed": 3, "steps": 7}))
    (run / "history.csv").write_text("epoch,loss\n1,2.0\n2,1.5\n")
    bundle = root / "bundle"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(registry.FOLDER_VARIABLE, str(bundle))
        bundle.mkdir()
        add_model(str(run), "tiny", str(root / "data"), heavy_count=1, progress=False,
                  log=lambda line: None)
    return root, run, bundle


@pytest.fixture
def bundle(setup, monkeypatch):
    monkeypatch.setenv(registry.FOLDER_VARIABLE, str(setup[2]))
    return setup[2]


def test_the_registry_describes_the_written_file(bundle):
    entry = registry.entry("tiny")
    path = bundle / "tiny.weights.h5"
    assert entry["bytes"] == path.stat().st_size
    assert entry["sha256"] == registry.sha256_of(path)
    assert registry.default_name() == "tiny"  # the first model added
    assert sorted(p.name for p in bundle.iterdir()) == ["registry.json", "tiny.md",
                                                         "tiny.weights.h5"]


def test_training_facts_come_from_the_run_folder(setup, bundle):
    _, run, _ = setup
    training = registry.entry("tiny")["training"]
    assert (training["epochs"], training["steps"], training["seed"]) == (2, 7, 3)
    assert training["steps_from"] == "run.json" and "run.json" in training["settings_from"]
    assert training["pairs"] == 2 and training["source"] == "run/model.keras"
    assert training["source_sha256"] == registry.sha256_of(run / "model.keras")


def test_scores_are_the_commands_measurements(bundle):
    entry = registry.entry("tiny")
    assert entry["scores"]["images"] == 2 and set(entry["scores"]) >= {"authors", "y", "rgb"}
    assert sorted(entry["check"]["psnr"]) == ["rain-1.png", "rain-2.png"]
    assert entry["heavy"]["images"] == 1 and "--preset heavy" in entry["heavy"]["data"]
    assert entry["configuration"] == "ModelShallowNewCaEdgeGramGradBalance"
    assert entry["alias"] == "MENET-GB"


def test_the_card_beside_the_registry_is_the_rendered_entry(bundle):
    entry = registry.entry("tiny")
    assert entry["card"] == "tiny.md"
    assert (bundle / "tiny.md").read_text() == card.render(entry)


def test_the_bundled_weights_compute_what_the_source_computes(setup, bundle):
    from menet_tf.infer.load import load_model
    from menet_tf.infer.pretrained import pretrained

    probe = np.random.default_rng(5).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    source = load_model(str(setup[1]))
    np.testing.assert_array_equal(np.asarray(pretrained()(probe, training=False)),
                                  np.asarray(source(probe, training=False)))


def test_a_second_model_from_a_keras_file_keeps_the_default(setup, bundle, tmp_path):
    """Without a run folder, the steps are epochs x the training split's batches."""
    from menet_tf.publish.bundle import add_model

    root, run, _ = setup
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(run / "model.keras", alone / "model.keras")
    shutil.copy(run / "history.csv", alone / "history.csv")
    add_model(str(alone / "model.keras"), "tiny-2", str(root / "data"), heavy_count=0,
              progress=False, log=lambda line: None)
    training = registry.entry("tiny-2")["training"]
    assert training["steps"] == 2 * 1 and training["steps_from"] == \
        "2 epochs x 1 steps an epoch: 2 pairs x 10 crops / batch 20"
    assert registry.entry("tiny-2")["heavy"] is None
    assert registry.default_name() == "tiny" and registry.names() == ["tiny", "tiny-2"]


@pytest.mark.parametrize("name", ["bad.name", "a/b", ""])
def test_names_that_are_not_words_are_refused(setup, bundle, name):
    from menet_tf.publish.bundle import add_model

    with pytest.raises(MenetError, match="letters, digits"):
        add_model(str(setup[1]), name, str(setup[0] / "data"))


def test_a_used_work_folder_is_refused_before_anything_is_written(setup, bundle, tmp_path):
    from menet_tf.publish.bundle import add_model

    (tmp_path / "mine.txt").write_text("a user's file")
    before = registry.registry_path()
    with pytest.raises(MenetError, match="new or empty"):
        add_model(str(setup[1]), "tiny-3", str(setup[0] / "data"), work=str(tmp_path))
    assert "tiny-3" not in registry.names() and (tmp_path / "mine.txt").exists()
    assert before == registry.registry_path() and not (bundle / "tiny-3.weights.h5").exists()


def test_rain_words_name_the_model_for_that_rain(setup, bundle, tmp_path, capsys):
    """`models add --rain heavy --heavy-data DIR --train-data DIR` through the command: the word
    names the model in every --model, moves from one model to the next, and the heavy test set
    is scored under all three protocols; the card of a heavy model says it is one."""
    from menet_tf.cli.main import main

    root, run, _ = setup
    data = str(root / "data")
    for name in ("wet-1", "wet-2"):
        assert main(["models", "add", str(run), "--name", name, "--data", data, "--rain",
                     "heavy", "--heavy-data", data, "--train-data", data, "--quiet"]) == 0
        assert registry.resolve("heavy") == name and registry.entry("heavy")["name"] == name
    assert registry.entry("wet-1")["rain"] is None  # the word moved to wet-2
    heavy = registry.entry("wet-2")["heavy"]
    assert set(heavy) >= {"authors", "y", "rgb"} and heavy["images"] == 2
    assert "/data/test (menet-tf synth, preset light" in heavy["data"]
    assert "**Heavy rain** (what it was trained on)" in card.render(registry.entry("wet-2"))
    assert registry.is_bundled_name("heavy") and not registry.is_bundled_name("light")
    with pytest.raises(MenetError, match="rain words: heavy"):
        registry.entry("light")
    main(["models"])
    assert "--model heavy (wet-2)" in capsys.readouterr().out
    out = tmp_path / "out"
    probe = tmp_path / "in.png"
    from PIL import Image
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(probe)
    assert main(["derain", str(probe), "-o", str(out), "--model", "heavy", "--quiet"]) == 0
    assert (out / "in.png").is_file()


def test_an_unknown_rain_word_is_refused(setup, bundle):
    from menet_tf.publish.bundle import add_model

    with pytest.raises(MenetError, match="light or heavy"):
        add_model(str(setup[1]), "x", str(setup[0] / "data"), rain="drizzle")
