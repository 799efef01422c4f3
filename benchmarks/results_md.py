"""RESULTS.md's marked blocks: each benchmark owns the text between its ``<!-- name:begin -->`` and
``<!-- name:end -->`` markers and rewrites only that, so the others' figures stay as they were measured."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def replace_block(
    block: str, begin: str, end: str, results: Path = RESULTS, heading: str | None = None
) -> None:
    """Put ``block`` (markers included) in place of the old one in ``results``, or append it at the end.

    A new block goes under ``## heading`` where one is given; a missing file starts as ``# Benchmarks``.
    """
    text = results.read_text() if results.exists() else "# Benchmarks\n"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        title = f"## {heading}\n\n" if heading else ""
        text = text.rstrip("\n") + f"\n\n{title}{block}\n"
    results.write_text(text)
