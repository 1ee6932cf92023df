"""De-raining video clips frame by frame: what ``menet-tf derain clip.mp4`` does, and
:func:`derain_video` for Python.

Three stages run at once, so the network is not kept waiting by the files: a thread decodes
frames (and demuxes the packets that are copied, audio and subtitles), the calling thread runs
the network on ``batch_size`` frames at a time, a thread encodes and muxes. The queues between
them are bounded, so memory stays flat whatever the clip's length. Frames are de-rained upright
(turned by the clip's rotation, as a photo is by its EXIF orientation, since the network learnt
falling rain) and stored back as they were, with the rotation kept as metadata.

The output is written under the temporary name of ``menet_tf.files`` and renamed when complete:
an interrupt (Ctrl-C, SIGTERM) or a failure leaves no file under the final name.
"""
import os
import queue
import threading
import time

import numpy as np

from menet_tf import interrupts
from menet_tf.errors import DataError, MenetError
from menet_tf.files import replacing
from menet_tf.infer import video_io
from menet_tf.infer.photos import to_uint8
from menet_tf.infer.tiling import TILE_OVERLAP, TILE_SIZE

_END = object()  # the end of a queue's items
_POLL = 0.1  # seconds between looks at the stop flag while a queue is full or empty


class _Frame:
    """A decoded frame on its way through the stages, with what its output needs."""

    __slots__ = ("rgb", "pts", "duration", "time_base", "rotation", "colour")

    def __init__(self, frame, colour):
        self.rgb = colour.to_rgb(frame)
        self.pts, self.duration, self.time_base = frame.pts, frame.duration, frame.time_base
        self.rotation, self.colour = frame.rotation, colour


def _put(q, item, stop):
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return
        except queue.Full:
            continue


def _get(q, stop, on_wait=None):
    while True:
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            if stop.is_set():
                return _END
            if on_wait is not None:
                on_wait()


