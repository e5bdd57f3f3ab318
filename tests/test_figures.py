"""Charts, the HTML report (in a real headless Chromium), and exports for papers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import altair as alt
import numpy as np
import polars as pl
import pytest
import synthetic as syn
from conftest import CHROMIUM, assert_one_line_error, render_in_chromium

from toolkit.capture.load import load_long
from toolkit.figures.charts import ChartOptions, build
from toolkit.figures.export import PAGE_ROWS, latex_escape, to_latex, write_table
from toolkit.figures.report import build_report
from toolkit.store.query import fixed
from toolkit.store.warehouse import Warehouse


@pytest.fixture(scope="module")
def paper_sized(tmp_path_factory):
    """A layer of 768 neurons, 6 labels and 4 languages (6 pairs), as in the paper."""
    tmp = tmp_path_factory.mktemp("paper")
    values, lang, lab = syn.make(seed=4, per_cell=8, neurons=768)
    db = tmp / "w.duckdb"
    load_long(db, syn.write_long(tmp / "p.parquet", [syn.long_frame(values, lang, lab, 11)]), "paper")
    return db


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory, paper_sized) -> Path:
    """`neurons report` of the paper-sized run, made once for the tests that read it (a report takes ~20 s)."""
    from click.testing import CliRunner

    from toolkit.cli import cli

    out = tmp_path_factory.mktemp("paper-report") / "rep"
    r = CliRunner().invoke(cli, ["--db", str(paper_sized), "report", "--run", "paper", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def rows_drawn(chart) -> int:
    """Rows of the largest inline dataset of a chart spec."""
    spec = chart.to_dict()
    return max(len(v) for v in spec.get("datasets", {}).values())


def marks(spec: dict) -> set[str]:
    found = set()

    def walk(node):
        if isinstance(node, dict):
            if "mark" in node:
                m = node["mark"]
                found.add(m if isinstance(m, str) else m["type"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def test_the_noise_ceiling_is_computed_once_per_read_only_session(paper_sized, monkeypatch):
    """The report's caveat, table and figure all read crosslingual_ceiling, whose split-half reliabilities take
    seconds on a real run: a read-only warehouse computes each run and layer's rows once."""
    from toolkit.stats.analysis import caveats

    with Warehouse(paper_sized, read_only=True) as wh:
        queried, sql = [], wh.sql
        monkeypatch.setattr(wh, "sql", lambda q, p=None: queried.append(q) or sql(q, p))
        caveats(wh, "paper", 11)
        build(wh, "ceiling", ChartOptions(run="paper", layer=11))
        rows = wh.crosslingual_ceiling("paper", 11)
        assert rows.height == 36 and wh.crosslingual_ceiling("paper", 11) is rows
    assert sum("crosslingual_ceiling" in q for q in queried) == 1


def test_ceiling_cells_say_what_is_undefined(paper_sized, monkeypatch):
    """A NaN or null rho* (an undefined Spearman) reads "ρ* n/a" and is not counted beyond ±1 (Polars orders NaN
    above every number); a null ceiling reads "n/a"; rho* is never "-0.00"; a rho* beyond ±1 on either side is
    marked, and never reads ±1.00."""
    nan = float("nan")
    rows = pl.DataFrame(
        {
            "label": ["a"] * 8,
            "language_a": ["x"] * 8,
            "language_b": ["p", "q", "r", "s", "t", "u", "v", "w"],
            "ceiling": [0.8, 0.8, None, 0.8, 0.5, 0.4, 0.9, 0.9],
            "disattenuated": [nan, None, None, -0.001, 1.5, -1.04, 1.003, 0.996],
            "interpretable": [True, True, False, True, True, True, True, True],
        }
    )
    with Warehouse(paper_sized, read_only=True) as wh:
        monkeypatch.setattr(wh, "crosslingual_ceiling", lambda run, layer: rows)
        spec = build(wh, "ceiling", ChartOptions(run="paper", layer=11)).to_dict()
    texts = [c["text"] for c in next(iter(spec["datasets"].values()))]
    assert texts == [
        "0.80\nρ* n/a",
        "0.80\nρ* n/a",
        "n/a",
        "0.80\nρ* 0.00",
        "0.50\nρ* 1.50†",
        "0.40\nρ* -1.04†",
        "0.90\nρ* 1.003†",
        "0.90\nρ* 1.00",
    ]
    said = " ".join(spec["title"]["subtitle"])
    assert "n/a (1 of 8 cells)" in said and "above 1 (3 cells)" in said


