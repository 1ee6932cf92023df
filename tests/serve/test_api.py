"""The HTTP API of ``menet-tf serve`` through Starlette's test client, on the bundled model:
an image in and the de-rained image out (as ``menet-tf derain`` writes it), each error status,
the limits, the bounded queue, and corrupt uploads that leave the server up."""
import concurrent.futures
import io
import json
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from serve_helpers import EXAMPLES, GatedDerainer, example_bytes, image_of, need_serve_extra

need_serve_extra()


def test_an_image_in_gives_what_the_derain_command_writes(serve, tmp_path):
    from menet_tf.cli import main as cli

    client = serve()
    response = client.post("/v1/derain", content=(EXAMPLES / "cat.png").read_bytes(),
                           headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-image-size"] == "481x321"
    assert response.headers["x-derain-mode"] == "pad"
    assert 0 < float(response.headers["x-derain-seconds"]) <= float(
        response.headers["x-total-seconds"])
    assert cli.main(["derain", str(EXAMPLES / "cat.png"), "-o", str(tmp_path / "cat.png"),
                     "--quiet"]) == 0
    written = np.asarray(Image.open(tmp_path / "cat.png")).astype(int)
    served = image_of(response)
    assert served.shape == written.shape == (321, 481, 3)
    assert np.abs(served - written).max() <= 1
    rainy = np.asarray(Image.open(EXAMPLES / "cat.png").convert("RGB")).astype(int)
    assert np.abs(served - rainy).mean() > 1  # the model did something


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "TIFF", "BMP"])
def test_each_photo_format_goes_through_as_multipart(serve, fmt):
    client = serve()
    data = example_bytes("coffee.jpg", (64, 48), fmt)
    response = client.post("/v1/derain", files={"image": (f"coffee.{fmt.lower()}", data)},
                           data={"format": "webp"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["content-disposition"].endswith('coffee-derained.webp"')
    assert image_of(response).shape == (48, 64, 3)


def test_a_hostile_file_name_cannot_reach_the_response_headers(serve):
    data = example_bytes("coffee.jpg", (32, 32), "PNG")
    response = serve().post("/v1/derain", files={"image": ('a"b\r\nX-Evil: 1.png', data)})
    assert response.status_code == 200, response.text
    assert "x-evil" not in response.headers
    disposition = response.headers["content-disposition"]  # the client may %-encode the name
    assert re.fullmatch(r'inline; filename="[A-Za-z0-9._-]+-derained\.png"', disposition), \
        disposition


def test_modes_and_large_images_are_tiled_as_derain_does(serve, derainer):
    client = serve(tile_pixels=64 * 64)
    traced = derainer.trace_count
    small = example_bytes(size=(40, 36))
    for mode in ("pad", "resize", "tile"):
        response = client.post(f"/v1/derain?mode={mode}&format=png", content=small)
        assert response.status_code == 200, response.text
        assert response.headers["x-derain-mode"] == mode
        assert image_of(response).shape == (36, 40, 3)
    if not derainer.jit_compile:  # compiled once, at start: the plain graph takes any size
        assert derainer.trace_count == traced
    large = client.post("/v1/derain?mode=pad", content=example_bytes(size=(96, 80)))
    assert large.status_code == 200 and large.headers["x-derain-mode"] == "tile"


def test_decode_gives_the_upload_as_the_server_reads_it(serve):
    """What the page shows as "before" where the browser cannot show the file (TIFF)."""
    client = serve()
    response = client.post("/v1/decode", files={"image": ("coffee.tif",
                                                          example_bytes("coffee.jpg", (40, 30),
                                                                        "TIFF"))})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    rainy = np.asarray(Image.open(EXAMPLES / "coffee.jpg").convert("RGB"))[:30, :40]
    assert np.array_equal(image_of(response), rainy)
    assert client.post("/v1/decode", content=b"rain").status_code == 400


def test_health_and_model_say_what_runs(serve):
    client = serve(queue=2)
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["capacity"] == 3
    model = client.get("/v1/model").json()
    assert model["name"] == "menet-gb-rain100l"
    assert model["configuration"] == "ModelShallowNewCaEdgeGramGradBalance"
    assert "RainTrainL" in model["card"] and model["scores"]["rgb"]["psnr"] > 30
    assert model["version"] and model["limits"]["pixel_limit"] == 40_000_000
    assert model["limits"]["tile_pixels"] > 0


def _gif():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def _png_claiming(width, height):
    """A small PNG whose header (with a valid checksum) claims width x height."""
    data = bytearray(example_bytes(size=(8, 8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("body, kwargs, status, words", [
    (b"", {}, 400, "empty upload"),
    (b"not an image at all", {}, 400, "not an image file"),
    (example_bytes(size=(64, 64))[:300], {"headers": {"content-type": "image/png"}}, 400,
     "corrupt"),
    (example_bytes(size=(32, 32)), {"params": {"mode": "stretch"}}, 400, "mode"),
    (example_bytes(size=(32, 32)), {"params": {"format": "gif"}}, 400, "format"),
    (b"hello, world", {"headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    (_gif(), {}, 415, "GIF"),
    (_png_claiming(9000, 9000), {}, 413, "81.0 MP"),
], ids=["empty", "not-an-image", "truncated", "bad-mode", "bad-format", "text", "gif",
        "too-many-pixels"])
def test_errors_are_json_with_the_right_status(serve, body, kwargs, status, words):
    client = serve(pixel_limit=40_000_000)
    response = client.post("/v1/derain", content=body, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and words in error["error"]
    assert "\n" not in error["error"]


def test_a_text_file_sent_as_multipart_is_unsupported(serve):
    response = serve().post("/v1/derain", files={"image": ("notes.txt", b"rain", "text/plain")})
    assert response.status_code == 415
    assert response.json()["error"].startswith("notes.txt: text/plain is not a supported type")


def test_limits_on_bytes_and_pixels(serve):
    client = serve(upload_bytes=5_000, pixel_limit=48 * 48)
    big = example_bytes(size=(120, 120), fmt="BMP")  # 43 kB
    for kwargs in ({"content": big}, {"files": {"image": ("big.bmp", big)}}):
        response = client.post("/v1/derain", **kwargs)
        assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():  # no Content-Length: cut off while it arrives
        yield big[:4000]
        yield big[4000:]

    assert client.post("/v1/derain", content=chunks()).status_code == 413
    wide = example_bytes(size=(64, 40), fmt="JPEG")
    response = client.post("/v1/derain", content=wide)
    assert response.status_code == 413 and "64x40" in response.json()["error"]
    assert client.post("/v1/derain", content=example_bytes(size=(48, 48),
                                                           fmt="JPEG")).status_code == 200


def test_other_routes_answer_json(serve):
    client = serve()
    assert client.get("/v1/nothing").json()["status"] == 404
    response = client.get("/v1/derain")
    assert response.status_code == 405 and response.json()["status"] == 405
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200


def _until(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the server never reached the expected state"
        time.sleep(0.02)


def test_requests_beyond_the_queue_get_503_at_once_and_the_server_stays_up(serve, derainer):
    gated = GatedDerainer(derainer)
    client = serve(derainer=gated, queue=1)  # one running, one waiting
    gated.warming = False
    image = example_bytes(size=(48, 48))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/v1/derain", content=image)
        assert gated.entered.wait(30)  # the model thread holds the first request
        second = pool.submit(client.post, "/v1/derain", content=image)
        _until(lambda: client.get("/v1/health").json()["admitted"] == 2)
        refused = [client.post("/v1/derain", content=image) for _ in range(3)]
        assert [r.status_code for r in refused] == [503] * 3  # while the gate is still shut
        assert all("busy" in r.json()["error"] for r in refused)
        assert not first.done() and not second.done()
        gated.gate.set()
        assert first.result(60).status_code == second.result(60).status_code == 200
    health = client.get("/v1/health").json()
    assert health["status"] == "ok" and health["admitted"] == 0 and health["served"] == 2
    assert client.post("/v1/derain", content=image).status_code == 200


def test_waiting_requests_of_one_size_run_as_one_batch(serve, derainer):
    gated = GatedDerainer(derainer)
    client = serve(derainer=gated, queue=3, max_batch=4)
    gated.warming = False
    images = [example_bytes(name, (48, 40)) for name in ("cat.png", "coffee.jpg", "rocket.jpg")]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(client.post, "/v1/derain", content=images[0])
        assert gated.entered.wait(30)
        rest = [pool.submit(client.post, "/v1/derain", content=i) for i in images[1:]]
        _until(lambda: client.get("/v1/health").json()["waiting"] == 2)
        gated.gate.set()
        responses = [first.result(60)] + [f.result(60) for f in rest]
    assert [r.headers["x-derain-batch"] for r in responses] == ["1", "2", "2"]
    for data, response in zip(images, responses):  # a batch gives each image its own result
        alone = client.post("/v1/derain", content=data)
        assert np.abs(image_of(alone) - image_of(response)).max() <= 1


def test_corrupt_uploads_do_not_take_the_server_down(serve):
    client = serve()
    good = example_bytes(size=(32, 32), fmt="JPEG")
    rng = np.random.default_rng(0)
    bad = [good[:len(good) // 2], good[:20] + rng.bytes(400), rng.bytes(2000),
           b"\xff\xd8\xff" * 100, _png_claiming(64, 64), _png_claiming(2 ** 31 - 1, 1),
           b"GIF89a", json.dumps({"image": "x"}).encode()]
    for body in bad:
        response = client.post("/v1/derain", content=body,
                               headers={"content-type": "image/jpeg"})
        assert response.status_code in (400, 413, 415), (body[:20], response.text)
        assert response.json()["error"]
    response = client.post("/v1/derain", files={"image": ("x.png", b"\x00" * 10)},
                           headers={"content-type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400
    assert client.get("/v1/health").json()["admitted"] == 0
    assert client.post("/v1/derain", content=good).status_code == 200
