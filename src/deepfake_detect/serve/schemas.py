"""The JSON the API answers, as pydantic models: they validate the responses and write the OpenAPI docs.

Every field has a description, so ``/docs`` explains each one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The verdict contract, shared by scan --json, scan --csv and the API.
Verdict = Literal["real", "fake", "uncertain"]
VERDICT_TEXT = (
    '"fake" or "real"; "uncertain" when the model has an abstention band (see model.uncertain_band) and the '
    "score lies inside it, where a verdict would be a coin toss."
)

__all__ = [
    "FaceResult",
    "ProvenanceResult",
    "ModelInfo",
    "ScanResult",
    "ScanResponse",
    "ErrorResponse",
    "Limits",
    "Health",
    "Threshold",
    "UncertainBand",
    "BandCard",
    "Calibration",
    "ModelCard",
]


class FaceResult(BaseModel):
    box: list[int] = Field(
        description="The face detector's box [x, y, width, height] in pixels of the upright image."
    )
    landmarks: list[list[float]] | None = Field(
        None,
        description="Five landmarks [[x, y], ...] in pixels of the upright image, 0.1 px: the eye centres "
        "(image-left first), the nose tip and the mouth corners (image-left first). Absent with framing box "
        "and with detect=false.",
    )
    quad: list[list[float]] | None = Field(
        None,
        description="The oriented square the face was judged in (FFHQ's alignment, from 68 landmarks): "
        "corners [[x, y], ...] top-left, bottom-left, bottom-right, top-right of the upright face, in pixels "
        "of the upright image, 0.1 px; it may reach past the image. Absent with framing box and detect=false.",
    )
    p_fake: float = Field(description="Calibrated probability that the face is generated (not a real photo).")
    logit: float = Field(description="Raw network output; the verdict is fake when logit >= threshold.")
    verdict: Verdict | None = Field(
        description="Decision for this face: " + VERDICT_TEXT + " With a `threshold` parameter: fake when "
        "p_fake >= threshold, else real (no band). null: the face is too small to judge (see `note`)."
    )
    note: str | None = Field(None, description='Why there is no verdict: "face too small to judge (N px)".')
    heatmap: str | None = Field(
        None, description="With explain=true: Grad-CAM overlay of the face crop, a PNG data URL."
    )


class UncertainBand(BaseModel):
    lower_logit: float | None = Field(
        description='Below this logit the verdict is "real"; null: nothing is called real.'
    )
    upper_logit: float | None = Field(
        description='From this logit up the verdict is "fake"; null: nothing is called fake.'
    )
    target_precision: float | None = Field(
        description="Precision each decided side reached on the validation faces (clean and laundered) the "
        "band was chosen on."
    )


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")  # whatever else Detector.model_info() reports is passed on

    name: str = Field(description="Architecture name (see `deepfake-detect models`).")
    sha256: str = Field(description="SHA-256 over the weights' tensor names and bytes: the model's identity.")
    threshold_logit: float = Field(description="Decision threshold on the raw logit, chosen on validation.")
    temperature: float = Field(description="Temperature of the calibration: p_fake = sigmoid(logit / T).")
    backend: str | None = Field(None, description="What ran the network: onnx, onnx-int8 or torch.")
    uncertain_band: UncertainBand | None = Field(
        None,
        description='The abstention band in use: "uncertain" for a logit in [lower_logit, upper_logit). '
        "Absent for a model without one, or a service started with --no-abstain.",
    )


class C2paActionResult(BaseModel):
    action: str = Field(description="The C2PA action, e.g. c2pa.created, c2pa.edited.")
    digital_source_type: str | None = Field(
        description="The action's IPTC digital source type as written (a URI), e.g. "
        "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia for generative AI."
    )
    software_agent: str | None = Field(description="The program the action names, as written.")
    ingredient: bool = Field(
        description="True for an action of an ingredient's manifest (an earlier version), not the active one."
    )


class C2paResult(BaseModel):
    present: bool = Field(description="Whether the file embeds a C2PA manifest store (Content Credentials).")
    state: Literal["valid", "untrusted", "invalid"] | None = Field(
        description="Validated offline, without a trust list: valid (a trusted signer, unchanged), untrusted "
        "(intact, but nobody vouches for the signer: anyone can sign), invalid (changed after signing, or "
        "unreadable); null when nothing was validated."
    )
    codes: list[str] = Field(description="C2PA validation failure codes, e.g. assertion.dataHash.mismatch.")
    claim_generator: str | None = Field(description="The program that made the manifest, as it says.")
    signer: str | None = Field(description="The signing certificate's subject common name.")
    signer_org: str | None = Field(description="The signing certificate's subject organisation.")
    actions: list[C2paActionResult] = Field(
        description="The manifests' actions, the active manifest's first."
    )
    remote_url: str | None = Field(
        description="Where the file says its manifest is kept; reported, never fetched."
    )
    error: str | None = Field(description="Why a manifest that is there could not be read.")


class XmpResult(BaseModel):
    digital_source_type: str | None = Field(description="IPTC DigitalSourceType in the XMP, as written.")
    creator_tool: str | None = Field(description="xmp:CreatorTool, the program that wrote the file.")


class ExifResult(BaseModel):
    software: str | None = Field(description="EXIF Software.")
    make: str | None = Field(description="EXIF Make (the camera maker, as the file claims: not trusted).")
    model: str | None = Field(description="EXIF Model (the camera, as the file claims: not trusted).")


class PngTextResult(BaseModel):
    parameters: str | None = Field(description="Stable Diffusion WebUI's prompt and settings (PNG text).")
    prompt: str | None = Field(description="ComfyUI's prompt graph (PNG text, JSON).")
    workflow: str | None = Field(description="ComfyUI's workflow (PNG text, JSON).")
    software: str | None = Field(description="The PNG Software text chunk.")


class FindingResult(BaseModel):
    signal: str = Field(description="Which signal: C2PA, XMP DigitalSourceType, EXIF camera, PNG text ...")
    found: str = Field(description="What the file says.")
    worth: str = Field(description="What that is worth for the verdict.")


class ProvenanceResult(BaseModel):
    format: str | None = Field(description="The container, from the file's first bytes (JPEG, PNG, WEBP...).")
    c2pa: C2paResult = Field(description="Content Credentials (C2PA), validated offline.")
    xmp: XmpResult = Field(description="From the XMP packet.")
    exif: ExifResult = Field(description="From EXIF's first directory.")
    png_text: PngTextResult = Field(description="PNG text chunks that generators write.")
    jpeg_comments: list[str] = Field(description="JPEG comment segments.")
    declares_ai: bool = Field(
        description='Whether the metadata declares generative AI (then the verdict is "fake", see `reason`).'
    )
    findings: list[FindingResult] = Field(
        description="The provenance panel: each signal found, what it says and what it is worth. Absence "
        "proves nothing: sites and messengers strip metadata."
    )


class ScanResult(BaseModel):
    path: str = Field(description="The uploaded file's name.")
    error: str | None = Field(description="Why the file could not be judged; null when it was.")
    verdict: Verdict | None = Field(
        description="The verdict of the face with the highest p_fake (" + VERDICT_TEXT + "); null without a "
        'face or on error. "fake" whatever the faces when the metadata declares generative AI (see `reason`).'
    )
    p_fake: float | None = Field(description="p_fake of the face with the highest p_fake; null likewise.")
    faces: list[FaceResult] = Field(description="Every face found (the whole image when none is).")
    model: ModelInfo = Field(description="The model that judged the file.")
    note: str | None = Field(None, description="Why a result needs care: no face found, tiny image.")
    provenance: ProvenanceResult | None = Field(
        None,
        description="What the file's metadata says about its origin, read offline; absent with "
        "provenance=false and for a file refused unread.",
    )
    reason: str | None = Field(
        None,
        description='Why the verdict is "fake" when the metadata declares generative AI, e.g. "declared by '
        "C2PA (trainedAlgorithmicMedia, signed by ..., untrusted)\"; p_fake and the faces stay the pixels' "
        "own. Absent otherwise: metadata never makes a file real.",
    )


class ScanResponse(BaseModel):
    model: ModelInfo = Field(description="The model that judged the files.")
    results: list[ScanResult] = Field(description="One result a file, in upload order.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, in one sentence.")
    results: list[ScanResult] | None = Field(
        None, description="When every uploaded file was refused: each file's error row."
    )


class Limits(BaseModel):
    max_request_bytes: int = Field(description="Largest request body, files and multipart overhead.")
    max_files: int = Field(description="Most files a request.")
    max_pixels: int = Field(description="Largest image in pixels (width x height).")


class Health(BaseModel):
    status: Literal["ok"] = Field(description="Always ok when the service answers.")
    model: str = Field(description="Architecture name of the loaded model.")
    auth_required: bool = Field(description="Whether /v1/* needs `Authorization: Bearer <key>`.")
    limits: Limits = Field(description="The upload limits of this service.")


class Threshold(BaseModel):
    logit: float = Field(description="Threshold on the raw logit (verdict fake when logit >= it).")
    p_fake: float = Field(description="The same threshold as a p_fake at the calibration base rate.")
    rule: str | None = Field(description="How it was chosen on validation (f1, cost, target FPR).")


class BandCard(UncertainBand):
    lower_p_fake: float | None = Field(description="lower_logit as a p_fake at the calibration base rate.")
    upper_p_fake: float | None = Field(description="upper_logit as a p_fake at the calibration base rate.")
    validation_coverage: float | None = Field(
        description="Share of the validation faces (clean and laundered) the band decides."
    )


class Calibration(BaseModel):
    method: str = Field(description="Temperature scaling, fitted on the validation split.")
    temperature: float = Field(description="T in p_fake = sigmoid(logit / T).")
    base_rate: float = Field(description="Share of fakes p_fake assumes (the validation split's).")


class ModelCard(BaseModel):
    name: str = Field(description="Architecture name.")
    version: str = Field(description="Model version: the run id and the first 12 hex digits of sha256.")
    sha256: str = Field(description="SHA-256 over tensor names and bytes.")
    run_id: str | None = Field(description="Training run that produced the weights.")
    created: str | None = Field(description="When the weights were saved (ISO 8601).")
    code_version: str | None = Field(description="deepfake-detect version and commit that trained it.")
    backend: str = Field(description="What runs the network here: onnx, onnx-int8 or torch.")
    input_size: int = Field(description="Side of the square face crop the network sees, in pixels.")
    resize_mode: str = Field(description="crop: native-resolution centre crop; resize: resampled.")
    explain_available: bool = Field(description="Whether explain=true works (needs torch weights).")
    threshold: Threshold = Field(description="The decision threshold.")
    uncertain_band: BandCard | None = Field(
        description='The abstention band: "uncertain" between its ends; null for a model without one or a '
        "service started with --no-abstain (verdicts are then real or fake only)."
    )
    calibration: Calibration = Field(description="How logits become p_fake.")
    training_data_fingerprint: str | None = Field(
        description="SHA-256 over the training data's (relative path, content hash) pairs; for a data mix, "
        "over its sources' fingerprints and weights in order (one source of weight 1: that source's own)."
    )
    training_data_fingerprints: dict[str, str] | None = Field(
        None,
        description="The fingerprint of each source of the training data mix, by source name; null for "
        "weights trained before data mixes.",
    )
    validation_metrics: dict[str, Any] | None = Field(
        description="Metrics on the validation split at the stored threshold (from the checkpoint)."
    )
    test_metrics: dict[str, Any] | None = Field(
        description="Metrics on the test split: from the checkpoint's metadata (test_metrics, which the "
        "shipped default model carries), else the test evaluation saved in the weights' run folder; null "
        "when neither exists."
    )
    test_metrics_source: str | None = Field(description="Where test_metrics came from.")