def test_every_chart_draws_every_row_at_paper_size(paper_sized):
    with Warehouse(paper_sized, read_only=True) as wh:
        o = ChartOptions(run="paper", layer=11)
        tops = wh.sql(
            "select count(distinct neuron) from top_neurons where run = 'paper' and layer = 11 "
            "and label = 'sadness' and rank <= 5"
        ).item()
        expected = {
            "label-variance": 6 * 10,  # each label's 10 most variable neurons
            "correlation": 6 * 6,
            "profiles": 4 * tops,  # every language's value for the union of the languages' top 5 neurons
            "classes": 6 * 4,
            "monolingual": 4,
            "variance-ranking": 768,
        }
        for name, n_rows in expected.items():
            assert rows_drawn(build(wh, name, o)) == n_rows, name
        assert rows_drawn(build(wh, "layers", o)) == 6  # one layer: six pairs' mean Spearman
        spec = build(wh, "correlation", o).to_dict()
        assert marks(spec) == {"rect", "text"}
        enc = spec["layer"][0]["encoding"]
        assert enc["x"]["field"] == "pair" and enc["y"]["field"] == "label" and enc["color"]["field"] == "value"
        assert spec["layer"][1]["encoding"]["text"]["field"] == "text"
        cells = next(iter(spec["datasets"].values()))
        # annotated with the value (no intervals yet), never "-0.00"
        assert all(c["text"] == f"{round(c['value'], 2) + 0.0:.2f}" and c["text"] != "-0.00" for c in cells)
        ceiling = build(wh, "ceiling", o).to_dict()
        missing = wh.scalar(
            "select count(*) filter (where ceiling is null) from crosslingual_ceiling where run = 'paper' and layer = 11"
        )
        said = " ".join(ceiling["title"]["subtitle"])
        assert (f"n/a ({missing} of 36 cells)" in said) == bool(missing)
        cells = next(iter(ceiling["datasets"].values()))
        assert sum(c["text"] == "n/a" for c in cells) == missing and all(
            "†" not in c["text"] or abs(float(c["text"].split("ρ* ")[1][:-1])) > 1 for c in cells
        )
        truth = wh.sql(  # the view read directly: each cell's first line is its ceiling, and noise is said so
            "select label, language_a || '–' || language_b as pair, ceiling, interpretable from crosslingual_ceiling "
            "where run = 'paper' and layer = 11"
        )
        drawn = pl.DataFrame(cells).select("label", "pair", "text").join(truth, on=["label", "pair"], how="full")
        assert drawn.height == truth.height == 36 and drawn["text"].null_count() == 0
        for text, value, interpretable in drawn.select("text", "ceiling", "interpretable").rows():
            assert text == "n/a" if value is None else text.split("\n")[0] == f"{value:.2f}"
            assert ("too noisy" in text) == (value is not None and not interpretable)
        fig1 = build(wh, "label-variance", o).to_dict()
        assert marks(fig1) == {"rect", "rule", "circle"}  # the band of all neurons, the line at 1, the top neurons
        prof = build(wh, "profiles", ChartOptions(run="paper", layer=11, label="joy")).to_dict()
        assert marks(prof) == {"rect", "text"}
        color = prof["layer"][0]["encoding"]["color"]
        assert color["field"] == "mean_z" and color["scale"]["domainMid"] == 0  # diverging, centred on 0
        assert spec["layer"][0]["encoding"]["color"]["scale"]["domainMid"] == 0  # Figure 2 too
        data = next(iter(prof["datasets"].values()))
        assert sum(r["is_top"] for r in data) == 4 * 5  # five top neurons per language, outlined
        assert {r["language"] for r in data} == set(syn.LANGS)
        cls = build(wh, "classes", o).to_dict()
        assert cls["encoding"]["color"]["scale"]["domain"] == ["polyglot", "shared", "monolingual", "inactive"]
        assert (
            len(
                build(wh, "label-variance", ChartOptions(run="paper", labels=["joy", "sadness"]))
                .to_dict()["datasets"]
                .popitem()[1]
            )
            == 2 * 10
        )
    # Figure 1's neurons and band are each label's own, computed here from the z-scores
    values, lang, lab = syn.make(seed=4, per_cell=8, neurons=768)
    expected = syn.label_variance(syn.zscore(values, lang), lab)
    drawn = pl.DataFrame(next(iter(fig1["datasets"].values())))
    for label, v in expected.items():
        mine = drawn.filter(pl.col("label") == label).sort("rank")
        assert mine["neuron"].to_list() == np.lexsort((np.arange(v.size), -v))[:10].tolist()
        assert mine["variance"].to_numpy() == pytest.approx(np.sort(v)[::-1][:10], rel=1e-5)
        assert (mine["low"][0], mine["high"][0]) == pytest.approx(tuple(np.quantile(v, [0.05, 0.95])), rel=1e-5)


