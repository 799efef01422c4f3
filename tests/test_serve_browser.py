"""serve's page in a real headless Chromium (Playwright driving Debian's chromium): key, upload, verdict, heatmap,
and each face's quad drawn over the photo where the face is.

Skips, saying why, without the ``playwright`` package or a chromium binary (``scripts/ensure-chromium.sh``
installs Debian's). Playwright's own browser downloads are never used. Every test here drives the browser,
so the module is marked slow.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

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


def scan_with_answer(page, photo, answer: dict, model: dict) -> None:
    """Upload ``photo`` through the page while the route answers ``/v1/scan`` with ``answer`` (what the page
    draws is then fixed by the test, not by the model)."""
    body = json.dumps({"model": model, "results": [answer]})
    page.route(
        "**/v1/scan*", lambda route: route.fulfill(status=200, content_type="application/json", body=body)
    )
    enter_key(page)
    page.set_input_files("#file-input", str(photo))
    page.click("#scan-button")


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
    assert card.locator(".photo .face-shape").count() >= 1  # the face's shape drawn over the photo

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


def ui_screenshot() -> bytes:
    """A PNG of a settings window made in code: title bar, text, fields and buttons, and no face anywhere."""
    from PIL import ImageDraw

    image = Image.new("RGB", (640, 420), (245, 246, 248))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 640, 32], fill=(52, 73, 94))
    draw.text((12, 10), "Settings - Account", fill="white")
    for row in range(6):
        y = 60 + 50 * row
        draw.text((24, y + 6), f"Option {row + 1}: notify me about new sign-ins", fill=(29, 36, 48))
        draw.rectangle([380, y, 600, y + 28], outline=(160, 170, 180), fill="white")
    draw.rounded_rectangle([470, 370, 600, 402], radius=6, fill=(21, 101, 192))
    draw.text((505, 380), "Save", fill="white")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_screenshot_without_a_face_gets_no_verdict_badge(page):
    """A screenshot and a 1x1 PNG: no face, so no verdict badge, only the plain note; the whole image is
    scored (and gets a badge) only when the page is asked to."""
    one_pixel = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 30, 30)).save(one_pixel, "PNG")
    uploads = [
        {"name": "settings.png", "mimeType": "image/png", "buffer": ui_screenshot()},
        {"name": "pixel.png", "mimeType": "image/png", "buffer": one_pixel.getvalue()},
    ]
    enter_key(page)
    page.set_input_files("#file-input", files=uploads)
    page.click("#scan-button")
    cards = page.locator(".card")
    sync_api.expect(cards).to_have_count(2, timeout=60_000)
    for card in (cards.nth(0), cards.nth(1)):
        sync_api.expect(card.locator(".note")).to_have_text("No verdict: no face found.")
        assert card.locator(".verdict").count() == 0  # no badge of any kind
        assert "no-verdict" in card.get_attribute("class").split()

    page.check("#fallback")
    page.set_input_files("#file-input", files=uploads[:1])
    page.click("#scan-button")
    card = page.locator(".card")
    sync_api.expect(card.locator("h2 .verdict")).to_have_count(1, timeout=60_000)
    sync_api.expect(card.locator(".note")).to_contain_text("the whole image was scored")
    assert not page.problems, page.problems


def test_a_face_too_small_to_judge_has_no_badge_and_says_why(page, tmp_path):
    photo = tmp_path / "group.png"
    Image.fromarray(np.full((300, 400, 3), 120, np.uint8)).save(photo)
    note = "face too small to judge (60 px)"
    quad = [[100.0, 100.0], [100.0, 160.0], [160.0, 160.0], [160.0, 100.0]]
    face = {
        "box": [100, 100, 60, 60],
        "quad": quad,
        "p_fake": 0.97,
        "logit": 3.4,
        "verdict": None,
        "note": note,
    }
    answer = {
        "path": "group.png",
        "error": None,
        "verdict": None,
        "p_fake": 0.97,
        "faces": [face],
        "note": note,
    }
    model = {"name": "m", "sha256": "s", "threshold_logit": 0.0, "temperature": 1.0}
    scan_with_answer(page, photo, answer, model)
    card = page.locator(".card")
    sync_api.expect(card.locator(".face")).to_have_count(1, timeout=60_000)
    assert card.locator("h2 .verdict").count() == 0  # the file has no verdict
    sync_api.expect(card.locator(".note")).to_have_text(f"No verdict: {note}.")
    sync_api.expect(card.locator(".face .p-fake")).to_contain_text(note)
    sync_api.expect(card.locator(".photo .face-shape.unjudged")).to_have_count(1)  # grey and dashed
    assert "None" not in card.inner_text() and "null" not in card.inner_text()
    assert not page.problems, page.problems


def test_labels_of_faces_side_by_side_do_not_overlap(page, tmp_path):
    photo = tmp_path / "three.png"
    Image.fromarray(np.full((300, 600, 3), 120, np.uint8)).save(photo)

    def face(x: float, verdict: str) -> dict:
        quad = [[x, 100.0], [x, 160.0], [x + 60.0, 160.0], [x + 60.0, 100.0]]  # tops level, 60 px apart
        return {"box": [int(x), 100, 60, 60], "quad": quad, "p_fake": 0.5, "logit": 0.0, "verdict": verdict}

    faces = [face(100, "real"), face(160, "fake"), face(220, "real")]
    answer = {"path": "three.png", "error": None, "verdict": "fake", "p_fake": 0.5, "faces": faces}
    model = {"name": "m", "sha256": "s", "threshold_logit": 0.0, "temperature": 1.0}
    scan_with_answer(page, photo, answer, model)
    labels = page.locator(".photo .face-label")
    sync_api.expect(labels).to_have_count(3, timeout=60_000)
    boxes = labels.evaluate_all(
        "ns => ns.map(n => { const r = n.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    sync_api.expect(page.locator(".card .legend")).to_contain_text("p_fake of the face")
    assert not page.problems, page.problems


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
    # The band drawn on each face's p_fake bar, and a legend saying what the beige band and the mark are.
    assert card.locator(".face .bar .band").count() == card.locator(".face").count() >= 1
    legend = card.locator(".legend")
    sync_api.expect(legend).to_contain_text("uncertain band, p_fake")
    sync_api.expect(legend).to_contain_text("does not call real or fake")
    sync_api.expect(legend).to_contain_text("threshold, p_fake")
    assert legend.locator(".band-key").evaluate("n => getComputedStyle(n).backgroundColor") == (
        card.locator(".face .bar .band").first.evaluate("n => getComputedStyle(n).backgroundColor")
    )  # the legend's swatch is the band's colour
    sync_api.expect(card.locator(".photo .face-shape.uncertain").first).to_be_attached()
    assert not problems, problems
    page.close()


# ------------------------------------------------------------------------------------ face shapes over the photo
MAKER = Path(__file__).resolve().parents[1] / "benchmarks" / "make_faces_in_photos.py"


@pytest.fixture(scope="module")
def maker():
    """benchmarks/make_faces_in_photos.py: warps a face frame into a photo and knows the true quad."""
    spec = importlib.util.spec_from_file_location("make_faces_in_photos", MAKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def drawn_shapes(card) -> list[dict]:
    """Every face shape on a result card: its tag, classes, points in image pixels and on-screen box.

    A polygon's points come back from the SVG's user space (pixel edges) to the quad's pixel centres; the
    on-screen box is checked against the displayed image, so the overlay must be scaled to it.
    """
    return card.locator(".photo").evaluate(
        """wrap => {
          const img = wrap.querySelector("img"), svg = wrap.querySelector("svg.overlay");
          const frame = img.getBoundingClientRect();
          return Array.from(svg.querySelectorAll(".face-shape")).map((node) => {
            const r = node.getBoundingClientRect();
            const points = node.tagName === "polygon"
              ? Array.from(node.points).map((p) => [p.x - 0.5, p.y - 0.5])
              : [["x", "y", "width", "height"].map((a) => Number(node.getAttribute(a)))];
            return {
              tag: node.tagName, cls: node.getAttribute("class"), points,
              screen: [r.left - frame.left, r.top - frame.top, r.width, r.height],
              scale: [frame.width / img.naturalWidth, frame.height / img.naturalHeight],
            };
          });
        }"""
    )


def assert_on_screen_where_the_quad_is(shape: dict, quad: np.ndarray) -> None:
    """The polygon's on-screen bounding box is the quad's, scaled to the displayed image (within 2 px)."""
    sx, sy = shape["scale"]
    low, high = quad.min(axis=0) + 0.5, quad.max(axis=0) + 0.5
    expected = [low[0] * sx, low[1] * sy, (high[0] - low[0]) * sx, (high[1] - low[1]) * sy]
    np.testing.assert_allclose(shape["screen"], expected, atol=2.0)


def test_quads_and_boxes_are_drawn_from_the_rows(page, tmp_path):
    """A served answer with a known quad (and a box-only row, and an unjudged face) drawn where it says."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((600, 900, 3), 90, np.uint8)).save(photo)
    quad = [[300.0, 120.0], [340.0, 350.0], [570.0, 310.0], [530.0, 80.0]]
    face = {"p_fake": 0.9, "logit": 2.2, "heatmap": None}
    faces = [
        {**face, "box": [320, 110, 230, 230], "quad": quad, "landmarks": [[0, 0]] * 5, "verdict": "fake"},
        {
            **face,
            "box": [50, 400, 120, 100],
            "p_fake": 0.1,
            "logit": -2.0,
            "verdict": "real",
        },  # no quad: a box
        {
            **face,
            "box": [700, 40, 40, 40],
            "quad": [[700, 40], [700, 80], [740, 80], [740, 40]],
            "verdict": None,
        },
    ]
    model = {"name": "m", "version": "v", "threshold_p_fake": 0.5}
    answer = {
        "path": "photo.png",
        "error": None,
        "verdict": "fake",
        "p_fake": 0.9,
        "faces": faces,
        "model": model,
    }
    scan_with_answer(page, photo, answer, model)
    card = page.locator(".card")
    sync_api.expect(card.locator(".photo .face-shape")).to_have_count(3, timeout=60_000)
    polygon, rect, small = drawn_shapes(card)
    assert polygon["tag"] == "polygon" and "fake" in polygon["cls"].split()
    np.testing.assert_allclose(polygon["points"], quad, atol=1e-3)
    assert_on_screen_where_the_quad_is(polygon, np.array(quad))
    assert rect["tag"] == "rect" and "real" in rect["cls"].split()
    assert rect["points"] == [[50, 400, 120, 100]]
    assert small["tag"] == "polygon" and "unjudged" in small["cls"].split()
    # Each verdict keeps its colour on the photo: red for fake, green for real.
    strokes = card.locator(".photo .face-shape").evaluate_all("ns => ns.map(n => getComputedStyle(n).stroke)")
    assert strokes[:2] == ["rgb(198, 40, 40)", "rgb(46, 125, 50)"]
    sync_api.expect(card.locator(".face .verdict.unjudged")).to_have_text("NOT JUDGED")
    assert not page.problems, page.problems


