"""The paper's tables as files and `menet-tf table`: the table files carry the paper's numbers,
missing data stop the runner at once with advice, and a tiny table runs end to end (train,
resume, evaluate under three protocols, table.md/csv, Fig. 8/9 and the grid)."""
import csv
import json
import os
import re

import pytest
from PIL import Image

from conftest import shared_path
from menet_tf.evaluation import table_plan, table_run, tabulate
from menet_tf.config import RELEASED
from menet_tf.errors import ConfigError, DataError
from data_helpers import synthetic_set


# ---- table files -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, rows", [("table1", 8), ("table2", 4), ("table4", 3), ("menet", 1)])
def test_table_files_name_released_configurations(name, rows):
    spec = table_plan.load_table(name)
    assert len(spec["rows"]) == rows
    for row in spec["rows"]:
        config = table_plan.row_config(row)
        released = row["config"].split("/")[-1][:-5]
        assert config.name == released and released in RELEASED
        assert config.to_dict() == RELEASED[released].to_dict()
        for dataset in ("Rain100H", "Rain100L"):
            assert 20 < row["paper"][dataset]["psnr"] < 40 and 0.7 < row["paper"][dataset]["ssim"] < 1


def test_table1_numbers_equal_the_spec_and_two_rows_are_marked_swapped():
    spec = table_plan.load_table("table1")
    swapped = [r["id"] for r in spec["rows"] if r.get("swapped_in_authors_log")]
    assert swapped == ["Lp-Le-Lt-GB", "Lp-Le-Lt-LB"]
    path = shared_path("MENET_SPEC", "reference/MENET_SPEC.md")
    if not path.is_file():
        pytest.skip(f"{path} not found")
    # The spec's Table I: | label | released name | L psnr / ssim | H psnr / ssim |
    pattern = re.compile(r"^\| [^|]+ \| (Model\w+) \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|$")
    found = {m[1]: tuple(map(float, m.groups()[1:]))
             for m in map(pattern.match, path.read_text().splitlines()) if m}
    assert len(found) == 8
    for row in spec["rows"]:
        name = row["config"].split("/")[-1][:-5]
        p = row["paper"]
        assert (p["Rain100L"]["psnr"], p["Rain100L"]["ssim"], p["Rain100H"]["psnr"],
                p["Rain100H"]["ssim"]) == found[name]


def test_unknown_experiment_and_row_are_refused():
    with pytest.raises(ConfigError, match="unknown experiment 'table9'.*table1"):
        table_plan.load_table("table9")
    with pytest.raises(ConfigError, match="no row"):
        table_plan.subset("table1", ["Lp", "NoSuchRow"])


def test_vgg_row_needs_a_weights_file(tmp_path):
    row = table_plan.load_table("table4")["rows"][1]
    assert "downloads nothing" in table_plan.vgg_problem(table_plan.row_config(row))
    missing = table_plan.row_config(row, vgg_weights=str(tmp_path / "vgg.h5"))
    assert "not found" in table_plan.vgg_problem(missing)
    (tmp_path / "vgg.h5").write_bytes(b"x")
    assert table_plan.vgg_problem(table_plan.row_config(row, vgg_weights=str(tmp_path / "vgg.h5"))) is None


def test_quick_settings_override_crops_but_not_explicit_choices():
    spec = table_plan.load_table("table1")
    row = spec["rows"][0]
    quick = table_plan.row_config(row, quick=spec["quick"], overrides={"crop_size": None})
    assert (quick.train.crop_size, quick.train.batch_size) == (64, 20)
    mine = table_plan.row_config(row, quick=spec["quick"], overrides={"crop_size": 96})
    assert mine.train.crop_size == 96


def test_old_spellings_of_table_flags_still_work_for_one_release(capsys):
    from menet_tf.cli.main import build_parser, main

    args = build_parser().parse_args(["table", "table1", "--runs", "R", "--no-jit"])
    assert (args.out, args.jit_compile) == ("R", "off")
    err = capsys.readouterr().err
    assert "--runs is deprecated" in err and "use -o/--out" in err
    assert "--no-jit is deprecated" in err and "use --jit-compile off" in err
    args = build_parser().parse_args(["table", "table1", "-o", "R", "--jit-compile", "on"])
    assert (args.out, args.jit_compile, args.quiet) == ("R", "on", False)
    assert main(["table", "table1"]) == 1
    assert "-o/--out is required" in capsys.readouterr().err


# ---- missing data ----------------------------------------------------------------------------

