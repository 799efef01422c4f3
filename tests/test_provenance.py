"""provenance: what files say about their origin (C2PA, XMP, EXIF, PNG text, JPEG comments) and what it is worth.

Every file is made here: C2PA manifests are signed with a throwaway certificate chain (tests/provenance_files.py).
"""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import provenance_files as pf
from deepfake_detect.provenance import (
    AI_SOURCE_TYPES,
    Provenance,
    apply_provenance,
    declaration,
    findings,
    read_provenance,
)
from deepfake_detect.provenance.containers import MAX_INFLATE_BYTES
from deepfake_detect.provenance.record import MAX_TEXT_CHARS, ExifFields, XmpFields

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def kinds() -> dict[str, bytes]:
    return pf.files()


def judged(data: bytes, verdict: str | None = "real") -> dict:
    """A scan row with the pixels' ``verdict``, after the provenance policy."""
    return apply_provenance({"path": "x", "error": None, "verdict": verdict}, read_provenance(data))


# ------------------------------------------------------------------------------------------- the five kinds


def test_a_signed_manifest_is_read_offline_as_untrusted(kinds):
    c2pa = read_provenance(kinds["signed.jpg"]).c2pa
    assert c2pa.present and c2pa.state == "untrusted" and c2pa.error is None
    assert c2pa.codes == ("signingCredential.untrusted",)  # no trust list: nobody vouches for the signer
    assert (c2pa.signer, c2pa.signer_org) == (pf.SIGNER, pf.SIGNER_ORG)
    assert c2pa.claim_generator == "provenance-tests 1.0"
    assert [(a.action, a.digital_source_type, a.ingredient) for a in c2pa.actions] == [
        ("c2pa.created", pf.TRAINED, False)
    ]


def test_pixels_changed_after_signing_make_the_manifest_invalid(kinds):
    before = np.asarray(Image.open(io.BytesIO(kinds["signed.jpg"])), np.int16)
    after = np.asarray(Image.open(io.BytesIO(kinds["tampered.jpg"])), np.int16)
    assert np.abs(before - after).max() > 10  # the fixture really changed the pixels
    c2pa = read_provenance(kinds["tampered.jpg"]).c2pa
    assert c2pa.present and c2pa.state == "invalid"
    assert "assertion.dataHash.mismatch" in c2pa.codes


def test_a_signed_png_is_read_too():
    c2pa = read_provenance(pf.sign(pf.webui_png(), "image/png")).c2pa
    assert c2pa.state == "untrusted" and c2pa.actions[0].digital_source_type == pf.TRAINED


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "signed.jpg",
            f"declared by C2PA (trainedAlgorithmicMedia, signed by {pf.SIGNER} ({pf.SIGNER_ORG}), untrusted)",
        ),
        (
            "tampered.jpg",
            f"declared by C2PA (trainedAlgorithmicMedia, signed by {pf.SIGNER} ({pf.SIGNER_ORG}), invalid: "
            "assertion.dataHash.mismatch)",
        ),
        ("webui.png", "declared by a generator's PNG text chunk 'parameters' (Stable Diffusion WebUI)"),
        ("xmp.jpg", "declared by XMP (IPTC DigitalSourceType trainedAlgorithmicMedia)"),
        ("plain.jpg", None),
    ],
)
@pytest.mark.parametrize("pixels", ["real", "fake", "uncertain", None])
def test_a_declaration_makes_the_verdict_fake_and_nothing_else_changes_it(kinds, name, reason, pixels):
    row = judged(kinds[name], pixels)
    assert row.get("reason") == reason
    assert row["verdict"] == ("fake" if reason else pixels)
    assert row["provenance"]["declares_ai"] is (reason is not None)
    json.dumps(row, allow_nan=False)


def test_the_record_of_each_kind(kinds):
    webui = read_provenance(kinds["webui.png"])
    assert webui.format == "PNG" and webui.png_text.parameters == pf.WEBUI_PARAMETERS
    xmp = read_provenance(kinds["xmp.jpg"]).xmp
    assert xmp == XmpFields(pf.TRAINED, "Image Generator 3")
    assert read_provenance(kinds["plain.jpg"]) == Provenance(format="JPEG")


