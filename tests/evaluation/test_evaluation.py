"""menet_tf.evaluation.protocols and .scoring: the metrics against independent values, and
`menet-tf evaluate` end to end.

The Y conversion and SSIM are pinned against scikit-image with MATLAB-style settings and against
values worked out by hand; the authors' protocol must give what `menet-tf train` reported.
"""
import csv
import json
import math
import os

import numpy as np
import pytest

from menet_tf.evaluation.protocols import psnr, rgb_to_y, ssim, whole_image_scores
from menet_tf.model.metrics import gaussian_1d as gaussian_window
from menet_tf.evaluation.scoring import format_summary, write_results


def _images(seed=0, shape=(40, 52, 3)):
    rng = np.random.default_rng(seed)
    clean = rng.integers(0, 256, shape).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 12, shape), 0, 255).astype(np.uint8)
    return clean, noisy


# ---- metrics ---------------------------------------------------------------------------------

def test_y_is_matlab_rgb2ycbcr_on_known_colours():
    # MATLAB: rgb2ycbcr(uint8([255 0 0])) -> 81, green -> 145, blue -> 41, white 235, black 16.
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]],
                       np.uint8)
    np.testing.assert_array_equal(rgb_to_y(colours), [[81, 145, 41, 235, 16]])
    # Float input is not rounded: 16 + 65.481 exactly.
    assert rgb_to_y(np.array([255.0, 0, 0])) == pytest.approx(81.481)


def test_y_matches_scikit_image_rgb2ycbcr():
    from skimage.color import rgb2ycbcr

    clean, _ = _images()
    expected = rgb2ycbcr(clean.astype(np.float64) / 255.0)[..., 0]
    np.testing.assert_allclose(rgb_to_y(clean.astype(np.float64)), expected, atol=1e-9)
    # uint8 input: MATLAB's rounded Y, within half a level of the exact one.
    assert np.max(np.abs(rgb_to_y(clean) - expected)) <= 0.5 + 1e-9
    assert np.all(rgb_to_y(clean) == np.round(rgb_to_y(clean)))


def test_gaussian_window_is_fspecial():
    g = gaussian_window(11, 1.5)
    assert g.sum() == pytest.approx(1.0) and len(g) == 11
    # fspecial('gaussian', 11, 1.5) centre value is 0.0707 (outer product of g with itself).
    assert (g[5] * g[5]) == pytest.approx(0.07076, abs=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image_matlab_style(channels):
    from skimage.metrics import structural_similarity

    clean, noisy = _images(seed=channels)
    if channels == 1:
        clean, noisy = rgb_to_y(clean), rgb_to_y(noisy)
        kw = {}
    else:
        kw = {"channel_axis": -1}
    expected = structural_similarity(clean.astype(np.float64), noisy.astype(np.float64),
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255, **kw)
    assert ssim(clean, noisy) == pytest.approx(expected, abs=1e-10)
    assert 0.2 < expected < 0.99  # a real test: the images are neither equal nor unrelated


@pytest.mark.parametrize("shape", [(11, 11), (31, 33, 3), (64, 96, 3), (70, 41)])
def test_whole_image_ssim_ignores_its_padding(shape):
    """The compiled whole-image SSIM pads to a multiple of 32: its padding never counts, at
    sizes just under, on and past the multiple, down to one window."""
    from skimage.metrics import structural_similarity

    clean, noisy = _images(seed=len(shape), shape=shape)
    kw = {"channel_axis": -1} if len(shape) == 3 else {}
    expected = structural_similarity(clean.astype(np.float64), noisy.astype(np.float64),
                                     gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255, **kw)
    assert ssim(clean, noisy) == pytest.approx(expected, abs=1e-12)


def test_several_outputs_and_protocols_scored_in_one_pass_as_alone():
    """evaluate scores the output and the rainy input under Y and RGB in one SSIM call: each
    score must be the one scikit-image gives that image and protocol alone."""
    from skimage.metrics import structural_similarity

    from menet_tf.evaluation.protocols import score_whole_images

    clean, noisy = _images(seed=7, shape=(45, 70, 3))
    _, noisier = _images(seed=8, shape=(45, 70, 3))
    scores = score_whole_images([noisy, noisier.astype(np.float32)], clean, ["y", "rgb"], 2)

    def expected(image, protocol):
        a, b = (rgb_to_y(image), rgb_to_y(clean)) if protocol == "y" else (image, clean)
        a, b = a[2:-2, 2:-2].astype(np.float64), b[2:-2, 2:-2].astype(np.float64)
        kw = {"channel_axis": -1} if protocol == "rgb" else {}
        return psnr(a, b), structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                                 use_sample_covariance=False, data_range=255,
                                                 **kw)

    for protocol in ("y", "rgb"):
        for got, image in zip(scores[protocol], (noisy, noisier)):
            assert got == pytest.approx(expected(image, protocol), abs=1e-12)
    assert scores["y"][0] != scores["y"][1] and scores["y"][0] != scores["rgb"][0]


