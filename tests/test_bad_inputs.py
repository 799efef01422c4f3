"""Bad input: every file is judged on its own; a bad one gets an error row and the batch goes on.

All files are made here, in code.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.faces.blazeface import find_faces
from deepfake_detect.faces.haar import detect_faces
from deepfake_detect.scan.decode import DecodeOptions
from deepfake_detect.scan.inputs import iter_inputs
from deepfake_detect.scan.pipeline import decode

pytestmark = pytest.mark.usefixtures("scan_runtime")


def _save(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims ``width x height`` (a decompression bomb's signature)."""
    data = bytearray(_save(Image.new("RGB", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (48, 48), c) for c in ((0, 0, 0), (255, 255, 255))]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def _noise(mode: str = "RGB", size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


GOOD_JPEG = _save(_noise(), "JPEG")
BROKEN = {  # name -> (bytes, words expected in the error)
    "corrupt.jpg": (
        bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)),
        "not a recognised",
    ),
    "truncated.jpg": (GOOD_JPEG[: len(GOOD_JPEG) // 2], "truncated"),
    "empty.png": (b"", "not a recognised"),
    "notes.png": (b"these are not pixels\n" * 20, "not a recognised"),
    "bomb.png": (_png_claiming(20_000, 20_000), "decompression bomb"),
}
GOOD = {
    "png-named.jpg": _save(_noise(), "PNG"),
    "cmyk.jpg": _save(_noise("CMYK"), "JPEG"),
    "gray.png": _save(_noise("L"), "PNG"),
    "palette.png": _save(_noise("P"), "PNG"),
    "rgba.png": _save(_noise("RGBA"), "PNG"),
    "sixteen.png": _save(Image.fromarray((np.arange(40 * 48).reshape(40, 48) * 30).astype(np.uint16)), "PNG"),
    "animated.gif": _animated("GIF"),
    "animated.webp": _animated("WEBP"),
    "tiny.png": _save(_noise(size=(8, 8)), "PNG"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for name, (data, _) in BROKEN.items():
        (root / name).write_bytes(data)
    for name, data in GOOD.items():
        (root / name).write_bytes(data)
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    (root / "folder.jpg").mkdir()  # tests run as root: chmod 000 would not stop them, a directory does
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    return root


@pytest.fixture(scope="module")
def results(det, folder) -> dict[str, dict]:
    names = [*BROKEN, *GOOD, "dangling.jpg", "loop_a.jpg"]
    out = det.with_backend("torch").scan([str(folder / n) for n in names], detect=False, workers=0)
    assert [Path(r["path"]).name for r in out] == names  # one result a file, in order: the batch went on
    return {Path(r["path"]).name: r for r in out}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_files_get_a_clear_error_row(results, name):
    r = results[name]
    assert BROKEN[name][1] in r["error"] and r["faces"] == [] and r["verdict"] is None


@pytest.mark.parametrize("name", list(GOOD))
def test_odd_but_valid_images_are_scored(results, name):
    r = results[name]
    assert r["error"] is None and len(r["faces"]) == 1 and r["verdict"] in ("real", "fake")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("dangling.jpg", "No such file"),
        ("loop_a.jpg", "symbolic links"),
    ],
)
def test_unreadable_paths(results, name, words):
    assert words in results[name]["error"]


def test_a_directory_named_like_an_image(det, folder):
    # Named on the command line, a folder is walked (here: nothing inside); reaching the decoder, say
    # from a file replaced by a folder mid-scan, it is an error row like any unreadable file.
    assert (
        det.with_backend("torch")
        .scan([str(folder / "folder.jpg"), str(folder / "gray.png")])[0]["path"]
        .endswith("gray.png")
    )
    decoded = decode(0, str(folder / "folder.jpg"), DecodeOptions(det.preprocess, detect=False))
    assert "directory" in decoded.error and decoded.faces == []


def test_tiny_images_are_scored_with_a_note_or_have_no_face(det, results):
    assert "8x8" in results["tiny.png"]["note"] and "unreliable" in results["tiny.png"]["note"]
    detected = det.with_backend("torch").scan([np.zeros((8, 8, 3), np.uint8)])[0]
    assert detected["faces"] == [] and "no face" in detected["note"]


def test_animation_uses_its_first_frame(det, folder):
    first = Image.new("RGB", (48, 48), (0, 0, 0))
    (expected,) = det.with_backend("torch").scan([first], detect=False)
    for name in ("animated.gif", "animated.webp"):
        (got,) = det.with_backend("torch").scan([str(folder / name)], detect=False)
        assert got["faces"][0]["logit"] == pytest.approx(expected["faces"][0]["logit"], abs=1e-5)


def test_exif_rotation_boxes_are_in_the_upright_image(det, tmp_path, face_photo):
    upright = face_photo[:, :400]  # 400 wide x 512 high, so a wrong orientation shows in the size
    (expected,) = detect_faces(upright)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))  # the sensor's sideways pixels
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", quality=95, exif=exif)
    (found,) = det.with_backend("torch").scan([str(path)], framing="box")
    assert len(found["faces"]) == 1
    assert np.allclose(found["faces"][0]["box"], expected, atol=8)
    (landmarked,) = find_faces(upright)  # the default framing's finder: box, landmarks and quad all upright
    (found,) = det.with_backend("torch").scan([str(path)])
    assert len(found["faces"]) == 1
    assert np.allclose(found["faces"][0]["box"], landmarked.box, atol=8)
    assert np.allclose(found["faces"][0]["quad"], landmarked.quad, atol=8)
    (whole,) = det.with_backend("torch").scan([str(path)], detect=False)
    assert whole["faces"][0]["box"] == [0, 0, 400, 512]


def test_folder_walk_survives_symlink_loops(folder, tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "a.png")
    os.symlink(tmp_path, tmp_path / "sub" / "up")  # sub/up -> .. -> sub -> ...
    assert [Path(p).name for p in iter_inputs([tmp_path])] == ["a.png"]


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS is read from /proc (Linux)")
def test_huge_folder_streams_in_bounded_memory(tmp_path, untrained_checkpoint):
    pixels = _save(Image.new("RGB", (16, 16), (10, 20, 30)), "PNG")
    for i in range(2000):
        (tmp_path / f"{i:05d}.png").write_bytes(pixels)
    # Crop mode with a 256 px framing: each decoded image is stored at 192 KiB, so holding the 2,000 of
    # them would take 375 MiB, while the network itself only sees a cheap 32 px centre.
    det = dd.load_detector(
        untrained_checkpoint(tmp_path / "m.safetensors", resize_mode="crop", base_size=256)
    )
    stream = det.with_backend("torch").iter_scan([tmp_path], detect=False, workers=0, batch_size=16)
    first = next(stream)  # results come before the folder has been read through
    assert first["path"].endswith("00000.png")
    count, before = 1, _rss_mib()
    for _ in stream:
        count += 1
    assert count == 2000
    assert _rss_mib() - before < 40
