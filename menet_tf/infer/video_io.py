"""Video files in and out of ``menet-tf derain``, through PyAV (FFmpeg in its wheels, the optional
extra ``menet-tf[video]``; no ``ffmpeg`` program is ever run).

What a de-rained clip keeps from its input: every frame's timestamp and duration in the input's
time base (so the frame rate, variable or not, the frame count and the duration), the rotation
(display matrix), the colour range, matrix, primaries and transfer, and every audio stream and
the subtitle streams the output container can hold, copied packet for packet (not re-encoded).
The picture is encoded again: H.264 (libx264, yuv420p) in mp4/mov/mkv, VP9 (libvpx-vp9) in webm.
"""
import os

from menet_tf.errors import DataError, MenetError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")

#: ``--format`` choices for videos -> (FFmpeg muxer, file extension).
VIDEO_FORMATS = {"mp4": ("mp4", ".mp4"), "mkv": ("matroska", ".mkv"),
                 "webm": ("webm", ".webm")}

#: An input's container when ``--format`` names none: the same, except AVI, which cannot carry
#: H.264's per-frame timestamps with B-frames (nor a variable frame rate): mp4 instead.
_SAME_CONTAINER = {".mp4": ("mp4", ".mp4"), ".m4v": ("mp4", ".m4v"), ".mov": ("mov", ".mov"),
                   ".mkv": ("matroska", ".mkv"), ".webm": ("webm", ".webm"),
                   ".avi": ("mp4", ".mp4")}

#: Default ``--crf`` per encoder. x264's 17 is its "visually lossless" point: on the test clip
#: the encoder's own error is far below what de-raining changes (docs/derain.md), so the
#: encoder never limits the quality; VP9's scale differs, 20 is its like.
DEFAULT_CRF = {"libx264": 17, "libvpx-vp9": 20}

#: x264's speed preset: "fast" encoded a 640x360 rainy clip as well as "medium" (39.9 against
#: 39.5 dB at crf 17, 2% larger) in 30% less time, time the network gets back; "veryfast" lost
#: 2.3 dB.
X264_PRESET = "fast"

INSTALL_HINT = "video needs PyAV: pip install 'menet-tf[video]'"


def import_av():
    """The ``av`` module, or one line saying how to install it."""
    try:
        import av
    except ImportError:
        raise MenetError(INSTALL_HINT) from None
    return av


def is_video(name):
    return (os.fspath(name).lower().endswith(VIDEO_EXTENSIONS)
            and not os.path.basename(name).startswith("."))


def container_of(source, fmt="same"):
    """(muxer, extension) of the output of ``source`` for ``--format`` ``fmt``."""
    if fmt in (None, "same"):
        return _SAME_CONTAINER.get(os.path.splitext(source)[1].lower(), ("mp4", ".mp4"))
    if fmt not in VIDEO_FORMATS:
        raise DataError(f"unknown video format {fmt!r}; choose from {', '.join(VIDEO_FORMATS)}")
    return VIDEO_FORMATS[fmt]


def encoder_of(muxer):
    return "libvpx-vp9" if muxer == "webm" else "libx264"


def _error_text(err):
    return (getattr(err, "strerror", None) or str(err)).strip().rstrip(".")


