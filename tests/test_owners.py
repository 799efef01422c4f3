"""Each shared fact has one owner in the source: these tests read src/ and name every line that bypasses it.

* run-folder file names: ``deepfake_detect.core.runs`` (``RunDir``);
* ECE, Brier score and expected cost: ``deepfake_detect.metrics`` (elsewhere, one call of
  ``metrics.calibration_effect`` gives the before/after summary, ``metrics.expected_cost_curve`` the costs);
* the number of usable cores: ``deepfake_detect.core.runtime.available_cores``;
* exception classes: ``deepfake_detect.core.exceptions``;
* the verdict rule ``score >= threshold``: ``deepfake_detect.metrics.classification.is_fake``.
"""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "deepfake_detect"

RUN_FILE_NAMES = {
    "model.safetensors",
    "metrics.json",
    "config.json",
    "environment.json",
    "history.csv",
    "report.html",
    "checkpoints",
    "robustness.json",
    "model.onnx",
    "mlflow_run.json",
}
PER_SPLIT_FILE = re.compile(r"^(eval|scores)_.*\.(json|csv|md)$")

SCORE_FUNCTIONS = {"expected_calibration_error", "brier_score_loss", "expected_cost", "_cost"}
SCORE_FUNCTION_NAME = re.compile(r"(^|_)(ece|brier|calibration_error|expected_cost)(_|$)")

CORE_COUNTERS = {"cpu_count", "sched_getaffinity", "process_cpu_count"}
# The run's environment record keeps the machine's total core count (not the usable one) as a fact about it.
CORE_COUNT_ALLOWED = {("core/runs.py", "environment_info", "cpu_count")}


def modules(package: Path = PACKAGE) -> Iterator[tuple[str, ast.Module]]:
    """Every module of the package: its path relative to the package folder and its syntax tree."""
    for path in sorted(package.rglob("*.py")):
        yield path.relative_to(package).as_posix(), ast.parse(path.read_text(), filename=str(path))


def by_line(found) -> list[str]:
    """Findings ``path:line: what`` in file and line order (ast.walk visits breadth first)."""
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1]), f))


