"""``menet-tf serve``: a local web page and HTTP API that de-rain photos with one loaded model.

Open the printed address in a browser: drop or choose photos (JPEG, PNG, WebP, TIFF, BMP), see
each rainy and de-rained with a slider, download the result as PNG. The same server answers
POST /v1/derain (the image as the body or multipart field 'image'; mode and format parameters),
GET /v1/model and GET /v1/health (docs/serving.md). It listens on 127.0.0.1 only unless --host
says otherwise. The model is loaded and compiled once and runs one request at a time; --queue
requests may wait, and one beyond that is answered 503 (busy) at once. Needs the serve extra:
pip install 'menet-tf[serve]'.

Examples: menet-tf serve (the bundled model, http://127.0.0.1:8000/); menet-tf serve --model
exports/savedmodel --port 8080.
"""
import importlib.util

from menet_tf.cli import options
from menet_tf.errors import MenetError

#: What the serve extra installs: (import name(s), package name).
EXTRA = ((("starlette",), "starlette"), (("uvicorn",), "uvicorn"),
         (("python_multipart", "multipart"), "python-multipart"))
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(sub):
    p = sub.add_parser(
        "serve",
        help="a local web page and HTTP API that de-rain photos (pip install menet-tf[serve])",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),
    )
    options.add_model(p, required=False,
                      help=options.MODEL_SOURCE_HELP + " (default: the bundled default model)")
    options.add_model_name(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; another"
                   " address lets anyone on that network use the server)")
    p.add_argument("--port", type=int, default=8000,
                   help="port (default 8000; 0 picks a free one)")
    options.add_precision(p)
    options.add_backend(p)
    p.add_argument("--pixel-limit", type=float, default=40e6,
                   help="refuse images of more pixels than this (413; default 40e6)")
    p.add_argument("--upload-limit", type=float, default=64, metavar="MB",
                   help="refuse uploads larger than this many megabytes (413; default 64)")
    p.add_argument("--max-pixels", type=float, default=None,
                   help="tile images larger than this many pixels, as `derain --max-pixels`"
                   " (default: 8e6 with a GPU, 16e6 on a CPU)")
    p.add_argument("--queue", type=int, default=4,
                   help="requests that may wait while one runs; more get 503 at once (default 4)")
    p.add_argument("--max-batch", type=int, default=1,
                   help="run up to this many waiting same-size requests as one batch (default 1:"
                   " one network call per request, the faster on 2 CPU cores; docs/serving.md)")
    options.add_jit_compile(p, default="auto")
    p.set_defaults(func=serve)


def missing_extra():
    """The serve extra's packages that cannot be imported."""
    return [package for names, package in EXTRA
            if not any(importlib.util.find_spec(name) for name in names)]


def _listen(host, port):
    """A socket bound to host:port (so a taken port is one line, before the model loads)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except (OSError, OverflowError) as err:
        raise MenetError(f"{host}:{port}: cannot listen there"
                         f" ({getattr(err, 'strerror', None) or err}); choose another --port"
                         " or --host") from None
    return sock


def _url(host, port):
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _limits(args):
    from menet_tf.serve.limits import Limits

    return Limits(upload_bytes=int(args.upload_limit * 1e6), pixel_limit=int(args.pixel_limit),
                  queue=args.queue, max_batch=args.max_batch,
                  tile_pixels=int(args.max_pixels) if args.max_pixels else "auto")


def _start(worker):
    """The model thread's start and first run, before the server: a model that cannot run is
    one line here instead of uvicorn's start-up traceback."""
    try:
        worker.start()
    except MenetError:
        raise
    except Exception as err:
        raise MenetError(f"the model does not run ({type(err).__name__}: {err})") from None


def serve(args):
    missing = missing_extra()
    if missing:
        raise MenetError(f"needs {', '.join(missing)}: pip install 'menet-tf[serve]'")
    limits = _limits(args)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone who can reach this address on that"
              " network can use this server and upload to it", flush=True)
    sock = _listen(args.host, args.port)  # before TensorFlow loads: a taken port says so at once
    import uvicorn

    from menet_tf.infer.load import load_derainer
    from menet_tf.serve.app import create_app
    from menet_tf.serve.describe import describe

    source = options.model_or_default(args.model, announce=False)
    derainer = load_derainer(source, args.model_name,
                             jit_compile=options.jit_compile_value(args.jit_compile),
                             precision=args.precision, backend=args.backend)
    if args.precision != "fp32":
        from menet_tf.infer.precision import cpu_note

        note = cpu_note(args.precision)
        if note:
            print(note, flush=True)
    info = describe(source, derainer, args.precision, args.backend)
    print(f"model: {info['name']}: {info['card']}", flush=True)
    url = _url(args.host, sock.getsockname()[1])

    def ready():
        print(f"menet-tf serve: open {url} in a browser (API: {url}v1/derain); Ctrl+C stops",
              flush=True)

    app = create_app(derainer, info, limits, on_ready=ready)
    _start(app.state.worker)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="on"))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl+C, then passes the signal on
        pass
    print("menet-tf serve: stopped", flush=True)
    return 0
