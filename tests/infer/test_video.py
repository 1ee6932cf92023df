"""Video in ``menet-tf derain``: timing, rotation and sound survive; each frame is the photo
path's result within the encoder's tolerance; de-raining helps; bad inputs are one line each;
an interrupt leaves nothing under the final name; without PyAV, one line.

Clips are made here (tests/video_helpers.py) and read back with PyAV directly.
Measured on the 96x128 test clip (bundled model, fp32): the output against the photo path's
result of the same decoded frames is 35.4 dB at the default --crf 17 (mean |diff| 3.1 grey
levels), 44.7 dB at --crf 0 (what is left is yuv420p's chroma and YUV rounding), 27.9 dB at 30.
"""
import json
import os
import signal
import sys
from fractions import Fraction

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio as psnr

pytest.importorskip("av")

from menet_tf.cli.main import main  # noqa: E402
from menet_tf.infer.derainer import Derainer  # noqa: E402
from menet_tf.infer.photos import to_uint8  # noqa: E402
from menet_tf.infer.video import derain_video  # noqa: E402
import video_helpers as clips  # noqa: E402

FRAMES = 12
TOLERANCE_DB = 32.0  # output vs the photo path's result at --crf 17 (35.4 dB measured)


def _upright(frames, turns):
    return np.rot90(frames, turns, axes=(1, 2))


@pytest.fixture(scope="module")
def scene():
    clean = clips.scene(FRAMES)
    return clean, clips.rainy(clean)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, scene):
    """rainy.mp4: stored turned as a phone does (rotation 90), NTSC rate, AAC sine;
    vfr.mkv: irregular timestamps (ms), no sound."""
    clean, wet = scene
    root = tmp_path_factory.mktemp("clips")
    clips.write_clip(root / "rainy.mp4", _upright(wet, -1), rotation=90)
    pts = [0, 40, 70, 150, 160, 230, 300, 310, 400, 480, 500, 620]
    clips.write_clip(root / "vfr.mkv", wet, pts=pts, time_base=Fraction(1, 1000),
                     rate=Fraction(25), audio=False)
    return root


@pytest.fixture(scope="module")
def derainer():
    return Derainer.from_pretrained("menet-gb-rain100l")


def _run(*argv):
    """derain through the command with the model the ``derainer`` fixture is (light rain)."""
    return main(["derain", *map(str, argv), "--model", "light", "--quiet"])


@pytest.fixture(scope="module")
def default_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "derained.mp4"
    assert _run(folder / "rainy.mp4", "-o", out) == 0
    return out


def test_timing_rotation_and_sound_survive(folder, default_run):
    src, out = clips.read_clip(folder / "rainy.mp4"), clips.read_clip(default_run)
    assert len(out["pts"]) == len(src["pts"]) == FRAMES
    seconds = lambda info: [p * info["time_base"] for p in info["pts"]]  # noqa: E731
    assert seconds(out) == seconds(src)  # exact: 1001/30000 s apart
    assert out["rate"] == src["rate"] == Fraction(30000, 1001)
    assert out["duration"] == src["duration"]
    assert out["rotation"] == src["rotation"] == 90
    assert out["video_codec"] == "h264"
    (a,), (b,) = src["audio"], out["audio"]
    assert (b["codec"], b["sample_rate"], b["seconds"]) == (a["codec"], a["sample_rate"],
                                                            a["seconds"]) == ("aac", 44100,
                                                                              a["seconds"])
    assert b["packets"] == a["packets"]  # copied byte for byte, not re-encoded
    assert not [f for f in os.listdir(default_run.parent) if "partial" in f]


def test_frames_are_the_photo_result_and_beat_the_rain(folder, default_run, derainer, scene):
    clean, _ = scene
    src, out = clips.read_clip(folder / "rainy.mp4"), clips.read_clip(default_run)
    # The photo path on each decoded frame, upright (as derain does with an EXIF-rotated photo).
    photo = _upright(to_uint8(derainer.derain(_upright(src["frames"], 1))), -1)
    assert psnr(photo, out["frames"]) > TOLERANCE_DB
    truth = _upright(clean, -1)
    assert psnr(truth, out["frames"]) > psnr(truth, src["frames"]) + 3.0


