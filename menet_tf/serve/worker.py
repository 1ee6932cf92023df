"""The one thread that runs the model, and the bounded queue in front of it.

A TensorFlow function is best called from one thread at a time (and on 2 cores, two calls at
once only share the cores), so every de-raining runs in this thread, in arrival order. Requests
are *admitted* before their body is read: at most ``queue`` may wait while one runs, and one
beyond that is told "busy" (503) at once, so a burst of uploads cannot pile up decoded images
in memory. With ``max_batch`` > 1, waiting requests of the same size and mode that arrived
together run as one batch (one network call); docs/serving.md gives the measurement that chose
the default.
"""
import collections
import concurrent.futures
import dataclasses
import threading
import time

import numpy as np

from menet_tf.serve.limits import Problem


@dataclasses.dataclass
class Outcome:
    """A de-rained image (float32 0..255) and how it was made."""

    image: np.ndarray
    seconds: float  # the network call that made it (the whole batch's when batched)
    mode: str  # "pad", "resize" or "tile" (a large image is tiled whatever was asked)
    batch: int  # how many images that network call de-rained


@dataclasses.dataclass
class _Job:
    image: np.ndarray
    mode: str
    future: concurrent.futures.Future


class Worker:
    """Runs ``derainer.derain`` for queued images in one thread; see the module docstring."""

    def __init__(self, derainer, limits):
        self.derainer = derainer
        self.limits = limits
        self._jobs = collections.deque()
        self._lock = threading.Condition()
        self._admitted = 0
        self._running = 0
        self._stopping = False
        self._ready = threading.Event()
        self._failure = None
        self._thread = None
        self.served = 0
        self.network_calls = 0
        self.tile_pixels = None

    # -- lifetime ------------------------------------------------------------------------------
    def start(self):
        """Start the thread and wait until it has run the model once (the one compilation);
        a model that cannot run is raised here, before the server takes requests. Started once:
        a second call (the app's start-up after the command's) only waits."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="menet-serve-model",
                                            daemon=True)
            self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self):
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _warm_up(self):
        """Trace and run the network before the first request: the plain (or padded) graph on
        a size that needs padding, which is the path of most photos."""
        from menet_tf.infer.tiling import default_max_pixels

        self.tile_pixels = (default_max_pixels() if self.limits.tile_pixels == "auto"
                            else self.limits.tile_pixels)
        m = max(int(getattr(self.derainer, "multiple", 1)), 1)
        self.derainer.warm_up(m, m)
        self.derainer.derain(np.zeros((2 * m + 1, 2 * m + 3, 3), np.uint8), mode="pad")

    # -- admission -----------------------------------------------------------------------------
    @property
    def capacity(self):
        """Requests held at once: the one running and those waiting."""
        return self.limits.queue + 1

    def admit(self):
        """Reserve a place for a request, or raise the 503 that refuses it at once."""
        with self._lock:
            if self._stopping:
                raise Problem(503, "the server is shutting down")
            if self._admitted >= self.capacity:
                raise Problem(503, f"busy: {self._admitted} requests are already running or"
                                   f" waiting (the limit is {self.capacity}); try again shortly")
            self._admitted += 1

    def release(self, *_):
        with self._lock:
            self._admitted -= 1

    def submit(self, image, mode):
        """Queue an admitted request's image; the future's result is an :class:`Outcome`.
        Its place is released when the future is done."""
        future = concurrent.futures.Future()
        future.add_done_callback(self.release)
        with self._lock:
            self._jobs.append(_Job(image, mode, future))
            self._lock.notify()
        return future

    def status(self):
        with self._lock:
            return {"ready": self._ready.is_set() and self._failure is None,
                    "running": self._running, "waiting": len(self._jobs),
                    "admitted": self._admitted, "capacity": self.capacity,
                    "served": self.served, "network_calls": self.network_calls}

    # -- the model thread ----------------------------------------------------------------------
    def _loop(self):
        try:
            self._warm_up()
        except BaseException as err:  # reported by start(), in the main thread
            self._failure = err
            self._ready.set()
            return
        self._ready.set()
        while True:
            with self._lock:
                while not self._jobs and not self._stopping:
                    self._lock.wait()
                if self._stopping and not self._jobs:
                    return
                batch = self._take()
                self._running = len(batch)
            try:
                self._run(batch)
            finally:
                with self._lock:
                    self._running = 0

    def _used_mode(self, job):
        h, w = job.image.shape[:2]
        return "tile" if job.mode == "tile" or h * w > self.tile_pixels else job.mode

    def _take(self):
        """The first waiting job, with (``max_batch``) waiting jobs of its size and mode."""
        first = self._jobs.popleft()
        batch = [first]
        if self.limits.max_batch > 1 and self._used_mode(first) != "tile":
            key = (first.image.shape, first.mode)
            for job in list(self._jobs):
                if len(batch) >= self.limits.max_batch:
                    break
                if (job.image.shape, job.mode) == key:
                    self._jobs.remove(job)
                    batch.append(job)
        return batch

    def _run(self, batch):
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not batch:
            return
        mode = self._used_mode(batch[0])
        try:
            start = time.perf_counter()
            out = self.derainer.derain(np.stack([job.image for job in batch]), mode=batch[0].mode,
                                       batch_size=len(batch), max_pixels=self.tile_pixels)
            seconds = time.perf_counter() - start
        except BaseException as err:
            problem = _as_problem(err, batch[0].image.shape)
            for job in batch:
                job.future.set_exception(problem)
            if not isinstance(err, Exception):
                raise
            return
        self.network_calls += 1
        self.served += len(batch)
        for job, image in zip(batch, out):
            job.future.set_result(Outcome(image, seconds, mode, len(batch)))


def _as_problem(err, shape):
    """A failure of the network as the one line the user sees (out of memory says what helps)."""
    if isinstance(err, Problem):
        return err
    h, w = shape[:2]
    if isinstance(err, MemoryError) or type(err).__name__ == "ResourceExhaustedError":
        return Problem(503, f"out of memory de-raining a {w}x{h} image; try again when the"
                            " server is less busy, or ask with mode=tile")
    return Problem(500, f"de-raining a {w}x{h} image failed ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})")
