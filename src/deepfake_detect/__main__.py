"""``python -m deepfake_detect`` runs the CLI (also what torchrun starts)."""

from deepfake_detect.cli import main

main()