def test_whole_images_of_one_padded_size_compile_once():
    from menet_tf.model.metrics import _compiled_image_ssim

    compiled = _compiled_image_ssim(255.0)
    before = compiled.experimental_get_tracing_count()
    for shape in [(300, 330, 3), (310, 321, 3), (320, 352, 3)]:  # all pad to 320x352
        ssim(*_images(shape=shape))
    assert compiled.experimental_get_tracing_count() - before <= 1


def test_ssim_rgb_matches_tf_image_ssim():
    import tensorflow as tf

    clean, noisy = _images(seed=5)
    expected = float(tf.image.ssim(tf.constant(noisy, tf.float32), tf.constant(clean, tf.float32),
                                   max_val=255.0))
    assert ssim(noisy, clean) == pytest.approx(expected, abs=1e-4)


def test_psnr_hand_values_and_identical_images():
    a = np.zeros((8, 8, 3))
    assert psnr(a, a + 10) == pytest.approx(10 * math.log10(255 ** 2 / 100))  # 28.1308 dB
    assert psnr(a, a) == math.inf
    clean, _ = _images()
    assert ssim(clean, clean) == pytest.approx(1.0)
    for protocol in ("y", "rgb"):
        p, s = whole_image_scores(clean.astype(np.float32), clean, protocol)
        assert p == math.inf and s == pytest.approx(1.0)


def test_whole_image_scores_round_output_and_crop_border():
    clean, noisy = _images(seed=3)
    # A float output is scored as its saved 8-bit image.
    jitter = noisy.astype(np.float32) + 0.3
    assert whole_image_scores(jitter, clean, "y") == whole_image_scores(noisy, clean, "y")
    # crop-border drops pixels on every side of Y.
    y_out, y_clean = rgb_to_y(noisy)[4:-4, 4:-4], rgb_to_y(clean)[4:-4, 4:-4]
    assert whole_image_scores(noisy, clean, "y", border=4) == pytest.approx(
        (psnr(y_out, y_clean), ssim(y_out, y_clean)))
    with pytest.raises(ValueError, match="crop-border"):
        whole_image_scores(noisy, clean, "y", border=30)
    # Y scores above RGB for the same output (the ~1.5 dB gap of the README).
    assert whole_image_scores(noisy, clean, "y")[0] > whole_image_scores(noisy, clean, "rgb")[0]


def test_infinite_psnr_is_written_and_printed_as_inf(tmp_path):
    summary = {"model": "m", "data": "d", "images": 1,
               "y": {"psnr": math.inf, "ssim": 1.0, "input_psnr": 20.0, "input_ssim": 0.5}}
    rows = [{"name": "a.png", "height": 2, "width": 2, "y_psnr": math.inf, "y_ssim": 1.0}]
    write_results(tmp_path, summary, rows)
    data = json.loads((tmp_path / "summary.json").read_text())  # valid JSON, no bare Infinity
    assert data["y"]["psnr"] == "inf"
    assert next(csv.DictReader((tmp_path / "metrics.csv").open()))["y_psnr"] == "inf"
    assert "inf" in format_summary(summary)


