"""`menet-tf synth` on folders of clean images, through the command: --clean-dir uses every image
as is, --variants renders that many different rains per image, --test-clean-dir and
--test-variants make the test split, --jobs spreads the work without changing a byte, --force
is needed to replace a set, and bad input ends in one line naming the file or flag."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from menet_tf.cli.main import main

from data_helpers import save
from hostile_helpers import own_lines, run_cli


def backgrounds(folder, names, h, w, seed=0):
    """Clean images with distinct smooth content (so each is told apart), by file name."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    for name in names:
        a, b, c = rng.uniform(0.05, 0.3, 3)
        img = np.stack([np.sin(a * yy + b * xx + k * c) for k in range(3)], axis=-1)
        save(os.path.join(folder, name), np.round(60 + 60 * img).astype(np.uint8))
    return str(folder)


def pixels(path):
    return np.asarray(Image.open(path))


def files(folder):
    """{relative path: bytes} of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            out[os.path.relpath(p, folder)] = open(p, "rb").read()
    return out


@pytest.fixture(scope="module")
def bg(tmp_path_factory):
    root = tmp_path_factory.mktemp("backgrounds")
    return {"train": backgrounds(root / "train", ["a-1.png", "a-2.png", "a-10.png"], 40, 56),
            "test": backgrounds(root / "test", ["t-1.png", "t-2.png"], 48, 36, seed=1)}


def test_variants_render_each_clean_image_as_is_with_different_rains(tmp_path, bg, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--preset", "heavy", "--clean-dir", bg["train"], "--variants", "3",
                 "--test-clean-dir", bg["test"], "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "train: 9 pairs" in said and "test: 2 pairs" in said
    train, test = out / "train", out / "test"
    assert len(list(train.glob("rain-*.png"))) == 9 and len(list(test.glob("rain-*.png"))) == 2
    # image-major numbering, natural order (a-2 before a-10), native size, not cropped or flipped
    for number, name in ((1, "a-1"), (3, "a-1"), (4, "a-2"), (6, "a-2"), (7, "a-10"), (9, "a-10")):
        assert np.array_equal(pixels(train / f"norain-{number}.png"),
                              pixels(os.path.join(bg["train"], f"{name}.png")))
    for number, name in ((1, "t-1"), (2, "t-2")):
        assert np.array_equal(pixels(test / f"norain-{number}.png"),
                              pixels(os.path.join(bg["test"], f"{name}.png")))
    rains = [pixels(train / f"rain-{n}.png").astype(int) for n in (1, 2, 3)]
    clean = pixels(train / "norain-1.png").astype(int)
    assert all(np.all(r >= clean) and (r - clean).mean() > 5 for r in rains)  # O = B + R
    assert not np.array_equal(rains[0], rains[1]) and not np.array_equal(rains[1], rains[2])
    meta = json.load(open(out / "synth.json"))
    assert meta["variants"] == {"train": 3, "test": 1} and meta["renderer_version"] == 2
    assert meta["clean_source"]["train"]["images"] == ["a-1.png", "a-2.png", "a-10.png"]
    assert meta["preset_params"]["layers"] == [5, 5]
    assert meta["size"] == {"train": "native", "test": "native"}


def test_test_variants_and_no_test_split_without_a_test_folder(tmp_path, bg, capsys):
    out = tmp_path / "tv"
    assert main(["synth", "--preset", "light", "--clean-dir", bg["train"], "--count", "1",
                 "--test-clean-dir", bg["test"], "--test-variants", "2", "-o", str(out)]) == 0
    test = out / "test"
    assert len(list(test.glob("rain-*.png"))) == 4 and len(list(out.glob("train/rain-*"))) == 1
    assert np.array_equal(pixels(test / "norain-1.png"), pixels(test / "norain-2.png"))
    assert not np.array_equal(pixels(test / "rain-1.png"), pixels(test / "rain-2.png"))
    capsys.readouterr()
    assert main(["synth", "--clean-dir", bg["train"], "-o", str(tmp_path / "none")]) == 0
    assert "test: none (pass --test-clean-dir" in capsys.readouterr().out
    assert not (tmp_path / "none" / "test").exists()
    # photos for training, a folder for testing: every test image, native
    assert main(["synth", "--count", "2", "--test-clean-dir", bg["test"], "-o",
                 str(tmp_path / "mixed")]) == 0
    assert pixels(tmp_path / "mixed" / "train" / "rain-1.png").shape == (321, 481, 3)
    assert np.array_equal(pixels(tmp_path / "mixed" / "test" / "norain-2.png"),
                          pixels(os.path.join(bg["test"], "t-2.png")))


def test_same_seed_same_bytes_in_any_number_of_processes(tmp_path, bg):
    common = ["synth", "--clean-dir", bg["train"], "--variants", "2", "--test-clean-dir",
              bg["test"], "--seed", "3"]
    assert main(common + ["-o", str(tmp_path / "a")]) == 0
    assert main(common + ["-o", str(tmp_path / "b")]) == 0
    assert main(common + ["--jobs", "2", "-o", str(tmp_path / "c")]) == 0
    a, b, c = (files(tmp_path / x) for x in "abc")
    assert len(a) == 1 + 3 * (6 + 2) and a == b and c == a  # synth.json included
    assert main(["synth", "--clean-dir", bg["train"], "--seed", "4", "-o",
                 str(tmp_path / "d")]) == 0
    assert files(tmp_path / "d")["train/rain-1.png"] != a["train/rain-1.png"]


def test_force_replaces_a_set_synth_wrote_and_nothing_else(tmp_path, bg, capsys):
    out = tmp_path / "set"
    assert main(["synth", "--clean-dir", bg["train"], "-o", str(out)]) == 0
    before = files(out)
    capsys.readouterr()
    assert main(["synth", "--clean-dir", bg["train"], "--seed", "9", "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err and files(out) == before
    assert main(["synth", "--clean-dir", bg["train"], "--seed", "9", "--force",
                 "-o", str(out)]) == 0
    assert files(out)["train/rain-1.png"] != before["train/rain-1.png"]
    (out / "mine.txt").write_text("mine")
    assert main(["synth", "--clean-dir", bg["train"], "--force", "-o", str(out)]) == 1
    assert "mine.txt" in capsys.readouterr().err and (out / "mine.txt").read_text() == "mine"


@pytest.mark.parametrize("case", ["empty", "corrupt", "variants-0", "test-variants-0",
                                  "jobs-0"])
def test_bad_input_is_one_line_naming_it(tmp_path, bg, case):
    (tmp_path / "empty").mkdir()
    bad = backgrounds(tmp_path / "bad", ["b-1.png"], 20, 20)
    (tmp_path / "bad" / "b-2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    argv, named = {
        "empty": (["--clean-dir", tmp_path / "empty"], "no images"),
        "corrupt": (["--clean-dir", bad], "b-2.png"),
        "variants-0": (["--clean-dir", bg["train"], "--variants", "0"], "--variants"),
        "test-variants-0": (["--clean-dir", bg["train"], "--test-clean-dir", bg["test"],
                             "--test-variants", "0"], "--test-variants"),
        "jobs-0": (["--clean-dir", bg["train"], "--jobs", "0"], "--jobs"),
    }[case]
    code, _, err = run_cli(["synth", "-o", tmp_path / "out", *argv], timeout=120)
    lines = own_lines(err)
    assert code != 0 and "Traceback" not in err
    assert len(lines) == 1 and named in lines[0], lines
    assert not (tmp_path / "out").exists()  # refused before anything was written