def open_input(path):
    """The opened input container and its first video stream; a file that is not a video, is
    truncated, has no video stream or a codec FFmpeg cannot decode is one DataError line."""
    av = import_av()
    try:
        container = av.open(os.fspath(path), "r")
    except av.FFmpegError as err:
        raise DataError(f"{path}: not a readable video (FFmpeg: {_error_text(err)}); a"
                        " truncated or damaged file, or not a video despite its name") from None
    moving = [s for s in container.streams.video  # not a cover picture
              if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise DataError(f"{path}: has no video stream (streams: {', '.join(kinds)})")
    stream = moving[0]
    codec = getattr(stream.codec_context, "codec", None) if stream.codec_context else None
    if codec is None or not stream.width or not stream.height:
        tag = stream.codec_context.name if stream.codec_context else "unknown"
        container.close()
        raise DataError(f"{path}: cannot decode its video stream (codec {tag or 'unknown'}"
                        " is not one this FFmpeg build decodes)")
    stream.thread_type = "AUTO"
    return container, stream


def frame_count(stream):
    """Frames in the stream as the header says (0: it does not say; estimated from the
    duration and rate then)."""
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and rate:
        return int(round(float(stream.duration * stream.time_base * rate)))
    return 0


class Colour:
    """A frame's colour description (range, matrix, primaries, transfer), kept as FFmpeg's
    enum values so the output is tagged and converted as the input was."""

    FIELDS = ("color_range", "colorspace", "color_primaries", "color_trc")

    def __init__(self, frame):
        self.values = {k: int(getattr(frame, k)) for k in self.FIELDS}

    def to_rgb(self, frame):
        """[H, W, 3] uint8 RGB, converted with the frame's own matrix and range."""
        return frame.to_ndarray(format="rgb24",
                                src_color_range=self.values["color_range"] or None)

    def from_rgb(self, rgb, pix_fmt):
        """An encoder-ready frame of ``rgb`` in ``pix_fmt``, with the input's matrix and range."""
        av = import_av()
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame = frame.reformat(format=pix_fmt,
                               dst_colorspace=self.values["colorspace"] or None,
                               dst_color_range=self.values["color_range"] or None)
        for key, value in self.values.items():
            setattr(frame, key, value)
        return frame

    def tag(self, codec_context):
        for key, value in self.values.items():
            setattr(codec_context, key, value)

    def record(self):
        return dict(self.values)


def plan_streams(path, container, video, muxer):
    """Which of the input's other streams the output copies: ([streams to copy], [what is
    dropped, in words]). Audio the container cannot hold is refused (DataError naming it and a
    container that can): sound is never lost silently. Subtitles it cannot hold, data streams
    and further video streams (cover art) are dropped, and said so."""
    av = import_av()
    with av.open(os.devnull if os.name != "nt" else "NUL", "w", format=muxer) as probe:
        supported = probe.supported_codecs
    copy, dropped = [], []
    for stream in container.streams:
        if stream.index == video.index:
            continue
        name = stream.codec_context.name if stream.codec_context else "unknown"
        if stream.type == "audio":
            if name not in supported:
                other = "mkv" if muxer != "matroska" else "mp4"
                raise DataError(f"{path}: its audio ({name}) cannot go into a {muxer} file"
                                f" without re-encoding; use --format {other}, which can hold"
                                " it (audio is copied, never dropped)")
            copy.append(stream)
        elif stream.type == "subtitle" and name in supported:
            copy.append(stream)
        else:
            dropped.append(f"{stream.type} stream #{stream.index} ({name})")
    return copy, dropped


class Output:
    """The output container: the re-encoded video stream and the copied streams.

    The video stream is set up from the first de-rained frame (its rotation and colour must be
    set before the encoder opens). ``mux_copy`` copies a demuxed packet of a copied stream.
    """

    def __init__(self, path, muxer, source_video, copied, crf=None):
        av = import_av()
        self.container = av.open(os.fspath(path), "w", format=muxer)
        self.codec = encoder_of(muxer)
        self.crf = DEFAULT_CRF[self.codec] if crf is None else int(crf)
        self.source_video = source_video
        self.video = None
        self.copies = {s.index: self.container.add_stream_from_template(s) for s in copied}
        self._waiting = []  # copied packets demuxed before the first frame: the header waits

    def _open_video(self, width, height, rotation, colour):
        rate = self.source_video.average_rate or self.source_video.guessed_rate
        options = {"crf": str(self.crf), "preset": X264_PRESET}
        if self.codec == "libvpx-vp9":  # constant quality, VP9's way; row threads
            options = {"crf": str(self.crf), "b": "0", "row-mt": "1", "deadline": "good",
                       "cpu-used": "4"}
        stream = self.container.add_stream(self.codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = self.source_video.time_base
        stream.codec_context.time_base = self.source_video.time_base
        colour.tag(stream.codec_context)
        if rotation:
            stream.set_display_rotation(rotation)
        if self.source_video.metadata.get("language"):
            stream.metadata["language"] = self.source_video.metadata["language"]
        self.video, self.rotation, self.colour = stream, rotation, colour

    def write_frame(self, rgb, pts, duration, time_base, rotation, colour):
        """Encode one de-rained frame ([H, W, 3] uint8 as stored, not turned upright) with its
        input timestamp and duration."""
        if self.video is None:
            self._open_video(rgb.shape[1], rgb.shape[0], rotation, colour)
            for packet in self._waiting:
                self.container.mux(packet)
            self._waiting = []
        frame = colour.from_rgb(rgb, "yuv420p")
        frame.pts, frame.time_base = pts, time_base
        if duration:
            frame.duration = duration
        self.container.mux(self.video.encode(frame))

    def mux_copy(self, packet):
        if packet.dts is None:  # the demuxer's empty end-of-stream packet
            return
        packet.stream = self.copies[packet.stream_index]
        if self.video is None:
            self._waiting.append(packet)
        else:
            self.container.mux(packet)

    def finish(self):
        if self.video is not None:
            self.container.mux(self.video.encode(None))
        self.container.close()

    def abandon(self):
        try:
            self.container.close()
        except Exception:  # the file is removed next; its state does not matter
            pass