def test_evaluate_takes_the_model_as_source_and_the_old_model_flag_as_a_name(capsys):
    from menet_tf.cli.evaluate import model_and_name
    from menet_tf.cli.main import build_parser
    from menet_tf.errors import MenetError

    def parse(*argv):
        return model_and_name(build_parser().parse_args(["evaluate", *argv, "--data", "D",
                                                         "-o", "O"]))

    assert parse("runs/gb") == ("runs/gb", None)
    assert parse("--model", "runs/gb", "--model-name", "MENET-GB") == ("runs/gb", "MENET-GB")
    assert "deprecated" not in capsys.readouterr().err
    # 0.1: --model was the released name; still read so for one release, with a warning.
    assert parse("ckpt/model.final-100", "--model", "MENET-GB") == ("ckpt/model.final-100",
                                                                    "MENET-GB")
    assert "--model NAME is deprecated" in capsys.readouterr().err
    with pytest.raises(MenetError, match="no model given"):
        parse()
    with pytest.raises(MenetError, match="two models"):
        parse("runs/a", "--model", "runs/b")


# ---- evaluate end to end ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny model trained by `menet-tf train` on a tiny synthetic set (3 test images, so the
    authors' protocol has a partial last batch: 30 crops in batches of 8)."""
    from menet_tf.cli.main import main
    from menet_tf.data import synthesize

    root = tmp_path_factory.mktemp("tiny")
    data = root / "data"
    synthesize(str(data), preset="light", seed=1, count=4, test_count=3, size="72x56",
               progress=False)
    run = root / "run"
    assert main(["train", "--config", "ModelShallowNewEdgeGradBalance", "--data", str(data),
                 "--epochs", "1", "--crop-size", "32", "--batch-size", "8", "--depth", "1",
                 "--no-jit", "--out", str(run)]) == 0
    return data, run


def _oracle_pairs(data):
    """(rainy, clean) paths of a synthesized test set, paired by name here, in name order."""
    rainy = sorted((data / "test").glob("rain-*.png"))
    return [(r, r.with_name("no" + r.name)) for r in rainy]


def test_authors_protocol_equals_train_final_validation(tiny_run):
    """evaluate's figure is train's final validation, and both are what an independent
    scoring (tests/protocol_oracle.py: NumPy crops, scikit-image) gives the model's outputs."""
    import protocol_oracle
    from menet_tf.evaluation.scoring import evaluate
    from menet_tf.infer.load import load_derainer

    data, run = tiny_run
    reported = json.loads((run / "eval.json").read_text())
    summary = evaluate(str(run), str(data), None, protocols=("authors",), crop_size=32,
                       batch_size=8, progress=False)
    oracle = protocol_oracle.authors_protocol(load_derainer(str(run)).predict,
                                              _oracle_pairs(data), crop_size=32, batch_size=8)
    assert summary["authors"]["crops"] == 30
    # Measured against the oracle (this test, CPU): PSNR 5.4e-7 dB, SSIM 1.6e-8.
    for key, tolerance in (("psnr", 2e-6), ("input_psnr", 2e-6), ("ssim", 6e-8),
                           ("input_ssim", 6e-8)):
        assert summary["authors"][key] == pytest.approx(oracle[key], abs=tolerance), key
    assert summary["authors"]["psnr"] == pytest.approx(reported["psnr"], abs=1e-4)
    assert summary["authors"]["ssim"] == pytest.approx(reported["ssim"], abs=1e-6)


def test_evaluate_cli_writes_every_protocol(tiny_run, tmp_path, capsys):
    from menet_tf.cli.main import main

    data, run = tiny_run
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "model.keras"), "--data", str(data), "-o", str(out),
                 "--crop-size", "32", "--batch-size", "8", "--save-images", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "authors" in printed and "rgb" in printed
    summary = json.loads((out / "summary.json").read_text())
    # The whole-image protocols recomputed independently (tests/protocol_oracle.py: 8-bit
    # outputs, MATLAB's Y, scikit-image), from the model's own float outputs.
    import protocol_oracle
    from menet_tf.infer.load import load_derainer

    derainer = load_derainer(str(run / "model.keras"))
    images = [(protocol_oracle.read(r), protocol_oracle.read(c)) for r, c in _oracle_pairs(data)]
    for protocol in ("y", "rgb"):
        entry = summary[protocol]
        for prefix, image_of in (("", derainer.derain), ("input_", lambda r: r)):
            scores = [protocol_oracle.whole_image_scores(image_of(r.astype(np.float32)), c,
                                                         protocol) for r, c in images]
            want_psnr, want_ssim = np.mean(scores, axis=0)
            # Measured (this test, CPU): equal to 2e-16 (the same 8-bit outputs).
            assert entry[prefix + "psnr"] == pytest.approx(want_psnr, abs=1e-6), (protocol, prefix)
            assert entry[prefix + "ssim"] == pytest.approx(want_ssim, abs=1e-8), (protocol, prefix)
    assert summary["authors"]["description"] and summary["y"]["description"]
    assert summary["seconds_per_image"] > 0 and summary["device"] and summary["images"] == 3
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 3
    for protocol in ("authors", "y", "rgb"):
        for key in ("psnr", "ssim", "input_psnr", "input_ssim"):
            values = [float(r[f"{protocol}_{key}"]) for r in rows]
            # The summary's whole-image means are the means of the per-image rows.
            if protocol != "authors":
                assert np.mean(values) == pytest.approx(summary[protocol][key], abs=1e-5)
    # Per-image Y scores recomputed independently from the saved output image.
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    saved = sorted(os.listdir(out / "images"))
    assert len(saved) == 1
    output = np.asarray(Image.open(out / "images" / saved[0]))
    clean_path = sorted((data / "test").glob("norain-*.png"))
    first = rows[0]["name"]
    clean = np.asarray(Image.open(data / "test" / first.replace("rain-", "norain-")).convert("RGB"))
    assert clean_path and output.shape == clean.shape
    expected = peak_signal_noise_ratio(rgb_to_y(clean), rgb_to_y(output), data_range=255)
    assert float(rows[0]["y_psnr"]) == pytest.approx(expected, abs=1e-4)


