"""The headline figures recomputed: every bundled model with Rain100L scores in the registry is
scored again on all 100 Rain100L test images under the authors' protocol (10 crops an image,
batches of 20), by tests/protocol_oracle.py (NumPy crops, scikit-image PSNR/SSIM in float64,
pairs matched by file name here), and must give the registry's figures within 0.01 dB.
Skipped, saying so, without the real data (MENET_REAL_DATA, ../shared/datasets/Rain100L)."""
import json
import pathlib

import pytest

import protocol_oracle
from conftest import REPO, shared_path

REAL = shared_path("MENET_REAL_DATA", "datasets/Rain100L")
REGISTRY = json.loads((REPO / "menet_tf" / "bundled" / "registry.json").read_text())
SCORED = sorted(name for name, e in REGISTRY["models"].items()
                if (e.get("scores") or {}).get("data") == "Rain100L"
                and "authors" in e["scores"]) or ["none"]


def _pairs(test):
    """(rainy, clean) of a Rain100L test folder: rain/X with norain/X, or rain-N with norain-N."""
    test = pathlib.Path(test)
    if (test / "rain").is_dir():
        return [(r, test / "norain" / r.name) for r in sorted((test / "rain").glob("*.png"))]
    return [(r, r.with_name("no" + r.name)) for r in sorted(test.glob("rain-*.png"))]


@pytest.mark.slow  # 1000 crops of 224x224 through the network: minutes on a CPU
@pytest.mark.parametrize("name", SCORED)
def test_registry_scores_are_what_the_model_scores(name, monkeypatch):
    from menet_tf.bundled import registry
    from menet_tf.infer.load import load_derainer

    if name == "none":
        pytest.fail("no bundled model has Rain100L scores in the registry")
    if not REAL.is_dir():
        pytest.skip(f"the real data is not at {REAL}")
    monkeypatch.delenv(registry.FOLDER_VARIABLE, raising=False)  # the package's own models
    expected = REGISTRY["models"][name]["scores"]
    pairs = _pairs(REAL / "test")
    assert len(pairs) == expected["images"] == 100 and all(c.is_file() for _, c in pairs)
    derainer = load_derainer(name)
    got = protocol_oracle.authors_protocol(derainer.predict, pairs,
                                           crop_size=expected["authors"]["crop_size"],
                                           batch_size=20)
    want = expected["authors"]
    print(f"\n[headline] {name}: {got}")
    for key in ("psnr", "input_psnr"):
        assert got[key] == pytest.approx(want[key], abs=0.01), key
    for key in ("ssim", "input_ssim"):  # the registry keeps 4 decimals
        assert got[key] == pytest.approx(want[key], abs=1e-4), key