class _Stage(threading.Thread):
    """A daemon thread whose exception is kept for the caller to raise."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._work, self._args, self.error = target, args, None

    def run(self):
        try:
            self._work(*self._args)
        except BaseException as err:  # noqa: raised again in the calling thread
            self.error = err


def _decode(path, container, stream, copied, items, stop, count):
    """Demux in file order: video packets decoded to _Frames (pts kept; none invented), packets
    of the copied streams passed on as they are."""
    av = video_io.import_av()
    colour = None
    try:
        for packet in container.demux([stream] + copied):
            if stop.is_set():
                return
            if packet.stream_index != stream.index:
                _put(items, packet, stop)
                continue
            for frame in packet.decode():
                if frame.pts is None:  # some AVI files: the decoder's best guess
                    frame.pts = frame.dts if frame.dts is not None else count[0]
                colour = colour or video_io.Colour(frame)
                _put(items, _Frame(frame, colour), stop)
                count[0] += 1
    except av.FFmpegError as err:
        raise DataError(f"{path}: cannot decode frame {count[0] + 1}"
                        f" (FFmpeg: {video_io._error_text(err)}); a damaged or truncated"
                        " file") from None
    finally:
        _put(items, _END, stop)


def _encode(path, output, items, stop, bar):
    av = video_io.import_av()
    try:
        while True:
            item = _get(items, stop)
            if item is _END:
                break
            if isinstance(item, _Frame):
                output.write_frame(item.rgb, item.pts, item.duration, item.time_base,
                                   item.rotation, item.colour)
                bar.update(1)
            else:
                output.mux_copy(item)
        if not stop.is_set():
            output.finish()
    except av.FFmpegError as err:
        raise DataError(f"{path}: cannot encode or write its de-rained video (FFmpeg:"
                        f" {video_io._error_text(err)})") from None


def _upright_turns(rotation):
    """Quarter turns (counterclockwise, np.rot90's) that show a frame upright, from the
    display matrix's counterclockwise rotation; other angles are left as stored."""
    return int(round(rotation / 90)) % 4 if rotation and rotation % 90 == 0 else 0


class _Network:
    """The middle stage: batches of frames through ``derainer.derain``, upright."""

    def __init__(self, path, derainer, batch_size, options):
        self.path, self.derainer, self.batch_size, self.options = (path, derainer, batch_size,
                                                                   options)
        self.seconds, self.frames, self.warm = 0.0, 0, False

    def run(self, frames):
        from menet_tf.infer.batch import derain_batch

        turns = _upright_turns(frames[0].rotation)
        if len({f.rgb.shape for f in frames}) > 1:
            raise DataError(f"{self.path}: the frame size changes within the clip; menet-tf"
                            " keeps one size per clip")
        batch = np.stack([np.rot90(f.rgb, turns) for f in frames])
        if not self.warm:
            self.derainer.warm_up(*batch.shape[1:3])
            self.warm = True
        start = time.perf_counter()
        out = to_uint8(derain_batch(self.derainer, batch, batch_size=self.batch_size,
                                **self.options))
        self.seconds += time.perf_counter() - start
        self.frames += len(frames)
        for frame, image in zip(frames, out):
            frame.rgb = np.ascontiguousarray(np.rot90(image, -turns))


def _pump(decoded, encoded, network, stop, stages):
    """Items from the decoder to the encoder in file order, frames de-rained a batch at a time
    (packets between them wait with their batch, so the interleaving is kept)."""
    def watch():
        interrupts.check()
        for stage in stages:
            if stage.error is not None:
                stop.set()

    pending, frames = [], []
    while True:
        item = _get(decoded, stop, on_wait=watch)
        watch()
        if stop.is_set():
            return
        if item is not _END:
            pending.append(item)
            if isinstance(item, _Frame):
                frames.append(item)
        full = len(frames) == network.batch_size or item is _END
        if frames and full:
            network.run(frames)
            interrupts.check()
        if full:
            for waiting in pending:
                _put(encoded, waiting, stop)
            pending, frames = [], []
        if item is _END:
            _put(encoded, _END, stop)
            return


def _check_options(batch_size, mode):
    if batch_size < 1:
        raise MenetError(f"batch_size must be at least 1, got {batch_size}")
    if mode not in ("pad", "resize", "tile"):
        raise MenetError(f"unknown mode {mode!r}; choose pad, resize or tile")


def _describe(path, stream, expected):
    rate = stream.average_rate or stream.guessed_rate
    return {"file": os.fspath(path), "width": stream.width, "height": stream.height,
            "frames_in_header": expected, "fps": float(rate) if rate else None,
            "video_codec_in": stream.codec_context.name}


def derain_video(derainer, src, dst, *, mode="pad", batch_size=4, max_pixels="auto",
                 tile_size=TILE_SIZE, overlap=TILE_OVERLAP, fmt=None, crf=None, force=False,
                 progress=True):
    """De-rain the video ``src`` into ``dst`` (a file); returns its record for derain.json.

    ``mode``, ``batch_size``, ``max_pixels``, ``tile_size`` and ``overlap`` are those of
    ``Derainer.derain`` (frames above ``max_pixels`` are tiled, as photos are). ``fmt``: the
    muxer ("mp4", "mov", "matroska", "webm"; None: from ``dst``'s extension); ``crf``: the
    encoder's constant quality (None: ``video_io.DEFAULT_CRF``). An existing ``dst`` is refused
    unless ``force``; ``src`` itself never is replaced.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    _check_options(batch_size, mode)
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(src, dst):
        raise MenetError(f"{dst} is the input; refusing to write over it")
    if os.path.exists(dst) and not force:
        raise MenetError(f"would overwrite {dst}; use --force to replace")
    muxer = fmt or video_io.container_of(dst)[0]
    container, stream = video_io.open_input(src)
    try:
        with interrupts.deferred():
            return _run(derainer, src, dst, container, stream, muxer, crf, batch_size, progress,
                        dict(mode=mode, max_pixels=max_pixels, tile_size=tile_size,
                             overlap=overlap))
    finally:
        container.close()


def _run(derainer, src, dst, container, stream, muxer, crf, batch_size, progress, options):
    from menet_tf.progress import bar as progress_bar

    copied, dropped = video_io.plan_streams(src, container, stream, muxer)
    expected = video_io.frame_count(stream)
    record = _describe(src, stream, expected)
    network = _Network(src, derainer, batch_size, options)
    stop, count = threading.Event(), [0]
    decoded = queue.Queue(maxsize=2 * batch_size + 16)
    encoded = queue.Queue(maxsize=2 * batch_size + 16)
    bar = progress_bar(total=expected or None, unit="frame", desc=os.path.basename(src),
                       disable=not progress, dynamic_ncols=True, leave=True)
    start = time.perf_counter()
    ext = os.path.splitext(dst)[1]
    with replacing(dst, suffix=ext, error=DataError) as tmp:
        output = video_io.Output(tmp, muxer, stream, copied, crf)
        stages = [_Stage(_decode, src, container, stream, copied, decoded, stop, count),
                  _Stage(_encode, src, output, encoded, stop, bar)]
        finished = False
        try:
            for stage in stages:
                stage.start()
            _pump(decoded, encoded, network, stop, stages)
            stages[1].join()
            finished = not any(s.error for s in stages) and not stop.is_set()
        finally:
            stop.set()
            for stage in stages:
                stage.join()
            bar.close()
            if not finished:
                output.abandon()
        for stage in stages:
            if stage.error is not None:
                raise stage.error
        _check_complete(src, count[0], int(stream.frames or 0))
    seconds = time.perf_counter() - start
    duration = (float(stream.duration * stream.time_base) if stream.duration
                else container.duration / 1e6 if container.duration else None)
    return dict(record, output=dst, container=muxer, video_codec=output.codec, crf=output.crf,
                frames=count[0], duration=duration, seconds=seconds,
                seconds_per_frame=seconds / count[0] if count[0] else None,
                network_seconds_per_frame=(network.seconds / network.frames
                                           if network.frames else None),
                rotation=_rotation(output), colour=_colour(output),
                streams_copied=[f"{s.type} #{s.index} ({s.codec_context.name})" for s in copied],
                streams_dropped=dropped)


def _rotation(output):
    return None if output.video is None else output.rotation


def _colour(output):
    return None if output.video is None else output.colour.record()


def _check_complete(path, decoded, expected):
    """A file whose header lists (exactly, as mp4/mov do) far more frames than could be decoded
    is truncated: refused (its output would be silently short). A frame or two less is an edit
    list's trim."""
    if expected and decoded < expected - max(2, expected // 100):
        raise DataError(f"{path}: truncated or damaged: only {decoded} of the {expected} frames"
                        " its header lists could be decoded")
    if decoded == 0:
        raise DataError(f"{path}: no frame could be decoded")