def test_images_smaller_than_the_crop_are_left_out_of_the_authors_protocol(tiny_run):
    from menet_tf.errors import DataError
    from menet_tf.evaluation.scoring import EvaluationWarning, evaluate

    data, run = tiny_run
    # 72x56 images are smaller than a 64x64 crop: authors' protocol impossible, said plainly.
    with pytest.raises(DataError, match="smaller than the 64x64 crop"):
        evaluate(str(run), str(data), None, crop_size=64, progress=False)
    # Whole-image protocols still score them.
    summary = evaluate(str(run), str(data), None, protocols=("y",), progress=False)
    assert summary["y"]["psnr"] > 0
    with pytest.warns(EvaluationWarning, match="left out"):
        mixed = _with_big_image(data, run)
    assert len(mixed["authors"]["left_out"]) == 3 and mixed["authors"]["crops"] == 10


def _with_big_image(data, run):
    """The tiny test set plus one 96x80 pair, scored with 64-pixel crops."""
    import shutil

    from PIL import Image

    from menet_tf.evaluation.scoring import evaluate

    folder = data.parent / "mixed"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(data / "test", folder)
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (80, 96, 3)).astype(np.uint8)
    Image.fromarray(clean).save(folder / "norain-99.png")
    Image.fromarray(np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8)).save(folder / "rain-99.png")
    return evaluate(str(run), str(folder), None, crop_size=64, batch_size=20, progress=False)


