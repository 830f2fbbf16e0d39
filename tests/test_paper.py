"""`ablab paper`: the catalogue, recipes' `regenerates:` sections, paper tables checked to the paper's rounding,
and the traps a researcher falls into writing them (measure-only heads, `--no-throughput`, `from: base`)."""

import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.paper.catalogue import items, papers
from ablab.paper.run import by_item, listing, load_all
from ablab.paper.section import decimals
from ablab.paper.tables import gflops, within_rounding
from ablab.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"
runner = CliRunner()

# DeiT-Ti at paper scale, measured only: HVT Table 2's params and FLOPs (FLOPs without LayerNorm, as HVT counts)
MEASURED = """\
name: tiny_paper
base:
  preset: deit_ti
profiles:
  paper:
    num_classes: 1000
    measure: {batch_sizes: [1], min_time: 0.05, rounds: 1, warmup: 1}
steps:
  - id: deit_ti
    label: DeiT-Ti
    paper: {params_m: 5.72, gflops: 1.25}
  - id: nocls
    label: DeiT-Ti without CLS
    transform: remove_class_token
  - id: again
    label: DeiT-Ti, from the base
    from: base
regenerates:
  - item: hvt/table2
    flops: no_norm
    rows:
      - {step: deit_ti, label: DeiT-Ti with CLS, paper: {gflops: 1.25, params_m: 5.72, top1: 72.20}}
      - {step: nocls, paper: {gflops: 1.25, params_m: 5.80, top1: 72.42}}
"""


def test_catalogue_lists_every_item_of_the_four_papers():
    assert set(papers()) == {"hivit", "hiera", "greenmim", "hvt"}
    every = list(items().values())
    assert len(every) == 55 and sum(i.kind == "diagram" for i in every) == 8
    assert items()["hiera/tableA1"].printed == "Table A1" and items()["hvt/figure4"].printed == "Figure 4"


def test_shipped_recipes_regenerate_at_least_30_items_and_explain_the_rest():
    recipes = load_all(RECIPES)
    table = listing(recipes).frame
    measurable = table[table["kind"] != "diagram"]
    assert len(measurable) == 47
    assert (measurable["regenerated"] != "no").sum() >= 30
    unexplained = measurable[(measurable["regenerated"] == "no") & (measurable["missing"] == "no recipe yet")]
    assert unexplained.empty, list(unexplained["item"])
    found = by_item(recipes)
    assert {g.recipe.name for g in found["hvt/table9"]} == {"hvt_cifar100"}


def test_printed_digits_set_the_rounding():
    assert decimals("21.70") == 2 and decimals("86") == 0 and decimals("0.5") == 1
    assert within_rounding(22.0507, 22.05, 2) and not within_rounding(22.056, 22.05, 2)
    assert within_rounding(51.5, 52, 0) and not within_rounding(51.47, 52, 0)
    metrics = {"gflops": 1.2584, "flops": 1_258_400_000, "flops_by_operator": {"layer_norm": 4_700_000}}
    assert gflops(metrics, "all") == 1.2584 and math.isclose(gflops(metrics, "no_norm"), 1.2537)


def test_a_section_keeps_the_printed_digits_and_defaults_to_the_step(write_recipe):
    r = load_recipe(write_recipe(MEASURED))
    first, second = r.regenerates[0].rows
    assert first.decimals == {"gflops": 2, "params_m": 2, "top1": 2} and first.label == "DeiT-Ti with CLS"
    assert second.label == "DeiT-Ti without CLS"
    assert r.regenerates[0].columns == ("gflops", "params_m", "top1")
    assert r.step("again").parent is None and r.specs["again"] == r.specs["deit_ti"]
    assert not r.profiles["paper"].trains and r.spec("deit_ti", "paper").num_classes == 1000


