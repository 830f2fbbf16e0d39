"""Throughput of clip models (frames > 1) is counted in clips/s, and every table, figure and paper table of a recipe
of clip models says so; image recipes keep 'im/s' word for word. The unit is read from the summary rows' resolution
column, else each step's spec.json (as `ablab run` writes it beside the summary), or, for paper tables, from the
recipe's specs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import pytest

from ablab.paper.tables import build_paper_table
from ablab.recipe import load_recipe
from ablab.report.accuracy import accuracy_figure, overview_figure
from ablab.report.columns import BY_NAME, column_of, resolve
from ablab.report.efficiency import efficiency_figure
from ablab.report.figure_data import read_summary
from ablab.report.latex import to_latex
from ablab.report.table import to_csv, to_markdown
from ablab.report.tables import build_overview, build_table
from ablab.report.units import CLIPS, IMAGES, spelled, throughput_unit
from ablab.report.waterfall import waterfall_figure
from ablab.store.paths import Store
from ablab.store.summary import write_rows

from .conftest import TINY_BASE

SETTING = "cpu (2 threads), fp32"
ROWS = [  # a root and its child 1.5x as fast, both trained, the paper's throughput cited
    dict(step="o", label="root", parent="", params_m=1.0, gflops=0.5, throughput=100, device="cpu (2 threads)",
         dtype="fp32", peak_gmacs=200.0, top1=50.0, top1_n=1, seeds="0", paper_throughput=20.5, status="done"),
    dict(step="a", label="faster", parent="o", params_m=1.0, gflops=0.4, throughput=150, device="cpu (2 threads)",
         dtype="fp32", peak_gmacs=200.0, top1=52.0, top1_n=1, seeds="0", paper_throughput=26.2, status="done"),
]


def summary(root: Path, frames: Optional[int], recipe: str = "toy", rows: list[dict] = ROWS) -> Path:
    """<root>/<recipe>/paper/summary.csv with each step's spec.json as `ablab run` writes it: `frames` frames (a
    clip model), no `frames` key for None (an image model: the spec leaves the field out at its default 1)."""
    path = root / recipe / "paper" / "summary.csv"
    for row in rows:
        spec = {"img_size": 32, "num_classes": 10} | ({} if frames is None else {"frames": frames})
        (path.parent / row["step"]).mkdir(parents=True, exist_ok=True)
        (path.parent / row["step"] / "spec.json").write_text(json.dumps(spec))
    return write_rows(path, rows)


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_the_unit_is_clips_only_where_every_model_is_a_clip_model():
    assert throughput_unit([16, 8]) == CLIPS == "clips/s"
    assert throughput_unit([1, 1]) == IMAGES == "im/s"
    assert throughput_unit([16, 1]) == IMAGES  # mixed: the images' wording, as documented
    assert throughput_unit([]) == IMAGES  # nothing known: unchanged
    assert spelled(IMAGES) == "images/s" and spelled(CLIPS) == "clips/s"


def test_a_clip_recipe_table_says_clips_per_second(tmp_path: Path):
    table = build_table(summary(tmp_path, frames=16))
    assert f"clips/s [{SETTING}]" in table.frame.columns and "paper clips/s" in table.frame.columns
    assert not [h for h in table.frame.columns if "im/s" in h]
    for text in (to_markdown(table), to_csv(table)):
        assert f"clips/s [{SETTING}]" in text and "paper clips/s" in text and "im/s" not in text
    assert table.frame[f"clips/s [{SETTING}]"].tolist() == [100, 150]


def test_an_image_recipe_table_keeps_im_per_second(tmp_path: Path):
    table = build_table(summary(tmp_path, frames=None))
    assert f"im/s [{SETTING}]" in table.frame.columns and "paper im/s" in table.frame.columns
    assert "clips/s" not in to_markdown(table) + to_csv(table) + to_latex(table, resolve("step,ims,paper_throughput"))


def test_clip_headers_belong_to_the_throughput_columns(tmp_path: Path):
    table = build_table(summary(tmp_path, frames=16))
    speed = f"clips/s [{SETTING}]"
    assert BY_NAME["throughput"].matches(speed) and BY_NAME["paper_throughput"].matches("paper clips/s")
    assert column_of(speed) is BY_NAME["throughput"] and column_of("paper clips/s") is BY_NAME["paper_throughput"]
    assert table.headers(resolve("step,speed,paper_throughput")) == ["step", speed, "paper clips/s"]
    assert table.cells([speed, "paper clips/s"]) == [["100", "20.5"], ["150", "26.2"]]  # each column's writer


def test_clip_latex_shortens_headers_to_the_unit(tmp_path: Path):
    path = summary(tmp_path, frames=16)
    tex = to_latex(build_table(path), resolve("step,ims,paper_throughput"))
    assert "step & clips/s & " in tex and r"paper\\clips/s" in tex and "im/s" not in tex  # 'paper clips/s' stacked
    gpu = ROWS[1] | {"step": "g", "device": "NVIDIA H100 80GB HBM3", "dtype": "fp16"}
    two = summary(tmp_path, frames=16, recipe="two_settings", rows=[ROWS[0], gpu])
    tex = to_latex(build_table(two), resolve("step,ims"))
    assert r"clips/s\\(1)" in tex and r"clips/s\\(2)" in tex and "im/s" not in tex  # 'clips/s (k)', stacked
    assert "clips/s measured as (1) cpu (2 threads), fp32; (2) NVIDIA H100 80GB HBM3, fp16." in tex


def test_clip_waterfall_and_axes_say_clips_per_second(tmp_path: Path):
    s = read_summary(summary(tmp_path, frames=16))
    assert s.unit == CLIPS
    fig = waterfall_figure(s)
    assert "1.50×  (150 clips/s); paper 1.28×" in texts(fig)
    assert not [t for t in texts(fig) if "im/s" in t or "images/s" in t]
    fig = efficiency_figure(s)
    ax = fig.axes[0]
    assert ax.get_ylabel().startswith("measured throughput (clips/s;")
    assert ax.get_xlabel().startswith("GFLOPs per clip")
    assert "GFLOPs × clips/s" in ax.get_title() and "(clips/s = share × peak / GFLOPs)" in ax.get_title()
    fig2 = accuracy_figure(s)
    assert fig2.axes[0].get_xlabel().startswith("throughput (clips/s, inference")
    plt.close("all")


def test_image_figures_keep_their_wording(tmp_path: Path):
    s = read_summary(summary(tmp_path, frames=None))
    assert s.unit == IMAGES
    assert "1.50×  (150 im/s); paper 1.28×" in texts(waterfall_figure(s))
    ax = efficiency_figure(s).axes[0]
    assert ax.get_ylabel().startswith("measured throughput (images/s;")
    assert ax.get_xlabel().startswith("GFLOPs per image")
    assert accuracy_figure(s).axes[0].get_xlabel().startswith("throughput (images/s, inference")
    plt.close("all")


def test_overview_table_and_figure_decide_the_unit_over_every_recipe(tmp_path: Path):
    paths = [summary(tmp_path, frames=f, recipe=f"r{i}") for i, f in enumerate((16, 8))]
    frame = build_overview(paths, "paper").frame
    assert [h for h in frame.columns if "/s" in h] == [f"clips/s [{SETTING}]"]
    fig = overview_figure("paper", [read_summary(p) for p in paths])
    assert fig.axes[0].get_xlabel().startswith("throughput (clips/s, inference")
    plt.close(fig)


def test_an_overview_of_image_and_clip_recipes_keeps_each_unit_apart(tmp_path: Path):
    paths = [summary(tmp_path, frames=f, recipe=f"r{i}") for i, f in enumerate((16, None))]
    frame = build_overview(paths, "paper").frame
    clips, images = f"clips/s [{SETTING}]", f"im/s [{SETTING}]"
    assert [h for h in frame.columns if "/s" in h] == [clips, images]
    assert frame[clips].notna().tolist() == [True, True, False, False]  # r0's rows (from, to), then r1's
    assert frame[images].notna().tolist() == [False, False, True, True]
    fig = overview_figure("paper", [read_summary(p) for p in paths])
    assert fig.axes[0].get_xlabel().startswith("throughput (images/s or clips/s, as the legend says, inference")
    assert {"r0 (clips/s)", "r1 (im/s)"} <= set(texts(fig))
    plt.close(fig)


CLIP_RECIPE = """
name: tiny_clips
""" + TINY_BASE.replace("    img_size: 32\n", "    img_size: 32\n    frames: 4\n") + """profiles:
  paper:
    measure: {batch_sizes: [1], min_time: 0.05, rounds: 1, warmup: 1}