def test_the_polygon_follows_a_tilted_face_found_by_the_service(page, tmp_path, maker, face_photo):
    """The astronaut's face, framed, turned 14 degrees and pasted into a photo: the polygon lies on it."""
    pytest.importorskip("deepfake_detect.faces.landmarks", reason="the landmark face path is not in yet")
    from deepfake_detect.faces.haar import crop_face, detect_faces

    frame = np.asarray(Image.fromarray(crop_face(face_photo, detect_faces(face_photo)[0])).resize((256, 256)))
    canvas = maker.photo_canvas(np.random.default_rng(0), "coffee", 600)
    matrix = maker.similarity(14.0, 300.0, (canvas.shape[1] * 0.6, canvas.shape[0] * 0.5))
    true_quad = maker.map_points(matrix, maker.frame_corners())
    photo = tmp_path / "tilted.jpg"
    Image.fromarray(maker.composite(canvas, frame, matrix)).save(photo, quality=92)

    enter_key(page)
    page.set_input_files("#file-input", str(photo))
    with page.expect_response(lambda r: "/v1/scan" in r.url, timeout=60_000) as response:
        page.click("#scan-button")
    rows = response.value.json()["results"][0]["faces"]
    card = page.locator(".card")
    sync_api.expect(card.locator(".photo polygon.face-shape")).to_have_count(len(rows), timeout=60_000)
    shapes = drawn_shapes(card)
    # The face the service found on the pasted one: its quad centre near the true one, of a similar side.
    centre = true_quad.mean(axis=0)
    k = int(np.argmin([np.linalg.norm(np.mean(row["quad"], axis=0) - centre) for row in rows]))
    quad = np.array(rows[k]["quad"])
    assert np.linalg.norm(quad.mean(axis=0) - centre) < 0.15 * 300
    assert 0.7 < np.linalg.norm(quad[3] - quad[0]) / 300 < 1.4
    np.testing.assert_allclose(shapes[k]["points"], quad, atol=0.01)  # the polygon is the row's quad
    assert_on_screen_where_the_quad_is(shapes[k], quad)
    assert not page.problems, page.problems


