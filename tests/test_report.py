"""ablab report: seeds aggregated, failed / unfinished / missing work named, the cross-recipe overview, an
unreadable summary skipped with a message; tables with significant digits and real minus signs, column selection,
top-5 only where informative, 'x root' only between figures measured alike, and LaTeX that fits one column of an
article (estimated from Computer Modern's widths; typeset by pdflatex where it is installed)."""

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.io import save_checkpoint, write_json_atomic
from ablab.recipe import load_recipe
from ablab.report.columns import ColumnError, resolve
from ablab.report.latex import LAYOUTS, TEXT_WIDTH, text_width, to_latex
from ablab.report.measured import alike_root
from ablab.report.numbers import significant
from ablab.report.table import to_markdown
from ablab.report.tables import build_overview, build_table
from ablab.store.paths import Store
from ablab.store.summary import write_rows, write_summary

from .conftest import TINY_BASE

RECIPE = """
name: fixture_recipe
""" + TINY_BASE + """profiles:
  small:
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 5}
steps:
  - id: o_base
    label: "tiny ViT & friends 100%"
    paper: {top1: 70.5}
  - id: a
    transform: deepen_narrow
    params: {depth: 4, dim: 16, heads: 2}
  - id: b
    transform: relative_position_bias
  - id: c
    transform: relative_position_bias
    from: o_base
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _seed_run(step_dir, seed: int, metrics: dict | None, epochs_logged: int = 5) -> None:
    """A seed directory as the runner leaves it: run.json, log.csv and (when finished) metrics.json."""
    run = step_dir / f"seed{seed}"
    write_json_atomic(run / "run.json", {"key": "k", "seed": seed, "train": {"epochs": 5}})
    (run / "log.csv").write_text("epoch,loss\n" + "".join(f"{e},1.0\n" for e in range(epochs_logged)))
    save_checkpoint(run / "checkpoint.pt", {}, epoch=epochs_logged - 1)
    if metrics is not None:
        write_json_atomic(run / "metrics.json", {"seed": seed, **metrics})


def _fixture(write_recipe, tmp_path):
    """o_base: two seeds done; a: failed; b: stopped in epoch 3; c: never measured."""
    path, results = write_recipe(RECIPE), tmp_path / "results"
    assert invoke("run", path, "--measure-only", "--steps", "o_base,a,b", "--results", results).exit_code == 0
    steps = results / "fixture_recipe/small"
    for seed, top1 in ((0, 50.0), (1, 60.0)):
        _seed_run(steps / "o_base", seed, {"status": "done", "top1": top1, "top5": 90.0, "train_hours": 0.01})
    _seed_run(steps / "a", 0, {"status": "failed", "reason": "loss is nan in epoch 1"})
    _seed_run(steps / "b", 0, None, epochs_logged=2)
    return load_recipe(path), results


def test_table_names_failed_unfinished_and_missing_runs(write_recipe, tmp_path):
    recipe, results = _fixture(write_recipe, tmp_path)
    summary = write_summary(recipe, "small", Store(results))
    rows = {r["step"]: r for r in csv.DictReader(summary.open())}
    assert list(rows) == ["o_base", "a", "b", "c"]
    assert rows["o_base"]["status"] == "done" and float(rows["o_base"]["top1"]) == 55.0
    assert round(float(rows["o_base"]["top1_std"]), 3) == 7.071 and rows["o_base"]["seeds"] == "0 1"  # sample std
    assert rows["a"]["status"] == "failed (seed 0): loss is nan in epoch 1" and rows["a"]["top1"] == ""
    assert rows["b"]["status"] == "incomplete (seed 0: epoch 2/5)" and rows["b"]["top1"] == ""
    assert rows["c"]["status"] == "missing" and rows["c"]["params"] == ""
    frame = build_table(summary).frame.set_index("step")
    assert frame.at["o_base", "top-1"] == "55.00 ± 7.07"
    assert frame.at["a", "top-1"] == "" and frame.at["c", "status"] == "missing"
    assert frame.at["b", "status"].startswith("incomplete")


def test_overview_puts_every_recipe_end_beside_its_root(write_recipe, tmp_path):
    recipe, results = _fixture(write_recipe, tmp_path)
    first = write_summary(recipe, "small", Store(results))
    other = write_recipe(RECIPE.replace("fixture_recipe", "second_recipe"), name="second.yaml")
    invoke("run", other, "--measure-only", "--results", results)
    frame = build_overview([first, results / "second_recipe/small/summary.csv"], "small").frame
    assert list(frame["recipe"]) == ["fixture_recipe"] * 2 + ["second_recipe"] * 2
    assert list(frame["step"]) == ["o_base", "c"] * 2  # c branches from o_base: its chain's root
    assert frame["status"].tolist()[:2] == ["done", "missing"]
    assert frame["paper top-1"].tolist()[0] == 70.5


def test_report_command_regenerates_everything(write_recipe, tmp_path):
    recipe, results = _fixture(write_recipe, tmp_path)
    write_summary(recipe, "small", Store(results))
    invoke("run", write_recipe(RECIPE.replace("fixture_recipe", "second_recipe"), name="second.yaml"),
           "--measure-only", "--results", results)
    broken = results / "broken/small/summary.csv"
    broken.parent.mkdir(parents=True)
    broken.write_text("")
    result = invoke("report", "--results", results, results)
    assert result.exit_code == 0, result.output
    assert f"skipped {broken}" in result.output
    assert (results / "overview_small.md").is_file() and (results / "overview_small.tex").is_file()
    for name in ("table.md", "table.csv", "table.tex"):
        assert (results / "fixture_recipe/small" / name).stat().st_size > 0
    only_one = invoke("report", "--results", results, write_recipe(RECIPE, name="again.yaml"))
    assert only_one.exit_code == 0 and "second_recipe" not in only_one.output


def test_metrics_record_the_machine_peak(write_recipe, tmp_path):
    recipe, results = _fixture(write_recipe, tmp_path)
    metrics = json.loads((results / "fixture_recipe/small/o_base/metrics.json").read_text())
    assert metrics["peak_gmacs"] > 0


# ---- tables from summaries written directly (fast) ---------------------------------------------------------------

CPU = {"device": "cpu (2 threads)", "dtype": "fp32", "peak_gmacs": 98.0, "seeds": "0 1 2 3", "top1_n": 4}
STEPS = [
    CPU | dict(step="o_base", label="tiny ViT & friends 100%", parent="", params_m=0.394786, gflops=0.006489936,
               throughput=8675.3, top1=59.498, top1_std=1.975, top5=99.9, paper_top1=81.8, status="done"),
    CPU | dict(step="a", label="(o) + Depth", parent="o_base", params_m=0.349882, gflops=0.005847264,
               throughput=9002.81, top1=56.733, top1_std=1.209, top5=97.0, d_top1=-2.765, d_top1_lo=-4.237,
               d_top1_hi=-1.293, d_top1_n=4, verdict="worse", paper_top1=82.9, status="done"),
    CPU | dict(step="b", label="(a) + RPE", parent="a", params_m=12.5, gflops=0.0000278, throughput=4.6912,
               top1=55.968, top1_std=0.86, top5=98.0, d_top1=-0.765, d_top1_lo=-2.47, d_top1_hi=0.94, d_top1_n=4,
               verdict="not resolved", paper_top1=83.2, status="done"),
]


def summary_of(tmp_path: Path, rows: list[dict], classes: int | None = None, profile: str = "cpu") -> Path:
    """rows as <tmp>/results/toy/<profile>/summary.csv; `classes` writes each step's spec.json as `ablab run` does."""
    path = tmp_path / "results" / "toy" / profile / "summary.csv"
    for row in rows if classes else []:
        (path.parent / row["step"]).mkdir(parents=True, exist_ok=True)
        (path.parent / row["step"] / "spec.json").write_text(json.dumps({"num_classes": classes}))
    return write_rows(path, rows)


