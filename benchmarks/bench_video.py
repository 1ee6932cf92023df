"""Video throughput of `menet-tf derain clip.mp4` against the network's own image rate.

    python benchmarks/bench_video.py                          # 640x360 and 1280x720, 3 settings
    python benchmarks/bench_video.py --sizes 640x360 --frames 24 --long-frames 0

For each size and setting (fp32, bf16, OpenVINO bf16) in the same process: the network's
images/s on frames already in memory (``Derainer.derain`` on batches, after a warm-up), then
frames/s of ``menet_tf.infer.video.derain_video`` on a synthetic clip of that size (H.264,
AAC; decoding, conversion, encoding and muxing included), their ratio (goal: >= 90%, the files
hidden behind the network; the image rate is measured just before and after the clip,
averaged) and the share of the clip's wall time the network was running ("net busy": 100% means
it never waited for decoding or encoding). ``--long-frames N`` then de-rains an N-frame 720p
clip and prints the resident memory at each tenth of it (flat = streaming) and its peak.
Clips are made in a temporary folder; nothing is written elsewhere.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from fractions import Fraction

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SETTINGS = {"fp32": ("fp32", "tensorflow"), "bf16": ("bf16", "tensorflow"),
            "openvino-bf16": ("bf16", "openvino")}


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_clip(path, width, height, frames, rate=Fraction(30000, 1001)):
    """A rainy clip: the astronaut photo resized to the frame, panned, light rain falling."""
    import av
    from skimage import data as skdata
    from skimage.transform import resize

    from menet_tf.data.synth import add_rain, rain_streaks

    photo = (resize(skdata.astronaut(), (height, width + 2 * frames), anti_aliasing=True)
             * 255).round().astype(np.uint8)
    layer = rain_streaks(np.random.default_rng(0), 2 * height, width, "light")
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "fast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        for i in range(frames):
            shift = (9 * i) % height
            image = add_rain(photo[:, 2 * i:2 * i + width], layer[shift:shift + height])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(int(44100 * frames / float(rate))) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(samples), 1024):
            piece = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt",
                                               layout="mono")
            piece.sample_rate, piece.pts = 44100, k
            out.mux(audio.encode(piece))
        out.mux(audio.encode(None))


def image_rate(derainer, width, height, frames, batch_size):
    """The network's own images/s at this size: ``derain`` on batches already in memory."""
    batch = np.random.default_rng(0).integers(0, 256, (batch_size, height, width, 3),
                                              dtype=np.uint8)
    derainer.warm_up(height, width)
    derainer.derain(batch, batch_size=batch_size)
    done, start = 0, time.perf_counter()
    while done < frames:
        derainer.derain(batch, batch_size=batch_size)
        done += batch_size
    return done / (time.perf_counter() - start)


def video_rate(derainer, clip, out, batch_size):
    from menet_tf.infer.video import derain_video

    start = time.perf_counter()
    record = derain_video(derainer, clip, out, batch_size=batch_size, force=True,
                          progress=False)
    return record["frames"] / (time.perf_counter() - start), record


def long_clip(derainer, folder, frames, batch_size):
    """RSS at each tenth of a long 720p clip, and the process's peak."""
    from menet_tf.infer import video as video_module

    clip = os.path.join(folder, f"long_{frames}.mp4")
    make_clip(clip, 1280, 720, frames)
    samples, stop = [], threading.Event()

    def sample():
        while not stop.wait(0.5):
            samples.append(_rss_mb())

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    video_module.derain_video(derainer, clip, os.path.join(folder, "long_out.mp4"),
                              batch_size=batch_size, force=True, progress=False)
    seconds = time.perf_counter() - start
    stop.set()
    watcher.join()
    tenths = [round(samples[min(len(samples) - 1, int(len(samples) * k / 10))])
              for k in range(1, 11)] if samples else []
    return {"frames": frames, "seconds": seconds, "rss_mb_by_tenth": tenths,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_video.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="640x360,1280x720")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--frames", type=int, default=32, help="frames per clip (32)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--long-frames", type=int, default=300,
                        help="frames of the long 720p clip for memory (300; 0: none)")
    parser.add_argument("--model", default=None, help="model source (default: bundled)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    from menet_tf.infer.load import derainer_of, load_model
    from menet_tf.infer.pretrained import pretrained

    model = load_model(args.model) if args.model else pretrained(None)
    results = {"cpu": _cpu_name(), "batch_size": args.batch_size, "rows": []}
    print(f"CPU: {results['cpu']}; batch {args.batch_size}; {args.frames} frames per clip")
    print(f"{'size':>10} {'setting':>14} {'images/s':>9} {'video fps':>10} {'ratio':>6}"
          f" {'net busy':>8}")
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        for size in args.sizes.split(","):
            width, height = map(int, size.split("x"))
            clip = os.path.join(folder, f"clip_{size}.mp4")
            make_clip(clip, width, height, args.frames)
            for setting in args.settings.split(","):
                precision, backend = SETTINGS[setting]
                derainer = derainer_of(model, precision=precision, backend=backend)
                # Image rate just before and just after the clip (the mean of the two), so a
                # machine whose load drifts affects both figures alike.
                before = image_rate(derainer, width, height, args.frames, args.batch_size)
                fps, record = video_rate(derainer, clip, os.path.join(folder, "out.mp4"),
                                         args.batch_size)
                after = image_rate(derainer, width, height, args.frames, args.batch_size)
                images = (before + after) / 2
                busy = record["network_seconds_per_frame"] * fps
                row = {"size": size, "setting": setting, "images_per_s": images,
                       "images_per_s_before_after": [before, after], "video_fps": fps,
                       "ratio": fps / images, "network_busy": busy}
                results["rows"].append(row)
                print(f"{size:>10} {setting:>14} {images:9.2f} {fps:10.2f} {fps / images:6.0%}"
                      f" {busy:8.0%}   (images/s {before:.2f} before, {after:.2f} after)",
                      flush=True)
        if args.long_frames:
            derainer = derainer_of(model, precision="bf16", backend="openvino"
                                   if "openvino-bf16" in args.settings else "tensorflow")
            results["long"] = long_clip(derainer, folder, args.long_frames, args.batch_size)
            print(f"long 720p clip, {args.long_frames} frames: RSS by tenth (MB)"
                  f" {results['long']['rss_mb_by_tenth']}, peak"
                  f" {results['long']['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
