"""The load figure of ``menet-tf serve``: throughput and latency of concurrent requests.

    python benchmarks/serve_load.py                        # starts the servers itself
    python benchmarks/serve_load.py --max-batch 1 4        # one call per request vs batching
    python benchmarks/serve_load.py --url http://127.0.0.1:8000/   # a server already running

Sends ``--requests`` de-raining requests for one image (default examples/cat.png, 481x321) from
``--concurrency`` local clients at once, in ``--rounds`` rounds, and prints requests per second
and latency percentiles (arrival to last byte, as the client sees it), with the server's own
network seconds and batch sizes from its response headers. With several ``--max-batch``
values it starts one server per value (``menet-tf serve --port 0``) and alternates the rounds
between them (A, B, A, B ...), so both see the same background load.

Bounded: at most 500 requests a round, 64 clients, 10 rounds; everything stops after
``--time-limit`` seconds (default 300) whatever is left, and the servers it started are
stopped with Ctrl+C (SIGINT). It talks to 127.0.0.1 only.
"""
import argparse
import concurrent.futures
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

REPO = pathlib.Path(__file__).resolve().parents[1]
LOCAL = ("127.0.0.1", "localhost", "::1")


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=None, help="a running server on this computer (default:"
                   " start one per --max-batch)")
    p.add_argument("--model", default=None, help="--model of the servers it starts")
    p.add_argument("--max-batch", type=int, nargs="+", default=[1],
                   help="--max-batch of the servers it starts, one server each (default 1)")
    p.add_argument("--image", default=str(REPO / "examples" / "cat.png"))
    p.add_argument("--requests", type=int, default=32, help="requests a round (default 32)")
    p.add_argument("--concurrency", type=int, default=4, help="clients at once (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    p.add_argument("--time-limit", type=float, default=300, help="seconds in all (default 300)")
    args = p.parse_args()
    if not (1 <= args.requests <= 500 and 1 <= args.concurrency <= 64
            and 1 <= args.rounds <= 10 and 0 < args.time_limit <= 1800):
        p.error("bounded: 1-500 requests, 1-64 clients, 1-10 rounds, up to 1800 s")
    if args.url and urllib.parse.urlsplit(args.url).hostname not in LOCAL:
        p.error("--url must be a server on this computer (127.0.0.1)")
    return args


class Server:
    """``menet-tf serve --port 0`` in a subprocess; its address from the line it prints."""

    def __init__(self, max_batch, queue, model, deadline):
        command = [sys.executable, "-m", "menet_tf", "serve", "--port", "0", "--queue",
                   str(queue), "--max-batch", str(max_batch)]
        if model:
            command += ["--model", model]
        self.name = f"max-batch {max_batch}"
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.url = None
        lines = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if " open http://" in line:
                self.url = line.split(" open ", 1)[1].split()[0]
                break
        if self.url is None:
            self.stop()
            raise SystemExit("the server did not start:\n" + "".join(lines))
        # Keep reading its output so a full pipe never blocks it.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _round(client, url, image, requests, concurrency, deadline):
    """[(status, seconds, network seconds, batch)] of ``requests`` sent ``concurrency`` at once."""
    def one(_):
        if time.monotonic() > deadline:
            return None
        start = time.perf_counter()
        response = client.post(url + "v1/derain", content=image,
                               timeout=max(deadline - time.monotonic(), 1))
        elapsed = time.perf_counter() - start
        headers = response.headers
        return (response.status_code, elapsed, float(headers.get("x-derain-seconds", "nan")),
                int(headers.get("x-derain-batch", "0")))

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = [r for r in pool.map(one, range(requests)) if r is not None]
    return results, time.perf_counter() - start


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def _summary(name, results, wall):
    ok = [r for r in results if r[0] == 200]
    latencies = [r[1] for r in ok]
    busy = sum(r[0] == 503 for r in results)
    batches = [r[3] for r in ok]
    return {"server": name, "requests": len(results), "ok": len(ok), "busy_503": busy,
            "other_errors": len(results) - len(ok) - busy,
            "per_second": len(ok) / wall if wall else float("nan"),
            "p50": _percentile(latencies, 50), "p90": _percentile(latencies, 90),
            "p99": _percentile(latencies, 99),
            "network": sum(r[2] for r in ok) / max(len(ok), 1),
            "batch": sum(batches) / max(len(batches), 1)}


def _table(rows, size, args):
    from menet_tf import machine

    cpu = machine.cpu_info()
    clients = f"{args.concurrency} client{'s' if args.concurrency > 1 else ''}"
    print(f"\n{size} image, {args.requests} requests x {args.rounds} rounds, {clients} at once;"
          f" {cpu['model']}, {cpu['logical_cpus']} vCPU (other work may have been running)")
    print("| server | requests | ok | 503 | requests/s | p50 s | p90 s | p99 s |"
          " network s (per call) | mean batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['server']} | {r['requests']} | {r['ok']} | {r['busy_503']} |"
              f" {r['per_second']:.2f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} |"
              f" {r['network']:.3f} | {r['batch']:.2f} |")
    print("command: python benchmarks/serve_load.py " + " ".join(sys.argv[1:]))


def main():
    args = _parse()
    import httpx
    from PIL import Image

    deadline = time.monotonic() + args.time_limit
    image = pathlib.Path(args.image).read_bytes()
    with Image.open(args.image) as im:
        size = f"{im.size[0]}x{im.size[1]}"
    servers = []
    try:
        if args.url:
            targets = [(args.url.rstrip("/") + "/", "the running server")]
        else:
            servers = [Server(b, args.concurrency, args.model, deadline)
                       for b in args.max_batch]
            targets = [(s.url, s.name) for s in servers]
        collected = {name: ([], 0.0) for _, name in targets}
        with httpx.Client() as client:
            for url, _ in targets:  # the first request of each, outside the figures
                client.post(url + "v1/derain", content=image, timeout=120)
            for round_ in range(args.rounds):
                for url, name in targets:  # A, B, A, B ...
                    if time.monotonic() > deadline:
                        print("time limit reached; reporting what was measured")
                        break
                    results, wall = _round(client, url, image, args.requests,
                                           args.concurrency, deadline)
                    done, total = collected[name]
                    collected[name] = (done + results, total + wall)
                    print(f"round {round_ + 1} {name}: {len(results)} requests in"
                          f" {wall:.1f} s", flush=True)
        _table([_summary(name, *collected[name]) for _, name in targets], size, args)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
