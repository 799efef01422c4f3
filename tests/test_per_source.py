"""Per-source evaluation of a data mix: rows judged against the right opposite class, the `source` column, and
evaluate, report, errors and robustness on a mix of a fake-only and a real-only source made in code."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from deepfake_detect.cli import app
from deepfake_detect.core.checkpoint import load_checkpoint, save_checkpoint
from deepfake_detect.core.runs import write_json
from deepfake_detect.evaluation.evaluate import evaluate
from deepfake_detect.metrics.calibration import coverage_and_precision
from deepfake_detect.metrics.per_source import per_source_rows
from deepfake_detect.metrics.thresholds import threshold_at_fpr

# ------------------------------------------------------------------------------------------- the rows alone


@pytest.fixture(scope="module")
def mixed_scores():
    """Scores of a three-source mix: `both` has reals and fakes, `gen` only fakes, `cam` only reals."""
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(40), np.ones(40), np.ones(30), np.zeros(25)].astype(int)
    z = np.r_[rng.normal(-1, 1, 40), rng.normal(1.5, 1, 40), rng.normal(0.3, 1, 30), rng.normal(0.5, 1, 25)]
    sources = ["both"] * 80 + ["gen"] * 30 + ["cam"] * 25
    return y, z, np.array(sources)


def test_a_fake_only_source_is_judged_against_the_pooled_reals(mixed_scores):
    y, z, src = mixed_scores
    rows = {r["source"]: r for r in per_source_rows(y, z, src, 0.0, n_resamples=100)}
    gen, reals = z[src == "gen"], z[y == 0]  # the reals of `both` and of `cam`
    expected = roc_auc_score(np.r_[np.zeros(reals.size), np.ones(gen.size)], np.r_[reals, gen])
    assert rows["gen"]["auc_against"] == "pooled reals"
    assert rows["gen"]["roc_auc"] == pytest.approx(expected)
    assert rows["gen"]["recall"] == pytest.approx(np.mean(gen >= 0.0))
    cut = threshold_at_fpr(y, z, 0.01)  # 1% of the pooled reals, fitted on these scores
    assert rows["gen"]["recall_at_1pct_fpr"] == pytest.approx(np.mean(gen >= cut))
    assert rows["gen"]["fpr"] is None and rows["gen"]["n_real"] == 0 and rows["gen"]["n_fake"] == 30


def test_a_real_only_source_reports_its_false_positive_rate(mixed_scores):
    y, z, src = mixed_scores
    rows = {r["source"]: r for r in per_source_rows(y, z, src, 0.0, n_resamples=100)}
    cam = z[src == "cam"]
    assert rows["cam"]["fpr"] == pytest.approx(np.mean(cam >= 0.0)) and rows["cam"]["fpr"] > 0.3
    assert rows["cam"]["accuracy"] == pytest.approx(1 - rows["cam"]["fpr"])
    assert rows["cam"]["recall"] is None and rows["cam"]["recall_at_1pct_fpr"] is None
    fakes = z[y == 1]
    expected = roc_auc_score(np.r_[np.zeros(cam.size), np.ones(fakes.size)], np.r_[cam, fakes])
    assert rows["cam"]["auc_against"] == "pooled fakes" and rows["cam"]["roc_auc"] == pytest.approx(expected)


def test_a_source_with_both_classes_uses_its_own_auc(mixed_scores):
    y, z, src = mixed_scores
    rows = {r["source"]: r for r in per_source_rows(y, z, src, 0.0, n_resamples=100)}
    own = src == "both"
    assert rows["both"]["auc_against"] == "own"
    assert rows["both"]["roc_auc"] == pytest.approx(roc_auc_score(y[own], z[own]))
    assert list(rows) == ["both", "gen", "cam"]  # the order the sources first appear in


def test_every_figure_lies_in_its_interval_and_no_resamples_gives_none(mixed_scores):
    y, z, src = mixed_scores
    for row in per_source_rows(y, z, src, 0.0, n_resamples=200, seed=3):
        for key in ("roc_auc", "accuracy", "recall", "recall_at_1pct_fpr", "fpr"):
            if row[key] is not None:
                low, high = row[f"{key}_ci95"]
                assert low <= row[key] <= high, (row["source"], key)
                assert high > low or row[key] in (0.0, 1.0), (row["source"], key)  # a real interval
    bare = per_source_rows(y, z, src, 0.0, n_resamples=0)
    assert all(r[k] is None for r in bare for k in r if k.endswith("_ci95"))
    # a threshold fixed beforehand (robustness: clean validation) replaces the one fitted on these scores
    fixed = {r["source"]: r for r in per_source_rows(y, z, src, 0.0, fpr_threshold_logit=0.7, n_resamples=0)}
    assert fixed["gen"]["recall_at_1pct_fpr"] == pytest.approx(np.mean(z[src == "gen"] >= 0.7))


def test_the_band_gives_each_source_its_coverage(mixed_scores):
    y, z, src = mixed_scores
    rows = per_source_rows(y, z, src, 0.0, band=(-0.5, 1.0), n_resamples=0)
    for row in rows:
        own = src == row["source"]
        stats = coverage_and_precision(y[own], z[own], -0.5, 1.0)
        assert row["abstention"]["coverage"] == pytest.approx(stats["coverage"])
    assert "abstention" not in per_source_rows(y, z, src, 0.0, n_resamples=0)[0]


# ------------------------------------------------------------------------ evaluate on a mix made in code


def _write_source(root: Path, cls: str, n: int, rng: np.random.Generator) -> Path:
    """A one-class source in the 140k layout; fakes carry conftest's periodic trace."""
    for split in ("train", "valid", "test"):
        folder = root / split / cls
        folder.mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            if cls == "fake":
                pixels[::2, ::2] = np.clip(pixels[::2, ::2].astype(int) + 80, 0, 255)
            Image.fromarray(pixels).save(folder / f"{split}_{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def mix_run(tmp_path_factory, untrained_checkpoint) -> tuple[Path, Path, Path]:
    """A run folder over a mix of `gen` (fakes only) and `cam` (reals only), with its sources recorded in its
    config, and an untrained model whose threshold flags half the test reals (so both verdicts occur)."""
    from deepfake_detect import load_detector
    from deepfake_detect.data.mix import Source, list_mix_split

    base = tmp_path_factory.mktemp("mix")
    rng = np.random.default_rng(0)
    gen, cam = _write_source(base / "gen", "fake", 8, rng), _write_source(base / "cam", "real", 8, rng)
    run = base / "run"
    run.mkdir()
    weights = untrained_checkpoint(run / "model.safetensors", gain=1000)
    sources = [Source(str(gen), 1.0, "gen"), Source(str(cam), 1.0, "cam")]
    scored = load_detector(weights, backend="torch").predict_samples(list_mix_split(sources, "test"))
    reals = np.sort(scored.logits[scored.labels == 0])
    state, meta = load_checkpoint(weights)
    save_checkpoint(weights, state, {**meta, "threshold_logit": float(reals[3] + reals[4]) / 2})
    recorded = [{"name": s.name, "root": s.root, "weight": s.weight} for s in sources]
    write_json(run / "config.json", {"data_root": str(gen), "data_sources": recorded})
    return run, gen, cam


@pytest.fixture(scope="module")
def mix_eval(mix_run):
    run, _, _ = mix_run
    return evaluate(run, split="test", n_resamples=50, progress=False)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_scores_csv_gains_a_source_column_after_the_old_ones(mix_run, mix_eval):
    run, _, _ = mix_run
    with open(run / "scores_test.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == ["path", "label", "logit", "p_fake", "verdict", "source"]
    rows = _csv_rows(run / "scores_test.csv")
    assert {(r["source"], r["label"]) for r in rows} == {("gen", "1"), ("cam", "0")}
    assert all(not r["path"].startswith("/") for r in rows)  # relative to the source's own root


def test_evaluate_rows_match_the_scores_written(mix_run, mix_eval):
    run, _, _ = mix_run
    rows = _csv_rows(run / "scores_test.csv")
    logits = {s: np.array([float(r["logit"]) for r in rows if r["source"] == s]) for s in ("gen", "cam")}
    by_source = {r["source"]: r for r in mix_eval["per_source"]}
    assert list(by_source) == ["gen", "cam"] and mix_eval["n"] == 16
    expected = roc_auc_score(np.r_[np.zeros(8), np.ones(8)], np.r_[logits["cam"], logits["gen"]])
    assert by_source["gen"]["auc_against"] == "pooled reals"
    assert by_source["gen"]["roc_auc"] == pytest.approx(expected, abs=1e-6)
    flagged = np.mean([r["verdict"] == "fake" for r in rows if r["source"] == "cam"])
    assert by_source["cam"]["fpr"] == pytest.approx(flagged) and 0 < flagged < 1
    assert by_source["gen"]["recall"] == pytest.approx(
        np.mean([r["verdict"] == "fake" for r in rows if r["source"] == "gen"])
    )
    assert [s["name"] for s in mix_eval["data_sources"]] == ["gen", "cam"]
    assert mix_eval["abstention"] is None and mix_eval["laundering"] is None  # no band stored, not laundered
    markdown = (run / "eval_test.md").read_text()
    assert "| gen | 8 (0 / 8) |" in markdown and "| cam | 8 (8 / 0) |" in markdown


def test_data_given_twice_on_the_command_line_is_the_same_mix(mix_run, mix_eval, tmp_path):
    run, gen, cam = mix_run
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    write_json(copy / "config.json", {})  # nothing recorded: the folders given are the data
    result = CliRunner().invoke(
        app, ["evaluate", str(copy), "--data", str(gen), "--data", str(cam), "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)

    def figures(rows):  # the intervals differ: the CLI draws 1000 resamples, the fixture 50
        return [{k: v for k, v in r.items() if not k.endswith("_ci95")} for r in rows]

    assert figures(out["per_source"]) == figures(mix_eval["per_source"])


def test_one_data_folder_keeps_a_single_source(mix_run, tiny_dataset, tmp_path):
    run, _, _ = mix_run
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    out = evaluate(copy, tiny_dataset, split="test", n_resamples=10, progress=False)
    assert [r["source"] for r in out["per_source"]] == [tiny_dataset.name]
    assert out["per_source"][0]["roc_auc"] == pytest.approx(out["roc_auc"])
    assert out["data_root"] == str(tiny_dataset) and out["n"] == 12


def test_a_stored_band_reports_coverage_pooled_and_per_source(mix_run, tmp_path):
    run, _, _ = mix_run
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    state, meta = load_checkpoint(copy / "model.safetensors")
    t = meta["threshold_logit"]
    band = {
        "abstain_lower_logit": t - 0.05,
        "abstain_upper_logit": t + 0.05,
        "abstain_target_precision": 0.99,
    }
    save_checkpoint(copy / "model.safetensors", state, {**meta, **band})
    out = evaluate(copy, split="test", n_resamples=10, progress=False)
    rows = _csv_rows(copy / "scores_test.csv")
    y = np.array([int(r["label"]) for r in rows])
    z = np.array([float(r["logit"]) for r in rows])
    expected = coverage_and_precision(y, z, t - 0.05, t + 0.05)
    assert out["abstention"]["coverage"] == pytest.approx(expected["coverage"], abs=1e-5)
    assert out["abstention"]["target_precision"] == 0.99
    assert {r["source"] for r in out["per_source"] if "abstention" in r} == {"gen", "cam"}
    assert "Uncertain band" in (copy / "eval_test.md").read_text()


@pytest.mark.slow
def test_report_errors_and_robustness_work_on_the_mix(mix_run, mix_eval, tmp_path):
    from deepfake_detect.evaluation.robustness import format_markdown, robustness
    from deepfake_detect.reporting.error_analysis import error_analysis
    from deepfake_detect.reporting.report import report

    run = Path(shutil.copytree(mix_run[0], tmp_path / "run"))
    page = report(run).read_text()
    section = page[page.index('id="per_source"') :]
    assert "pooled reals" in section and ">cam<" in section and ">gen<" in section
    analysis = error_analysis(run, top_k=2)
    attributes = _csv_rows(run / "errors" / "attributes.csv")
    assert {r["source"] for r in attributes} == {"gen", "cam"}
    source_buckets = {r["bucket"]: r["count"] for r in analysis.buckets if r["attribute"] == "source"}
    assert source_buckets == {"cam": 8, "gen": 8}
    out = robustness(run, limit_per_class=3, workers=1, progress=False)
    clean = {r["source"]: r for r in out["rows"][0]["per_source"]}
    assert set(clean) == {"gen", "cam"} and clean["gen"]["auc_against"] == "pooled reals"
    assert clean["cam"]["n"] == 3 and clean["cam"]["fpr"] is not None
    assert "| condition | AUC gen | AUC cam | FPR cam |" in format_markdown(out, "mix")
    assert "<h3>AUC per source</h3>" in report(run).read_text()  # the robustness section, per source
