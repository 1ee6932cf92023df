"""Test clips made on the spot (no binary fixtures): a scikit-image photo panned slowly, rain
from the synth renderer falling between frames, a sine-wave AAC track; written and read with
PyAV directly (the oracle side of the video tests, not menet_tf's video code)."""
from fractions import Fraction

import numpy as np
from skimage import data as skdata

from menet_tf.data.synth import add_rain, rain_streaks

NTSC = Fraction(30000, 1001)
SAMPLE_RATE = 44100


def scene(frames, height=96, width=128, step=2):
    """Clean frames: a window panning right over the astronaut photo (native resolution, so
    it looks like the photos the model learnt on), ``step`` px a frame."""
    photo = skdata.astronaut()
    y, x = photo.shape[0] // 2 - height // 2, photo.shape[1] // 2 - width // 2 - step * frames
    return np.stack([photo[y:y + height, x + step * i:x + step * i + width]
                     for i in range(frames)])


def rainy(clean, preset="light", fall=9, seed=3):
    """Rain falling ``fall`` px a frame over ``clean`` [N, H, W, 3] (one tall layer, slid)."""
    n, h, w = clean.shape[:3]
    layer = rain_streaks(np.random.default_rng(seed), h + fall * n, w, preset)
    return np.stack([add_rain(frame, layer[fall * (n - i):fall * (n - i) + h])
                     for i, frame in enumerate(clean)])


def sine(seconds, rate=SAMPLE_RATE, hz=440.0):
    t = np.arange(int(round(seconds * rate))) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_clip(path, frames, *, rate=NTSC, pts=None, time_base=None, rotation=0, audio=True,
               codec="libx264", fmt=None, colour=None, subtitle=None, options=None):
    """Write ``frames`` [N, H, W, 3] uint8. ``pts`` (in ``time_base``) makes it VFR; ``audio``
    adds a mono sine AAC track as long as the video; ``colour`` {"colorspace": ..,
    "color_range": .., ...} converts and tags the frames so; ``subtitle`` (text) adds a SubRip
    stream with that line from 80 to 280 ms."""
    import av

    out = av.open(str(path), "w", format=fmt, options=options or {})
    video = out.add_stream(codec, rate=rate, options={"crf": "10"} if codec == "libx264" else {})
    video.width, video.height = frames.shape[2], frames.shape[1]
    video.pix_fmt = "yuv420p"
    if time_base is not None:
        video.time_base = time_base
        video.codec_context.time_base = time_base
    if rotation:
        video.set_display_rotation(rotation)
    for key, value in (colour or {}).items():
        setattr(video.codec_context, key, value)
    if subtitle:
        text = out.add_mux_stream("subrip")
        text.time_base = Fraction(1, 1000)
    sound = None
    if audio:
        sound = out.add_stream("aac", rate=SAMPLE_RATE)
        sound.layout = "mono"
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if colour:
            frame = frame.reformat(format="yuv420p", dst_colorspace=colour["colorspace"],
                                   dst_color_range=colour["color_range"])
            for key, value in colour.items():
                setattr(frame, key, value)
        frame.pts = i if pts is None else pts[i]
        if time_base is not None:
            frame.time_base = time_base
        out.mux(video.encode(frame))
        if subtitle and i == 2:
            packet = av.Packet(subtitle.encode())
            packet.stream, packet.time_base = text, Fraction(1, 1000)
            packet.pts = packet.dts = 80
            packet.duration = 200
            out.mux(packet)
    out.mux(video.encode(None))
    if sound is not None:
        samples = sine(len(frames) / float(rate))
        for k in range(0, len(samples), 1024):
            piece = av.AudioFrame.from_ndarray(samples[None, k:k + 1024], format="flt",
                                               layout="mono")
            piece.sample_rate, piece.pts = SAMPLE_RATE, k
            out.mux(sound.encode(piece))
        out.mux(sound.encode(None))
    out.close()


def read_clip(path):
    """What a clip holds, read with PyAV: frames (RGB as stored), their pts, rotation, the
    container duration, and each stream's codec, rate, duration and packet bytes."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames, pts, rotation, colour = [], [], None, None
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24", src_color_range=frame.color_range
                                           or None))
            pts.append(frame.pts)
            rotation = frame.rotation if rotation is None else rotation
            colour = colour or {k: int(getattr(frame, k)) for k in (
                "colorspace", "color_range", "color_primaries", "color_trc")}
        info = {"frames": np.stack(frames), "pts": pts, "rotation": rotation, "colour": colour,
                "time_base": video.time_base, "duration": container.duration,
                "video_codec": video.codec_context.name, "rate": video.average_rate,
                "streams": [s.type for s in container.streams]}
    audio = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            packets = [bytes(p) for p in container.demux(stream) if p.size]
            audio.append({"codec": stream.codec_context.name, "sample_rate": stream.rate,
                          "seconds": (float(stream.duration * stream.time_base)
                                      if stream.duration else None),
                          "packets": packets})
    info["audio"] = audio
    with av.open(str(path)) as container:
        info["subtitles"] = [[bytes(p) for p in container.demux(stream) if p.size]
                             for stream in container.streams.subtitles]
    return info
