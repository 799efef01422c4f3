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


class ScanResult(BaseModel):
    path: str = Field(description="The uploaded file's name.")
    error: str | None = Field(description="Why the file could not be judged; null when it was.")
    verdict: Verdict | None = Field(
        description="The verdict of the face with the highest p_fake (" + VERDICT_TEXT + "); null without a "
        "face, when every face is too small to judge (see `note`), or on error."
    )
    p_fake: float | None = Field(
        description="p_fake of the face with the highest p_fake (kept for a face too small to judge); null "
        "without a face or on error."
    )
    faces: list[FaceResult] = Field(
        description="Every face found; empty when none is (the whole image with fallback_whole_image=true)."
    )
    model: ModelInfo = Field(description="The model that judged the file.")
    note: str | None = Field(
        None, description="Why a result needs care: no face found, a face too small to judge, a tiny image."
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
