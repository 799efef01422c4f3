"""Files that carry provenance, made in code: a C2PA-signed JPEG (a throwaway CA and an ES256 signing
certificate made with ``cryptography``), the same file with its pixels changed after signing, a PNG with
Stable Diffusion WebUI's ``parameters``, a JPEG with IPTC's DigitalSourceType in XMP, and a plain JPEG.

Nothing is downloaded. The certificates satisfy what c2pa checks of a signer: key usage digitalSignature, an
extended key usage it accepts (emailProtection), subject and authority key identifiers, a CA above it.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
SIGNER, SIGNER_ORG = "Throwaway Generator", "Provenance Tests"
WEBUI_PARAMETERS = (
    "portrait photo of a woman, studio light\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 64x64, Model: sd21"
)
# The five kinds and what the scan must answer: "fake" from metadata, or None (the pixels decide).
KINDS = {
    "signed.jpg": "fake",
    "tampered.jpg": "fake",  # invalid manifest: still a declaration (provenance/policy.py says why)
    "webui.png": "fake",
    "xmp.jpg": "fake",
    "plain.jpg": None,
}


def pixels(seed: int = 0, side: int = 64) -> np.ndarray:
    """A smooth random RGB image (no face in it)."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((side, side), Image.BICUBIC))


def jpeg(seed: int = 0, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels(seed)).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def _name(common_name: str, org: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )


@functools.cache
def signing_chain() -> tuple[bytes, bytes]:
    """A throwaway CA and a signing certificate under it: (certificate chain PEM, private key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # certs, CRLs
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Throwaway CA", "Provenance Tests CA"))
        .issuer_name(_name("Throwaway CA", "Provenance Tests CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # digitalSignature
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SIGNER, SIGNER_ORG))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = cert.public_bytes(pem) + ca.public_bytes(pem)
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return chain, private


def sign(
    data: bytes, mime: str = "image/jpeg", source_type: str = TRAINED, remote_url: str | None = None
) -> bytes:
    """``data`` with a C2PA manifest (one ``c2pa.created`` action of ``source_type``) signed by the chain.

    With ``remote_url`` the manifest is not embedded: the file only points at that URL.
    """
    import c2pa

    chain, private = signing_chain()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, private, None))
    settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    manifest = {
        "claim_generator_info": [{"name": "provenance-tests", "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": source_type}]},
            }
        ],
    }
    builder = c2pa.Builder(manifest, c2pa.Context(settings))
    if remote_url is not None:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    out = io.BytesIO()
    builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


def change_pixels(data: bytes) -> bytes:
    """The JPEG with its DC quantisation step raised: it decodes to other pixels, and the signed hash breaks."""
    pos = 2
    while data[pos + 1] != 0xDB:  # walk the segments (a manifest's bytes may hold 0xFFDB) to the first DQT
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    at = pos + 5  # the marker, the length, the table id, then 64 steps: the first (DC) one
    changed = bytearray(data)
    changed[at] = changed[at] + 8 if changed[at] < 128 else changed[at] // 2
    return bytes(changed)


def webui_png(seed: int = 2) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", WEBUI_PARAMETERS)
    buffer = io.BytesIO()
    Image.fromarray(pixels(seed)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def xmp_packet(source_type: str = TRAINED, creator_tool: str = "Image Generator 3") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f' Iptc4xmpExt:DigitalSourceType="{source_type}" xmp:CreatorTool="{creator_tool}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def files() -> dict[str, bytes]:
    """The five kinds of :data:`KINDS`, by file name."""
    signed = sign(jpeg(1))
    return {
        "signed.jpg": signed,
        "tampered.jpg": change_pixels(signed),
        "webui.png": webui_png(),
        "xmp.jpg": jpeg(3, xmp=xmp_packet()),
        "plain.jpg": jpeg(4),
    }


def write_files(folder: Path) -> dict[str, Path]:
    """:func:`files` written into ``folder``: file name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in files().items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths
