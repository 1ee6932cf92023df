"""menet-tf derain: files, folders, globs, formats, EXIF, odd modes, failures, outputs."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from menet_tf.cli import main as cli
from menet_tf.infer import photos
from menet_tf.data.images import DataWarning
from menet_tf.errors import DataError, MenetError
from menet_tf.infer.batch import derain_files
from menet_tf.infer.derainer import Derainer
from menet_tf.infer.load import load_model
from menet_tf.model.network import MENET

from hostile_helpers import open_scratch, own_lines, run_cli


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small saved model (depth 1, no attention) as a run folder."""
    tf.random.set_seed(0)
    model = MENET(depth=1).ensure_built()
    rng = np.random.default_rng(0)
    for v in model.variables:
        if v.path.endswith("moving_mean"):
            v.assign(rng.normal(0, 0.1, v.shape).astype("float32"))
    folder = tmp_path_factory.mktemp("run")
    model.save(folder / "model.keras")
    return folder


@pytest.fixture(scope="module")
def derainer(model_dir):
    return Derainer(load_model(model_dir))


def _photo(seed, h, w):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


def _run(*argv):
    return cli.main(["derain", "--quiet", *map(str, argv)])


def test_folder_of_mixed_formats_keeps_names_and_sizes(tmp_path, model_dir, derainer):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    a = _photo(0, 33, 47)
    _save(src / "a.jpg", a, quality=98)
    _save(src / "b.bmp", _photo(1, 40, 40))
    _save(src / "c.webp", _photo(2, 21, 18), lossless=True)
    _save(src / "d.tiff", _photo(3, 16, 16))
    _save(src / "sub" / "e.png", _photo(4, 20, 24))
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--model", model_dir) == 0
    names = sorted(os.listdir(out))
    assert names == ["a.png", "b.png", "c.png", "d.png", "derain.json"]  # no recursion
    for name, shape in [("a.png", (33, 47, 3)), ("c.png", (21, 18, 3))]:
        arr = np.asarray(Image.open(out / name))
        assert arr.shape == shape and arr.dtype == np.uint8
    # The written file is the pad-mode output, rounded to 8 bits.
    expected = derainer.derain(np.asarray(Image.open(src / "a.jpg")))
    written = np.asarray(Image.open(out / "a.png")).astype(np.float32)
    assert np.abs(written - expected).max() <= 0.5 + 1e-3
    summary = json.loads((out / "derain.json").read_text())
    assert summary["images"] == 4 and summary["failed"] == [] and summary["seconds_per_megapixel"] > 0

    assert _run(src, "-o", tmp_path / "rec", "--model", model_dir, "--recursive") == 0
    assert (tmp_path / "rec" / "sub" / "e.png").exists()


def test_never_overwrites_without_force(tmp_path, model_dir):
    src = _save(tmp_path / "x.png", _photo(0, 16, 16))
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--model", model_dir) == 0
    before = (out / "x.png").stat().st_mtime_ns
    assert _run(src, "-o", out, "--model", model_dir) == 1  # refused, nothing touched
    assert (out / "x.png").stat().st_mtime_ns == before
    assert _run(src, "-o", out, "--model", model_dir, "--force") == 0


