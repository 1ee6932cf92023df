"""``menet-tf compare-authors``: the port agrees with the authors' graphs (a deep model, a
Caformer one), the float64 arbiter works, and a deliberately wrong port is caught.

The authors' graphs run only at their training shape [20, 224, 224, 3], so these run few models
with few steps.
"""
import json

import numpy as np
import pytest

from menet_tf.compare import run as compare
from menet_tf.cli.main import main

from conftest import GRAPHS


def _summary(entry):
    return json.dumps({k: entry.get(k) for k in ("inference", "gradients", "after_steps", "notes")},
                      default=str, indent=1)


@pytest.mark.slow  # the authors' graph at its fixed shape, 20x224x224
def test_deep_model_agrees(released):
    """The deep GB model (16 blocks, attention, three tasks, GB); the float64 arbiter is run on
    the Caformer model below (in float64 the deep model's batch alone needs GBs)."""
    entry = compare.compare_model(
        released["light/ModelDeepNewCaEdgeGramGradBalance"],
        compare.CompareOptions(steps=1, timing_repeats=0, arbiter=False))
    assert entry["ok"], _summary(entry)
    assert entry["start"].startswith("seeded") and "no .data file" in entry["notes"][0]
    assert entry["gradients"]["port_vs_authors"]["median"] <= 1e-2
    assert entry["after_steps"]["global_step"] == {"port": 1, "authors": 1}
    assert set(entry["step"]["authors"]) == {"loss", "psnr", "mse", "texture", "edge",
                                             "weight_mse", "weight_texture", "weight_edge"}


@pytest.mark.slow  # the authors' graph at its fixed shape, 20x224x224
def test_cli_compares_a_caformer_model_and_writes_the_report(released, tmp_path, capsys, monkeypatch):
    # The timing is checked for being reported, not for its value: one round, no warm-up round
    # (one Adam step and two inferences fewer on each side).
    timed = compare.time_interleaved
    monkeypatch.setattr(compare, "time_interleaved",
                        lambda callables, **kw: timed(callables, **{**kw, "warmup": 0}))
    out = tmp_path / "report"
    code = main(["compare-authors", str(GRAPHS), "--out", str(out), "--variant",
                 "ModelShallowNewCaformerEdgeGradBalance", "--steps", "1", "--timing-repeats", "1",
                 "--quiet"])
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["models"]
    assert code == 0 and report["ok"], _summary(entry)
    assert "ok    heavy/ModelShallowNewCaformerEdgeGradBalance" in printed
    assert entry["step"]["losses"]["value"] <= 2e-4 and entry["inference"]["value"] <= 1e-2
    g = entry["gradients"]
    # Both float32 implementations sit within float32 noise of the float64 port (measured:
    # medians 0.13% to 0.52% of each variable's largest entry; worst variables up to 4.2%).
    assert max(g["port_vs_float64"]["median"], g["authors_vs_float64"]["median"]) <= g["tolerance"] == 1e-2
    assert g["port_vs_float64"]["worst"] < 0.1 and g["authors_vs_float64"]["worst"] < 0.1
    assert g["closer_to_float64"] in ("port", "authors", "equally close")
    timing = entry["timing"]
    for side in ("authors", "port"):
        assert set(timing[side]) == {"infer_per_image_batch_1", "infer_per_image_batch_20", "train_step_batch_20"}
        assert all(v > 0 for v in timing[side].values())
    md = (out / "report.md").read_text()
    assert "| heavy/ModelShallowNewCaformerEdgeGradBalance |" in md and "| ok |" in md


def _break_momentum(model):
    """The port with every batch norm's momentum changed from TF1's 0.99 to 0.9."""
    from menet_tf.authors.checkpoint import variable_map

    layers = [layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if hasattr(layer, "moving_mean") and hasattr(layer, "momentum")]
    assert layers and {n for n in variable_map(model) if n.endswith("moving_mean")}
    for layer in layers:
        layer.momentum = 0.9


@pytest.mark.slow  # the authors' graph at its fixed shape, 20x224x224
def test_a_wrong_port_fails_the_comparison_with_a_nonzero_exit(released, tmp_path, monkeypatch, capsys):
    real_build = compare.build_port

    def broken_build(config, prefix, dtype=None):
        model = real_build(config, prefix, dtype)
        _break_momentum(model)
        return model

    monkeypatch.setattr(compare, "build_port", broken_build)
    out = tmp_path / "broken"
    code = main(["compare-authors", str(GRAPHS), "--out", str(out), "--variant", "ModelShallowNew",
                 "--steps", "1", "--timing-repeats", "0", "--no-arbiter", "--quiet"])
    assert code == 3
    assert "FAIL  light/ModelShallowNew" in capsys.readouterr().out
    (entry,) = json.loads((out / "report.json").read_text())["models"]
    assert not entry["ok"] and not entry["after_steps"]["moving_statistics"]["ok"]
    # What the momentum does not touch still agrees: the report says where the defect is.
    assert entry["inference"]["ok"] and entry["step"]["losses"]["ok"]
    assert "| FAIL |" in (out / "report.md").read_text()


def test_wrong_weight_is_caught_by_every_check():
    """The checks themselves, on made-up numbers: a changed weight moves outputs and losses."""
    authors_logs = {"loss": 100.0, "mse": 100.0, "weight_mse": 1.0, "psnr": 25.0}
    ok = compare.compare_logs(dict(authors_logs), authors_logs)
    assert ok["losses"]["ok"] and ok["weights"]["ok"] and ok["psnr"]["ok"]
    bad = compare.compare_logs({**authors_logs, "mse": 100.1, "loss": 100.1}, authors_logs)
    assert not bad["losses"]["ok"]
    rng = np.random.default_rng(0)
    g64 = {"k": rng.normal(size=(3, 3, 4, 4))}
    noisy = {"k": g64["k"] * (1 + 1e-4 * rng.normal(size=(3, 3, 4, 4)))}
    other_math = {"k": g64["k"] * 1.1}
    assert compare.compare_gradients(noisy, noisy, g64)["ok"]
    # A port computing other math is near its own float64 version, far from the authors'.
    assert not compare.compare_gradients(g64, other_math, g64)["ok"]
    lr = 1e-3
    after = {"w": np.ones(10), "bn/moving_mean": np.ones(4)}
    assert compare.compare_variables(after, after, 1, lr)["weights"]["ok"]
    moved = compare.compare_variables({"w": np.ones(10) + 0.01, "bn/moving_mean": np.ones(4) * 1.01}, after, 1, lr)
    assert not moved["weights"]["ok"] and not moved["weights"]["ok_jump"]
    assert not moved["moving_statistics"]["ok"]
