"""The flags of ``menet-tf data check``, ``data bench`` and ``synth``, each passed through its
command and shown to change what it should: which layout and folders are read, how much is
listed, how many crops and batches the pipeline makes, and how rain is blended (checked against
the formula by hand, in float64, from the files written).
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

from data_helpers import H, W, clean_of, make_jorder, make_twin, rainy_image, save
from menet_tf.cli.main import main


def _check(capsys, *argv):
    code = main(["data", "check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out + err


# ---- data check -------------------------------------------------------------------------------

def test_check_layout_forces_the_layout(tmp_path, capsys):
    """Twin folders are found as such by default; --layout jorder reads the root as one JORDER
    folder instead (no images there: one line), --layout rainy_subfolder as rain/rain-N with
    norain-N beside it (none: every rainy image unpaired), --layout twin_folders as given."""
    root = make_twin(tmp_path / "set", n=3)
    code, out = _check(capsys, root, "--crop-size", "16")
    assert code == 0 and "layout: twin_folders" in out and "pairs found: 3" in out
    code, out = _check(capsys, root, "--layout", "jorder", "--crop-size", "16")
    assert code == 1 and "no images found for layout jorder" in out
    code, out = _check(capsys, root, "--layout", "rainy_subfolder", "--crop-size", "16")
    assert code == 1 and "layout: rainy_subfolder" in out and "pairs found: 0" in out
    code, out = _check(capsys, root, "--layout", "twin_folders", "--crop-size", "16")
    assert code == 0 and "layout: twin_folders" in out and "pairs found: 3" in out


def test_check_rainy_and_clean_dir_name_the_twin_folders(tmp_path, capsys):
    """Folders named unlike any known pair (wet/, dry/) are found only when named."""
    root = make_twin(tmp_path / "set", n=3, rainy_dir="wet", clean_dir="dry")
    code, out = _check(capsys, root, "--crop-size", "16")
    assert "pairs found: 3" not in out
    code, out = _check(capsys, root, "--rainy-dir", "wet", "--clean-dir", "dry", "--crop-size", "16")
    assert code == 0 and "pairs found: 3" in out and "no missing, unpaired or bad files" in out
    # Naming only the rainy folder: the clean one is still looked up by its known names.
    (tmp_path / "set" / "dry").rename(tmp_path / "set" / "norain")
    code, out = _check(capsys, root, "--rainy-dir", "wet", "--crop-size", "16")
    assert code == 0 and "pairs found: 3" in out


def test_check_max_list_caps_each_listing(tmp_path, capsys):
    root = make_jorder(tmp_path / "set", n=2, streaks=False)
    for i in range(3, 8):  # 5 rainy images without a clean twin
        save(os.path.join(root, f"rain-{i}.png"), rainy_image(i))
    code, out = _check(capsys, root, "--crop-size", "16", "--max-list", "2")
    assert code == 1 and "rainy images without a clean twin: 5" in out
    listed = [line for line in out.splitlines() if line.strip().startswith("rain-")]
    assert len(listed) == 2 and "... and 3 more" in out
    code, out = _check(capsys, root, "--crop-size", "16")  # default: 10, all five listed
    assert len([line for line in out.splitlines() if line.strip().startswith("rain-")]) == 5
    assert "more" not in out


def test_check_quick_reads_headers_only(tmp_path, capsys):
    """A PNG cut after its header passes --quick (header read) and fails the full decode."""
    root = make_jorder(tmp_path / "set", n=2, streaks=False)
    path = os.path.join(root, "rain-2.png")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    code, out = _check(capsys, root, "--crop-size", "16")
    assert code == 1 and "bad files: 1" in out
    code, out = _check(capsys, root, "--crop-size", "16", "--quick")
    assert code == 0 and "bad files:" not in out


def test_check_pairs_rain_n_with_norain_n_and_sees_a_swap(tmp_path, capsys):
    """Each pair has its own size, so a pairing mix-up shows as a size mismatch; numbers 1, 2,
    10, 11, 20 sort differently as text and as numbers. Then two clean images are swapped on
    disk: the check must name that pair."""
    from menet_tf.data.pairs import discover

    root = tmp_path / "set"
    numbers = (1, 2, 10, 11, 20)
    for k, n in enumerate(numbers):
        r = rainy_image(n, 24 + 4 * k, 32 + 8 * k)
        save(os.path.join(root, f"rain-{n}.png"), r)
        save(os.path.join(root, f"norain-{n}.png"), clean_of(r))
    code, out = _check(capsys, root, "--crop-size", "16")
    assert code == 0 and "pairs found: 5" in out and "no missing, unpaired or bad files" in out
    for pair in discover(str(root)).pairs:  # content: clean = 255 - rainy, pair by pair
        rainy, clean = (np.asarray(Image.open(p)) for p in (pair.rainy, pair.clean))
        assert np.array_equal(clean, clean_of(rainy)), (pair.rainy, pair.clean)
    a, b = root / "norain-2.png", root / "norain-10.png"
    a.rename(root / "x.png"), b.rename(a), (root / "x.png").rename(b)
    code, out = _check(capsys, root, "--crop-size", "16")
    assert code == 1 and "usable pairs: 3 of 5" in out
    assert "rain-2.png: size" in out and "differs from its clean twin norain-2.png" in out


# ---- data bench -------------------------------------------------------------------------------

def _bench(capsys, root, *argv):
    assert main(["data", "bench", str(root), "--batch-size", "2", "--crop-size", "16",
                 "--epochs", "1", *map(str, argv)]) == 0
    return capsys.readouterr().out


def test_bench_num_crops_and_max_batches_set_the_batches(tmp_path, capsys):
    """3 pairs x N crops / batch 2: 3 batches at --num-crops 2 (15 at the default 10);
    --max-batches 2 stops each of 2 epochs after 2 of its 6 (--num-crops 4)."""
    root = make_jorder(tmp_path / "set", n=3, streaks=False)
    assert "(3 batches, 6 crops)" in _bench(capsys, root, "--num-crops", "2", "--mode", "random")
    out = _bench(capsys, root, "--num-crops", "4", "--mode", "random", "--max-batches", "2",
                 "--epochs", "2")
    assert "(4 batches, 8 crops)" in out


def test_bench_cache_reaches_the_pipeline(tmp_path, capsys, monkeypatch):
    from menet_tf.data import pipeline

    seen, real = [], pipeline.train_dataset

    def spy(*args, **kwargs):
        seen.append(kwargs.get("cache"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_dataset", spy)
    root = make_jorder(tmp_path / "set", n=2, streaks=False)
    assert "cache off" in _bench(capsys, root, "--max-batches", "1")
    assert "cache on" in _bench(capsys, root, "--max-batches", "1", "--cache")
    assert seen == [False, True]


# ---- synth --blend ----------------------------------------------------------------------------

def _synth(out, *argv):
    assert main(["synth", "-o", str(out), "--count", "2", "--test-count", "0", "--size", "48x40",
                 "--seed", "5", *argv]) == 0
    return out / "train"


def _blends(folder, n):
    """(rainy, additive formula, screen formula) of pair n, in float64 0..255 by hand from the
    clean image and the rain-streak layer written beside it (rounded to 1/255 there)."""
    read = lambda name: np.asarray(Image.open(folder / f"{name}-{n}.png")).astype(np.float64)  # noqa: E731
    b, r = read("norain") / 255.0, read("rainstreak")[..., :1] / 255.0
    additive = np.clip(np.round((b + r) * 255.0), 0, 255)
    screen = np.clip(np.round((1.0 - (1.0 - b) * (1.0 - r)) * 255.0), 0, 255)
    return read("rain"), additive, screen


@pytest.mark.parametrize("blend", [None, "additive", "screen"])
def test_synth_blend_is_the_formula(tmp_path, blend):
    """O = clip(B + R) (additive, the default) or O = 1 - (1 - B)(1 - R) (screen). The streak
    file is R rounded to 1/255, so the formula is met within one level; the other blend differs
    by far more where rain falls on a bright background."""
    folder = _synth(tmp_path / "set", *(["--blend", blend] if blend else []))
    settings = json.loads((tmp_path / "set" / "synth.json").read_text())
    assert settings["blend"] == (blend or "additive")
    for n in (1, 2):
        rainy, additive, screen = _blends(folder, n)
        want, other = (screen, additive) if blend == "screen" else (additive, screen)
        assert np.abs(rainy - want).max() <= 1.0
        assert np.abs(rainy - other).max() >= 20.0