def test_variable_frame_rate_kept(folder, tmp_path):
    assert _run(folder / "vfr.mkv", "-o", tmp_path, "--batch-size", 5) == 0
    src, out = clips.read_clip(folder / "vfr.mkv"), clips.read_clip(tmp_path / "vfr.mkv")
    assert out["pts"] == src["pts"] == [0, 40, 70, 150, 160, 230, 300, 310, 400, 480, 500, 620]
    assert out["duration"] == src["duration"]
    record = json.loads((tmp_path / "derain.json").read_text())
    (clip,) = record["videos"]
    assert clip["frames"] == FRAMES and clip["streams_copied"] == []
    assert clip["seconds_per_frame"] > 0 and clip["duration"] == pytest.approx(0.62, abs=0.05)


def test_colour_tags_kept(scene, tmp_path, derainer):
    """A full-range BT.709 clip comes out tagged and converted the same way (a wrong matrix or
    range would shift every colour: the photo-path comparison would fail)."""
    import av

    tags = {"colorspace": int(av.video.reformatter.Colorspace.ITU709),
            "color_range": int(av.video.reformatter.ColorRange.JPEG), "color_primaries": 1,
            "color_trc": 1}
    clean, wet = scene
    clips.write_clip(tmp_path / "hd.mp4", wet[:4], colour=tags, audio=False)
    assert _run(tmp_path / "hd.mp4", "-o", tmp_path / "out.mp4") == 0
    src, out = clips.read_clip(tmp_path / "hd.mp4"), clips.read_clip(tmp_path / "out.mp4")
    assert src["colour"] == out["colour"] == tags
    photo = to_uint8(derainer.derain(src["frames"]))
    assert psnr(photo, out["frames"]) > TOLERANCE_DB


def test_subtitles_copied_where_the_container_can(scene, tmp_path, capsys):
    clips.write_clip(tmp_path / "talk.mkv", scene[1][:4], audio=False,
                     subtitle="Rain, rain, go away")
    assert _run(tmp_path / "talk.mkv", "-o", tmp_path / "same") == 0
    assert clips.read_clip(tmp_path / "same" / "talk.mkv")["subtitles"] == [
        [b"Rain, rain, go away"]]
    assert _run(tmp_path / "talk.mkv", "-o", tmp_path / "mp4", "--format", "mp4") == 0
    assert "dropped subtitle stream #1" in capsys.readouterr().out
    out = clips.read_clip(tmp_path / "mp4" / "talk.mp4")
    assert out["subtitles"] == [] and len(out["pts"]) == 4


def test_crf_and_folder_record(folder, tmp_path, default_run, derainer):
    """--crf 30 gives a smaller, worse file; derain.json records each clip."""
    assert _run(folder / "rainy.mp4", "-o", tmp_path, "--crf", "30") == 0
    out = tmp_path / "rainy.mp4"
    assert os.path.getsize(out) < 0.7 * os.path.getsize(default_run)
    src = clips.read_clip(folder / "rainy.mp4")
    photo = _upright(to_uint8(derainer.derain(_upright(src["frames"], 1))), -1)
    low, high = clips.read_clip(out)["frames"], clips.read_clip(default_run)["frames"]
    assert psnr(photo, low) < psnr(photo, high) - 3
    (clip,) = json.loads((tmp_path / "derain.json").read_text())["videos"]
    assert (clip["frames"], clip["crf"], clip["video_codec"]) == (FRAMES, 30, "libx264")
    assert clip["fps"] == pytest.approx(30000 / 1001)
    assert clip["streams_copied"] == ["audio #1 (aac)"] and clip["rotation"] == 90