def test_chart_values_come_from_the_views(paper_sized):
    with Warehouse(paper_sized, read_only=True) as wh:
        spec = build(wh, "correlation", ChartOptions(run="paper", metric="cosine")).to_dict()
        drawn = {(r["label"], r["pair"]): r["value"] for r in next(iter(spec["datasets"].values()))}
        view = wh.crosslingual_correlation("paper", 11)
        for r in view.iter_rows(named=True):
            assert drawn[(r["label"], f"{r['language_a']}–{r['language_b']}")] == pytest.approx(r["cosine"])


MAGIC = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-", ".svg": b"<svg"}


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf", ".html"])
def test_chart_files(tmp_path, paper_sized, neurons, suffix):
    out = tmp_path / f"fig{suffix}"
    r = neurons("--db", paper_sized, "chart", "classes", "--run", "paper", "--out", out)
    assert r.exit_code == 0, r.stderr
    head = out.read_bytes()[:64]
    if suffix == ".html":
        text = out.read_text()
        assert "vegaEmbed" in text and "cdn.jsdelivr" not in text  # inlined, works offline
    else:
        assert head.lstrip().startswith(MAGIC[suffix]) or (suffix == ".svg" and b"<svg" in out.read_bytes()[:500])


def test_png_is_the_svg_rasterised_as_vl_convert_draws_it(paper_sized, monkeypatch):
    """`images` draws a chart once (SVG) and rasterises that SVG: the PNG equals vl-convert's own PNG of the spec at
    1.5x, and a PNG over PNG_LIMIT is drawn at 1x instead."""
    import vl_convert

    from toolkit.figures import charts

    with Warehouse(paper_sized, read_only=True) as wh:
        spec = build(wh, "classes", ChartOptions(run="paper")).to_dict()
    version = "_".join(alt.SCHEMA_VERSION.split(".")[:2])
    svg, png = charts.images(spec)
    assert svg.lstrip().startswith("<svg")
    assert png == vl_convert.vegalite_to_png(spec, vl_version=version, scale=1.5)
    monkeypatch.setattr(charts, "PNG_LIMIT", len(png) - 1)
    assert charts.images(spec)[1] == vl_convert.vegalite_to_png(spec, vl_version=version, scale=1.0)


def test_chart_bad_input(tmp_path, paper_sized, neurons):
    assert_one_line_error(
        neurons("--db", paper_sized, "chart", "classes", "--run", "paper", "--out", tmp_path / "x.jpg"),
        "unsupported extension",
    )
    assert_one_line_error(
        neurons(
            "--db", paper_sized, "chart", "profiles", "--run", "paper", "--label", "awe", "--out", tmp_path / "x.png"
        ),
        "no label awe",
    )
    assert_one_line_error(
        neurons("--db", paper_sized, "chart", "classes", "--run", "nope", "--out", tmp_path / "x.png"),
        "no run named 'nope'",
    )
    assert_one_line_error(
        neurons("--db", paper_sized, "chart", "classes", "--run", "paper", "--layer", "3", "--out", tmp_path / "x.png"),
        "has no layer 3",
    )
    assert_one_line_error(  # imported without token counts: no length to draw, and no file
        neurons("--db", paper_sized, "chart", "length", "--run", "paper", "--out", tmp_path / "l.png"),
        "has no sentence lengths",
    )
    assert not (tmp_path / "l.png").exists()
    assert_one_line_error(
        neurons(
            "--db",
            paper_sized,
            "chart",
            "correlation",
            "--run",
            "paper",
            "--at-equal-length",
            "--out",
            tmp_path / "e.png",
        ),
        "has no sentence lengths",
    )


