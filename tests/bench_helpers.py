"""Shared by the bench tests: where the authors' graphs are, FLOPs by hand, and the checks of a
bench result's roofline."""
import pytest

from conftest import GRAPHS  # tests/conftest.py (tests/ is first on the path)

HAVE_GRAPHS = (GRAPHS / "light" / "ModelShallowNewCaEdgeGramGradBalance").is_dir()


def conv(h, w, c_in, c_out, k=3):
    """2 FLOPs per multiply-add of a stride-1 SAME k x k convolution, by hand."""
    return 2 * h * w * c_in * c_out * k * k


def menet_forward_by_hand(depth, h, w):
    """MENET without attention: layer1 at 1/2 (12 -> 16 channels after desubpixel), layer2 at
    1/4 (64 -> 64), two 64 -> 64 convolutions per residual block and layer3 at 1/4, layer4 at
    1/2 (16 -> 16), layer5 at 1/2 (16 -> 12)."""
    h2, w2, h4, w4 = h // 2, w // 2, h // 4, w // 4
    return (conv(h2, w2, 12, 16) + conv(h4, w4, 64, 64) * (2 * depth + 2)
            + conv(h2, w2, 16, 16) + conv(h2, w2, 16, 12))


def checked_roofline(r, precision):
    """The roofline part of a bench result: every timing has its GFLOP/s and share."""
    rf = r["roofline"]
    assert set(rf["peaks"]["precisions"]) == {"fp32", "bf16", "fp16"}
    for key, figure in r["port"].items():
        row = rf["rows"][key]["port"]
        assert row["precision"] == precision
        assert row["flops_per_call"] == rf["flops"][key]["dense"] > 0
        assert row["gflops"] == pytest.approx(row["flops_per_call"] / figure["median_s"] / 1e9)
        peak = rf["peaks"]["precisions"][precision]["peak_gflops"]
        assert row["share_of_peak"] == pytest.approx(row["gflops"] / peak)
        cpu_peak = rf["peaks"]["precisions"][precision]["peak_gflops_per_cpu_second"]
        assert row["share_of_peak_cpu"] == pytest.approx(row["gflops_per_cpu_second"] / cpu_peak)
    for key in r.get("authors_graph") or {}:
        assert rf["rows"][key]["authors"]["precision"] == "fp32"
    assert rf["forward_224_flops"] == menet_forward_by_hand(8, 224, 224) + _attention_224()
    return rf


def _attention_224():
    """MENET-GB's channel attention at 224x224: 1x1 squeezes of 256 channels after each
    desubpixel step (28x28, 14x14), 3x3 64 -> 64 convolutions at 28x28 and twice at 14x14."""
    return (conv(28, 28, 256, 64, 1) + conv(28, 28, 64, 64) + conv(14, 14, 256, 64, 1)
            + 2 * conv(14, 14, 64, 64))