def test_webm_refuses_aac_and_goes_on(folder, tmp_path, capsys):
    """--format webm: VP9; AAC cannot go into webm unencoded: that clip is one line, the
    other clip (no sound) is still de-rained."""
    code = _run(folder / "rainy.mp4", folder / "vfr.mkv", "-o", tmp_path, "--format", "webm")
    assert code == 1
    text = capsys.readouterr().out
    assert "rainy.mp4: its audio (aac) cannot go into a webm file" in text
    assert not (tmp_path / "rainy.webm").exists()
    out = clips.read_clip(tmp_path / "vfr.webm")
    assert out["video_codec"] == "vp9" and len(out["pts"]) == FRAMES


def test_format_mkv_mixed_with_photos(folder, tmp_path, scene):
    """A folder of a photo and a clip: both de-rained, the clip into mkv with its sound."""
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(scene[1][0]).save(inputs / "photo.png")
    os.link(folder / "rainy.mp4", inputs / "rainy.mp4")
    assert _run(inputs, "-o", tmp_path / "out", "--format", "mkv") == 0
    assert (tmp_path / "out" / "photo.png").exists()
    out = clips.read_clip(tmp_path / "out" / "rainy.mkv")
    assert len(out["pts"]) == FRAMES and out["audio"][0]["codec"] == "aac"
    record = json.loads((tmp_path / "out" / "derain.json").read_text())
    assert len(record["written"]) == 1 and len(record["videos"]) == 1


@pytest.mark.slow  # bf16 traces its own graph: about 20 s on 2 cores
def test_precision_mode_and_tiles(folder, tmp_path, derainer):
    """--precision bf16 --mode tile with small tiles: every frame there, close to fp32."""
    out = tmp_path / "tiled.mp4"
    assert _run(folder / "rainy.mp4", "-o", out, "--precision", "bf16", "--mode", "tile",
                "--tile-size", "64", "--overlap", "16", "--batch-size", "3") == 0
    src, got = clips.read_clip(folder / "rainy.mp4"), clips.read_clip(out)
    assert len(got["pts"]) == FRAMES
    photo = _upright(to_uint8(derainer.derain(_upright(src["frames"], 1))), -1)
    assert psnr(photo, got["frames"]) > 28.0


def test_refusals(folder, tmp_path, default_run, capsys):
    clip = folder / "rainy.mp4"
    before = clip.read_bytes()
    assert main(["derain", str(clip), "-o", str(clip), "--force"]) == 1
    assert "is an input" in capsys.readouterr().err and clip.read_bytes() == before
    assert main(["derain", str(folder), "-o", str(folder), "--force"]) == 1  # clips in place
    assert "is an input" in capsys.readouterr().err and clip.read_bytes() == before
    target = tmp_path / "x.mp4"
    target.write_bytes(b"mine")
    assert main(["derain", str(clip), "-o", str(target)]) == 1
    assert "would overwrite" in capsys.readouterr().err and target.read_bytes() == b"mine"


