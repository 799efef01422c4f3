"""serve's page in a real headless Chromium (Playwright driving Debian's chromium): key, upload, verdict, heatmap.

Skips, saying why, without the ``playwright`` package or a chromium binary (``scripts/ensure-chromium.sh``
installs Debian's). Playwright's own browser downloads are never used. Every test here drives the browser,
so the module is marked slow.
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.serve import ServeConfig, create_app, running_server

pytestmark = pytest.mark.slow

KEY = "browser-key"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


@pytest.fixture(scope="module")
def browser():
    binary = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if binary is None:
        pytest.skip(
            f"no chromium binary on PATH (looked for {', '.join(BROWSERS)}); run scripts/ensure-chromium.sh"
        )
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=binary, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, untrained_checkpoint):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    det = dd.load_detector(untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", gain=1000))
    config = ServeConfig(api_key=KEY, onnx_cache=str(tmp_path_factory.mktemp("onnx")))
    with running_server(create_app(config, detector=det)) as url:
        yield url
    torch.set_num_threads(threads)


@pytest.fixture
def page(browser, server):
    """A fresh page on the service that records requests, console errors and uncaught exceptions."""
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.requests, page.problems = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    page.on("pageerror", lambda err: page.problems.append(str(err)))
    page.goto(server)
    yield page
    context.close()


def enter_key(page) -> None:
    sync_api.expect(page.locator("#key-section")).to_be_visible()  # the service said a key is needed
    page.fill("#api-key", KEY)
    page.click("#key-button")
    sync_api.expect(page.locator("#model-info")).to_contain_text("Model notebook-cnn")


def test_upload_a_face_see_the_verdict_and_toggle_the_heatmap(
    page, server, tmp_path, capsys, record_property, face_photo
):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(face_photo).save(photo, quality=92)
    enter_key(page)
    page.set_input_files("#file-input", str(photo))
    sync_api.expect(page.locator("#previews img")).to_have_count(1)  # the preview before sending
    page.click("#scan-button")

    card = page.locator(".card")
    sync_api.expect(card).to_have_count(1, timeout=60_000)
    sync_api.expect(card.locator("h2")).to_contain_text("astronaut.jpg")
    verdict = card.locator(".face .verdict").first
    assert verdict.inner_text() in ("REAL", "FAKE")
    meter = card.locator(".face .bar").first
    p_fake = float(meter.get_attribute("aria-valuenow"))
    assert 0.0 <= p_fake <= 1.0
    assert card.locator(".photo .box").count() >= 1  # the face box drawn over the photo

    heatmap = card.locator("img.heatmap").first
    assert heatmap.is_hidden()
    card.locator("button.heatmap-toggle").first.click()
    sync_api.expect(heatmap).to_be_visible()
    assert heatmap.evaluate("img => img.complete && img.naturalWidth") == 32  # the model's input size
    sync_api.expect(card.locator("button.heatmap-toggle").first).to_have_text("Hide heatmap")

    shot = tmp_path / "serve-page.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size[0] >= 1000
    record_property("screenshot", str(shot))
    with capsys.disabled():
        print(f"\n[serve page screenshot] {shot}")

    outside = [u for u in page.requests if not u.startswith((server, "data:", "blob:"))]
    assert not outside, f"the page contacted other servers: {outside}"
    assert not page.problems, page.problems


def test_errors_are_shown_in_plain_words(page, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a photo")
    enter_key(page)
    page.set_input_files("#file-input", str(text))
    page.click("#scan-button")
    message = page.locator("#message")
    sync_api.expect(message).to_be_visible(timeout=60_000)
    sync_api.expect(message).to_contain_text("Not an image.")
    sync_api.expect(page.locator(".card .error")).to_contain_text("Could not judge this file: not an image")

    page.fill("#api-key", "wrong")
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, "PNG")
    page.set_input_files(
        "#file-input", files=[{"name": "a.png", "mimeType": "image/png", "buffer": buffer.getvalue()}]
    )
    page.click("#scan-button")
    sync_api.expect(message).to_contain_text("The API key is missing or wrong.")


@pytest.fixture(scope="module")
def uncertain_server(tmp_path_factory, untrained_checkpoint, face_photo):
    """A service whose model has an "uncertain" band around the astronaut's face score (no key)."""
    from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("band")
    raw = untrained_checkpoint(folder / "raw.safetensors", gain=1000)
    logit = dd.load_detector(raw, backend="torch").scan([face_photo])[0]["faces"][0]["logit"]
    state, meta = load_checkpoint(raw)
    band = {"threshold_logit": logit, "abstain_lower_logit": logit - 1.0, "abstain_upper_logit": logit + 1.0}
    save_checkpoint(folder / "band.safetensors", state, {**meta, **band, "abstain_target_precision": 0.99})
    det = dd.load_detector(folder / "band.safetensors", backend="torch")
    config = ServeConfig(backend="torch", onnx_cache=str(tmp_path_factory.mktemp("onnx")))
    with running_server(create_app(config, detector=det)) as url:
        yield url
    torch.set_num_threads(threads)


def test_an_uncertain_verdict_is_shown_apart_with_its_explanation(
    browser, uncertain_server, tmp_path, face_photo
):
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda err: problems.append(str(err)))
    page.goto(uncertain_server)
    sync_api.expect(page.locator("#model-info")).to_contain_text('"uncertain" in between')
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(face_photo).save(photo, quality=92)
    page.set_input_files("#file-input", str(photo))
    page.click("#scan-button")

    card = page.locator(".card")
    sync_api.expect(card).to_have_count(1, timeout=60_000)
    sync_api.expect(card.locator("h2 .verdict")).to_have_text("UNCERTAIN")
    sync_api.expect(card.locator(".uncertain-note")).to_contain_text("judge it yourself")
    badge = card.locator(".face .verdict.uncertain").first
    sync_api.expect(badge).to_be_visible()
    # Amber, not the green of "real" or the red of "fake".
    assert badge.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(161, 92, 0)"
    assert card.locator(".face .bar .band").count() == 1  # the band drawn on the p_fake bar
    sync_api.expect(card.locator(".photo .box.uncertain")).to_have_count(1)
    assert not problems, problems
    page.close()
