"""The command-line application object, its sub-groups and the helpers every command module shares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from deepfake_detect.core.exceptions import DeepfakeDetectError

__all__ = ["app", "data_app", "runs_app", "RunsDir"]


class _UserErrorsAsOneLine(TyperGroup):
    """The one place where an error the user caused becomes one line on stderr and an exit code, not a traceback.

    Every :class:`~deepfake_detect.core.exceptions.DeepfakeDetectError` (exit code 2, or the class's own) and a
    missing file (2) land here, from any command of any sub-group.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (DeepfakeDetectError, FileNotFoundError) as err:
            sys.stderr.write(f"error: {err}\n")
            raise typer.Exit(getattr(err, "exit_code", 2)) from None


app = typer.Typer(
    cls=_UserErrorsAsOneLine,
    name="deepfake-detect",
    help="Train, evaluate and run small CNNs that tell real face photos from generated faces, on a CPU. "
    "The models judge whole generated faces (GANs, diffusion), not face swaps.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect a data set folder.", no_args_is_help=True)
runs_app = typer.Typer(help="List, show and compare training runs.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder holding run folders and index.jsonl.")]


def _example(*lines: str) -> str:
    return "**Example:**\n\n" + "\n\n".join(f"`{line}`" for line in lines)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
