"""Nothing a user owns is lost (issue 14, points 1-4), end to end through `menet-tf`.

Each test puts a user's own files where a careless command would reach them (a `.cache` next to
a run, a run folder or a thesis as an export target, the photos being de-rained, a folder holding
the user's `config.json`), runs the command as a user would, and checks the user's files are
still there, byte for byte. A command may refuse (then with one line, no traceback) or do its
work beside them; it may never delete or overwrite them.
"""
import hashlib
import pathlib
import shutil

import pytest

from data_helpers import make_jorder, rainy_image, save
from hostile_helpers import own_lines, run_cli

# The smallest training run: 16x16 crops, batch 2, one epoch of one step.
TINY = ["--crop-size", "16", "--batch-size", "2", "--steps-per-epoch", "1", "--epochs", "1"]


def fingerprint(root):
    """{relative path: sha256} of every file under ROOT (or of ROOT itself if it is a file)."""
    root = pathlib.Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent if root.is_file() else root)):
            hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_no_traceback(status, out, err):
    """Whatever the command decided, it ended cleanly: a refusal is one line, never a dump."""
    assert "Traceback" not in out + err, out + err
    if status != 0:
        assert len(own_lines(err)) == 1, err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_jorder(root / "train", n=3)
    make_jorder(root / "test", n=2)
    return root


@pytest.fixture(scope="module")
def trained_run(data, tmp_path_factory):
    """A finished tiny run folder (model.keras, state.npz, history.csv, ...), trained once."""
    out = tmp_path_factory.mktemp("runs") / "gb"
    status, o, e = run_cli(["train", "--data", data, "-o", out, *TINY], timeout=600)
    assert status == 0, o + e
    assert (out / "model.keras").is_file(), sorted(p.name for p in out.iterdir())
    return out


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_train_keeps_users_cache_folder(data, tmp_path, force):
    """Point 1: `train --out DIR --cache` must not delete DIR/.cache (DIR may be ~)."""
    out = tmp_path / "home"
    (out / ".cache").mkdir(parents=True)
    (out / ".cache" / "keep.txt").write_text("the user's cache\n")
    before = fingerprint(out / ".cache")
    assert_no_traceback(*run_cli(["train", "--data", data, "-o", out, "--cache", *TINY, *force],
                                 timeout=600))
    assert fingerprint(out / ".cache") == before


@pytest.mark.parametrize("name", ["config.json", "curves.png", "run.json", "eval.json"])
def test_train_leaves_users_files_without_force(data, tmp_path, name):
    """Point 4: a folder holding the user's own `config.json` (etc.) is not written over."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_bytes(b"the user's own " + name.encode() + b"\n")
    before = fingerprint(out / name)
    assert_no_traceback(*run_cli(["train", "--data", data, "-o", out, *TINY], timeout=600))
    assert (out / name).is_file() and fingerprint(out / name) == before


def test_export_onto_its_own_run_deletes_nothing(trained_run, tmp_path):
    """Point 2: `export RUN -o RUN --force` must not delete the run it exports."""
    run = tmp_path / "gb"
    shutil.copytree(trained_run, run)
    before = fingerprint(run)
    assert_no_traceback(*run_cli(["export", run, "-o", run, "--force"]))
    after = fingerprint(run)
    assert {k: after.get(k) for k in before} == before


def test_export_into_current_folder_deletes_nothing(trained_run, tmp_path):
    """Point 2: `export RUN -o . --force` in a folder holding a thesis leaves the thesis."""
    work = tmp_path / "thesis"
    (work / "src").mkdir(parents=True)
    (work / "thesis.tex").write_text("\\documentclass{article}\n")
    (work / "src" / "main.py").write_text("print('mine')\n")
    before = fingerprint(work)
    assert_no_traceback(*run_cli(["export", trained_run, "-o", ".", "--force"], cwd=work))
    after = fingerprint(work)
    assert {k: after.get(k) for k in before} == before


def test_derain_never_writes_over_its_inputs(tmp_path):
    """Point 3: `derain photos/ -o photos/ --format same --force` leaves the originals as they
    were, and is refused (an output that is one of the inputs is refused whatever the flags)."""
    photos = tmp_path / "photos"
    for i in range(2):
        save(str(photos / f"p{i}.png"), rainy_image(i))
    before = fingerprint(photos)
    status, out, err = run_cli(["derain", photos, "-o", photos, "--format", "same", "--force"])
    assert_no_traceback(status, out, err)
    after = fingerprint(photos)
    assert {k: after.get(k) for k in before} == before
    assert status != 0, "an output that is one of the inputs must be refused"