def markdown_rows(text: str) -> list[list[str]]:
    """The cells of a Markdown table, header first (the alignment row left out)."""
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|:")
             and not line.startswith("|-")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_numbers_keep_significant_digits_not_fixed_decimals():
    assert [significant(v) for v in (0.006489936, 0.349882, 86.566, 8675.3, 0.0000278, 0.9996, 17.49)] == [
        "0.00649", "0.350", "86.6", "8675", "0.0000278", "1.00", "17.5"]
    assert significant(-0.0342, 2) == "-0.034"


def test_markdown_prints_significant_digits_and_real_minus_signs(tmp_path: Path):
    table = build_table(summary_of(tmp_path, STEPS))
    cells = markdown_rows(to_markdown(table))
    header, rows = cells[0], {row[0]: dict(zip(cells[0], row)) for row in cells[1:]}
    assert [rows[s]["GFLOPs"] for s in ("o_base", "a", "b")] == ["0.00649", "0.00585", "0.0000278"]
    assert [rows[s]["Params (M)"] for s in ("o_base", "a", "b")] == ["0.395", "0.350", "12.5"]
    speed = "im/s [cpu (2 threads), fp32]"
    assert rows["b"][speed] == "4.69" and rows["o_base"][speed] == "8675"
    assert rows["a"]["Δ top-1 [95% CI]"] == "\u22122.77 [\u22124.24, \u22121.29]"
    assert not any(re.search(r"(^|[\s\[(])-\d", cell) for row in cells for cell in row), "hyphen as a minus sign"
    assert "top-5" in header  # a has 97%: informative when the classes are unknown