def test_corrupt_file_is_reported_and_others_processed(tmp_path, model_dir, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _save(src / "good.png", _photo(0, 24, 24))
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    data = (src / "good.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--model", model_dir) == 1
    assert (out / "good.png").exists() and not (out / "bad.png").exists()
    printed = capsys.readouterr().out
    assert "bad.png" in printed and "truncated.png" in printed and "2 file(s) failed" in printed


def test_exif_orientation_is_honoured(tmp_path):
    arr = _photo(0, 20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=100)
    upright = photos.read_photo(path)
    assert upright.shape == (30, 20, 3) and photos.photo_size(path) == (30, 20)


@pytest.mark.parametrize("mode,make", [
    ("L", lambda a: Image.fromarray(a[..., 0], "L")),
    ("RGBA", lambda a: Image.fromarray(np.dstack([a, a[..., :1]]), "RGBA")),
    ("P", lambda a: Image.fromarray(a).convert("P")),
    ("I;16", lambda a: Image.fromarray(a[..., 0].astype(np.uint16) * 257)),
])
def test_other_modes_are_converted_with_a_warning(tmp_path, mode, make):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    make(_photo(0, 12, 14)).save(path)
    with pytest.warns(DataWarning, match=path.name):
        arr = photos.read_photo(path)
    assert arr.shape == (12, 14, 3) and arr.dtype == np.uint8


def test_sixteen_bit_values_are_scaled_not_truncated(tmp_path):
    gray = np.full((8, 8), 65535 // 2, np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(gray).save(path)
    with pytest.warns(DataWarning):
        arr = photos.read_photo(path)
    assert abs(int(arr[0, 0, 0]) - 127) <= 1


def test_compare_and_single_output_file_and_format(tmp_path, model_dir):
    src = _save(tmp_path / "rainy.png", _photo(0, 20, 28))
    assert _run(src, "-o", tmp_path / "one.jpg", "--model", model_dir, "--compare") == 0
    assert Image.open(tmp_path / "one.jpg").format == "JPEG"
    side = np.asarray(Image.open(tmp_path / "one_compare.jpg"))
    assert side.shape == (20, 28 * 2 + 8, 3)
    assert _run(src, "-o", tmp_path / "w", "--model", model_dir, "--format", "webp") == 0
    assert Image.open(tmp_path / "w" / "rainy.webp").format == "WEBP"


def test_globs_and_missing_inputs(tmp_path, model_dir):
    for i in range(3):
        _save(tmp_path / f"p{i}.png", _photo(i, 16, 20))
    assert _run(str(tmp_path / "p*.png"), "-o", tmp_path / "g", "--model", model_dir) == 0
    assert sorted(os.listdir(tmp_path / "g")) == ["derain.json", "p0.png", "p1.png", "p2.png"]
    with pytest.raises(DataError, match="nothing_here"):
        photos.list_photos([tmp_path / "nothing_here.png"])
    with pytest.raises(DataError, match="no file matches"):
        photos.list_photos([str(tmp_path / "zz*.png")])


def test_same_size_images_are_batched(tmp_path, derainer):
    for i in range(5):
        _save(tmp_path / f"s{i}.png", _photo(i, 16, 20))
    _save(tmp_path / "other.png", _photo(9, 24, 20))
    sizes = []
    original = derainer.derain

    def spy(images, **kw):
        sizes.append(images.shape)
        return original(images, **kw)

    derainer.derain = spy
    try:
        summary = derain_files(derainer, [tmp_path], tmp_path / "o", batch_size=4,
                               progress=False)
    finally:
        del derainer.derain
    assert sorted(sizes) == sorted([(4, 16, 20, 3), (1, 16, 20, 3), (1, 24, 20, 3)])
    assert len(summary["written"]) == 6


@pytest.mark.parametrize("mode", ["pad", "resize", "tile"])
def test_every_mode_keeps_the_size(tmp_path, model_dir, mode):
    src = _save(tmp_path / "odd.png", _photo(0, 37, 29))
    out = tmp_path / mode
    extra = ["--tile-size", "32", "--overlap", "16"] if mode == "tile" else []
    assert _run(src, "-o", out, "--model", model_dir, "--mode", mode, *extra) == 0
    assert np.asarray(Image.open(out / "odd.png")).shape == (37, 29, 3)


def test_bad_arguments_are_one_line_errors(tmp_path, model_dir, capsys):
    src = _save(tmp_path / "x.png", _photo(0, 16, 16))
    assert _run(src, "-o", tmp_path / "o", "--model", tmp_path / "missing.keras") == 1
    assert "missing.keras" in capsys.readouterr().err
    assert _run(src, "-o", tmp_path / "o", "--model", model_dir, "--overlap", "600") == 1
    with pytest.raises(MenetError):
        derain_files(Derainer(load_model(model_dir)), [tmp_path / "empty_dir_missing"],
                     tmp_path / "o", progress=False)


def _rainy_and_clean(folder, clean_folder, name, clean_name, seed, h=20, w=24):
    """A "rainy" photo and its "clean" twin: the clean image plus noise, so PSNR is finite."""
    clean = _photo(seed, h, w)
    noise = np.random.default_rng(seed + 100).integers(-20, 21, clean.shape)
    rainy = np.clip(clean.astype(int) + noise, 0, 255).astype(np.uint8)
    _save(clean_folder / clean_name, clean)
    return _save(folder / name, rainy, **({"quality": 95} if name.endswith(".jpg") else {}))


def test_clean_dir_scores_are_psnr_of_the_written_outputs(tmp_path, model_dir, capsys):
    from skimage.metrics import peak_signal_noise_ratio

    def skimage_psnr(a, b):  # an oracle outside menet-tf: scikit-image, float64, all pixels
        return peak_signal_noise_ratio(b.astype(np.float64), a.astype(np.float64), data_range=255)

    src, clean_dir, out = tmp_path / "in", tmp_path / "clean", tmp_path / "out"
    src.mkdir()
    clean_dir.mkdir()
    _rainy_and_clean(src, clean_dir, "a.png", "a.png", 0)
    _rainy_and_clean(src, clean_dir, "b.jpg", "b.png", 1)  # a JPEG input, a PNG clean twin
    _save(src / "c.png", _photo(2, 20, 24))                # no clean twin: not scored
    assert _run(src, "-o", out, "--model", model_dir, "--format", "jpg",
                "--clean-dir", clean_dir) == 0
    psnr = json.loads((out / "derain.json").read_text())["psnr"]
    scored = {os.path.basename(i["file"]): i for i in psnr["images"]}
    assert sorted(scored) == ["a.png", "b.jpg"]
    printed = capsys.readouterr().out
    for name, clean_name in (("a.png", "a.png"), ("b.jpg", "b.png")):
        image = scored[name]
        clean = np.asarray(Image.open(clean_dir / clean_name))
        output = np.asarray(Image.open(out / (os.path.splitext(name)[0] + ".jpg")))
        assert image["clean"] == str(clean_dir / clean_name)
        assert image["output_psnr"] == pytest.approx(skimage_psnr(output, clean), abs=1e-9)
        assert image["input_psnr"] == pytest.approx(
            skimage_psnr(np.asarray(Image.open(src / name)), clean), abs=1e-9)
        assert f"PSNR {image['output_psnr']:.2f} dB (rainy input {image['input_psnr']:.2f}" \
            in printed
    assert psnr["mean_output_psnr"] == pytest.approx(
        np.mean([i["output_psnr"] for i in scored.values()]), abs=1e-12)
    assert "mean of 2" in printed


def test_clean_dir_problems_are_refused_before_anything_is_written(tmp_path, model_dir, capsys):
    src, clean_dir = tmp_path / "in", tmp_path / "clean"
    src.mkdir()
    clean_dir.mkdir()
    _rainy_and_clean(src, clean_dir, "a.png", "a.png", 0)
    _save(clean_dir / "a.png", _photo(0, 20, 28))  # the clean twin has another size
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--model", model_dir, "--clean-dir", clean_dir) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.png" in err and "28x20" in err and "24x20" in err
    assert not out.exists()
    assert _run(src, "-o", out, "--model", model_dir, "--clean-dir", tmp_path / "nowhere") == 1
    assert "nowhere" in capsys.readouterr().err and not out.exists()


def test_outputs_never_overwrite_inputs_whatever_the_flags(tmp_path, model_dir, capsys):
    """Issue 14.3: derain photos/ -o photos/ --format same --force would write over them."""
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    _save(photos_dir / "a.png", _photo(1, 16, 16))
    original = (photos_dir / "a.png").read_bytes()
    for extra in ((), ("--force",)):
        assert _run(photos_dir, "-o", photos_dir, "--model", model_dir, "--format", "same",
                    *extra) == 1
        err = capsys.readouterr().err
        assert "a.png" in err and len(err.strip().splitlines()) == 1
    assert _run(photos_dir / "a.png", "-o", photos_dir / "a.png", "--model", model_dir,
                "--force") == 1
    assert (photos_dir / "a.png").read_bytes() == original
    assert not (photos_dir / "derain.json").exists()


def test_record_is_not_rewritten_without_force(tmp_path, model_dir, capsys):
    """Issue 14.3: derain.json is an output like the images: kept unless --force."""
    src = _save(tmp_path / "x.png", _photo(0, 16, 16))
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--model", model_dir) == 0
    record = (out / "derain.json").read_text()
    other = _save(tmp_path / "y.png", _photo(2, 16, 16))
    for inputs in ((src,), (src, other), (other,)):
        assert _run(*inputs, "-o", out, "--model", model_dir) == 1
        assert "derain.json" in capsys.readouterr().err
    assert (out / "derain.json").read_text() == record


def test_decompression_bomb_is_reported_like_a_broken_file(tmp_path, model_dir, capsys,
                                                           monkeypatch):
    """Issue 14.10: PIL's DecompressionBombError skipped the whole run."""
    from PIL import Image as PILImage

    src = tmp_path / "in"
    src.mkdir()
    _save(src / "good.png", _photo(0, 16, 16))
    _save(src / "huge.png", _photo(1, 64, 64))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 64x64 > 2x the limit: a bomb
    assert _run(src, "-o", tmp_path / "out", "--model", model_dir) == 1
    printed = capsys.readouterr().out
    assert "huge.png" in printed and (tmp_path / "out" / "good.png").exists()


def test_output_problems_are_one_line(tmp_path, model_dir, capsys):
    """Issue 14.10: -o under an existing file, an unwritable folder: one line, no traceback.
    The unwritable folder is tried as the user nobody when the tests run as root (CI), whom
    chmod does not stop."""
    src = _save(tmp_path / "x.png", _photo(0, 16, 16))
    (tmp_path / "afile").write_text("not a folder")
    for out in [tmp_path / "afile" / "out", tmp_path / "afile" / "out.png"]:
        assert _run(src, "-o", out, "--model", model_dir) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    with open_scratch() as scratch:
        shutil.copy(src, scratch / "x.png")
        shutil.copy(model_dir / "model.keras", scratch / "model.keras")
        locked = scratch / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        for out in (locked / "out", locked):
            status, stdout, err = run_cli(["derain", "--quiet", scratch / "x.png", "-o", out,
                                           "--model", scratch / "model.keras"], unprivileged=True)
            lines = own_lines(err)
            assert status == 1 and "Traceback" not in stdout + err, stdout + err
            assert len(lines) == 1 and "locked" in lines[0], err
        assert list(locked.iterdir()) == []


def test_out_of_memory_advises_tiles(tmp_path, model_dir, capsys, monkeypatch):
    import tensorflow as tf

    from menet_tf.infer.derainer import Derainer

    def exhausted(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(Derainer, "derain", exhausted)
    src = _save(tmp_path / "x.png", _photo(0, 16, 16))
    assert _run(src, "-o", tmp_path / "out", "--model", model_dir) == 1
    err = capsys.readouterr().err
    assert "--mode tile" in err and "--max-pixels" in err and len(err.strip().splitlines()) == 1
