"""`neurons demo` end to end on the bundled sample."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import CHROMIUM, assert_report_figures_valid, render_in_chromium

from toolkit.cli.demo import LABELS, sample_path


def test_sample_covers_five_languages_and_six_labels():
    df = pl.read_csv(sample_path())
    counts = df.group_by("language").len()
    assert set(counts["language"]) == {"ar", "en", "ja", "nl", "sl"}
    assert counts["len"].min() >= 40
    assert set(df["label"]) == set(LABELS)
    assert df["id"].is_unique().all() and df["text"].str.len_chars().min() > 10
    per_cell = df.group_by("language", "label").len()
    assert per_cell.height == 30 and per_cell["len"].min() >= 6


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from click.testing import CliRunner

    from toolkit.cli import cli

    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(cli, ["demo", "--out", str(out)], catch_exceptions=False)
    return out, result


def test_demo_end_to_end(demo, neurons):
    out, r = demo
    assert r.exit_code == 0, r.stderr
    assert "tiny" in r.stdout and "neurons extract" in r.stdout and "report:" in r.stdout
    db = out / "demo.duckdb"
    assert (out / "demo-model" / "config.json").exists()
    assert (out / "demo-report" / "index.html").exists() and (out / "demo-report" / "summary.md").exists()
    runs = json.loads(neurons("--db", db, "runs", "--json").stdout)
    assert runs[0]["run"] == "demo" and runs[0]["status"] == "complete" and runs[0]["sentences"] == 210
    assert runs[0]["layers"] == "0,1,2,3,4" and runs[0]["neurons"] == 64
    q = (
        "select count(*) as n, count(distinct predicted_label) as labels from activations_long a "
        "join sentences s on s.sentence_id = a.sentence_id and s.run_id = 1 where a.run = 'demo'"
    )
    row = json.loads(neurons("--db", db, "query", q, "--json").stdout)[0]
    assert row["n"] == 210 * 5 * 64
    # trained on the train split: it predicts more than one label, and beats chance on its training data
    acc = json.loads(
        neurons(
            "--db",
            db,
            "query",
            "select avg((predicted_label = label)::int) as acc from sentences where split = 'train'",
            "--json",
        ).stdout
    )[0]["acc"]
    assert acc > 0.5 and row["labels"] > 1
    tested = json.loads(
        neurons("--db", db, "query", "select permutations, bootstraps, layer from significance", "--json").stdout
    )
    assert tested == [{"permutations": 1000, "bootstraps": 1000, "layer": 3}]
    summary = json.loads(neurons("--db", db, "query", "select * from ablation_summary", "--json").stdout)
    assert len(summary) == 5 and all(r["n_sentences"] == 12 and r["n_controls"] == 10 for r in summary)
    compared = json.loads(
        neurons("--db", db, "query", "select * from run_comparison where run_a = 'demo'", "--json").stdout
    )
    assert len(compared) == 5 * 5 and {r["run_b"] for r in compared} == {"demo-init"}  # against its initialisation
    assert all(r["n_shared"] == 210 and r["matched_by"] == "text" for r in compared)
    assert (out / "demo-report" / "tables" / "compared-1.csv").exists()


def test_every_figure_of_the_demo_report_is_valid_vega_lite(demo):
    out, _ = demo
    drawn = assert_report_figures_valid(out / "demo.duckdb", "demo")
    # every kind of figure an encoder's run can have: significance, agreement, the layer sweep and an ablation
    assert {"class_significance", "language_sensitive_counts", "criteria_agreement", "summarize_layers"} <= drawn
    assert "ablation_summary" in drawn and {"length_confound", "profile_correlation"} <= drawn  # token counts


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed on this machine")
def test_the_demo_report_renders_every_figure_legibly(demo, tmp_path):
    """The demo's report, with every kind of figure (significance, ablation, comparison), in headless Chromium:
    every chart draws, no script fails, and no two text marks touch (the page measures each box once drawn).
    Figure 1 wraps its label panels in rows of four: each panel has its own axis and no axis stands under an empty
    grid cell."""
    assert CHROMIUM, "CI must install Chromium (see .ci/run)"
    out, _ = demo
    report = out / "demo-report"
    dom = render_in_chromium(report / "index.html", tmp_path)
    body = re.search(r"<body [^>]*data-charts[^>]*>", dom).group(0)
    assert int(re.search(r'data-charts="(\d+)"', body).group(1)) >= 17, body
    assert re.search(r'data-rendered="(\d+)"', body).group(1) == re.search(r'data-charts="(\d+)"', body).group(1)
    assert "data-failed" not in body and "data-overlaps" not in body, body
    svg = (report / "figures" / "label-variance.svg").read_text()
    panels = len(re.findall(r'aria-label="X-axis titled .variance of z within the label', svg))
    assert panels == len(LABELS) == 6


def test_readme_sql_examples_run_on_the_demo(demo, neurons):
    """Every one-line example of the README's SQL reference runs on the demo warehouse."""
    out, _ = demo
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    examples = [ln for ln in readme.splitlines() if ln.startswith(("select ", "pivot ")) and ln.endswith(";")]
    assert len(examples) >= 12
    for sql in examples:
        r = neurons("--db", out / "demo.duckdb", "query", sql)
        assert r.exit_code == 0, (sql, r.stderr)
        assert len(r.stdout.splitlines()) >= 3, sql  # header, rule and at least one row


def test_demo_reruns_replace_the_run(demo, tmp_path, neurons):
    shutil.copytree(demo[0], tmp_path, dirs_exist_ok=True)  # a folder the demo has run in already
    assert neurons("demo", "--out", tmp_path, "--epochs", "2").exit_code == 0
    runs = json.loads(neurons("--db", tmp_path / "demo.duckdb", "runs", "--json").stdout)
    assert [r["run"] for r in runs] == ["demo", "demo-init", "demo-ffn"]
