"""Bad invocations of the real command line: one line naming the flag (or input) at fault, the right exit code,
no traceback; and every command's --help readable at 80 columns, no flag name cut."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from deepfake_detect.cli import app

URL = "https://example.com/photos/a.jpg"


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 20,000 x 20,000 PNG (400 megapixels) in about 50 kB: one bit a pixel, all black."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (20_000, 20_000)).save(path, optimize=True)
    return path


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_dataset, huge_png) -> dict[str, str]:
    return {"data": str(tiny_dataset), "huge": str(huge_png), "tmp": str(tmp_path_factory.mktemp("out"))}


# (case, command line, exit code, what the output must say: the flag or input at fault, and the way out)
CASES = [
    ("url", ["scan", URL], 2, [URL, "URLs are not fetched; download it first"]),
    ("s3-url-without-ray", ["scan", "s3://bucket/a.jpg"], 2, ["URLs are not fetched without --ray"]),
    (
        "url-under-ray",
        ["scan", URL, "--ray", "--output", "{tmp}/scan.parquet"],
        2,
        [URL, "URLs are not fetched; download it first", "--ray reads s3://"],
    ),
    (
        "huge-png",
        ["scan", "{huge}"],
        1,
        ["400,000,000 pixels", "over the limit of 90,000,000 (--max-pixels)"],
    ),
    (
        "max-pixels-past-pillow",
        ["scan", "{huge}", "--max-pixels", "500000000"],
        2,
        ["--max-pixels", "178,956,970"],
    ),
    (
        "baseline-method",
        ["baselines", "--method", "nope", "--data", "{data}"],
        2,
        ["'nope'", "--method", "chance"],
    ),
    (
        "device",
        ["train", "--data", "{data}", "--set", "device=tpu", "--epochs", "1", "--runs-dir", "{tmp}/runs"],
        2,
        ["'tpu'", "--set device="],
    ),
    ("config-key", ["train", "--data", "{data}", "--set", "nosuch=1"], 2, ["nosuch"]),
    ("json-and-csv", ["scan", "{huge}", "--json", "--csv"], 2, ["--json", "--csv"]),
    ("serve-max-pixels", ["serve", "--max-pixels", "0"], 2, ["max-pixels must be positive"]),
    ("scan-flag", ["scan", "--nope"], 2, ["No such option: --nope"]),
    ("train-flag", ["train", "--bogus-flag"], 2, ["No such option: --bogus-flag"]),
    ("evaluate-flag", ["evaluate", "RUN", "--no-such"], 2, ["No such option: --no-such"]),
    ("data-flag", ["data", "check", "x", "--wat"], 2, ["No such option: --wat"]),
]


@pytest.mark.usefixtures("scan_runtime")
@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_invocation_is_one_line_naming_the_flag(places, monkeypatch, capsys, args, code, words):
    """Run the console entry point itself (``deepfake-detect`` is ``cli.main``), as a user's shell would."""
    from deepfake_detect.cli import main

    if "--ray" in args and importlib.util.find_spec("ray") is None:
        pytest.skip("the ray extra is not installed")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys, "argv", ["deepfake-detect", *(arg.format(**places) for arg in args)])
    with pytest.raises(SystemExit) as stop:
        main()  # anything but SystemExit (a traceback for the user) fails the test here
    out, err = capsys.readouterr()
    said = re.sub(r"\s*│\s*", " ", out + err)  # click's boxed message, unwrapped
    assert stop.value.code == code, said
    for word in words:
        assert word in said, f"{word!r} not in {said!r}"
    assert "Traceback" not in said and "178956970" not in said  # never Pillow's own words


@pytest.mark.slow
def test_the_installed_command_prints_no_traceback_for_a_huge_png(huge_png):
    """The same through a real process: the table's error row quotes --max-pixels, not Pillow's limit."""
    command = [sys.executable, "-m", "deepfake_detect", "scan", str(huge_png), "--model", "default"]
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "over the limit of 90,000,000 (--max-pixels)" in done.stdout
    assert "decompression bomb DOS attack" not in done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------------- --help


def _commands(command, path=()):
    """Every command of the app, with the words that invoke it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize(
    "path", [p for p, _ in _commands(typer.main.get_command(app))], ids=lambda p: " ".join(p) or "top"
)
def test_help_at_80_columns_shows_every_flag_whole(path):
    command = dict(_commands(typer.main.get_command(app)))[path]
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and max(map(len, lines)) <= 80
    assert "…" not in result.stdout, [line for line in lines if "…" in line]  # nothing cut short
    flags = [name for param in command.params for name in param.opts + param.secondary_opts if name[0] == "-"]
    for flag in flags:
        assert re.search(rf"{re.escape(flag)}(?![\w-])", result.stdout), f"{flag} cut or missing"
