"""Every command, given bad input, ends with one line that names the file or flag (issue 14.10).

Each case runs `menet-tf` in a subprocess, as a user would, and checks the error contract of
docs/reliability.md: a non-zero exit, no Python traceback, the message names what was wrong, and
it is one line. Cases that fail in argument checking, before TensorFlow loads, take about a
second; those that load a model take a few more.
"""
import os
import shutil

import pytest
from PIL import Image

from data_helpers import make_jorder, rainy_image, save
from hostile_helpers import open_scratch, own_lines, run_cli


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace of good and bad inputs: a small data set, a photo, a text file, a folder, a
    corrupt PNG, a truncated .keras, a 30000x30000 PNG (a few KB: one colour compresses well)."""
    root = tmp_path_factory.mktemp("hostile")
    make_jorder(root / "data" / "train", n=3)
    make_jorder(root / "data" / "test", n=2)
    save(str(root / "photo.png"), rainy_image(7))
    (root / "notes.txt").write_text("not an image, not a model, not a folder\n")
    (root / "folder").mkdir()
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    (root / "truncated.keras").write_bytes(b"PK\x03\x04" + os.urandom(300))
    Image.new("L", (30000, 30000), 0).save(root / "bomb.png", optimize=True)
    return root


# (id, argv with {ws} for the workspace, what the one line must name: the file, or the flag as
# spelled or in words, "--batch-size|batch size")
CASES = [
    # train
    ("train-data-missing", "train --data {ws}/nodata -o {ws}/r1 --epochs 1", "nodata"),
    ("train-data-is-file", "train --data {ws}/notes.txt -o {ws}/r2 --epochs 1", "notes.txt"),
    ("train-batch-0", "train --data {ws}/data -o {ws}/r3 --crop-size 16 --batch-size 0",
     "--batch-size|batch size"),
    ("train-batch-negative", "train --data {ws}/data -o {ws}/r4 --crop-size 16 --batch-size -3",
     "--batch-size|batch size"),
    ("train-epochs-0", "train --data {ws}/data -o {ws}/r5 --crop-size 16 --epochs 0",
     "--epochs|epochs"),
    ("train-crop-7", "train --data {ws}/data -o {ws}/r6 --crop-size 7 --epochs 1",
     "--crop-size|crop size"),
    ("train-out-under-file", "train --data {ws}/data -o {ws}/notes.txt/run --crop-size 16"
     " --epochs 1", "notes.txt"),
    ("train-config-missing", "train --config {ws}/none.json --data {ws}/data -o {ws}/r7",
     "none.json"),
    ("train-config-not-json", "train --config {ws}/notes.txt --data {ws}/data -o {ws}/r8",
     "notes.txt"),
    # evaluate
    ("evaluate-model-text", "evaluate --model {ws}/notes.txt --data {ws}/data -o {ws}/e1",
     "notes.txt"),
    ("evaluate-model-truncated", "evaluate --model {ws}/truncated.keras --data {ws}/data"
     " -o {ws}/e2", "truncated.keras"),
    ("evaluate-model-unknown", "evaluate --model no-such-model --data {ws}/data -o {ws}/e3",
     "no-such-model"),
    ("evaluate-data-missing", "evaluate --model menet-gb-rain100l --data {ws}/nodata"
     " -o {ws}/e4", "nodata"),
    ("evaluate-out-under-file", "evaluate --model menet-gb-rain100l --data {ws}/data/test"
     " --protocol y -o {ws}/notes.txt/e", "notes.txt"),
    # table
    # (--quick falls back to the synthetic set by design, with a line saying so; the full
    # table must refuse a missing data root)
    ("table-data-missing", "table table1 -o {ws}/t1 --data {ws}/nodata", "nodata"),
    ("table-row-unknown", "table table1 -o {ws}/t2 --data {ws}/data --quick --rows nosuchrow",
     "nosuchrow"),
    ("table-out-under-file", "table table1 -o {ws}/notes.txt/t --data {ws}/data --quick",
     "notes.txt"),
    # derain
    ("derain-input-missing", "derain {ws}/nophoto.png -o {ws}/d1", "nophoto.png"),
    ("derain-out-under-file", "derain {ws}/photo.png -o {ws}/notes.txt/d", "notes.txt"),
    ("derain-model-text", "derain {ws}/photo.png -o {ws}/d4 --model {ws}/notes.txt",
     "notes.txt"),
    ("derain-model-folder", "derain {ws}/photo.png -o {ws}/d5 --model {ws}/folder", "folder"),
    ("derain-tile-0", "derain {ws}/photo.png -o {ws}/d6 --mode tile --tile-size 0",
     "--tile-size"),
    # export
    ("export-model-truncated", "export {ws}/truncated.keras -o {ws}/x1", "truncated.keras"),
    ("export-model-missing", "export {ws}/none.keras -o {ws}/x2", "none.keras"),
    ("export-out-under-file", "export menet-gb-rain100l -o {ws}/notes.txt/x", "notes.txt"),
    ("export-size-7", "export menet-gb-rain100l -o {ws}/x3 --size 7 7", "--size"),
    # compare-authors
    ("compare-authors-missing", "compare-authors {ws}/nograph -o {ws}/c1", "nograph"),
    ("compare-authors-text", "compare-authors {ws}/notes.txt -o {ws}/c2", "notes.txt"),
    # bench
    ("bench-authors-missing", "bench --authors {ws}/nograph -o {ws}/b.json --quick", "nograph"),
    ("bench-out-under-file", "bench --quick -o {ws}/notes.txt/b.json --no-pipeline",
     "notes.txt"),
    # import-tf1
    ("import-tf1-missing", "import-tf1 {ws}/nockpt -o {ws}/i1.keras", "nockpt"),
    ("import-tf1-text", "import-tf1 {ws}/notes.txt -o {ws}/i2.keras", "notes.txt"),
    # configs
    ("configs-write-to-file", "configs --write {ws}/notes.txt", "notes.txt"),
    # data
    ("data-check-missing", "data check {ws}/nodata", "nodata"),
    ("data-check-file", "data check {ws}/notes.txt", "notes.txt"),
    ("data-bench-missing", "data bench {ws}/nodata", "nodata"),
    ("data-bench-batch-0", "data bench {ws}/data/train --crop-size 16 --batch-size 0",
     "--batch-size|batch size"),
    # synth
    ("synth-out-under-file", "synth -o {ws}/notes.txt/s --count 2 --test-count 1", "notes.txt"),
    ("synth-counts-0", "synth -o {ws}/s1 --count 0 --test-count 0", "--count"),
    ("synth-size-7", "synth -o {ws}/s2 --size 7 --count 2 --test-count 1",
     "--size|size '7'"),
    ("synth-clean-missing", "synth -o {ws}/s3 --clean-dir {ws}/noclean --count 2", "noclean"),
    # models
    ("models-unknown-action", "models frobnicate", "frobnicate"),
    ("models-show-unknown", "models show no-such-model", "no-such-model"),
    ("models-add-text", "models add {ws}/notes.txt --name mine --data {ws}/data --work {ws}/w1",
     "notes.txt"),
    ("models-add-missing", "models add {ws}/none.keras --name mine --data {ws}/data"
     " --work {ws}/w2", "none.keras"),
]


def check_one_line_error(argv, names, cwd=None, unprivileged=False):
    """Run ARGV and hold its output to the error contract; returns the line for messages.
    A bad input is refused at once: a command still running after two minutes went ahead."""
    status, out, err = run_cli(argv, cwd=cwd, timeout=120, unprivileged=unprivileged)
    lines = own_lines(err)
    assert status != 0, f"exit 0 for bad input:\n{out}{err}"
    assert "Traceback" not in out + err, out + err
    assert len(lines) == 1, f"{len(lines)} lines, not one:\n" + "\n".join(lines)
    assert any(name in lines[0] for name in names.split("|")), \
        f"the message does not name {names!r}: {lines[0]}"
    return lines[0]


# Cases that take over ten seconds when they fail: the work runs before the bad input is seen.
SLOW = {"bench-out-under-file"}
# Cases known to break the contract, each a bug to fix in the command (xfail, strict: a fixed
# case fails here until its entry is removed). None today.
BROKEN = {}


def _marks(name):
    marks = [pytest.mark.slow] if name in SLOW else []
    if name in BROKEN:
        marks.append(pytest.mark.xfail(strict=True, reason=BROKEN[name]))
    return marks


PARAMS = [pytest.param(argv, names, id=name, marks=_marks(name)) for name, argv, names in CASES]


@pytest.mark.parametrize("argv,names", PARAMS)
def test_bad_input_gets_one_line(ws, argv, names):
    check_one_line_error(argv.format(ws=ws).split(), names)


@pytest.mark.parametrize("name", ["corrupt.png", "bomb.png"])
def test_broken_photo_reported_like_any_broken_file(ws, name):
    """`derain` reads every readable photo and names each broken one ("FILE: problem") at the
    end, exiting non-zero; a broken or oversized photo never aborts the run with a traceback."""
    status, out, err = run_cli(["derain", ws / "photo.png", ws / name, "-o", ws / f"d-{name}"])
    assert status != 0, out + err
    assert "Traceback" not in out + err, out + err
    assert any(f"{name}: " in line for line in own_lines(out + err)), out + err
    assert (ws / f"d-{name}" / "photo.png").is_file(), "the good photo was not de-rained"


def test_read_only_output_folder(ws):
    """An output folder the user may not write to: one line naming it. Run as the user nobody
    when the tests run as root (CI), whom chmod does not stop."""
    with open_scratch() as scratch:
        shutil.copy(ws / "photo.png", scratch / "photo.png")
        locked = scratch / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        check_one_line_error(["derain", scratch / "photo.png", "-o", locked / "out"], "locked",
                             unprivileged=True)
        assert list(locked.iterdir()) == []
