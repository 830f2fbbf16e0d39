"""ablab run --measure-only writes results atomically, skips unchanged steps, and ablab report builds tables."""

import csv
import json

import pytest
from typer.testing import CliRunner

import ablab
from ablab.cli import app
from ablab.runs.preflight import PreflightError

from .conftest import TINY_BASE

TINY = """
name: tiny
""" + TINY_BASE + """profiles:
  small:
    measure: {batch_sizes: [2], min_time: 0.01}
steps:
  - id: o
    label: tiny ViT
    paper: {params_m: 0.03, gflops: 0.001}
  - id: a
    transform: deepen_narrow
    params: {depth: 4, dim: 16, heads: 2}
  - id: b
    transform: relative_position_bias
"""


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def test_run_writes_results_and_summary(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    result = invoke("run", recipe, "--measure-only", "--results", results)
    assert result.exit_code == 0, result.output
    for step in "oab":
        spec = json.loads((results / "tiny/small" / step / "spec.json").read_text())
        metrics = json.loads((results / "tiny/small" / step / "metrics.json").read_text())
        assert spec["stages"][0]["dim"] == (32 if step == "o" else 16)
        assert metrics["params"] > 0 and metrics["gflops"] > 0 and metrics["throughput"] > 0
        assert metrics["device"].startswith("cpu") and metrics["dtype"] == "fp32"
    rows = list(csv.DictReader((results / "tiny/small/summary.csv").open()))
    assert [r["step"] for r in rows] == ["o", "a", "b"] and rows[1]["parent"] == "o"
    assert rows[0]["paper_params_m"] == "0.03" and rows[1]["paper_params_m"] == ""
    for col in ("step", "label", "parent", "params", "params_m", "gflops", "throughput", "device", "dtype"):
        assert col in rows[0]
    assert not list(results.rglob("*.tmp"))


def test_rerun_skips_unchanged_and_force_remeasures(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    invoke("run", recipe, "--measure-only", "--results", results)
    again = invoke("run", recipe, "--measure-only", "--results", results)
    assert again.output.count("unchanged, skipped") == 3
    forced = invoke("run", recipe, "--measure-only", "--results", results, "--force", "--steps", "a")
    assert "skipped" not in forced.output and "[a]" in forced.output and "[o]" not in forced.output
    at = {r["step"]: r["timed_at"] for r in csv.DictReader((results / "tiny/small/summary.csv").open())}
    assert at["o"] == at["b"] != at["a"] != ""  # a, timed apart from its root now, gets no 'x root'
    changed = write_recipe(TINY.replace("depth: 4, dim: 16", "depth: 3, dim: 16"))
    partial = invoke("run", changed, "--measure-only", "--results", results)
    assert partial.output.count("unchanged, skipped") == 1  # o; a and b changed


def test_a_fresh_clone_keeps_committed_summary_rows_no_run_data_speaks_for(write_recipe, tmp_path):
    recipe, results, clone = write_recipe(TINY), tmp_path / "results", tmp_path / "clone"
    invoke("run", recipe, "--measure-only", "--results", results)
    summary = results / "tiny/small/summary.csv"
    with summary.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row, top1, d_top1 in zip(rows, ("55.0", "50.0", "52.0"), ("", "-5.0", "2.0")):  # trained elsewhere
        row.update(top1=top1, top1_std="", top1_n="1", top5="99.0", d_top1=d_top1, d_top1_n="1" if d_top1 else "",
                   verdict="n = 1" if d_top1 else "", train_hours="0.1", seeds="0", status="done")
    committed = clone / "tiny/small/summary.csv"
    committed.parent.mkdir(parents=True)
    with committed.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = committed.read_text()
    status = invoke("status", recipe, "--results", clone)
    assert status.exit_code == 0 and "not started  summary.csv: done, top-1 55.0" in status.output
    assert committed.read_text() == before  # nothing on disk contradicts it
    assert invoke("run", recipe, "--measure-only", "--steps", "a", "--results", clone).exit_code == 0
    with committed.open(newline="") as f:
        after = {row["step"]: row for row in csv.DictReader(f)}
    assert [after[s]["status"] for s in "oab"] == ["done"] * 3
    assert after["a"]["top1"] == "50.0" and after["a"]["d_top1"] == "-5.0"  # re-measured, training kept
    assert after["o"]["throughput"] == rows[0]["throughput"] and after["b"]["top1"] == "52.0"


def test_a_kept_row_of_an_older_summary_reads_one_seed_as_unknown_std(write_recipe, tmp_path):
    recipe, clone = write_recipe(TINY), tmp_path / "clone"
    committed = clone / "tiny/small/summary.csv"
    committed.parent.mkdir(parents=True)
    committed.write_text("step,label,parent,top1,top1_std,seeds,status\no,tiny,,55.0,0.0,0,done\n")  # before top1_n
    assert invoke("status", recipe, "--results", clone).exit_code == 0
    [row] = [r for r in csv.DictReader(committed.open()) if r["step"] == "o"]
    assert (row["top1"], row["top1_std"], row["top1_n"]) == ("55.0", "", "1")


def test_report_writes_tables(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    invoke("run", recipe, "--measure-only", "--results", results)
    result = invoke("report", results)
    assert result.exit_code == 0, result.output
    out = results / "tiny/small"
    md = (out / "table.md").read_text()
    assert "| o " in md and "x root" in md
    assert "paper Params (M)" not in md  # sizes are compared with the paper's only at the paper profile
    tex = (out / "table.tex").read_text()
    assert tex.count("\\toprule") == 1 and tex.count("\\midrule") == 1 and tex.count("\\bottomrule") == 1
    assert tex.count("\\begin{tabular}{") == 1  # one table; stacked headers nest \begin{tabular}[b]
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}")
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert len(rows) == 3 and "depths" in rows[0]  # a design column that changes along the recipe


def test_report_on_empty_results_says_what_to_run(tmp_path):
    result = invoke("report", tmp_path)
    assert result.exit_code != 0 and "ablab run" in result.output


def test_unknown_profile_and_step(write_recipe, tmp_path):
    recipe = write_recipe(TINY)
    result = invoke("run", recipe, "--measure-only", "--profile", "huge", "--results", tmp_path)
    assert result.exit_code == 2 and "no profile 'huge'; this recipe has: small" in result.output
    result = invoke("run", recipe, "--measure-only", "--steps", "o,zz", "--results", tmp_path)
    assert result.exit_code == 2 and "no step zz" in result.output


def test_a_data_root_for_a_generated_dataset_is_an_error_before_any_work(write_recipe, tmp_path):
    recipe = write_recipe(TINY.replace("    measure:", "    train: {epochs: 1}\n    measure:"))  # trains on ShapeTex
    result = invoke("run", recipe, "--data-root", tmp_path, "--results", tmp_path / "results")
    assert result.exit_code == 2
    assert (f"error: --data-root {tmp_path}: {recipe}: profile 'small' trains on shapetex, a dataset generated in "
            "memory that reads nothing from disk") in " ".join(result.output.split())
    assert not (tmp_path / "results").exists()  # nothing measured, nothing written
    with pytest.raises(PreflightError, match="a dataset generated in memory"):  # the Python API alike
        ablab.run(recipe, train=False, results=tmp_path / "results", data_root=str(tmp_path))
    assert not (tmp_path / "results").exists()


def test_transforms_validate_show(write_recipe):
    listing = invoke("transforms").output
    assert "deepen_narrow(depth: int = 24, dim: int = 512, heads: int = 8)" in listing
    assert "paper: HiViT Table 2 (a)" in listing
    recipe = write_recipe(TINY)
    assert invoke("validate", recipe).output.startswith("ok:")
    shown = invoke("show", recipe, "--profile", "small").output
    assert "stages[0].rel_pos: none -> bias" in shown and "stages[0].depth: 2 -> 4" in shown


def test_paper_profile_tables_compare_sizes_with_the_paper(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY.replace("  small:", "  paper:")), tmp_path / "results"
    invoke("run", recipe, "--measure-only", "--results", results)
    assert invoke("report", results).exit_code == 0
    md = (results / "tiny/paper/table.md").read_text()
    assert "paper Params (M)" in md and "diff Params (M)" in md and "diff GFLOPs" in md


def test_runs_go_to_runs_and_the_reference_stays_apart(write_recipe, tmp_path, monkeypatch):
    """By default a run writes runs/ (kept out of git), never the committed results/; the report shows the
    reference's top-1 in a column of its own and takes none of its rows, ratios or statuses."""
    recipe = write_recipe(TINY)
    reference = tmp_path / "results/tiny/small/summary.csv"
    reference.parent.mkdir(parents=True)
    committed = ("step,label,parent,throughput,device,dtype,top1,top1_std,top1_n,top1_by_seed,seeds,status\n"
                 "o,tiny ViT,,9999.0,cpu (2 threads),fp32,61.5,1.25,2,0:60.6 1:62.4,0 1,done\n")
    reference.write_text(committed)
    monkeypatch.chdir(tmp_path)
    assert invoke("run", recipe, "--measure-only").exit_code == 0
    assert reference.read_text() == committed  # the reference is not touched
    ours = tmp_path / "runs/tiny/small"
    rows = {row["step"]: row for row in csv.DictReader((ours / "summary.csv").open())}
    assert rows["o"]["top1"] == "" and rows["o"]["status"] == "measured" and rows["o"]["throughput"] != "9999.0"
    result = invoke("report")
    assert result.exit_code == 0, result.output
    table = list(csv.DictReader((ours / "table.csv").open()))
    assert [r["reference top-1"] for r in table] == ["61.50 ± 1.25", "", ""]
    assert "top-1" not in table[0] and all("9999" not in value for r in table for value in r.values())
    assert reference.read_text() == committed and not (tmp_path / "results/tiny/small/table.md").exists()
