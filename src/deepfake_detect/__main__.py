"""``python -m deepfake_detect`` runs the CLI (also what torchrun starts)."""

from .cli import main

main()