def test_test_set_without_clean_images_is_refused(tiny_run, tmp_path, capsys):
    import shutil

    from menet_tf.cli.main import main

    data, run = tiny_run
    rainy_only = tmp_path / "rainy_only"
    rainy_only.mkdir()
    for f in (data / "test").glob("rain-*.png"):
        shutil.copy(f, rainy_only / f.name)
    assert main(["evaluate", str(run), "--data", str(rainy_only), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(rainy_only) in err and "clean" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_model_that_is_not_a_menet_model_is_refused(tiny_run, tmp_path, capsys):
    from menet_tf.cli.main import main

    data, _ = tiny_run
    bogus = tmp_path / "bogus.keras"
    bogus.write_bytes(b"not a zip file")
    assert main(["evaluate", str(bogus), "--data", str(data), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert str(bogus) in err and "Traceback" not in err


def test_a_failed_write_keeps_the_previous_results(tmp_path):
    from menet_tf.errors import MenetError

    summary = {"model": "m", "data": "d", "images": 1,
               "rgb": {"psnr": 30.0, "ssim": 0.9, "input_psnr": 20.0, "input_ssim": 0.5}}
    rows = [{"name": "a.png", "height": 2, "width": 2, "rgb_psnr": 30.0}]
    write_results(tmp_path, summary, rows)
    before = (tmp_path / "summary.json").read_text()
    (tmp_path / ".summary.json.partial").mkdir()  # the temporary file cannot be written
    summary["rgb"]["psnr"] = 31.0
    with pytest.raises(MenetError, match="summary.json: could not write.*previous version is kept"):
        write_results(tmp_path, summary, rows)
    assert (tmp_path / "summary.json").read_text() == before
    assert next(csv.DictReader((tmp_path / "metrics.csv").open()))["rgb_psnr"] == "30.000000"


# ---- which split is scored (issue 14, point 7) -------------------------------------------------

def _root_with_splits(tmp_path, data, names):
    """A data root holding ``names`` (of train, val, test): train/ and test/ from the tiny set,
    val/ a different set of 2 pairs, so the image count tells which folder was scored."""
    import shutil

    from data_helpers import make_jorder

    root = tmp_path / "root"
    for name in names:
        if name == "val":
            make_jorder(root / "val", n=2, sizes=[(56, 72)] * 2)
        else:
            shutil.copytree(data / name, root / name)
    return root


def test_evaluate_on_a_root_with_train_val_and_test_scores_test_and_says_so(tiny_run, tmp_path,
                                                                            capsys):
    from menet_tf.cli.main import main

    data, run = tiny_run
    root = _root_with_splits(tmp_path, data, ("train", "val", "test"))
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "model.keras"), "--data", str(root), "-o", str(out),
                 "--protocol", "rgb", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and summary["data"] == str((root / "test").resolve())
    assert summary["split"]["folder"] == "test" and summary["split"]["role"] == "test"
    assert "scored: test/" in capsys.readouterr().out


def test_a_root_without_test_has_its_validation_split_scored_under_its_own_name(tiny_run,
                                                                               tmp_path, capsys):
    from menet_tf.cli.main import main

    data, run = tiny_run
    root = _root_with_splits(tmp_path, data, ("train", "val"))
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "model.keras"), "--data", str(root), "-o", str(out),
                 "--protocol", "rgb", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2 and summary["split"]["folder"] == "val"
    assert summary["split"]["role"] == "validation"
    assert "val/ (the validation split" in capsys.readouterr().out


def test_table_names_the_split_it_scores(tiny_run, tmp_path):
    from menet_tf.evaluation.table_plan import data_splits
    from menet_tf.evaluation.tabulate import _preamble

    data, _ = tiny_run
    both = _root_with_splits(tmp_path / "a", data, ("train", "val", "test"))
    train, test, described = data_splits(str(both), None, "the table")
    assert (train, test, described) == (str(both / "train"), str(both / "test"), "test/")
    only_val = _root_with_splits(tmp_path / "b", data, ("train", "val"))
    _, test, described = data_splits(str(only_val), None, "the table")
    assert test == str(only_val / "val") and described.startswith("val/ (the validation split")
    meta = {"spec": {"title": "T"}, "dataset": None, "quick": False, "synthetic": False,
            "train": train, "test": test, "test_split": described}
    assert "the validation split" in "\n".join(_preamble(meta))


# ---- interrupts (issue 14, point 6) ------------------------------------------------------------

@pytest.mark.parametrize("signum, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_evaluate_stopped_by_a_signal_leaves_the_previous_results_whole(tiny_run, tmp_path,
                                                                        signum, code):
    """A real signal in the middle of scoring: one line, the shell's exit code, and the previous
    metrics.csv and summary.json exactly as they were (no half-written or temporary file)."""
    import signal
    import subprocess
    import sys
    import time

    from data_helpers import make_jorder

    _, run = tiny_run
    data = make_jorder(tmp_path / "many", n=120, sizes=[(160, 160)] * 120, streaks=False)
    out = tmp_path / "eval"
    out.mkdir()
    before = {"metrics.csv": "name\nold\n", "summary.json": '{"old": true}\n'}
    for name, text in before.items():
        (out / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "MENET_TF_VERBOSE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "menet_tf", "evaluate", str(run / "model.keras"), "--data", data,
         "-o", str(out), "--protocol", "y", "rgb"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    seen = ""
    deadline = time.time() + 240
    while "whole images" not in seen and time.time() < deadline:  # the bar: scoring began
        char = proc.stderr.read(1)
        if not char:
            break
        seen += char
    proc.send_signal(getattr(signal, signum))
    stdout, rest = proc.communicate(timeout=120)
    stderr = seen + rest
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert f"interrupted by {signum}" in stderr
    assert {p.name: p.read_text() for p in out.iterdir()} == before
