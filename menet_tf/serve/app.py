"""The Starlette application: the page (``/``), ``POST /v1/derain``, ``GET /v1/health``,
``GET /v1/model`` and ``POST /v1/decode`` (an upload as the server reads it, for the page's
"before" picture where the browser cannot show the file itself, e.g. TIFF).

Every refusal is JSON ``{"error": one line, "status": code, "reason": word}`` with its status
(400 bad image, 413 too large, 415 unsupported type, 503 busy); the routes only parse and
answer, the model runs in :class:`menet_tf.serve.worker.Worker`.
"""
import asyncio
import contextlib
import os
import re
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from menet_tf.infer import photos
from menet_tf.infer.tiling import MODES
from menet_tf.serve import upload
from menet_tf.serve.limits import Problem
from menet_tf.serve.worker import Worker

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: The page loads nothing from elsewhere (it must work offline): the browser is told so too.
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self';"
               " style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'")
#: A multipart body's framing (boundaries, part headers, the mode/format fields) beyond the
#: image itself.
MULTIPART_SLACK = 64 * 1024


def _problem_response(problem):
    return JSONResponse(problem.as_json(), status_code=problem.status)


async def _on_problem(request, exc):
    return _problem_response(exc)


async def _on_http(request, exc):
    return _problem_response(Problem(exc.status_code, f"{request.method} {request.url.path}:"
                                                      f" {exc.detail}"))


async def _on_error(request, exc):
    return _problem_response(Problem(500, f"{request.method} {request.url.path} failed"
                                          f" ({type(exc).__name__}: {exc})"))


def _limited_receive(receive, limit):
    """``receive`` that refuses a body growing past ``limit`` bytes (413) as it arrives."""
    seen = 0

    async def limited():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise Problem(413, f"upload larger than the server's limit of {limit:,} bytes")
        return message

    return limited


def _check_length(request, limit):
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise Problem(413, f"upload of {int(length):,} bytes is larger than the server's limit"
                           f" of {limit:,} bytes")


async def _multipart(request, limit):
    """(bytes, file name, declared type, form fields) of the multipart field ``image`` (or
    the only file sent)."""
    limited = Request(request.scope, _limited_receive(request.receive, limit + MULTIPART_SLACK))
    try:
        form = await limited.form(max_files=2, max_fields=16)
    except HTTPException as err:  # a malformed multipart body
        raise Problem(400, f"malformed multipart upload ({err.detail})") from None
    try:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        chosen = form.get("image") if isinstance(form.get("image"), UploadFile) else (
            files[0] if len(files) == 1 else None)
        if chosen is None:
            raise Problem(400, "multipart upload without an image: send it as the field"
                               " 'image'")
        data = await chosen.read()
        if len(data) > limit:
            raise Problem(413, f"{chosen.filename or 'upload'}: {len(data):,} bytes, more than"
                               f" the server's limit of {limit:,} bytes")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        return data, chosen.filename or "upload", upload.media_type(chosen.content_type), fields
    finally:
        await form.close()


async def _read_upload(request, limit):
    """(bytes, name, declared type, parameters): the image as the body or as multipart; the
    parameters are the query's, overridden by multipart fields."""
    _check_length(request, limit + MULTIPART_SLACK)
    params = dict(request.query_params)
    declared = upload.media_type(request.headers.get("content-type"))
    if declared == "multipart/form-data":
        data, name, declared, fields = await _multipart(request, limit)
        params.update(fields)
    else:
        _check_length(request, limit)
        chunks = []
        async for chunk in Request(request.scope, _limited_receive(request.receive,
                                                                   limit)).stream():
            chunks.append(chunk)
        data, name = b"".join(chunks), params.get("name") or "upload"
    return data, os.path.basename(name) or "upload", declared, params


def _parameters(params):
    mode = (params.get("mode") or "pad").strip().lower()
    if mode not in MODES:
        raise Problem(400, f"mode {params.get('mode')!r} is not one of {', '.join(MODES)}")
    return mode, upload.output_format(params.get("format"))


def _result_name(name, fmt):
    """The download's file name: the upload's stem in safe characters only (it goes into a
    header, where a quote or a line break of a client's file name must not)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(name)[0])[:100] or "image"
    return f"{stem}-derained{photos.OUTPUT_FORMATS[fmt][1]}"


def create_app(derainer, info, limits, on_ready=None):
    """The application around ``derainer`` (a Derainer), described by ``info``
    (``menet_tf.serve.describe``); the model thread starts and warms up with the app, and then
    ``on_ready()`` is called (the command prints the address to open)."""
    worker = Worker(derainer, limits)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await run_in_threadpool(worker.start)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    async def page(request):
        return FileResponse(os.path.join(STATIC, "index.html"),
                            headers={"Content-Security-Policy": PAGE_POLICY,
                                     "Cache-Control": "no-cache"})

    async def health(request):
        status = worker.status()
        return JSONResponse(dict(status, status="ok" if status["ready"] else "starting"),
                            status_code=200 if status["ready"] else 503)

    async def model(request):
        return JSONResponse(dict(info, limits=dict(limits.as_json(),
                                                   tile_pixels=worker.tile_pixels)))

    async def derain(request):
        arrived = time.perf_counter()
        mode, (fmt, media) = _parameters(request.query_params)
        worker.admit()
        submitted = False
        try:
            data, name, declared, params = await _read_upload(request, limits.upload_bytes)
            mode, (fmt, media) = _parameters(params)
            image, warnings = await run_in_threadpool(upload.decode, data, name, declared,
                                                      limits.pixel_limit)
            del data
            future = worker.submit(image, mode)
            submitted = True
            outcome = await asyncio.wrap_future(future)
            body = await run_in_threadpool(upload.encode, outcome.image, fmt)
        finally:
            if not submitted:
                worker.release()
        total = time.perf_counter() - arrived
        h, w = image.shape[:2]
        headers = {
            "X-Derain-Seconds": f"{outcome.seconds:.3f}",
            "X-Total-Seconds": f"{total:.3f}",
            "X-Derain-Mode": outcome.mode,
            "X-Derain-Batch": str(outcome.batch),
            "X-Image-Size": f"{w}x{h}",
            "X-Model": info["name"],
            "Server-Timing": (f"derain;dur={outcome.seconds * 1000:.1f},"
                              f" total;dur={total * 1000:.1f}"),
            "Content-Disposition": f'inline; filename="{_result_name(name, fmt)}"',
        }
        if warnings:
            headers["X-Warning"] = "; ".join(warnings)[:500]
        return Response(body, media_type=media, headers=headers)

    async def decode(request):
        worker.admit()
        try:
            data, name, declared, _ = await _read_upload(request, limits.upload_bytes)
            image, _ = await run_in_threadpool(upload.decode, data, name, declared,
                                               limits.pixel_limit)
            body = await run_in_threadpool(upload.encode, image, "png")
        finally:
            worker.release()
        return Response(body, media_type="image/png")

    routes = [
        Route("/", page),
        Route("/v1/derain", derain, methods=["POST"]),
        Route("/v1/decode", decode, methods=["POST"]),
        Route("/v1/health", health),
        Route("/v1/model", model),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={
        Problem: _on_problem, HTTPException: _on_http, Exception: _on_error})
    app.state.worker = worker
    return app