# ------------------------------------------------------------------------------------------------ provenance


def test_the_provenance_panel_shows_a_signed_declaration(page, tmp_path):
    """A C2PA-signed file (tests/provenance_files.py): the card says fake by declaration and what it is worth.

    Its pixels hold no face, so no face is scored: the declaration alone gives the verdict, and the note says
    that no face was found (the one rule for faces)."""
    import provenance_files as pf

    signed = tmp_path / "signed.jpg"
    signed.write_bytes(pf.sign(pf.jpeg(1)))
    enter_key(page)
    page.set_input_files("#file-input", str(signed))
    page.click("#scan-button")
    card = page.locator(".card")
    sync_api.expect(card).to_have_count(1, timeout=60_000)
    sync_api.expect(card.locator("h2 .verdict")).to_have_text("FAKE")
    panel = card.locator(".provenance")
    sync_api.expect(panel).to_be_visible()
    sync_api.expect(panel.locator("h3")).to_have_text("Provenance")
    sync_api.expect(panel.locator(".reason")).to_contain_text(
        f"Verdict fake: declared by C2PA (trainedAlgorithmicMedia, signed by {pf.SIGNER} ({pf.SIGNER_ORG}), untrusted)"
    )
    finding = panel.locator("li").first
    sync_api.expect(finding).to_contain_text("C2PA: manifest by provenance-tests 1.0")
    sync_api.expect(finding.locator("em")).to_contain_text("anyone can sign")
    sync_api.expect(card.locator(".note")).to_contain_text("no face found")
    assert card.locator(".face .bar").count() == 0  # no face, so no pixel score beside the declaration
    assert not page.problems, page.problems