def test_latex_is_booktabs_and_escaped():
    df = pl.DataFrame(
        {"pair_%": ["ar_nl", "50% & #1", "a{b}"], "rho": [0.123456, -1.0, None], "n_sentences": [1, 2, 3]}
    )
    tex = to_latex(df, caption="Spearman's rho, 100% & more", label="tab:rho", precision=2)
    lines = tex.splitlines()
    assert lines[:3] == ["\\begin{table}[ht]", "\\centering", FIT_TO_LINE]
    assert lines[3:5] == ["\\begin{tabular}{lrr}", "\\toprule"]
    assert lines[5] == r"pair \% & rho & sentences \\" and lines[6] == "\\midrule"  # names for readers, escaped
    assert lines[7] == r"ar\_nl & 0.12 & 1 \\"
    assert lines[8] == r"50\% \& \#1 & $-$1.00 & 2 \\"  # a minus sign, not a hyphen
    assert lines[9] == r"a\{b\} & -- & 3 \\"
    assert lines[10:12] == ["\\bottomrule", "\\end{tabular}}"]
    assert "\\caption{Spearman's rho, 100\\% \\& more}" in lines and "\\label{tab:rho}" in lines
    assert latex_escape("a\\b~^$") == r"a\textbackslash{}b\textasciitilde{}\textasciicircum{}\$"


FIT_TO_LINE = "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%"


def wide_table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "language": ["ar", "nl"],
            "delta_macro_f1": [-0.0004, -0.25],
            "control_mean_delta_macro_f1": [0.5, -2.0],
            "rank_change": [-3, 4],
            "baseline_at_chance": [True, False],
            **{f"mean_spearman_at_equal_length_{i}": [0.1 * i, -0.1 * i] for i in range(12)},
        }
    )


def test_latex_and_markdown_tables_read_as_a_paper_prints_them(tmp_path):
    """Tables for papers: minus signs (never '-0.000', which rounds a negative value to a sign), yes/no for flags,
    one name per quantity ('macro-F1' inside longer names too), headers wider than their column's values broken
    into lines, and a table wider than the line scaled to it."""
    df = wide_table()
    lines = to_latex(df, precision=3).splitlines()
    rows = [ln.split(" & ") for ln in lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]]
    assert [r[:5] for r in rows] == [["ar", "0.000", "0.500", "$-$3", "yes"], ["nl", "$-$0.250", "$-$2.000", "4", "no"]]
    header = lines[lines.index("\\toprule") + 1]
    assert header.startswith("language & \\begin{tabular}[b]{@{}r@{}}change in \\\\ macro-F1\\end{tabular} & ")
    assert "control \\\\ mean \\\\ change in \\\\ macro-F1" in header and "Spearman \\\\ at equal" in header
    assert FIT_TO_LINE in lines and lines[lines.index("\\bottomrule") + 1] == "\\end{tabular}}"
    out = tmp_path / "t.md"
    write_table(df.select("language", "delta_macro_f1", "baseline_at_chance"), out, precision=2)
    assert out.read_text().splitlines()[0].split("|")[1:-1] == [
        " language ",
        " change in macro-F1 ",
        " baseline at chance ",
    ]
    assert [ln.split("|")[2:4] for ln in out.read_text().splitlines()[2:]] == [
        ["               0.00 ", " yes                "],
        ["              -0.25 ", " no                 "],
    ]


def test_a_value_on_a_rounding_midpoint_prints_the_same_on_every_run():
    """Two reports of one demo warehouse gave a Spearman correlation of exactly 0.9875 (over 64 neurons) as these two
    neighbouring floats, DuckDB's parallel sums having run in another order: one table said 0.987, the next 0.988."""
    once, again = 0.9874999999999997, 0.9875000000000004
    assert f"{once:.3f}" != f"{again:.3f}"  # the failure, as it was
    assert fixed(once, 3) == fixed(again, 3) == "0.988" and fixed(-0.0004, 3) == "0.000"
    assert fixed(0.12345678901234566, 17) == "0.12345678901234566"  # all the digits asked for


def tall_table(rows: int) -> pl.DataFrame:
    return pl.DataFrame({"neuron": range(rows), "mean_z": np.linspace(-1, 1, rows), "label": ["joy"] * rows})


