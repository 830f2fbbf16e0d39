"""ablab report from fixture runs: seeds aggregated, failed / unfinished / missing work named, LaTeX well formed,
the cross-recipe overview, and an unreadable summary skipped with a message."""

import csv
import json
import re

from typer.testing import CliRunner

from ablab.cli import app
from ablab.io import save_checkpoint, write_json_atomic
from ablab.report.tables import build_overview, build_table, to_latex
from ablab.store.paths import Store
from ablab.store.summary import write_summary
from ablab.recipe import load_recipe

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


def test_latex_is_well_formed_booktabs(write_recipe, tmp_path):
    recipe, results = _fixture(write_recipe, tmp_path)
    tex = to_latex(build_table(write_summary(recipe, "small", Store(results))))
    assert [tex.count(r) for r in (r"\toprule", r"\midrule", r"\bottomrule")] == [1, 1, 1]
    for env in ("table", "tabular"):
        assert tex.count(rf"\begin{{{env}}}") == tex.count(rf"\end{{{env}}}") == 1
    unescaped = re.sub(r"\\[{}&%_$#]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    assert not re.search(r"(?<!\\)[_%#]", tex.replace(r"\begin{table}", ""))  # specials escaped
    assert r"o\_base" in tex and r"\& friends 100\%" in tex and r"55.00 $\pm$ 7.07" in tex
    body = tex[tex.index(r"\toprule") + len(r"\toprule"):tex.index(r"\bottomrule")]
    rows = [line for line in body.strip().splitlines() if line.endswith(r"\\")]
    columns = tex.split(r"\begin{tabular}{")[1].split("}")[0]
    assert len(rows) == 5 and all(len(re.findall(r"(?<!\\)&", row)) == len(columns) - 1 for row in rows)


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
