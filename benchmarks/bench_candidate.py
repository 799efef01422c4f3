"""Should a candidate replace the shipped default? Their validation figures side by side, column by column (issue 21).

When a floor of issue 21 is still missed, a candidate ships only if it beats today's default on every column.
Both models are scored here on the same data: the validation split of every source of either mix, clean and
laundered (seed 0), each model at its own stored threshold (chosen on its own training mix's validation
split). The columns: a source with both classes (faces140k), its AUC; a fake-only source, its AUC against the
pooled reals and its recall at the threshold; a real-only source, its false-positive rate at the threshold.
Every figure carries its 95% interval (stratified bootstrap, 200 resamples). The verdict compares the figures
themselves and names each column the candidate loses; a loss inside the intervals is still a loss, because the
rule asks for a better model, not an indistinguishable one. Test splits and the StyleGAN3 probe are not read.

    python benchmarks/bench_candidate.py /work/runs/mix7-e20 \
        --data ../shared/data/faces140k:2 --data ../shared/data/sources/sdxl-sfhq ...   # default: the run's data
    python benchmarks/bench_candidate.py --table     # rewrite the RESULTS.md block from candidates.jsonl
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from deepfake_detect.core.checkpoint import load_checkpoint
from deepfake_detect.core.runs import RunDir, code_version, environment_info
from deepfake_detect.core.sources import parse_source
from deepfake_detect.evaluation.evaluate import evaluate
from results_md import RESULTS, replace_block
from screen_recipes import with_interval

HERE = Path(__file__).resolve().parent
ROWS = HERE / "candidates.jsonl"
SHIPPED = HERE.parent / "src" / "deepfake_detect" / "weights" / "default.safetensors"
BEGIN, END = "<!-- candidate:begin -->", "<!-- candidate:end -->"
KEYS = ("roc_auc", "recall", "fpr")
HIGHER_IS_BETTER = {"roc_auc": True, "recall": True, "fpr": False}


def scratch_run(weights: Path, scratch: Path) -> Path:
    """A run folder holding a copy of ``weights`` (its metadata carries its config, threshold and data)."""
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, RunDir(scratch).model)
    return scratch


def run_data(run: Path) -> list[str]:
    """The sources a run (or a scratch folder of a weights file) trained on, as ``PATH[:WEIGHT]`` specs."""
    config = RunDir(run).read_config() or load_checkpoint(RunDir(run).model)[1].get("config") or {}
    return list(config["data"])


def union(*mixes: list[str]) -> list[str]:
    """Every source of the given mixes once, by name, in order of first appearance (weights do not matter to
    scoring, and one mix may spell a folder ``../shared/...`` where the other spells it absolutely)."""
    seen: dict[str, str] = {}
    for spec in (s for mix in mixes for s in mix):
        seen.setdefault(parse_source(spec).name, spec)
    return list(seen.values())


def figures(run: Path, data: list[str], launder_seed: int | None) -> dict[str, dict[str, Any]]:
    """Source -> its AUC, recall and FPR with intervals, on validation, at the run's stored threshold."""
    ev = evaluate(run, data, split="valid", launder_seed=launder_seed, n_resamples=200, progress=False)
    wanted = (*KEYS, *(f"{k}_ci95" for k in KEYS), "n", "auc_against")
    return {row["source"]: {k: row.get(k) for k in wanted} for row in ev["per_source"]}