def test_a_table_taller_than_a_page_is_a_longtable_with_its_header_on_every_page():
    """A float holds one page and drops what does not fit; past PAGE_ROWS rows the table breaks across pages."""
    assert "\\begin{table}" in to_latex(tall_table(PAGE_ROWS))
    lines = to_latex(tall_table(PAGE_ROWS + 1), caption="All", label="tab:all").splitlines()
    start, end = lines.index("\\begin{longtable}{rrl}"), lines.index("\\end{longtable}")
    assert lines[start + 1] == "\\caption{All} \\label{tab:all} \\\\"
    head = lines[start + 2 : lines.index("\\endfirsthead")]
    assert head == ["\\toprule", "neuron & mean z & label \\\\", "\\midrule"]
    assert lines[lines.index("\\endfirsthead") + 1 : lines.index("\\endhead")] == head  # repeated on each page
    rows = lines[lines.index("\\endfoot") + 1 : end]
    assert len(rows) == PAGE_ROWS + 1 and rows[0] == "0 & $-$1.000 & joy \\\\" and rows[-1] == "40 & 1.000 & joy \\\\"


def pdflatex(tmp_path: Path, table: str) -> str:
    """pdflatex's log of an article that inputs TABLE with the packages the export names."""
    (tmp_path / "t.tex").write_text(table)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs,graphicx,longtable}\\begin{document}\\input{t.tex}"
        "\\end{document}\n"
    )
    for _ in range(2):  # longtable settles its column widths on the second run
        run = subprocess.run(
            [shutil.which("pdflatex"), "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stdout[-2000:]
    return run.stdout


@pytest.mark.skipif(
    shutil.which("pdflatex") is None and not os.environ.get("CI"), reason="TeX is not installed (.ci/run installs it)"
)
def test_wide_and_tall_latex_tables_compile_within_the_page(tmp_path):
    """Set by pdflatex: the wide table above (2.7 times the text width before scaling) has no overfull line; a table
    of 150 rows runs over four pages and nothing is lost off a page's end."""
    assert shutil.which("pdflatex"), "CI must install TeX (see .ci/run)"
    log = pdflatex(tmp_path, to_latex(wide_table(), caption="Wide", label="tab:wide"))
    assert "Overfull \\hbox" not in log, log[-2000:]
    log = pdflatex(tmp_path, to_latex(tall_table(150), caption="Tall"))
    assert "Overfull" not in log and "Float too large" not in log, log[-2000:]
    assert re.search(r"Output written on doc.pdf \((\d+) pages", log).group(1) == "4", log[-500:]


def test_export_round_trips(tmp_path, paper_sized, neurons):
    sql = "select language, label, neuron, mean_z, n_sentences from label_profiles where neuron < 5 order by all"
    expected = json.loads(neurons("--db", paper_sized, "query", sql, "--json").stdout)
    for suffix in (".parquet", ".csv", ".json"):
        out = tmp_path / f"t{suffix}"
        r = neurons("--db", paper_sized, "export", sql, "--out", out)
        assert r.exit_code == 0, r.stderr
        back = (
            pl.read_parquet(out)
            if suffix == ".parquet"
            else pl.read_csv(out)
            if suffix == ".csv"
            else pl.DataFrame(json.loads(out.read_text()))
        )
        assert back.columns == ["language", "label", "neuron", "mean_z", "n_sentences"]
        assert back.to_dicts() == expected
    md = tmp_path / "t.md"
    neurons("--db", paper_sized, "export", "language_pair_summary", "--run", "paper", "--out", md, "--precision", "2")
    lines = md.read_text().splitlines()
    assert lines[0].startswith("| run   | layer | language a | language b | mean Spearman |") and len(lines) == 2 + 6
    tex = tmp_path / "t.tex"
    r = neurons(
        "--db",
        paper_sized,
        "export",
        "monolingual_counts",
        "--layer",
        "11",
        "--out",
        tex,
        "--caption",
        "Monolingual neurons",
        "--label",
        "tab:mono",
    )
    assert r.exit_code == 0 and not r.stderr
    text = tex.read_text()  # one run and one layer: said once, in the caption, not in two constant columns
    assert "\\caption{Monolingual neurons (run paper, layer 11)}" in text
    assert "\\toprule\nlanguage & neurons \\\\\n" in text
    r = neurons(
        "--db", paper_sized, "export", "language_pair_summary", "--run", "paper", "--out", tex, "--caption", "Pairs."
    )
    assert r.exit_code == 0 and "\\caption{Pairs (run paper, layer 11).}" in tex.read_text()
    r = neurons("--db", paper_sized, "export", "label_profiles", "--run", "paper", "--out", tex)
    assert r.exit_code == 0 and "\\begin{longtable}" in tex.read_text()
    assert r.stderr.startswith("note: ") and "\\usepackage{longtable}" in r.stderr  # the package it now needs
    assert_one_line_error(
        neurons("--db", paper_sized, "export", "runs", "--out", tmp_path / "x.xlsx"), "unsupported extension"
    )
    assert_one_line_error(
        neurons("--db", paper_sized, "export", "drop table runs", "--out", tmp_path / "x.csv"), "refused"
    )


def test_report_files(paper_report):
    rep = paper_report
    page = (rep / "index.html").read_text()
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://cdn" not in page
    for key in (
        "label-variance",
        "correlation-spearman",
        "correlation-cosine",
        "profiles-joy",
        "classes",
        "monolingual",
        "variance-ranking",
    ):
        assert (rep / "figures" / f"{key}.png").read_bytes().startswith(MAGIC[".png"])
        assert b"<svg" in (rep / "figures" / f"{key}.svg").read_bytes()[:500]
        assert f"id='chart-{key}'" in page
    for key in ("top-variance", "language-pairs", "crosslingual", "classes", "monolingual", "top-neurons"):
        assert (rep / "tables" / f"{key}.csv").exists()
        assert "\\toprule" in (rep / "tables" / f"{key}.tex").read_text()
    assert "sql/views/010_statistics.sql" in page and "Definition 5" in page
    summary = (rep / "summary.md").read_text()
    assert summary.startswith("# Run `paper`, layer 11") and "| language a" in summary


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed on this machine")
def test_report_renders_in_a_real_browser(tmp_path, paper_report):
    """Headless Chromium loads the page from disk: every chart renders an SVG and no JavaScript error is logged."""
    assert CHROMIUM, "CI must install Chromium (see .ci/run)"
    index = paper_report / "index.html"
    dom = render_in_chromium(index, tmp_path)
    n_charts = int(re.search(r'data-charts="(\d+)"', dom).group(1))
    assert n_charts == 14  # Figures 1, 2 (+ ceiling, cosine), 3 for 6 labels, classes, monolingual, ranking, agreement
    assert re.search(r'data-rendered="(\d+)"', dom).group(1) == str(n_charts)
    assert "data-failed" not in dom and '<ul id="errors"></ul>' in dom
    # no two visible text marks of any figure overlap (the page measures every text box once drawn)
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-overlaps" not in body, body
    toc = dom.split('<nav id="toc">', 1)[1].split("</nav>", 1)[0]
    for anchor in re.findall(r'href="#([\w-]+)"', toc):
        assert f'id="{anchor}"' in dom, anchor
    assert all(p.stat().st_size < 1_000_000 for p in (paper_report / "figures").glob("*.png"))
    for key in re.findall(r"id=\"chart-([\w-]+)\"", dom):
        block = dom.split(f'id="chart-{key}"', 1)[1].split("</div>", 1)[0]
        assert "<svg" in block and ("<path" in block or "<rect" in block), key


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed on this machine")
def test_report_with_undefined_correlations_renders(tmp_path):
    """A language whose neurons are all constant has z = 0 everywhere: its correlations are undefined (NaN). The
    labels are the data's own text, with slashes, dots and spaces: no file leaves the report's folder and every
    chart still renders."""
    assert CHROMIUM, "CI must install Chromium (see .ci/run)"
    odd = ("../up", "a/b.c", "x y", "joy")
    values, lang, lab = syn.make(seed=5, per_cell=5, neurons=40, labels=odd)
    values[lang == "ar"] = 1.0
    db = tmp_path / "w.duckdb"
    load_long(db, syn.write_long(tmp_path / "c.parquet", [syn.long_frame(values, lang, lab, 2)]), "flat")
    with Warehouse(db, read_only=True) as wh:
        assert wh.crosslingual_correlation("flat", 2).filter(pl.col("language_a") == "ar")["spearman"].is_nan().all()
    dom = render_in_chromium(build_report(db, "flat", tmp_path / "rep"), tmp_path)
    assert re.search(r'data-rendered="(\d+)"', dom).group(1) == re.search(r'data-charts="(\d+)"', dom).group(1)
    assert "data-failed" not in dom
    assert not (tmp_path / "up").exists()
    files = [p.relative_to(tmp_path / "rep" / "figures") for p in (tmp_path / "rep" / "figures").rglob("*")]
    assert all(len(f.parts) == 1 for f in files) and len({f.stem for f in files if f.stem.startswith("profiles")}) == 4


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed on this machine")
def test_explorer_opens_a_card_from_the_address(tmp_path, paper_sized, paper_report):
    """index.html#neuron=11:N opens neuron N's card with its rank, profile and sentences from the warehouse."""
    assert CHROMIUM, "CI must install Chromium (see .ci/run)"
    index = paper_report / "index.html"
    with Warehouse(paper_sized, read_only=True) as wh:
        rank = wh.sql("select neuron, rank from between_label_variance where run = 'paper' and layer = 11 and rank = 3")
        neuron = int(rank["neuron"][0])
        joy_ar = wh.sql(
            "select mean_z from label_profiles where run = 'paper' and layer = 11 and neuron = ? "
            "and language = 'ar' and label = 'joy'",
            [neuron],
        ).item()
        best = wh.sql(
            "select text from top_sentences where run = 'paper' and layer = 11 and neuron = ? and language = 'nl' "
            "and rank = 1",
            [neuron],
        ).item()
    dom = render_in_chromium(index, tmp_path, f"neuron=11:{neuron}")
    card = dom.split('id="neuron-card"', 1)[1].split("</section>", 1)[0]
    assert f'data-neuron="{neuron}"' in card and f"Neuron {neuron} (layer 11" in card
    assert "rank 3 of 768" in card
    row = card.split("<td>joy</td>", 1)[1].split("</tr>", 1)[0]
    assert f">{joy_ar:.2f}<" in row  # the first language column is ar
    assert best in card
    other = render_in_chromium(index, tmp_path, "neuron=4:1")
    assert "covers layer 11, not layer 4" in other


def test_report_redacts_paths_on_request(tmp_path, paper_sized, paper_report, neurons):
    """--redact-paths: the page and the summary name the data by its file name only, never its folders (here on a
    small run of its own); without it, the whole path is shown (the paper-sized report)."""
    import duckdb

    values, lang, lab = syn.make(seed=6, per_cell=5, neurons=40)
    (tmp_path / "data").mkdir()
    small = syn.write_long(tmp_path / "data" / "small.parquet", [syn.long_frame(values, lang, lab, 3)])
    db = tmp_path / "w.duckdb"
    load_long(db, small, "small")
    redacted = tmp_path / "rep-redacted"
    assert neurons("--db", db, "report", "--run", "small", "--out", redacted, "--redact-paths").exit_code == 0
    with duckdb.connect(str(paper_sized), read_only=True) as con:
        paper = con.execute("select data_file from runs where name = 'paper'").fetchone()[0]
    for out, data_file, expect_folder in ((redacted, str(small), False), (paper_report, paper, True)):
        for name in ("index.html", "summary.md"):
            text = (out / name).read_text()
            assert Path(data_file).name in text
            assert (str(Path(data_file).parent) in text) == expect_folder, (name, expect_folder)


def test_vega_bundle_is_built_once_per_version_and_an_unwritable_cache_costs_only_time(tmp_path, monkeypatch):
    """The page's Vega script is built by vl-convert once and then read from the cache folder (in another process
    too); where the cache cannot be written, the script is still returned, built each time."""
    import vl_convert

    from toolkit.figures import vega

    builds = []
    monkeypatch.setattr(vl_convert, "javascript_bundle", lambda: builds.append(1) or "/* vega */")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    vega.bundle.cache_clear()
    assert vega.bundle() == "/* vega */" and len(builds) == 1
    vega.bundle.cache_clear()  # as a new process
    assert vega.bundle() == "/* vega */" and len(builds) == 1
    assert [p.name for p in (tmp_path / "cache" / "neurons").iterdir()] == [f"vega-bundle-{vl_convert.__version__}.js"]
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file where the folder would be
    vega.bundle.cache_clear()
    assert vega.bundle() == "/* vega */" and len(builds) == 2
    vega.bundle.cache_clear()