def test_a_file_that_says_nothing_is_reported_as_proving_nothing(kinds):
    panel = findings(read_provenance(kinds["plain.jpg"]))
    assert len(panel) == 1 and "absence proves nothing" in panel[0].worth


def test_the_panel_says_what_each_signal_is_worth(kinds):
    signed = findings(read_provenance(kinds["signed.jpg"]))
    assert [f.signal for f in signed] == ["C2PA"]
    assert "untrusted" in signed[0].found and "trainedAlgorithmicMedia" in signed[0].found
    assert "anyone can sign" in signed[0].worth and "verdict fake" in signed[0].worth
    tampered = findings(read_provenance(kinds["tampered.jpg"]))[0]
    assert "assertion.dataHash.mismatch" in tampered.found and "changed after signing" in tampered.worth


# -------------------------------------------------------------------------- what never makes a file real


def exif_bytes(**tags) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[{"make": 0x010F, "model": 0x0110, "software": 0x0131}[tag]] = value
    return exif


def test_camera_exif_and_a_capture_manifest_are_reported_not_trusted():
    data = pf.sign(
        pf.jpeg(5, exif=exif_bytes(make="Canon", model="EOS 5D", software="fw 1.2")), source_type=pf.CAPTURE
    )
    record = read_provenance(data)
    assert record.exif == ExifFields(software="fw 1.2", make="Canon", model="EOS 5D")
    assert record.c2pa.state == "untrusted" and declaration(record) is None
    row = judged(data, "fake")
    assert row["verdict"] == "fake" and "reason" not in row  # the pixels' verdict, untouched
    panel = {f.signal: f for f in findings(record)}
    assert "not trusted" in panel["EXIF camera"].worth and panel["EXIF camera"].found == "Canon EOS 5D"
    assert "declares no generative AI" in panel["C2PA"].worth


@pytest.mark.parametrize("term", ["digitalCapture", "algorithmicMedia", "composite", "bogus term"])
def test_other_source_types_declare_nothing(term):
    assert term not in AI_SOURCE_TYPES
    assert judged(pf.jpeg(6, xmp=pf.xmp_packet(term)), "real")["verdict"] == "real"


def test_an_error_row_keeps_its_error_and_gets_no_verdict(kinds):
    row = {"path": "x", "error": "truncated", "verdict": None}
    apply_provenance(row, read_provenance(kinds["webui.png"]))
    assert row["verdict"] is None and "reason" not in row and row["provenance"]["declares_ai"]


def test_no_record_leaves_the_row_as_it_was():
    assert apply_provenance({"error": None, "verdict": "real"}, None) == {"error": None, "verdict": "real"}


# ------------------------------------------------------------------------------------ never the network


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_remote_manifest_is_reported_and_never_fetched():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/manifest.c2pa"
        record = read_provenance(pf.sign(pf.jpeg(7), remote_url=url))
    finally:
        server.shutdown()
    assert _Counting.hits == []
    assert record.c2pa.remote_url == url and not record.c2pa.present and record.c2pa.state is None
    assert "not fetched" in findings(record)[0].worth and declaration(record) is None