def columns(scored: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(condition, source, key) of every column a model has a figure for: for a source of both classes its
    AUC, recall and FPR; for a fake-only source its AUC against the pooled reals and its recall; for a real-only
    source its FPR."""
    keys = {
        "own": ("roc_auc", "recall", "fpr"),
        "pooled reals": ("roc_auc", "recall"),
        "pooled fakes": ("fpr",),
    }
    return [
        (condition, source, key)
        for condition, per_source in scored.items()
        for source, row in per_source.items()
        for key in keys[row["auc_against"]]
    ]


def verdict(baseline: dict, candidate: dict) -> dict[str, list[str]]:
    """The columns the candidate wins, ties and loses (by the figures, at 3 decimals)."""
    out: dict[str, list[str]] = {"wins": [], "ties": [], "losses": []}
    for condition, source, key in columns(candidate):
        old, new = baseline[condition][source][key], candidate[condition][source][key]
        sign = 1 if HIGHER_IS_BETTER[key] else -1
        diff = sign * (round(new, 3) - round(old, 3))
        out["wins" if diff > 0 else "losses" if diff < 0 else "ties"].append(f"{condition} {source} {key}")
    return out


def compare(candidate: Path, data: list[str] | None, scratch: Path) -> dict[str, Any]:
    baseline = scratch_run(SHIPPED, scratch)
    data = data or union(run_data(candidate), run_data(baseline))
    scored = {
        name: {
            "clean": figures(run, data, None),
            "laundered": figures(run, data, 0),
        }
        for name, run in (("default", baseline), ("candidate", candidate))
    }
    return {
        "candidate_run": candidate.name,
        "candidate_tensor_sha256": load_checkpoint(RunDir(candidate).model)[1].get("tensor_sha256"),
        "default_tensor_sha256": load_checkpoint(SHIPPED)[1].get("tensor_sha256"),
        "data": data,
        "split": "valid",
        **scored,
        "verdict": verdict(scored["default"], scored["candidate"]),
        "code": code_version(),
        "machine": environment_info(2)["cpu"],
    }


def table(row: dict[str, Any]) -> str:
    """Markdown: one line a column, the default's figure beside the candidate's, then the verdict."""
    names = {"roc_auc": "AUC", "recall": "recall at its threshold", "fpr": "FPR at its threshold"}
    lines = [
        f"Candidate `{row['candidate_run']}` (tensor sha256 `{row['candidate_tensor_sha256'][:12]}…`) against the "
        f"shipped default (`{row['default_tensor_sha256'][:12]}…`), validation, each at its own threshold; "
        f"code `{row['code']}`, {row['machine']}.",
        "",
        "| condition | source | measure | default | candidate | candidate |",
        "|---|---|---|---|---|---|",
    ]
    outcome = {c: k for k, cols in row["verdict"].items() for c in cols}
    for condition, source, key in columns({c: row["candidate"][c] for c in ("clean", "laundered")}):
        old, new = row["default"][condition][source], row["candidate"][condition][source]
        word = {"wins": "better", "ties": "same", "losses": "**worse**"}[
            outcome[f"{condition} {source} {key}"]
        ]
        lines.append(
            f"| {condition} | {source} | {names[key]} | {with_interval(old, key)} | {with_interval(new, key)} "
            f"| {word} |"
        )
    v = row["verdict"]
    lines += [
        "",
        f"Better on {len(v['wins'])} columns, the same on {len(v['ties'])}, worse on {len(v['losses'])}"
        + (f": {', '.join(v['losses'])}." if v["losses"] else "."),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("candidate", type=Path, nargs="?", help="the candidate's run folder")
    parser.add_argument(
        "--data", action="append", help="PATH[:WEIGHT], repeated; default: both mixes' sources"
    )
    parser.add_argument(
        "--scratch", type=Path, default=Path("candidate-scratch"), help="run folder for the default"
    )
    parser.add_argument(
        "--table", action="store_true", help="only rewrite the RESULTS.md block from the last row"
    )
    args = parser.parse_args()
    if not args.table:
        row = compare(args.candidate, args.data, args.scratch)
        with ROWS.open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    last = json.loads(ROWS.read_text().splitlines()[-1])
    body = table(last)
    replace_block(
        f"{BEGIN}\n{body}\n{END}", BEGIN, END, RESULTS, "A new default? The candidate against the shipped one"
    )
    print(body)


if __name__ == "__main__":
    main()