steps:
  - id: o
    label: tiny clip model
  - id: deep
    transform: deepen_narrow
    params: {depth: 4, dim: 16, heads: 2}
regenerates:
  - item: hiera/table4
    row_header: backbone
    rows:
      - {step: o, paper: {gflops: 1.0, throughput: 20.5}}
      - {step: deep, paper: {gflops: 1.0, throughput: 26.2}}
"""


@pytest.mark.parametrize("frames, unit", [(4, "clips/s"), (1, "im/s")])
def test_paper_table_of_clip_models_says_clips_per_second(write_recipe, tmp_path: Path, frames, unit):
    text = CLIP_RECIPE if frames > 1 else CLIP_RECIPE.replace("    frames: 4\n", "")
    recipe = load_recipe(write_recipe(text, name="tiny_clips.yaml"))
    table = build_paper_table(recipe, recipe.regenerates[0], "paper", Store(tmp_path / "runs"))
    assert [h for h in table.frame.columns if "/s" in h] == [f"paper {unit}", f"ours {unit}"]
    assert f"Our {unit}: not measured" in table.caption and f"never {unit} across the two" in table.caption
    other = "im/s" if unit == "clips/s" else "clips/s"
    assert other not in to_markdown(table)


def test_a_committed_summary_without_spec_files_still_says_clips_per_second(tmp_path: Path):
    """A fresh clone has summary.csv but no <step>/spec.json: the rows' resolution column names the frames."""
    rows = [dict(row, resolution=res) for row, res in zip(ROWS, ("16x224px/2x4k7", "16x224px/2x4k7"))]
    path = write_rows(tmp_path / "toy" / "paper" / "summary.csv", rows)
    assert "paper clips/s" in build_table(path).frame.columns
    images = [dict(row, resolution="224px/4k7") for row in ROWS]
    assert "paper im/s" in build_table(write_rows(tmp_path / "img" / "paper" / "summary.csv", images)).frame.columns