@pytest.mark.slow  # a subprocess: c2pa must not be imported yet
def test_c2pa_is_loaded_only_for_files_that_carry_a_manifest(kinds, tmp_path):
    for name in ("plain.jpg", "webui.png", "xmp.jpg"):
        (tmp_path / name).write_bytes(kinds[name])
    code = (
        "import sys, pathlib\nfrom deepfake_detect.provenance import read_provenance\n"
        f"for p in sorted(pathlib.Path({str(tmp_path)!r}).iterdir()): read_provenance(p.read_bytes())\n"
        "print('c2pa' in sys.modules)\n"
    )
    env = {"PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


# ------------------------------------------------------------------------------------ the other blocks


def png(**text) -> bytes:
    """A PNG with text chunks: ``name=(text, kind)`` with kind tEXt, zTXt or iTXt (compressed)."""
    info = PngImagePlugin.PngInfo()
    for key, (value, kind) in text.items():
        if kind == "iTXt":
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value, zip=kind == "zTXt")
    buffer = io.BytesIO()
    Image.fromarray(pf.pixels(8, 16)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_comfyui_chunks_compressed_or_not_declare_a_generator():
    data = png(prompt=('{"3": {"class_type": "KSampler"}}', "zTXt"), workflow=('{"nodes": []}', "iTXt"))
    record = read_provenance(data)
    assert record.png_text.prompt == '{"3": {"class_type": "KSampler"}}'
    assert record.png_text.workflow == '{"nodes": []}'
    assert judged(data)["reason"] == (
        "declared by a generator's PNG text chunk 'prompt' (ComfyUI); "
        "declared by a generator's PNG text chunk 'workflow' (ComfyUI)"
    )


def test_a_software_chunk_is_reported_only():
    row = judged(png(Software=("NotAGenerator 2.0", "tEXt")))
    assert row["verdict"] == "real" and row["provenance"]["png_text"]["software"] == "NotAGenerator 2.0"


def test_huge_text_is_cut_and_a_compressed_bomb_is_inflated_only_so_far():
    big = read_provenance(png(parameters=("x" * 5_000_000, "tEXt")))
    assert len(big.png_text.parameters) == MAX_TEXT_CHARS and big.png_text.parameters.endswith("…")
    bomb = png(workflow=("a" * (50 * MAX_INFLATE_BYTES), "zTXt"))  # 50 MiB in about 50 KB
    assert len(bomb) < MAX_INFLATE_BYTES
    assert len(read_provenance(bomb).png_text.workflow) == MAX_TEXT_CHARS


def xmp_with(body: str) -> bytes:
    """An XMP packet whose description holds ``body`` (the IPTC Extension's namespace declared)."""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def test_xmp_forms_and_containers():
    element = xmp_with(f"<Iptc4xmpExt:DigitalSourceType>{pf.TRAINED}</Iptc4xmpExt:DigitalSourceType>")
    resource = xmp_with(f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{pf.TRAINED}"/>')
    for packet in (element, resource):
        assert read_provenance(pf.jpeg(9, xmp=packet)).xmp.digital_source_type == pf.TRAINED, packet
    webp = io.BytesIO()
    Image.fromarray(pf.pixels(10)).save(webp, "WEBP", xmp=pf.xmp_packet(), exif=exif_bytes(make="Nikon"))
    record = read_provenance(webp.getvalue())
    assert (
        record.format == "WEBP"
        and record.xmp.digital_source_type == pf.TRAINED
        and record.exif.make == "Nikon"
    )
    in_png = png(**{"XML:com.adobe.xmp": (pf.xmp_packet().decode(), "iTXt")})
    assert read_provenance(in_png).xmp.creator_tool == "Image Generator 3"


def test_malformed_xmp_gives_what_it_can():
    for packet in (b"<x:xmpmeta", b"\xff\xfe\x00garbage", b"<a:DigitalSourceType>" * 3000, b"&amp;" * 1000):
        record = read_provenance(pf.jpeg(11, xmp=packet))
        assert record.xmp == XmpFields(), packet[:40]


def test_jpeg_comments_and_png_exif():
    record = read_provenance(pf.jpeg(12, comment=b"Created with a hand-written script"))
    assert record.jpeg_comments == ("Created with a hand-written script",)
    buffer = io.BytesIO()
    Image.fromarray(pf.pixels(13)).save(buffer, "PNG", exif=exif_bytes(software="Photo Editor 9"))
    assert read_provenance(buffer.getvalue()).exif.software == "Photo Editor 9"


def test_other_formats_and_garbage_are_read_without_raising():
    tiff = io.BytesIO()
    Image.fromarray(pf.pixels(14)).save(tiff, "TIFF", exif=exif_bytes(model="Scanner X"))
    assert read_provenance(tiff.getvalue()).exif.model == "Scanner X"
    for data in (
        b"",
        b"\xff\xd8",
        b"\x89PNG\r\n\x1a\n" + b"\xff" * 20,
        b"RIFF\x00\x00\x00\x00WEBP",
        b"jumb" * 10,
    ):
        record = read_provenance(data)
        assert declaration(record) is None
    not_zlib = png(parameters=("xyz", "tEXt")).replace(b"tEXt", b"zTXt")  # "compressed" text that is not
    assert read_provenance(not_zlib).png_text.parameters is None
