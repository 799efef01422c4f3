"""Plain tables on stdout for the CLI (rich when it is a terminal, aligned text otherwise)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_table", "format_cell"]


def format_cell(value: Any) -> str:
    """Four decimals for floats, an empty cell for None."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def print_table(
    columns: list[str], rows: list[list[Any]], *, index: list[str] | None = None, title: str = ""
) -> None:
    """Print ``rows`` under ``columns``; ``index`` adds a first column of row names."""
    table = Table(title=title or None)
    for name in (["run"] if index is not None else []) + columns:
        table.add_column(name)
    for i, row in enumerate(rows):
        cells = ([index[i]] if index is not None else []) + [format_cell(v) for v in row]
        table.add_row(*cells)
    Console(width=200).print(table)
