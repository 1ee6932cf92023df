"""The registry of bundled models against the files it describes: every weights file is there
with the registry's size and sha256, every entry carries what `menet-tf models add` measures,
and the committed model card is the one the registry renders (no hand edits, no stale card).
Light: no TensorFlow, no model is run."""
import json
import os
import pathlib

import pytest

from menet_tf.bundled import card, registry
from menet_tf.errors import CheckpointError, MenetError

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE_REGISTRY = REPO / "menet_tf" / "bundled" / "registry.json"
PROTOCOLS = ("authors", "y", "rgb")


@pytest.fixture(autouse=True)
def package_registry(monkeypatch):
    """These tests are about the registry in the package, whatever the environment says."""
    monkeypatch.delenv(registry.FOLDER_VARIABLE, raising=False)


def models():
    return json.loads(PACKAGE_REGISTRY.read_text())["models"]


def test_the_default_model_is_bundled():
    assert registry.default_name() == "menet-gb-heavy"  # best over light and heavy rain
    assert registry.default_name() in registry.names()


@pytest.mark.parametrize("name", sorted(models()))
def test_weights_files_match_their_checksums_and_sizes(name):
    entry = models()[name]
    path = REPO / "menet_tf" / "bundled" / entry["file"]
    assert path.stat().st_size == entry["bytes"]
    assert registry.sha256_of(path) == entry["sha256"]
    assert registry.weights_path(name) == str(path)
    assert entry["file"] == f"{name}.weights.h5" and entry["name"] == name


@pytest.mark.parametrize("name", sorted(models()))
def test_entries_hold_the_measured_facts(name):
    entry = models()[name]
    training, scores = entry["training"], entry["scores"]
    assert training["epochs"] > 0 and training["steps"] >= training["epochs"]
    assert training["pairs"] > 0 and len(training["source_sha256"]) == 64
    for protocol in PROTOCOLS:
        s = scores[protocol]
        assert s["psnr"] > s["input_psnr"] and 0 < s["ssim"] <= 1, protocol
    assert len(entry["check"]["psnr"]) == 5
    assert set(entry["heavy"]) >= {"y", "rgb", "images", "data"}
    assert entry["configuration"] and entry["added"] and entry["menet_tf_version"]


def test_the_default_model_scores_near_the_paper_under_the_authors_protocol():
    """Trained by menet-tf for >= 56 epochs of the paper's 100: within half a dB of Table I."""
    scores = models()["menet-gb-rain100l"]["scores"]
    assert scores["data"] == "Rain100L" and scores["images"] == 100
    assert scores["paper"]["psnr"] == pytest.approx(34.19, abs=0.01)
    assert abs(scores["authors"]["psnr"] - scores["paper"]["psnr"]) < 0.5


@pytest.mark.parametrize("name", sorted(models()))
def test_the_committed_card_is_the_rendered_registry_entry(name):
    entry = models()[name]
    assert entry["card"] == f"docs/models/{name}.md"
    assert (REPO / entry["card"]).read_text() == card.render(entry), \
        f"{entry['card']} is not what the registry renders: run `make update-model`"


def test_the_readme_opens_with_the_default_models_rendered_scores():
    readme = (REPO / "README.md").read_text()
    reg = registry.load_registry()
    assert card.readme_summary(reg) in readme, \
        "README.md's bundled-model block is not what the registry renders: run `make update-model`"
    assert readme.index(card.README_START) < readme.index("```bash\nmake demo")
    assert card.replace_readme_summary("no markers here", reg) is None
    for name, entry in reg["models"].items():  # every model, its scores and its card
        assert f"`{name}`" in card.readme_summary(reg) and entry["card"] in readme


def test_the_card_says_what_the_issue_asks():
    text = card.render(models()["menet-gb-rain100l"])
    for words in ("RainTrainL", "Rain100L", "34.19", "0.9554", "heavy", "no real rainy",
                  "make demo", "MIT", "menet-tf train --config MENET-GB", "--epochs 100",
                  "make update-model"):
        assert words in text, words