def _bad_inputs(folder, root):
    import av

    (root / "notes.mp4").write_text("not a video at all\n")
    whole = (folder / "rainy.mp4").read_bytes()  # moov at the end: half a file has none
    (root / "cut.mp4").write_bytes(whole[:len(whole) // 2])
    clips.write_clip(root / "half.mp4", clips.scene(12), audio=False,
                     options={"movflags": "faststart"})  # index first: half the frames there
    whole = (root / "half.mp4").read_bytes()
    (root / "half.mp4").write_bytes(whole[:len(whole) // 2])
    with av.open(str(root / "silent.mp4"), "w") as out:  # sound only
        stream = out.add_stream("aac", rate=clips.SAMPLE_RATE)
        stream.layout = "mono"
        samples = clips.sine(0.2)
        frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = clips.SAMPLE_RATE, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    clips.write_clip(root / "odd.avi", clips.scene(3), codec="mpeg4", audio=False,
                     rate=Fraction(25))
    data = (root / "odd.avi").read_bytes()  # a FourCC no FFmpeg decoder knows
    (root / "odd.avi").write_bytes(data.replace(b"FMP4", b"QQQQ").replace(b"mp4v", b"qqqq"))


def test_bad_inputs_one_line_each_others_go_on(folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    _bad_inputs(folder, bad)
    os.link(folder / "vfr.mkv", bad / "good.mkv")
    code = _run(bad, "-o", tmp_path / "out")
    text = capsys.readouterr().out
    assert code == 1
    failed = text.split("file(s) failed:")[1].strip().splitlines()
    assert len(failed) == 5
    for name, words in [("notes.mp4", "not a readable video"), ("cut.mp4", "not a readable"),
                        ("half.mp4", "damaged or truncated"),
                        ("silent.mp4", "has no video stream"),
                        ("odd.avi", "cannot decode its video")]:
        assert any(name in line and words in line for line in failed), (name, text)
    assert len(clips.read_clip(tmp_path / "out" / "good.mkv")["pts"]) == FRAMES
    assert sorted(os.listdir(tmp_path / "out")) == ["derain.json", "good.mkv"]


class _Interrupting:
    """A Derainer whose ``at``-th batch is followed by ``signum`` (as Ctrl-C / SIGTERM would)."""

    def __init__(self, derainer, signum, at=2):
        self.derainer, self.signum, self.at, self.calls = derainer, signum, at, 0

    def warm_up(self, *size):
        self.derainer.warm_up(*size)

    def derain(self, images, **options):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return self.derainer.derain(images, **options)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_nothing_under_the_final_name(folder, tmp_path, derainer, signum):
    target = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        derain_video(_Interrupting(derainer, signum), folder / "rainy.mp4", target,
                     batch_size=2, progress=False)
    assert os.listdir(tmp_path) == []


def test_interrupt_keeps_finished_clips_and_says_so(folder, tmp_path, derainer, capsys):
    """Two clips, Ctrl-C during the second: the first is kept, the second is not there."""
    from menet_tf.infer.video_files import derain_videos

    videos = [(str(folder / "vfr.mkv"), "vfr.mkv"), (str(folder / "rainy.mp4"), "rainy.mp4")]
    targets = [(str(tmp_path / "a.mkv"), "matroska"), (str(tmp_path / "b.mp4"), "mp4")]
    with pytest.raises(KeyboardInterrupt):  # 6 batches of 2 in the first clip, then 2 more
        derain_videos(_Interrupting(derainer, signal.SIGINT, at=8), videos, targets,
                      batch_size=2, progress=False)
    assert os.listdir(tmp_path) == ["a.mkv"]
    assert len(clips.read_clip(tmp_path / "a.mkv")["pts"]) == FRAMES
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "interrupted while de-raining" in line and "rainy.mp4" in line
    assert f"kept the 1 finished: {tmp_path / 'a.mkv'}" in line


def test_without_pyav_one_line(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    assert main(["derain", str(folder / "rainy.mp4"), "-o", str(tmp_path / "o.mp4")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'menet-tf[video]'" in err
    assert os.listdir(tmp_path) == []


def test_the_derainer_method_is_the_video_function(folder, derainer, tmp_path):
    """``Derainer.derain_video`` (the Python API) writes what ``derain_video`` writes."""
    by_method = derainer.derain_video(folder / "vfr.mkv", tmp_path / "a.mkv", progress=False)
    by_function = derain_video(derainer, folder / "vfr.mkv", tmp_path / "b.mkv", progress=False)
    a, b = clips.read_clip(tmp_path / "a.mkv"), clips.read_clip(tmp_path / "b.mkv")
    assert a["pts"] == b["pts"] == clips.read_clip(folder / "vfr.mkv")["pts"]
    assert by_method["frames"] == by_function["frames"] == FRAMES
