"""Videos: sample frames with PyAV, judge the faces of each, and sum them up in one score and a timeline.

Frames are taken at ``fps`` a second (default 1): the first decoded frame at or after each tick of a
``1 / fps`` grid starting at 0 s. Each sampled frame goes through the photo pipeline (faces framed like the
training data, by FFHQ's landmark square or, with ``framing="box"``, the Haar box; or the whole frame with
``--no-detect`` / ``--fallback-whole-image``).

Rule: the video's ``p_fake`` is the mean ``p_fake`` of its :data:`VIDEO_TOP_K` (3)
highest-scoring faces over all sampled frames (fewer when fewer were found). A single odd frame does not make
a video fake; a face that looks generated for three sampled frames does. The verdict compares that score to
the threshold in p_fake units (the model's threshold logit converted at the prior, or ``--threshold``); for a
model with an "uncertain" band (and no ``--threshold``), to the band's ends converted the same way, so a
score inside the band makes the video "uncertain".

JSON added to a video's result (see :mod:`deepfake_detect.scan` for the rest)::

    "kind": "video",
    "fps": 1.0,                 # frames sampled a second
    "duration": 12.0,           # time of the last sampled frame, s
    "rule": "mean of the top-3 face p_fake",
    "faces": [{"box": [x, y, w, h], "landmarks": [[x, y] x 5], "quad": [[x, y] x 4], "p_fake": ..,
               "logit": .., "verdict": .., "t": 3.0, "frame": 90}],
    "frames": [{"t": 0.0, "frame": 0, "p_fake": 0.91 or null, "faces": [{"box", "p_fake", "logit",
                "verdict"}, ...]}, ...]

``faces`` holds the top faces that make the score; ``frames`` is the whole timeline (``p_fake`` of a frame is
its highest face score, null when it has none). Rotation metadata of phone videos is not applied.
"""

from __future__ import annotations

import collections
import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from deepfake_detect.core.exceptions import FaceModelError, describe_error
from deepfake_detect.scan.decode import Decoded, DecodeOptions, Face, faces_in, network_view

__all__ = ["VIDEO_TOP_K", "decode_video", "video_summary", "timeline_png"]

# A video's score is the mean p_fake of this many highest-scoring faces (see the module docstring).
VIDEO_TOP_K = 3


def _video_frames(path: str, fps: float) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in s, RGB pixels)`` of the frames nearest a ``1/fps`` grid."""
    import av  # imported here: only videos need it

    step, next_t = 1.0 / fps, 0.0
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        for number, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else number / rate
            if t + 1e-6 < next_t:
                continue
            while next_t <= t + 1e-6:
                next_t += step
            yield number, t, frame.to_ndarray(format="rgb24")


def decode_video(index: int, path: str, options: DecodeOptions) -> Decoded:
    """Sample a video at ``options.fps`` and frame the faces of each sampled frame; never raises."""
    result = Decoded(index, path, video={"fps": options.fps, "samples": []})
    try:
        for number, t, rgb in _video_frames(path, options.fps):
            faces = faces_in(rgb, options.preprocess, options.framing) if options.detect else []
            if not faces and (not options.detect or options.fallback_whole_image):
                pre = options.preprocess
                faces = [
                    Face(
                        (0, 0, rgb.shape[1], rgb.shape[0]),
                        network_view(pre.prepare(Image.fromarray(rgb)), pre),
                    )
                ]
            for face in faces:
                face.frame, face.t = number, t
            result.faces += faces
            result.video["samples"].append((number, t))
        if not result.video["samples"]:
            result.error = "the video has no decodable frames"
        elif not result.faces:
            result.note = "no face found in any sampled frame"
    except FaceModelError:
        raise  # not this file's fault: the whole scan cannot find faces
    except Exception as err:  # noqa: BLE001 - a bad video is this file's error row
        result.faces, result.error = [], describe_error(err)
    samples = result.video["samples"]
    result.video["duration"] = round(samples[-1][1], 3) if samples else None
    return result


def video_summary(
    item: Decoded, faces: list[dict[str, Any]], decide: Callable[[float], str]
) -> dict[str, Any]:
    """Per-frame timeline and the top-k rule of a video (see the module docstring).

    ``decide`` turns the video's score (a p_fake) into its verdict.
    """
    by_frame: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for face in faces:
        by_frame[face["frame"]].append(face)
    frames = []
    for number, t in item.video["samples"]:
        found = [{k: v for k, v in f.items() if k not in ("t", "frame")} for f in by_frame.get(number, [])]
        top = max((f["p_fake"] for f in found), default=None)
        frames.append({"t": round(t, 3), "frame": number, "p_fake": top, "faces": found})
    ranked = sorted(faces, key=lambda f: -f["p_fake"])[:VIDEO_TOP_K]
    score = float(np.mean([f["p_fake"] for f in ranked])) if ranked else None
    return {
        "kind": "video",
        "verdict": None if score is None else decide(score),
        "p_fake": score,
        "fps": item.video["fps"],
        "duration": item.video["duration"],
        "rule": f"mean of the top-{VIDEO_TOP_K} face p_fake",
        "frames": frames,
        "top_faces": ranked,
    }


def timeline_png(result: dict[str, Any]) -> bytes:
    """A PNG plot of a video result's per-frame ``p_fake`` over time, with its score and verdict."""
    # A bare Figure (no pyplot): no global backend or figure registry is touched.
    from matplotlib.figure import Figure

    times = [f["t"] for f in result.get("frames", [])]
    scores = [np.nan if f["p_fake"] is None else f["p_fake"] for f in result.get("frames", [])]
    fig = Figure(figsize=(6.4, 2.4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(times, scores, marker="o", ms=3, lw=1.2, color="#c0392b", label="frame (highest face)")
    if result.get("p_fake") is not None:
        ax.axhline(result["p_fake"], ls="--", lw=1, color="#555", label=f"video score {result['p_fake']:.2f}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set(ylim=(-0.02, 1.02), xlabel="time (s)", ylabel="p_fake")
    ax.set_title(f"{result.get('verdict') or 'no verdict'} ({result['rule']})", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
