#!/usr/bin/env bash
# `make demo`: check the data, train notebook-cnn briefly on a subset, evaluate it on test. About 3 minutes on 2 cores.
set -euo pipefail
DATA=${DEEPFAKE_DATA:-../shared/data/faces140k}
BIN=.venv/bin
OUT=demo-out
if [ ! -d "$DATA/train" ] && [ ! -d "$DATA/real_vs_fake" ]; then
  cat <<TXT
No data set at $DATA.
Get Kaggle's "140k Real and Fake Faces" (https://www.kaggle.com/datasets/xhlulu/140k-real-and-fake-faces),
unzip it, and run:   DEEPFAKE_DATA=/path/to/real_vs_fake make demo
TXT
  exit 0
fi
mkdir -p "$OUT"
echo "== 1/3 data check: $DATA" >&2
$BIN/deepfake-detect data check "$DATA" | tee "$OUT/data-check.txt"
echo "== 2/3 train notebook-cnn: 3 epochs, 1,000 images a class, 128 px" >&2
run=$($BIN/deepfake-detect train --data "$DATA" --model notebook-cnn --epochs 3 --image-size 128 \
      --set train_limit=1000 --runs-dir "$OUT/runs" | tail -n 1)
echo "== 3/3 evaluate on test, threshold chosen on validation" >&2
$BIN/deepfake-detect evaluate "$run" --split test
echo "run folder: $run" >&2
