"""The bundled default model itself: it loads by name through every door (load_model,
pretrained, Derainer.from_pretrained, load_derainer), computes what the shared model.keras it
was made from computes, and scores on five fixed Rain100L test images what the registry says
(within 0.01 dB: the registry's figures are the file's, not a hand-copied table)."""
import os

import numpy as np
import pytest

from conftest import shared_path
from menet_tf.bundled import registry

NAME = "menet-gb-rain100l"
REAL = shared_path("MENET_REAL_DATA", "datasets/Rain100L")
SHARED_MODEL = shared_path("MENET_SHARED_MODEL", f"models/{NAME}/model.keras")


@pytest.fixture(autouse=True)
def package_registry(monkeypatch):
    monkeypatch.delenv(registry.FOLDER_VARIABLE, raising=False)


@pytest.fixture(scope="module")
def bundled():
    import menet_tf

    return menet_tf.pretrained(NAME)


def probe(seed=0, size=48):
    return np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype("float32")


def test_pretrained_is_the_default_configuration(bundled):
    import menet_tf

    entry = registry.entry(NAME)
    assert type(bundled).__name__ == "MultiTaskMENET"
    assert bundled.name == entry["configuration"] == "ModelShallowNewCaEdgeGramGradBalance"
    assert menet_tf.pretrained().count_params() == bundled.count_params()


def test_every_door_gives_the_same_network(bundled):
    from menet_tf import Derainer, load_model
    from menet_tf.infer.load import load_derainer

    expected = np.asarray(bundled(probe(), training=False))
    by_name = load_model(NAME)
    np.testing.assert_array_equal(np.asarray(by_name(probe(), training=False)), expected)
    image = probe(1, 40)[0]
    derained = Derainer.from_pretrained(NAME, fold_batch_norm=False).derain(image)
    np.testing.assert_allclose(derained, load_derainer(NAME, fold_batch_norm=False)
                               .derain(image), atol=1e-3)
    assert derained.shape == image.shape and np.abs(derained - image).max() > 0


def test_the_same_output_as_the_shared_model_it_was_made_from(bundled):
    from menet_tf import load_model

    if not SHARED_MODEL.is_file():
        pytest.skip(f"the shared model is not at {SHARED_MODEL}")
    if registry.sha256_of(SHARED_MODEL) != registry.entry(NAME)["training"]["source_sha256"]:
        pytest.skip(f"{SHARED_MODEL} is a later version than the bundled one: run "
                    f"`make update-model` to bundle it")
    source = load_model(str(SHARED_MODEL))
    np.testing.assert_array_equal(np.asarray(source(probe(), training=False)),
                                  np.asarray(bundled(probe(), training=False)))


def test_five_fixed_images_score_what_the_registry_says(bundled):
    from menet_tf.evaluation.protocols import whole_image_scores
    from menet_tf.evaluation.scoring import load_test_pairs, read_pair
    from menet_tf.infer.derainer import Derainer

    if not REAL.is_dir():
        pytest.skip(f"the real data is not at {REAL}")
    check = registry.entry(NAME)["check"]
    pairs = {os.path.basename(p.rainy): p for p in load_test_pairs(str(REAL))[1]}
    derainer = Derainer(bundled)
    for image, expected in check["psnr"].items():
        rainy, clean = read_pair(pairs[image])
        derained = derainer.derain(rainy.astype(np.float32), mode="pad")
        psnr, _ = whole_image_scores(derained, clean, check["protocol"], 0)
        assert psnr == pytest.approx(expected, abs=check["tolerance_db"]), image
