"""Content Credentials: a file's C2PA manifest store, validated offline with ``c2pa-python``.

The reader never touches the network: remote manifests and OCSP revocation answers are not fetched (a file
whose manifest lives elsewhere says so, and its URL is reported), and there is no trust list. A signature that
checks out but whose certificate nobody vouches for is ``"untrusted"``, a state rather than an error: anyone
can make a certificate and sign a manifest with it. ``c2pa`` (a 15 MB native library) is imported on the
first file that carries a manifest, not before.
"""

from __future__ import annotations

import functools
import io
import json
from typing import Any

from deepfake_detect.provenance.record import C2paAction, C2paManifest, clip

__all__ = ["read_manifest", "C2PA_SETTINGS"]

# c2pa-rs settings: nothing is fetched while reading. OCSP is off by default; both are said here anyway, so a
# change of default in the library cannot make a scan go online.
C2PA_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# c2pa-rs's validation_state -> ours. "Valid" means well formed and signed, but not by a trusted certificate.
_STATES = {"Trusted": "valid", "Valid": "untrusted", "Invalid": "invalid"}
MIME_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff"}
MAX_ACTIONS = 64  # actions kept from the whole manifest store


@functools.cache
def _context():
    """One c2pa context a process, with :data:`C2PA_SETTINGS` (made on first use, after any fork)."""
    import c2pa

    return c2pa.Context(c2pa.Settings.from_dict(C2PA_SETTINGS))


def read_manifest(data: bytes, fmt: str | None, remote_url: str | None = None) -> C2paManifest:
    """Validate the manifest store embedded in a file's bytes; never raises.

    Parameters
    ----------
    data : bytes
        The whole file.
    fmt : str or None
        Its container (``JPEG``, ``PNG``, ...), as a hint; None lets c2pa detect it.
    remote_url : str, optional
        The manifest URL the file's XMP names (``dcterms:provenance``), reported as is.

    Returns
    -------
    C2paManifest
        ``present=False`` when c2pa finds no manifest store; ``state="invalid"`` and ``error`` when one is
        there but cannot be read (truncated, malformed).
    """
    try:
        import c2pa

        with c2pa.Reader(MIME_TYPES.get(fmt or ""), io.BytesIO(data), context=_context()) as reader:
            store = json.loads(reader.json())
    except Exception as err:  # noqa: BLE001 - any failure of the reader is this file's answer, not a crash
        if type(err).__name__.endswith("ManifestNotFound"):
            return C2paManifest(remote_url=remote_url)
        return C2paManifest(present=True, state="invalid", remote_url=remote_url, error=clip(str(err), 300))
    return _from_store(store, remote_url)


def _from_store(store: dict[str, Any], remote_url: str | None) -> C2paManifest:
    manifests = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    active = manifests.get(active_label) or {}
    signature = active.get("signature_info") or {}
    return C2paManifest(
        present=True,
        state=_STATES.get(store.get("validation_state"), "invalid"),
        codes=tuple(str(s.get("code")) for s in store.get("validation_status") or [] if isinstance(s, dict)),
        claim_generator=clip(_claim_generator(active), 200),
        signer=clip(signature.get("common_name"), 200),
        signer_org=clip(signature.get("issuer"), 200),  # c2pa's name for the subject's organisation
        actions=_actions(manifests, active_label),
        remote_url=remote_url,
    )


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    """``claim_generator_info``'s first name and version (claims v2), else the v1 ``claim_generator`` text."""
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict) and info[0].get("name"):
        return " ".join(str(info[0][k]) for k in ("name", "version") if info[0].get(k))
    return manifest.get("claim_generator")


def _actions(manifests: dict[str, Any], active_label: str | None) -> tuple[C2paAction, ...]:
    """Every manifest's ``c2pa.actions`` (v1 and v2), the active manifest's first."""
    order = sorted(manifests, key=lambda label: label != active_label)
    found = []
    for label in order:
        for assertion in _dicts(manifests[label].get("assertions")):
            if str(assertion.get("label", "")).startswith("c2pa.actions"):
                actions = _dicts((assertion.get("data") or {}).get("actions"))
                found += [_action(action, ingredient=label != active_label) for action in actions]
    return tuple(found[:MAX_ACTIONS])


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items or [] if isinstance(item, dict)]


def _action(action: dict[str, Any], ingredient: bool) -> C2paAction:
    agent = action.get("softwareAgent")
    if isinstance(agent, dict):  # claims v2: {"name": ..., "version": ...}
        agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    return C2paAction(
        action=clip(str(action.get("action", "")), 200) or "",
        digital_source_type=clip(action.get("digitalSourceType"), 200),
        software_agent=clip(agent if isinstance(agent, str) else None, 200),
        ingredient=ingredient,
    )