def test_missing_data_stops_at_once_saying_what_to_get_and_how_to_check(tmp_path, capsys):
    from menet_tf.cli.main import main

    data, runs = tmp_path / "Rain100H", tmp_path / "runs"
    assert main(["table", "table1", "--data", str(data), "-o", str(runs)]) == 1
    err = capsys.readouterr().err
    for needed in (str(data), "RainTrainH", "Rain100H (100 pairs)", f"{data}/train/",
                   f"{data}/test/", f"menet-tf data check {data} --expect Rain100H"):
        assert needed in err
    assert "Traceback" not in err and not runs.exists()
    # A root without test/ is refused too, naming what is missing.
    (data / "train").mkdir(parents=True)
    from menet_tf.data import synthesize

    synthesize(str(tmp_path / "syn"), preset="light", seed=0, count=2, test_count=0,
               size="64x48", progress=False)
    (tmp_path / "syn" / "train").rename(data / "train")
    with pytest.raises(DataError, match="no test/ folder"):
        table_run.run_table("table1", str(runs), str(data))


def test_quick_form_falls_back_to_the_synthetic_set_with_a_message(tmp_path, monkeypatch):
    import menet_tf.data

    made = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(menet_tf.data.synth, "synthesize", lambda out, **kw: made.append((out, kw)))
    said = []
    data, synthetic = table_plan.quick_data(str(tmp_path / "nowhere"), said.append)
    assert synthetic and data == "data/synthetic/light" and made[0][1]["preset"] == "light"
    assert "synthetic" in said[0] and "nowhere" in said[0]
    assert table_plan.quick_data(str(tmp_path), said.append) == (str(tmp_path), False)


# ---- a tiny table end to end -----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return synthetic_set(tmp_path_factory, "tiny", seed=2, count=4, test_count=3,
                         size="72x56")


TINY = ["--crop-size", "32", "--batch-size", "8", "--depth", "1", "--eval-crop-size", "32",
        "--jit-compile", "off", "--grid-images", "2"]


def test_tiny_table_trains_evaluates_resumes_and_writes_table_and_figures(tiny_set, tmp_path, capsys):
    from menet_tf.cli.main import main
    from menet_tf.train.run import train_run

    runs = tmp_path / "table4"
    # A half-done row: MSE-Edge trained for 2 of the 3 steps the table asks.
    spec = table_plan.load_table("table4")
    edge = table_plan.row_config(spec["rows"][2], overrides={"crop_size": 32, "batch_size": 8,
                                                            "depth": 1, "no_jit": True})
    train_run(edge, str(tiny_set), str(runs / "MSE-Edge"), steps=2, tensorboard=False,
              progress=False, log=None)
    assert main(["table", "table4", "-o", str(runs), "--data", str(tiny_set), "--steps", "3",
                 *TINY]) == 0
    printed = capsys.readouterr().out
    assert "MSE-VGG" in printed and "downloads nothing" in printed

    rows = list(csv.DictReader((runs / "table.csv").open()))
    assert [r["id"] for r in rows] == ["MSE", "MSE-VGG", "MSE-Edge"]
    assert rows[1]["status"].startswith("skipped") and rows[1]["psnr"] == ""
    for r in (rows[0], rows[2]):
        assert r["status"] == "done" and int(r["steps"]) == 3 and 5 < float(r["psnr"]) < 60
        assert float(r["y_psnr"]) > 0 and float(r["train_seconds"]) > 0
        summary = json.loads((runs / r["id"] / "evaluation" / "summary.json").read_text())
        assert {"authors", "y", "rgb"} <= set(summary)
        assert float(r["psnr"]) == pytest.approx(summary["authors"]["psnr"], abs=1e-5)
    # The half-done row was continued, not restarted: two sessions, 2 then 3 steps.
    sessions = json.loads((runs / "MSE-Edge" / "run.json").read_text())["sessions"]
    assert (sessions[-1]["from_step"], sessions[-1]["to_step"]) == (2, 3)

    md = (runs / "table.md").read_text()
    assert "| MSE + Edge (fixed 1e-2) | ModelShallowNewEdgeFixed |" in md
    assert "rainy input" in md and "skipped" in md and "Quick-run" not in md
    for name in ("fig8_psnr_histogram.png", "fig9_ssim_boxplot.png", "grid.png"):
        with Image.open(runs / name) as im:
            assert im.format == "PNG" and im.size[0] > 200

    # Run again: nothing is trained or scored again.
    mtimes = {p: p.stat().st_mtime for p in runs.rglob("*") if p.name in ("model.keras", "summary.json")}
    plan = table_plan.plan_table(spec, str(runs), overrides={"crop_size": 32, "batch_size": 8,
                                                            "depth": 1, "no_jit": True})
    assert [state for _, _, state, _ in plan] == ["evaluated", "skipped", "evaluated"]
    # (0.1's --runs still names the runs folder)
    assert main(["table", "table4", "--runs", str(runs), "--data", str(tiny_set), "--steps", "3",
                 *TINY]) == 0
    assert mtimes == {p: p.stat().st_mtime for p in mtimes}
    # Other settings on the same runs folder: refused with the differing fields, nothing changed.
    changed = [a if a != "32" else "48" for a in TINY[:2]] + TINY[2:]
    assert main(["table", "table4", "-o", str(runs), "--data", str(tiny_set), "--steps", "3",
                 *changed]) == 1
    err = capsys.readouterr().err
    assert "different configuration" in err and "train.crop_size" in err and "Traceback" not in err
    assert mtimes == {p: p.stat().st_mtime for p in mtimes}


def test_quick_table_says_so_and_checks_every_model_beats_the_input(tiny_set, tmp_path):
    """Two steps leave a fresh network below the rainy input (measured: 1.0 dB below on Y):
    the table must say so. Then the same row's scores made better than the input's: the table
    must say every model improves."""
    runs = tmp_path / "quick"

    def run_table():
        table_run.run_table(table_plan.subset("table1", ["Lp"]), str(runs), str(tiny_set),
                            quick=True, steps=2, overrides={"crop_size": 32, "batch_size": 8,
                                                            "depth": 1, "no_jit": True},
                            eval_crop_size=32, grid_images=1, progress=False,
                            message=lambda m: None)
        return (runs / "table.md").read_text(), next(csv.DictReader((runs / "table.csv").open()))

    md, row = run_table()
    assert "Quick-run numbers, not the paper's setting" in md
    path = runs / "Lp" / "evaluation" / "summary.json"
    summary = json.loads(path.read_text())
    for protocol in ("y", "rgb"):
        assert summary[protocol]["psnr"] < summary[protocol]["input_psnr"], summary
    assert row["beats_input"] == "False"
    assert "Not every model improves on the rainy input: Lp does not." in md
    assert "All 1 trained models improve" not in md
    for protocol in ("authors", "y", "rgb"):
        summary[protocol]["psnr"] = summary[protocol]["input_psnr"] + 1.0
    path.write_text(json.dumps(summary))
    md, row = run_table()
    assert row["beats_input"] == "True"
    assert "All 1 trained models improve" in md and "Not every model improves" not in md


def test_beating_the_input_is_judged_where_the_input_score_is_finite():
    summary = {"authors": {"psnr": 30.0, "input_psnr": "inf"},  # rain-free small crops
               "y": {"psnr": 31.0, "input_psnr": 26.0}, "rgb": {"psnr": 29.0, "input_psnr": 25.0}}
    assert tabulate.beats_input(summary) is True
    summary["rgb"]["psnr"] = 24.0
    assert tabulate.beats_input(summary) is False
    assert tabulate.beats_input({"authors": {"psnr": 30.0, "input_psnr": "inf"}}) is False


def test_one_table_runner_per_runs_folder(tiny_set, tmp_path):
    import os
    import subprocess

    from menet_tf.errors import MenetError

    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".table.lock").write_text(str(os.getpid()))  # a live runner holds the folder
    with pytest.raises(MenetError, match="in use by another `menet-tf table`"):
        table_run.run_table("table1", str(runs), str(tiny_set))
    assert sorted(p.name for p in runs.iterdir()) == [".table.lock"]  # nothing trained
    gone = subprocess.Popen(["true"])
    gone.wait()
    (runs / ".table.lock").write_text(str(gone.pid))  # its runner died: the lock is stale
    with table_run.RunsLock(str(runs)):
        assert (runs / ".table.lock").read_text() == str(os.getpid())
    assert not (runs / ".table.lock").exists()


@pytest.mark.slow  # a training subprocess, stopped by a real signal
def test_table_stopped_by_sigterm_keeps_the_trained_steps_and_writes_no_table(tiny_set, tmp_path):
    """SIGTERM while a row trains (issue 14, point 6): the row's state is saved at the step it
    reached, the command exits 143 with no traceback, and no table is written; the same command
    then continues that row instead of starting it over."""
    import signal
    import subprocess
    import sys
    import time

    runs = tmp_path / "table4"
    command = [sys.executable, "-m", "menet_tf", "table", "table4", "-o", str(runs), "--data",
               str(tiny_set), "--rows", "MSE", "--steps", "400", *TINY]
    env = {k: v for k, v in os.environ.items() if k != "MENET_TF_VERBOSE"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    seen, deadline = "", time.time() + 240
    while "training " not in seen and time.time() < deadline:  # the row's training began
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    time.sleep(2.0)  # a few steps in
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 143, seen + stdout + stderr
    assert "Traceback" not in seen + stdout + stderr
    assert "interrupted" in seen + stdout + stderr
    assert not (runs / "table.md").exists() and not (runs / "table.csv").exists()
    from menet_tf.train.state import read_state_header

    saved = read_state_header(str(runs / "MSE" / "state.npz"))["global_step"]
    assert 0 < saved < 400
    record = json.loads((runs / "MSE" / "run.json").read_text())
    assert record["status"] == "interrupted" and record["sessions"][-1]["to_step"] == saved
