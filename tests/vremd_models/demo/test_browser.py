"""`vremd-demo` used as a person would: Debian's chromium, headless, driven by Playwright.

Playwright is pointed at /usr/bin/chromium (`.ci/run` installs it) and never downloads a browser. Every
request that leaves the demo's own address is refused and recorded: the page must work offline.
Set VREMD_DEMO_SCREENSHOT=path to save a screenshot of the page (docs/images/demo.png is made so).
"""

import os
import socket
import subprocess
import sysconfig
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from posetrack_eval import evaluate

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 240  # Gradio and torch imports on a busy 2-core machine
RUN_TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo_server(tmp_path, small_model_dir, tiny_detector_dir):
    """`vremd-demo` on a free local port, with the tiny detector; yields (url, data dir)."""
    port = _free_port()
    data_dir = tmp_path / "data"
    executable = Path(sysconfig.get_path("scripts")) / "vremd-demo"
    log = (tmp_path / "server.log").open("w")
    command = [executable, "--model", small_model_dir, "--port", port, "--data-dir", data_dir]
    process = subprocess.Popen(
        [str(arg) for arg in [*command, "--detector", tiny_detector_dir]],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"vremd-demo exited with {process.returncode}:\n{(tmp_path / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vremd-demo did not answer on {url}:\n{(tmp_path / 'server.log').read_text()}")
            time.sleep(1)
        yield url, data_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _image(page, locator) -> np.ndarray:
    """Download what an <img> shows, through the page's own connection, as a BGR array."""
    from playwright.sync_api import Error

    for attempt in range(3):  # on a loaded machine a download can be aborted mid-body; the file is still served
        try:
            response = page.request.get(locator.get_attribute("src"))
            break
        except Error:
            if attempt == 2:
                raise
            page.wait_for_timeout(500)
    assert response.ok
    image = cv2.imdecode(np.frombuffer(response.body(), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def _wait_for_new_src(page, selector: str, old: str) -> None:
    page.wait_for_function(
        "([selector, old]) => { const i = document.querySelector(selector); return i && i.src && i.src !== old; }",
        arg=[selector, old],
        timeout=RUN_TIMEOUT_MS,
    )


def _gallery_sources(page) -> list[str]:
    return [image.get_attribute("src") for image in page.locator(".explain img").all()]


def _detected_persons(data_dir: Path, detector_dir: Path) -> int:
    """How many persons the page's detector finds on the synthetic clip (boxes scoring 0.2 and up)."""
    from vremd_models.demo.clip import open_synthetic_clip
    from vremd_models.predict.detector import load_detector

    clip, detector = open_synthetic_clip(data_dir), load_detector(str(detector_dir))
    frames = (clip.sequence.read(i) for i in range(len(clip.sequence)))
    return sum(box.score >= 0.2 for frame in frames for box in detector.detect(frame))


def test_the_page_in_chromium(tmp_path, demo_server, tiny_detector_dir):
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium), as .ci/run does")
    url, data_dir = demo_server
    (tmp_path / "notes.txt").write_text("not a video")
    refused = []

    def only_the_demo(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            tmp_path / "profile",  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1900},
            accept_downloads=True,
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_the_demo)
            page.goto(url)

            # A bad upload: one clear message on the page, and the page goes on working.
            page.locator("#video-upload input[type=file]").set_input_files(tmp_path / "notes.txt")
            status = page.locator("#status")
            status.filter(has_text="Cannot use this input").wait_for(timeout=RUN_TIMEOUT_MS)
            assert status.inner_text().startswith("Cannot use this input: notes.txt: not a video")

            # Run the built-in synthetic clip (generated now, on first use) with its detections.
            page.locator("#synthetic").click()
            status.filter(has_text="Opened synthetic clip").wait_for(timeout=RUN_TIMEOUT_MS)
            page.locator("#run").click()
            status.filter(has_text="Predicted").wait_for(timeout=RUN_TIMEOUT_MS)
            assert "on 24 frames of synthetic clip" in status.inner_text()
            assert page.locator(".explain img").count() == 14
            first_view, first_panels = page.locator("#view img").get_attribute("src"), _gallery_sources(page)

            # Move the slider to frame 5: a new overlay and new explain images.
            page.locator("#frame input[type=range]").fill("5")
            _wait_for_new_src(page, "#view img", first_view)
            page.wait_for_function(
                "old => { const i = document.querySelectorAll('.explain img'); return i.length === 14 && "
                "[...i].some(e => !old.includes(e.src)); }",
                arg=first_panels,
                timeout=RUN_TIMEOUT_MS,
            )
            page.locator("#person input").wait_for()
            before = _gallery_sources(page)

            # Pick a joint: the DCA and heatmap panels change, the crops and masks do not.
            page.locator("#joint input").click()
            page.get_by_role("option", name="left_wrist", exact=True).click()
            page.wait_for_function(
                "old => { const i = document.querySelectorAll('.explain img'); return i.length === 14 && "
                "i[9].src !== old[9]; }",
                arg=before,
                timeout=RUN_TIMEOUT_MS,
            )
            after = _gallery_sources(page)
            assert after[:9] == before[:9]
            assert all(a != b for a, b in zip(after[9:], before[9:], strict=True))
            captions = page.locator("#explain-motion").inner_text()
            assert "DCA forward sampling of the left_wrist token" in captions

            overlay = _image(page, page.locator("#view img"))
            panels = [_image(page, image) for image in page.locator(".explain img").all()]
            images = [overlay, *panels]
            assert overlay.shape == (240, 320, 3)
            assert all(image.std() > 10 for image in images)  # not blank
            assert len({image.tobytes() for image in images}) == len(images)  # all different

            # Download the predictions and score them with posetrack-eval.
            with page.expect_download() as download:
                page.locator("#download").click()
            predictions = tmp_path / "predictions"
            predictions.mkdir()
            target = predictions / download.value.suggested_filename
            download.value.save_as(target)

            # The person detector instead of the detection file, the same clip.
            page.locator("#box-source").get_by_text("detector", exact=True).click()
            page.locator("#run").click()
            expected = f"Predicted {_detected_persons(data_dir, tiny_detector_dir)} persons on 24 frames"
            status.filter(has_text=expected).wait_for(timeout=RUN_TIMEOUT_MS)
            assert page.locator(".explain img").count() == 14

            if os.environ.get("VREMD_DEMO_SCREENSHOT"):
                page.screenshot(path=os.environ["VREMD_DEMO_SCREENSHOT"], full_page=True)
        finally:
            browser.close()

    assert refused == []  # nothing but the demo itself was asked for
    (gt_dir,) = data_dir.glob("synthetic-*/annotations/val")
    assert target.name == next(gt_dir.glob("*.json")).name
    result = evaluate(gt_dir, predictions)
    assert 0.0 <= result.ap["Total"] <= 100.0
