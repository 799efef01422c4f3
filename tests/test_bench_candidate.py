"""benchmarks/bench_candidate.py: which columns a candidate default wins, ties and loses against the shipped one.

The rule of issue 21: a candidate ships only if it beats the default on every column, so a column left out or a
lower FPR counted as a loss would decide a release wrongly. Figures are made up here; nothing is trained.
"""

from __future__ import annotations

import pytest

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench():
    with benchmark_module("bench_candidate") as module:
        yield module


def figures(faces_auc: float, gen_recall: float, web_fpr: float) -> dict:
    return {
        "clean": {
            "faces140k": {"auc_against": "own", "roc_auc": faces_auc, "recall": 0.9, "fpr": 0.02},
            "sdxl-sfhq": {"auc_against": "pooled reals", "roc_auc": 0.9, "recall": gen_recall, "fpr": None},
            "web-portraits": {"auc_against": "pooled fakes", "roc_auc": 0.99, "recall": None, "fpr": web_fpr},
        }
    }


def test_every_column_of_each_kind_of_source_is_judged(bench):
    cols = bench.columns(figures(0.99, 0.8, 0.01))
    assert cols == [
        ("clean", "faces140k", "roc_auc"),
        ("clean", "faces140k", "recall"),
        ("clean", "faces140k", "fpr"),
        ("clean", "sdxl-sfhq", "roc_auc"),
        ("clean", "sdxl-sfhq", "recall"),
        ("clean", "web-portraits", "fpr"),
    ]


def test_a_lower_fpr_wins_and_a_lower_auc_loses(bench):
    out = bench.verdict(figures(0.995, 0.80, 0.02), figures(0.990, 0.90, 0.01))
    assert "clean faces140k roc_auc" in out["losses"]
    assert {"clean sdxl-sfhq recall", "clean web-portraits fpr"} <= set(out["wins"])
    assert "clean faces140k fpr" in out["ties"]
    assert sum(map(len, out.values())) == 6


def test_differences_below_the_third_decimal_are_ties(bench):
    out = bench.verdict(figures(0.99501, 0.8, 0.01), figures(0.99499, 0.8, 0.01))
    assert out["losses"] == [] and out["wins"] == []


def test_sources_of_two_mixes_are_merged_by_name(bench):
    merged = bench.union(
        ["../d/faces140k:2", "../d/sources/sd21-sdfd"], ["/abs/d/sources/sd21-sdfd", "photos:p/x"]
    )
    assert merged == ["../d/faces140k:2", "../d/sources/sd21-sdfd", "photos:p/x"]