def test_section_errors_name_file_line_and_field(write_recipe):
    bad = (MEASURED.replace("item: hvt/table2", "item: hvt/table22")
           .replace("{step: nocls, paper", "{step: nocsl, paper")
           .replace("flops: no_norm", "flops: some"))
    path = write_recipe(bad)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    errors = info.value.errors
    assert errors[0].startswith(f"{path}:19: regenerates[0].item: no item 'hvt/table22' in the catalogue; did "
                                "you mean 'hvt/table2'?")
    assert any(e.startswith(f"{path}:20: regenerates[0].flops: 'some' is not allowed") for e in errors)
    assert any(e.startswith(f"{path}:23: regenerates[0].rows[1].step: no step 'nocsl'; did you mean 'nocls'?")
               for e in errors)


def test_from_base_needs_a_base_and_base_is_no_step_id(write_recipe):
    path = write_recipe(MEASURED.replace("  - id: again", "  - id: base"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert any("'base' is reserved" in e for e in info.value.errors)


def test_a_measure_only_profile_keeps_the_declared_head_and_refuses_training(write_recipe, tmp_path):
    path = write_recipe(MEASURED.replace("    num_classes: 1000\n", ""))
    r = load_recipe(path)
    assert r.spec("deit_ti", "paper").num_classes == 1000  # the spec's own head, not a dataset's 10
    out = runner.invoke(app, ["run", str(path), "--profile", "paper", "--results", str(tmp_path / "runs")])
    assert out.exit_code == 2 and "has no train: block: it only measures" in out.output


def test_paper_table_checks_structure_to_the_papers_rounding(write_recipe, tmp_path):
    path = write_recipe(MEASURED, name="tiny_paper.yaml")
    results = tmp_path / "runs"
    args = ["paper", "hvt", "--table", "2", "--profile", "paper", "--no-throughput", "--recipes", str(path.parent),
            "--results", str(results)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    table = (results / "papers" / "hvt" / "paper" / "table2.md").read_text()
    assert "| DeiT-Ti with CLS" in table and "5.717 ✓" in table and "1.254 ✓" in table
    assert "5.717 ✗" in table  # the second row cites 5.80: ours disagrees, and says so
    metrics = json.loads((results / "tiny_paper" / "paper" / "deit_ti" / "metrics.json").read_text())
    assert metrics["throughput"] is None and metrics["load"] == "not measured"
    again = runner.invoke(app, args)
    assert "params and FLOPs unchanged, skipped" in again.output
    assert (results / "papers" / "hvt" / "paper" / "report.md").is_file()


def test_two_recipes_of_one_table_with_the_same_rows_make_one_table(write_recipe, tmp_path):
    """Hiera Table 1's image and video halves come from two recipes: one table, the rows once, each recipe's
    columns (a header both have named by recipe); rows that differ keep two tables, named by recipe."""
    clips = MEASURED.split("regenerates:")[0].replace("name: tiny_paper", "name: tiny_clips") + (
        "regenerates:\n"
        "  - item: hvt/table2\n"
        "    dataset: CIFAR-100\n"
        "    rows:\n"
        "      - {step: deit_ti, label: DeiT-Ti with CLS, paper: {gflops: 1.25, top1: 50.5}}\n"
        "      - {step: nocls, paper: {top1: 51.5}}\n")
    write_recipe(MEASURED, name="tiny_paper.yaml")
    write_recipe(clips, name="tiny_clips.yaml")
    results = tmp_path / "runs"
    args = ["paper", "hvt", "--table", "2", "--profile", "paper", "--no-throughput", "--recipes", str(tmp_path),
            "--results", str(results)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    written = sorted(p.name for p in (results / "papers" / "hvt" / "paper").glob("table2*.md"))
    assert written == ["table2.md"]
    header, _, first, second = (results / "papers" / "hvt" / "paper" / "table2.md").read_text().splitlines()[2:6]
    assert header.count("| Model") == 1 and "paper ImageNet-1K top-1" in header and "paper CIFAR-100 top-1" in header
    assert "paper FLOPs (G) (tiny_paper)" in header and "paper FLOPs (G) (tiny_clips)" in header
    assert first.startswith("| DeiT-Ti with CLS") and "50.5" in first and "72.20" in first
    assert second.startswith("| DeiT-Ti without CLS") and "51.5" in second
    (tmp_path / "tiny_clips.yaml").write_text((tmp_path / "tiny_clips.yaml").read_text().replace(
        "{step: nocls, paper", "{step: nocls, label: no CLS, paper"))
    assert runner.invoke(app, args).exit_code == 0
    written = sorted(p.name for p in (results / "papers" / "hvt" / "paper").glob("table2_*.md"))
    assert written == ["table2_tiny_clips.md", "table2_tiny_paper.md"]


def test_paper_command_errors(tmp_path):
    assert runner.invoke(app, ["paper", "hvtt"]).exit_code == 2
    out = runner.invoke(app, ["paper", "hvt", "--table", "12"])
    assert out.exit_code == 2 and "hvt has no table12" in out.output
    out = runner.invoke(app, ["paper", "hvt", "--recipes", str(tmp_path / "none")])
    assert out.exit_code == 2 and "no such directory" in out.output
    out = runner.invoke(app, ["paper", "hvt", "--seeds", "0,0"])
    assert out.exit_code == 2 and "--seeds: expected distinct" in out.output


def test_train_at_overrides_one_profile_only():
    r = load_recipe(RECIPES / "papers" / "hivit_mim.yaml")
    assert r.train_config("swin_b", "paper").pretrain.mask_unit == 32
    assert r.train_config("swin_b", "cpu").pretrain.mask_unit == 8
    assert r.train_config("swin_b", "cpu").pretrain.method == "simmim"
    assert r.train_config("vit_b", "paper").pretrain.mask_unit == 16


def test_pretraining_windows_are_given_at_paper_scale_and_shrink_with_the_profile():
    r = load_recipe(RECIPES / "papers" / "greenmim_ablations.yaml")
    assert r.train_config("window_14", "paper").pretrain.set == {"stages.*.window": 14}
    shrunk = r.train_config("window_14", "cpu").pretrain.set
    assert shrunk["stages.0.window"] == 8  # 14 of a 56 grid is 8 of the shrunk 32 grid, as 7 becomes 4
    assert r.spec("window_14", "cpu").stages[0].window == 4


@pytest.mark.parametrize("path", sorted((RECIPES / "papers").glob("hvt_*.yaml")), ids=lambda p: p.stem)
def test_hvt_sections_match_the_papers_params(path):
    """Every HVT row's params at paper scale within the paper's printed digits (FLOPs: `ablab paper hvt`)."""
    from ablab.arch.build import build
    from ablab.cost.params import count_params

    r = load_recipe(path)
    for section in r.regenerates:
        for row in section.rows:
            if "params_m" in row.paper:
                ours = count_params(build(r.spec(row.step, "paper"))) / 1e6
                assert within_rounding(ours, row.paper["params_m"], row.decimals["params_m"]), (section.item, row)


def test_no_run_builds_a_table_from_summaries_and_the_report_keeps_every_item(write_recipe, tmp_path):
    """The committed results/ keeps summaries, not run directories: --no-run rebuilds a paper's table from them
    (FLOPs without norms need a run's per-operator counts: blank). report.md holds every item the folder has, in
    the paper's order; an item's files of an earlier layout go."""
    path = write_recipe(MEASURED, name="tiny_paper.yaml")
    results, out = tmp_path / "runs", tmp_path / "runs" / "papers" / "hvt" / "paper"
    args = ["paper", "hvt", "--table", "2", "--profile", "paper", "--no-throughput", "--recipes", str(path.parent),
            "--results", str(results)]
    assert runner.invoke(app, args).exit_code == 0
    for run in (results / "tiny_paper" / "paper").iterdir():
        if run.is_dir():
            shutil.rmtree(run)
    (out / "table9.md").write_text("### hvt Table 9, written earlier\n")
    (out / "table2_tiny_paper.md").write_text("### hvt Table 2, split by recipe earlier\n")
    again = runner.invoke(app, args + ["--no-run"])
    assert again.exit_code == 0, again.output
    assert "measuring" not in again.output and not (results / "tiny_paper" / "paper" / "deit_ti").exists()
    table = (out / "table2.md").read_text()
    assert "5.717 ✓" in table and "1.254" not in table
    assert not (out / "table2_tiny_paper.md").exists()
    report = (out / "report.md").read_text()
    assert report.index("### hvt Table 2") < report.index("### hvt Table 9, written earlier")
