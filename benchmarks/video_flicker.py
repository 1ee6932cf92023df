"""Temporal steadiness of de-rained video: does channel attention's per-frame image mean make the
output flicker?

    python benchmarks/video_flicker.py [--frames 24] [--size 192x256] [--preset light]

A static scene (a still crop of the astronaut photo, no camera motion) with rain falling through
it: every pixel is static in the clean clip, so its frame-to-frame change is 0. Flicker is the
mean absolute frame-to-frame change (0..255, RGB) of a clip. Printed for the rainy clip, the
network's output per frame (``Derainer.derain``, the photo path), the output with channel
attention's mean fixed for the whole clip (the mean of the per-frame means: what a ``--steady``
option would do), and the whole video path (``derain_video``, H.264 at the default --crf), with
each one's PSNR against the clean frames. Needs a model with channel attention (the bundled
default has it).
"""
import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def flicker(frames):
    frames = np.asarray(frames, np.float64)
    return float(np.abs(np.diff(frames, axis=0)).mean())


def psnr(a, b):
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def static_scene(frames, height, width, preset, fall=9, seed=0):
    from skimage import data as skdata

    from menet_tf.data.synth import add_rain, rain_streaks

    photo = skdata.astronaut()
    y, x = (photo.shape[0] - height) // 2, (photo.shape[1] - width) // 2
    clean = np.repeat(photo[None, y:y + height, x:x + width], frames, axis=0)
    layer = rain_streaks(np.random.default_rng(seed), height + fall * frames, width, preset)
    rainy = np.stack([add_rain(clean[0], layer[fall * (frames - i):fall * (frames - i) + height])
                      for i in range(frames)])
    return clean, rainy


def fixed_mean_output(derainer, rainy):
    """The network with attention's mean_HW(e) fixed to its average over the clip."""
    import tensorflow as tf

    batch = tf.constant(rainy.astype(np.float32))
    h, w = rainy.shape[1:3]
    e = derainer.concrete_function(h, w, kind="excitation")(batch)
    mean = tf.reduce_mean(e, axis=[0, 1, 2], keepdims=True)
    per_frame = tf.reduce_mean(e, axis=[1, 2])
    spread = float(tf.reduce_mean(tf.math.reduce_std(per_frame, axis=0))
                   / (tf.reduce_mean(tf.abs(mean)) + 1e-12))
    run = derainer.concrete_function(h, w, kind="with_mean")
    out = np.concatenate([run(batch[i:i + 4], mean).numpy() for i in range(0, len(rainy), 4)])
    return out, spread


def main(argv=None):
    parser = argparse.ArgumentParser(prog="video_flicker.py")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="192x256", help="HxW, multiples of 16")
    parser.add_argument("--preset", default="light")
    args = parser.parse_args(argv)
    height, width = map(int, args.size.split("x"))

    from menet_tf.infer.derainer import Derainer
    from menet_tf.infer.photos import to_uint8
    from menet_tf.infer.video import derain_video

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    import video_helpers as video_clips

    derainer = Derainer.from_pretrained()
    clean, rainy = static_scene(args.frames, height, width, args.preset)
    per_frame = to_uint8(derainer.derain(rainy))
    fixed, spread = fixed_mean_output(derainer, rainy)
    fixed = to_uint8(fixed)
    with tempfile.TemporaryDirectory(prefix="flicker_") as folder:
        video_clips.write_clip(os.path.join(folder, "rainy.mp4"), rainy, audio=False)
        decoded = video_clips.read_clip(os.path.join(folder, "rainy.mp4"))["frames"]
        derain_video(derainer, os.path.join(folder, "rainy.mp4"),
                     os.path.join(folder, "out.mp4"), progress=False)
        video = video_clips.read_clip(os.path.join(folder, "out.mp4"))["frames"]
    print(f"static {height}x{width} scene, {args.frames} frames, rain preset {args.preset};"
          f" attention's per-frame mean varies by {spread:.2%} (std over frames / |mean|)")
    rows = [("clean clip", clean), ("rainy clip", rainy), ("rainy clip, H.264 crf 10", decoded),
            ("de-rained per frame (photo path)", per_frame),
            ("de-rained, attention mean fixed per clip", fixed),
            ("de-rained video (derain_video, crf 17)", video)]
    print(f"{'':42} {'flicker':>8} {'PSNR dB':>8}")
    for name, frames in rows:
        score = psnr(frames, clean) if frames is not clean else float("inf")
        print(f"{name:42} {flicker(frames):8.3f} {score:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
