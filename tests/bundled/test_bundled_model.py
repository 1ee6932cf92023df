"""Each bundled model itself (the light and the heavy one): it loads by name through every door (load_model,
pretrained, Derainer.from_pretrained, load_derainer), computes what the shared model.keras it
was made from computes, and scores on five fixed Rain100L test images what the registry says
(within 0.01 dB: the registry's figures are the file's, not a hand-copied table)."""
import os

import numpy as np
import pytest

import protocol_oracle
from conftest import shared_path
from menet_tf.bundled import registry

NAMES = registry.names()  # the package's registry (MENET_BUNDLED_DIR is unset in CI)
REAL = shared_path("MENET_REAL_DATA", "datasets/Rain100L")


@pytest.fixture(autouse=True)
def package_registry(monkeypatch):
    monkeypatch.delenv(registry.FOLDER_VARIABLE, raising=False)


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def bundled(name):
    import menet_tf

    return menet_tf.pretrained(name)


def test_both_rains_have_a_bundled_model():
    assert set(registry.rain_names()) == {"light", "heavy"}
    assert registry.resolve("light") == "menet-gb-rain100l"
    assert registry.entry("heavy")["training"]["init"]["source"] == "menet-gb-rain100l"


def probe(seed=0, size=48):
    return np.random.default_rng(seed).uniform(0, 255, (1, size, size, 3)).astype("float32")


def test_pretrained_is_the_default_configuration(bundled, name):
    import menet_tf

    entry = registry.entry(name)
    assert type(bundled).__name__ == "MultiTaskMENET"
    assert bundled.name == entry["configuration"] == "ModelShallowNewCaEdgeGramGradBalance"
    assert menet_tf.pretrained().count_params() == bundled.count_params()


def test_every_door_gives_the_same_network(bundled, name):
    from menet_tf import Derainer, load_model
    from menet_tf.infer.load import load_derainer

    expected = np.asarray(bundled(probe(), training=False))
    by_name = load_model(name)
    np.testing.assert_array_equal(np.asarray(by_name(probe(), training=False)), expected)
    image = probe(1, 40)[0]
    derained = Derainer.from_pretrained(name, fold_batch_norm=False).derain(image)
    np.testing.assert_allclose(derained, load_derainer(name, fold_batch_norm=False)
                               .derain(image), atol=1e-3)
    assert derained.shape == image.shape and np.abs(derained - image).max() > 0


def test_the_same_output_as_the_shared_model_it_was_made_from(bundled, name):
    from menet_tf import load_model

    SHARED_MODEL = shared_path("MENET_SHARED_MODEL", f"models/{name}/model.keras")
    if not SHARED_MODEL.is_file():
        pytest.skip(f"the shared model is not at {SHARED_MODEL}")
    if registry.sha256_of(SHARED_MODEL) != registry.entry(name)["training"]["source_sha256"]:
        pytest.skip(f"{SHARED_MODEL} is a later version than the bundled one: run "
                    f"`make update-model` to bundle it")
    source = load_model(str(SHARED_MODEL))
    np.testing.assert_array_equal(np.asarray(source(probe(), training=False)),
                                  np.asarray(bundled(probe(), training=False)))


def test_five_fixed_images_score_what_the_registry_says(bundled, name):
    from menet_tf.evaluation.protocols import whole_image_scores
    from menet_tf.evaluation.scoring import load_test_pairs, read_pair
    from menet_tf.infer.derainer import Derainer

    if not REAL.is_dir():
        pytest.skip(f"the real data is not at {REAL}")
    check = registry.entry(name)["check"]
    pairs = {os.path.basename(p.rainy): p for p in load_test_pairs(str(REAL))[1]}
    derainer = Derainer(bundled)
    for image, expected in check["psnr"].items():
        rainy, clean = read_pair(pairs[image])
        derained = derainer.derain(rainy.astype(np.float32), mode="pad")
        psnr, _ = whole_image_scores(derained, clean, check["protocol"], 0)
        assert psnr == pytest.approx(expected, abs=check["tolerance_db"]), image
        # The same output scored outside menet-tf (8-bit, MATLAB's Y, scikit-image), from the
        # files read here: the registry's figures are not only what menet-tf's scoring says.
        own_rainy = protocol_oracle.read(REAL / "test" / "rain" / image)
        own_clean = protocol_oracle.read(REAL / "test" / "norain" / image)
        np.testing.assert_array_equal(own_rainy, rainy)
        oracle, _ = protocol_oracle.whole_image_scores(derained, own_clean, check["protocol"])
        assert oracle == pytest.approx(expected, abs=check["tolerance_db"]), image
