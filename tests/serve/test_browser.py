"""The page of ``menet-tf serve`` in a real browser: Debian's headless Chromium driven by
Selenium through Debian's chromedriver (nothing downloads a browser of its own). It uploads a
rainy example and a text file, waits for the de-rained image, downloads it, and sees the text
file's one-line error; everything the page loaded came from the server itself (offline). With
MENET_SCREENSHOT=path it also saves the page (docs/serve.png)."""
import os
import pathlib
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from serve_helpers import EXAMPLES, need_serve_extra

need_serve_extra()
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no headless browser: install Debian's chromium and chromium-driver (.ci/run"
                " does)", allow_module_level=True)


@pytest.fixture
def server(derainer, info):
    """The app under uvicorn on 127.0.0.1 at a free port, in a thread of this process."""
    import uvicorn

    from menet_tf.serve.app import create_app
    from menet_tf.serve.limits import Limits

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(derainer, info, Limits())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1100,1000", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking"):
        options.add_argument(argument)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(what, condition, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"the page did not show {what} within {seconds} s")


def test_the_page_derains_a_photo_downloads_it_and_reports_a_bad_file(server, browser,
                                                                     tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait("the model's name", lambda: "menet-gb-rain100l" in browser.find_element(
        By.ID, "model").text)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    rainy = EXAMPLES / "cat.png"
    browser.find_element(By.ID, "files").send_keys(f"{rainy}\n{notes}")
    done = _wait("the de-rained image", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                       ".card.done"))
    card = done[0]
    after = card.find_element(By.CSS_SELECTOR, "img.after")
    _wait("the image decoded", lambda: browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", after))
    assert browser.execute_script("return [arguments[0].naturalWidth,"
                                  " arguments[0].naturalHeight]", after) == [481, 321]
    assert card.find_elements(By.CSS_SELECTOR, "img.before")  # the slider's rainy side
    meta = card.find_element(By.CSS_SELECTOR, ".meta").text
    assert "481 x 321" in meta and "mode pad" in meta
    error = _wait("the text file's error", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                          ".error"))
    assert len(error) == 1 and error[0].text.startswith("notes.txt: ")
    assert "\n" not in error[0].text and "not a supported type" in error[0].text
    assert "2 of 2 photos done" in browser.find_element(By.ID, "overall").text

    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith((server, "blob:", "data:")) for url in loaded), loaded

    slider = card.find_element(By.CSS_SELECTOR, "input[type=range]")
    browser.execute_script("arguments[0].value = 30;"
                           " arguments[0].dispatchEvent(new Event('input'))", slider)
    if os.environ.get("MENET_SCREENSHOT"):
        shot = pathlib.Path(os.environ["MENET_SCREENSHOT"])
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shot))

    card.find_element(By.CSS_SELECTOR, "a.download").click()
    saved = browser.downloads / "cat-derained.png"
    _wait("the download", lambda: saved.is_file() and saved.stat().st_size > 0, 60)
    with Image.open(saved) as im:
        assert im.format == "PNG" and im.size == (481, 321)
        derained = np.asarray(im.convert("RGB")).astype(int)
    original = np.asarray(Image.open(rainy).convert("RGB")).astype(int)
    assert np.abs(derained - original).mean() > 1  # the de-rained picture, not the rainy one