def template(node: ast.AST) -> str | None:
    """The text of a string literal, or of an f-string with ``{}`` for each field; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    return None


def names_a_run_file(text: str) -> bool:
    """A path-like string (no spaces: prose that mentions a file is fine) with a run-folder name in it."""
    if not text or any(c.isspace() for c in text):
        return False
    return any(part in RUN_FILE_NAMES or PER_SPLIT_FILE.match(part) for part in text.split("/"))


def run_file_literals(package: Path = PACKAGE) -> list[str]:
    found = []
    for rel, tree in modules(package):
        if rel == "core/runs.py":
            continue
        nested = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            text = None if id(node) in nested else template(node)
            if text is not None and names_a_run_file(text):
                found.append(f"{rel}:{node.lineno}: {text!r}")
    return by_line(found)


def called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def score_computations(package: Path = PACKAGE) -> list[str]:
    found = []
    for rel, tree in modules(package):
        if rel.startswith("metrics/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called_name(node) in SCORE_FUNCTIONS:
                found.append(f"{rel}:{node.lineno}: calls {called_name(node)}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and SCORE_FUNCTION_NAME.search(
                node.name
            ):
                found.append(f"{rel}:{node.lineno}: defines {node.name}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn"):
                for alias in node.names:
                    if alias.name in {"brier_score_loss", "calibration_curve"}:
                        found.append(f"{rel}:{node.lineno}: imports {node.module}.{alias.name}")
    return by_line(found)


def enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """id(node) -> name of the innermost function around it."""
    owner: dict[int, str] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                owner[id(node)] = function.name  # inner functions come later in the walk and win
    return owner


def core_count_reads(package: Path = PACKAGE) -> list[str]:
    found = []
    for rel, tree in modules(package):
        if rel == "core/runtime.py":
            continue
        owner = enclosing_functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in CORE_COUNTERS:
                if (rel, owner.get(id(node)), node.attr) not in CORE_COUNT_ALLOWED:
                    found.append(f"{rel}:{node.lineno}: reads {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and node.module in {"os", "multiprocessing", "psutil"}:
                for alias in node.names:
                    if alias.name in CORE_COUNTERS:
                        found.append(f"{rel}:{node.lineno}: imports {node.module}.{alias.name}")
    return by_line(found)


# A comparison "x >= <a threshold or a band's upper end>" is the verdict rule; is_fake is where it is written.
THRESHOLD_NAME = re.compile(r"threshold|upper")
VERDICT_RULE_OWNER = ("metrics/classification.py", "is_fake")


def verdict_rule_copies(package: Path = PACKAGE) -> list[str]:
    found = []
    for rel, tree in modules(package):
        owner = enclosing_functions(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare) or (rel, owner.get(id(node))) == VERDICT_RULE_OWNER:
                continue
            sides = [node.left, *node.comparators]
            for op, right in zip(node.ops, sides[1:], strict=True):
                if isinstance(op, ast.GtE) and THRESHOLD_NAME.search(ast.unparse(right)):
                    found.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    return by_line(found)


def base_name(base: ast.expr) -> str:
    return base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""


def is_builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def exception_classes(package: Path = PACKAGE) -> list[str]:
    classes = [(rel, node) for rel, tree in modules(package) for node in ast.walk(tree)]
    classes = [(rel, node) for rel, node in classes if isinstance(node, ast.ClassDef)]
    # Exception types: the builtins, anything named like one (click.ClickException), those of core/exceptions.py
    # and, until the set stops growing, every class of the package derived from one of them.
    known = {node.name for rel, node in classes if rel == "core/exceptions.py"}
    growing = True
    while growing:
        derived = {
            node.name
            for _, node in classes
            if any(
                (n := base_name(b)) in known or is_builtin_exception(n) or n.endswith(("Error", "Exception"))
                for b in node.bases
            )
        }
        growing = not derived <= known
        known |= derived
    return by_line(
        f"{rel}:{node.lineno}: class {node.name}"
        for rel, node in classes
        if rel != "core/exceptions.py" and node.name in known
    )


def listing(found: list[str]) -> str:
    """One finding a line, each with its path from the repository root."""
    return "\n".join(f"src/deepfake_detect/{f}" for f in found)


def test_run_folder_file_names_are_spelt_only_in_core_runs():
    found = run_file_literals()
    assert not found, "use deepfake_detect.core.runs.RunDir instead of these literals:\n" + listing(found)


def test_ece_brier_and_expected_cost_are_computed_only_in_metrics():
    found = score_computations()
    assert not found, "compute these through one function of deepfake_detect.metrics:\n" + listing(found)


def test_the_core_count_is_read_only_in_core_runtime():
    found = core_count_reads()
    assert not found, "use deepfake_detect.core.runtime.available_cores() instead:\n" + listing(found)


def test_the_verdict_rule_is_written_only_in_is_fake():
    found = verdict_rule_copies()
    assert not found, "use deepfake_detect.metrics.classification.is_fake instead:\n" + listing(found)


def test_exception_classes_are_defined_only_in_core_exceptions():
    found = exception_classes()
    assert not found, "define exceptions in deepfake_detect.core.exceptions:\n" + listing(found)


OFFENDER = '''
"""A module that breaks every rule once."""
import os
from os import sched_getaffinity
from sklearn.metrics import brier_score_loss

from deepfake_detect import metrics

class HalfwayError(ValueError):
    pass

class Stuck(HalfwayError):
    pass

def outcome(run_dir, split, labels, p):
    cores = os.cpu_count()
    print(metrics.expected_calibration_error(labels, p), run_dir / f"scores_{split}.csv")
    return run_dir / "metrics.json", "runs/x/model.safetensors", "a sentence about metrics.json"

def my_ece(labels, p):
    return 0.0

def verdicts(logits, threshold_logit, band):
    return ["fake" if z >= threshold_logit else "real" for z in logits], logits >= band.upper, 0 < threshold_logit
'''


@pytest.fixture
def offender(tmp_path) -> Path:
    """A copy-sized package: one clean module and one that breaks each rule."""
    package = tmp_path / "deepfake_detect"
    (package / "core").mkdir(parents=True)
    (package / "core" / "runtime.py").write_text("import os\n\nCORES = len(os.sched_getaffinity(0))\n")
    (package / "core" / "runs.py").write_text('MODEL = "model.safetensors"\n')
    (package / "scan").mkdir()
    (package / "scan" / "bad.py").write_text(OFFENDER)
    return package


def test_the_checks_name_each_offending_line(offender):
    assert run_file_literals(offender) == [
        "scan/bad.py:17: 'scores_{}.csv'",
        "scan/bad.py:18: 'metrics.json'",
        "scan/bad.py:18: 'runs/x/model.safetensors'",
    ]
    assert score_computations(offender) == [
        "scan/bad.py:5: imports sklearn.metrics.brier_score_loss",
        "scan/bad.py:17: calls expected_calibration_error",
        "scan/bad.py:20: defines my_ece",
    ]
    assert core_count_reads(offender) == [
        "scan/bad.py:4: imports os.sched_getaffinity",
        "scan/bad.py:16: reads os.cpu_count",
    ]
    assert exception_classes(offender) == ["scan/bad.py:9: class HalfwayError", "scan/bad.py:12: class Stuck"]
    assert verdict_rule_copies(offender) == [
        "scan/bad.py:24: logits >= band.upper",
        "scan/bad.py:24: z >= threshold_logit",
    ]