def test_latex_is_well_formed_booktabs_with_math_minus(tmp_path: Path):
    tex = to_latex(build_table(summary_of(tmp_path, STEPS)))
    assert tex.isascii(), "a Unicode character pdflatex cannot set"
    assert [tex.count(r) for r in (r"\toprule", r"\midrule", r"\bottomrule")] == [1, 1, 1]
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}")
    unescaped = re.sub(r"\\[{}&%_$#]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    assert not re.search(r"(?<!\\)[_%#&]", tex.split(r"\toprule")[0].split(r"\caption")[1].split(r"\label")[0])
    assert r"o\_base" in tex and r"\& friends 100\%" in tex and r"59.50 $\pm$ 1.98" in tex
    assert r"$-$2.77 [$-$4.24, $-$1.29]" in tex and r"\\[" not in tex  # no row end reads '[' as its argument
    rows = latex_rows(tex)
    assert len(rows) == 4 and all(len(row) == len(column_spec(tex)) for row in rows)


def column_spec(tex: str) -> list[str]:
    """The columns of the outer tabular: 'l', 'r' or 'p{..pt}'."""
    spec = tex.split(r"\begin{tabular}{@{}")[1].split("@{}}")[0]
    return re.findall(r"p\{[^}]*\}|[lrc]", spec)


def latex_rows(tex: str) -> list[list[str]]:
    """Header and body rows of the outer tabular, split into cells (stacked headers kept whole)."""
    body = tex[tex.index(r"\toprule") + len(r"\toprule"):tex.index(r"\bottomrule")].replace(r"\midrule", "")
    body = re.sub(r"\\begin\{tabular\}\[b\]\{@\{\}[lr]@\{\}\}(.*?)\\end\{tabular\}",
                  lambda m: m.group(1).replace(r"\\", "\t"), body)  # a stacked header: its lines, tab-separated
    return [re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip()) for line in body.splitlines() if line.strip()]


def plain(cell: str) -> str:
    """A LaTeX cell as the text it sets."""
    for tex, text in ((r"\raggedright ", ""), ("$-$", "\u2212"), (r"$\pm$", "±"), (r"$\times$", "×"),
                      (r"$\Delta$", "Δ"), (r"\,", ""), ("{}", ""), ("--", "–")):
        cell = cell.replace(tex, text)
    return re.sub(r"\\([_%&#$])", r"\1", cell).strip()


def latex_width(tex: str) -> float:
    """The width (pt) the emitted tabular sets, measured from its own cells: each column as wide as its widest
    cell in Computer Modern at the table's font size (a p column as declared), plus the column gaps."""
    layout = next(layout for layout in LAYOUTS if f"\\{layout.command}\n" in tex)
    spec, rows = column_spec(tex), latex_rows(tex)
    widths = [float(kind[2:-3]) if kind.startswith("p") else
              max(text_width(plain(line), layout.size) for row in rows for line in row[k].split("\t"))
              for k, kind in enumerate(spec)]
    return sum(widths) + 2 * layout.colsep * (len(spec) - 1)


def test_width_estimate_is_computer_modern():
    assert text_width("0123456789", 10) == pytest.approx(50.0)  # cmr10 digits are half an em
    assert text_width("MW", 10) == pytest.approx(9.17 + 10.28)
    assert text_width("top-1", 9) < text_width("Top-1", 9)


SUMMARIES = sorted(Path(__file__).parent.parent.joinpath("results").glob("*/*/summary.csv"))


@pytest.mark.parametrize("summary", SUMMARIES, ids=[f"{s.parent.parent.name}/{s.parent.name}" for s in SUMMARIES])
def test_default_latex_of_every_committed_result_fits_one_article_column(summary: Path):
    tex = to_latex(build_table(summary))
    assert r"\begin{table}[t]" in tex and "table*" not in tex
    assert latex_width(tex) <= TEXT_WIDTH
    assert len(column_spec(tex)) <= 10  # a compact set, not the 20-odd columns of the Markdown table
    assert all(len(row) == len(column_spec(tex)) for row in latex_rows(tex))


def test_latex_too_wide_for_a_column_says_so(tmp_path: Path):
    every = ",".join(["step", "model", "params", "gflops", "ims", "x_root", "top1", "n", "delta", "verdict",
                      "seeds_needed", "top5", "train_h", "paper_top1"])
    tex = to_latex(build_table(summary_of(tmp_path, STEPS)), resolve(every))
    assert r"\begin{table*}[t]" in tex and "too wide even so" in tex.splitlines()[0]
    assert len(column_spec(tex)) == 14 and latex_width(tex) > TEXT_WIDTH


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_pdflatex_sets_the_default_table_without_overfull_boxes(tmp_path: Path):
    tex = to_latex(build_table(SUMMARIES[0] if SUMMARIES else summary_of(tmp_path, STEPS)))
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex
                   + "\n\\end{document}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log


def test_columns_pick_by_name_or_alias_in_the_order_given(tmp_path: Path):
    table = build_table(summary_of(tmp_path, STEPS))
    chosen = resolve("label, step,IMS,top1,d_top1")
    assert markdown_rows(to_markdown(table, chosen))[0] == [
        "model", "step", "im/s [cpu (2 threads), fp32]", "top-1", "Δ top-1 [95% CI]"]
    assert len(column_spec(to_latex(table, chosen))) == 5
    with pytest.raises(ColumnError, match=r"unknown column 'bogus'.*known columns.*gflops \(flops\)"):
        resolve("step,bogus")


def test_report_command_takes_columns_and_names_unknown_ones(tmp_path: Path):
    summary = summary_of(tmp_path, STEPS)
    result = invoke("report", "--columns", "step,gflops,top1", summary.parent)
    assert result.exit_code == 0, result.output
    assert markdown_rows((summary.parent / "table.md").read_text())[0] == ["step", "GFLOPs", "top-1"]
    assert (summary.parent / "table.csv").read_text().splitlines()[0] == "step,GFLOPs,top-1"
    bad = invoke("report", "--columns", "step,top7", summary.parent)
    assert bad.exit_code == 2 and "unknown column 'top7'" in bad.output and "top5" in bad.output


@pytest.mark.parametrize("classes, top5, shown", [(10, 97.0, False), (100, 97.0, True), (100, 99.5, False),
                                                  (None, 97.0, True)])
def test_top5_only_where_informative(tmp_path: Path, classes, top5, shown):
    rows = [row | {"top5": top5} for row in STEPS]
    table = build_table(summary_of(tmp_path, rows, classes=classes))
    assert ("top-5" in markdown_rows(to_markdown(table))[0]) == shown
    assert "top-5" in markdown_rows(to_markdown(table, resolve("step,top5")))[0]  # asked for: always there


def test_x_root_only_between_valid_figures_measured_alike_on_an_idle_machine(tmp_path: Path):
    rows = [STEPS[0], STEPS[1] | {"load": "busy: 2 other processes"}, STEPS[2] | {"device": "cpu (8 threads)"}]
    frame = build_table(summary_of(tmp_path, rows)).frame.set_index("step")
    assert frame.at["o_base", "x root"] == 1.0
    assert math.isnan(frame.at["a", "x root"]) and math.isnan(frame.at["b", "x root"])
    same_setting = pd.DataFrame({"step": ["o", "a", "b", "c"], "root": ["o"] * 4, "setting": ["cpu, fp32"] * 4,
                                 "load": ["idle", "busy: load 3.1", "", "idle"], "gflops": [1.0] * 4,
                                 "throughput": [50.0, 60.0, 70.0, 120.0], "peak_gmacs": [100.0] * 4})
    # '' is a summary written before `load`; c runs 120 GMAC/s on a 100 GMAC/s machine: an invalid figure
    assert alike_root(same_setting).tolist() == [True, False, True, False]
    assert alike_root(same_setting.drop(columns="load")).tolist() == [True, True, True, False]


def test_x_root_only_between_figures_timed_together():
    """Timed apart (another `timed_at`), a ratio carries the machine's drift between the two timings: blank. A
    figure from before `timed_at` was recorded ('') is taken as timed with any."""
    at = ["2026-12-05T12:00:00.000+00:00"] * 2 + ["2026-12-05T13:00:00.000+00:00", ""]
    frame = pd.DataFrame({"step": ["o", "a", "b", "c"], "root": ["o"] * 4, "setting": ["cpu, fp32"] * 4,
                          "load": ["idle"] * 4, "gflops": [1.0] * 4, "throughput": [50.0, 60.0, 70.0, 80.0],
                          "peak_gmacs": [100.0] * 4, "timed_at": at})
    assert alike_root(frame).tolist() == [True, True, False, True]
    assert alike_root(frame.assign(timed_at=["", *at[1:]])).tolist() == [True] * 4  # the root's time unknown
    assert alike_root(frame.drop(columns="timed_at")).tolist() == [True] * 4
