#!/usr/bin/env bash
# `make demo`: scan a public-domain photo with the shipped model (HTML report + heatmap); with the data set
# present, also scan its test split, check the data, and train + evaluate notebook-cnn briefly. About 4 minutes.
set -euo pipefail
DATA=${DEEPFAKE_DATA:-../shared/data/faces140k}
BIN=.venv/bin
OUT=demo-out
mkdir -p "$OUT"
echo "== scan: scikit-image's public-domain 'astronaut' photo with the default model" >&2
$BIN/python -c "from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save('$OUT/astronaut.png')"
$BIN/deepfake-detect scan "$OUT/astronaut.png" --report "$OUT/scan.html" --explain "$OUT/heatmaps"
echo "report: $OUT/scan.html   heatmaps: $OUT/heatmaps/" >&2
if [ ! -d "$DATA/train" ] && [ ! -d "$DATA/real_vs_fake" ]; then
  cat <<TXT
No data set at $DATA, so the demo stops here.
Get Kaggle's "140k Real and Fake Faces" (https://www.kaggle.com/datasets/xhlulu/140k-real-and-fake-faces),
unzip it, and run:   DEEPFAKE_DATA=/path/to/real_vs_fake make demo
TXT
  exit 0
fi
echo "== scan the test split's 500 faces (already cropped: --no-detect)" >&2
$BIN/deepfake-detect scan "$DATA/test" --no-detect --json --report "$OUT/test-scan.html" -q > "$OUT/test-scan.jsonl"
$BIN/python - "$OUT/test-scan.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
from sklearn.metrics import roc_auc_score
right = sum((r["verdict"] == "fake") == ("/fake/" in r["path"]) for r in rows if r["verdict"])
auc = roc_auc_score(["/fake/" in r["path"] for r in rows], [r["p_fake"] for r in rows])
print(f"test split: {len(rows)} images, accuracy {right / len(rows):.3f} at the model's threshold, "
      f"ROC AUC {auc:.4f} ({rows[0]['model']['backend']}: the same as evaluate)")
PY
echo "== data check: $DATA" >&2
$BIN/deepfake-detect data check "$DATA" > "$OUT/data-check.txt" && tail -n 3 "$OUT/data-check.txt"
echo "== train notebook-cnn: 2 epochs, 600 images a class, 128 px; then evaluate on test" >&2
run=$($BIN/deepfake-detect train --data "$DATA" --model notebook-cnn --epochs 2 --image-size 128 \
      --set train_limit=600 --runs-dir "$OUT/runs" -q | tail -n 1)
$BIN/deepfake-detect evaluate "$run" --split test -q
echo "run folder: $run" >&2