def test_the_heavy_card_says_what_it_was_trained_on_and_what_it_never_saw():
    entry = models()["menet-gb-heavy"]
    text = card.render(entry)
    for words in ("never seen real heavy rain", "**Heavy rain** (what it was trained on)",
                  "Fine-tuned from:** `menet-gb-rain100l`", "28.15", "real Rain100H",
                  "make data-heavy", "make train-heavy", "--rain heavy", "--model heavy",
                  "`--model light`) is the better choice"):
        assert words in text, words
    heavy = entry["heavy"]  # both protocols measured on the heavy test set, gains written out
    assert heavy["images"] == 100 and heavy["y"]["psnr"] > heavy["y"]["input_psnr"] + 10
    assert f"{heavy['authors']['psnr']:.2f} dB authors'" in text


def test_the_default_scores_best_over_light_and_heavy_rain_together():
    """The rule for the default: the mean of the Rain100L and heavy-set scores (Y and authors')."""
    reg = registry.load_registry()

    def together(e, protocol):
        return (e["scores"][protocol]["psnr"] + e["heavy"][protocol]["psnr"]) / 2

    for protocol in ("authors", "y"):
        best = max(reg["models"].values(), key=lambda e: together(e, protocol))
        assert best["name"] == reg["default"], protocol


def test_unknown_name_lists_the_bundled_names():
    from menet_tf.infer.load import source_kind

    with pytest.raises(MenetError) as err:
        source_kind("menet-gb-rain100x")
    assert "menet-gb-rain100x" in str(err.value) and "menet-gb-rain100l" in str(err.value)
    with pytest.raises(MenetError) as err:  # a path is not a name: no list
        source_kind(os.path.join("runs", "nowhere"))
    assert "bundled" not in str(err.value)


def test_a_bundled_name_is_a_source_unless_a_path_of_that_name_exists(tmp_path, monkeypatch):
    from menet_tf.infer.load import source_kind

    assert source_kind("menet-gb-rain100l") == ("bundled", "menet-gb-rain100l")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "menet-gb-rain100l").mkdir()
    with pytest.raises(MenetError, match="neither model.keras"):
        source_kind("menet-gb-rain100l")


def test_an_unreadable_registry_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(registry.FOLDER_VARIABLE, str(tmp_path))
    (tmp_path / "registry.json").write_text("{ not json")
    with pytest.raises(CheckpointError) as err:
        registry.names()
    message = str(err.value)
    assert str(tmp_path / "registry.json") in message and "\n" not in message
    assert "reinstall" in message


def test_models_lists_one_line_per_model_with_its_scores(capsys):
    from menet_tf.cli.main import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    entry = models()["menet-gb-rain100l"]
    line = next(line for line in out if line.startswith("menet-gb-rain100l  "))
    for words in ("[light rain]", "MENET-GB", "RainTrainL", f"{entry['training']['epochs']} epochs",
                  f"authors {entry['scores']['authors']['psnr']:.2f}",
                  f"rgb {entry['scores']['rgb']['psnr']:.2f}"):
        assert words in line, words
    assert next(line for line in out if line.startswith("menet-gb-heavy *  [heavy rain]"))
    assert out[-1].startswith("which for which rain: --model heavy (menet-gb-heavy); --model "
                              "light (menet-gb-rain100l)")
    assert len(out) == len(models()) + 2


def test_models_show_prints_the_card_and_refuses_unknown_names(capsys):
    from menet_tf.cli.main import main

    assert main(["models", "show", "menet-gb-rain100l"]) == 0
    assert capsys.readouterr().out == card.render(models()["menet-gb-rain100l"])
    assert main(["models", "show", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("menet-tf models: error: nope:") and "menet-gb-rain100l" in err
