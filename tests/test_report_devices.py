"""Reports keep throughput measured on different devices or precisions apart: CPU and (fake) GPU fixtures give
separate table columns, ratios only between steps measured alike, and a figure per setting with its own peak."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from ablab.report.efficiency import efficiency_figure
from ablab.report.figure_data import by_setting, read_summary
from ablab.report.figures import write_figures, write_overview_figure
from ablab.report.waterfall import waterfall_figure
from ablab.report.tables import build_overview, build_table
from ablab.store.summary import write_rows

GPU = {"device": "NVIDIA H100 80GB HBM3", "dtype": "fp16", "compile": "none", "channels_last": "False",
       "peak_gmacs": 350000.0}
CPU = {"device": "cpu (2 threads)", "dtype": "fp32", "compile": "none", "channels_last": "False", "peak_gmacs": 600.0}
GPU_COLUMN, CPU_COLUMN = "im/s [NVIDIA H100 80GB HBM3, fp16]", "im/s [cpu (2 threads), fp32]"
# o and a measured on the GPU, b re-measured alone on the CPU, c on the GPU compiled: three settings in one summary
MIXED = [
    GPU | dict(step="o", label="ViT", parent="", gflops=17.5, throughput=3000.0, top1=80.0, paper_throughput=292),
    GPU | dict(step="a", label="deeper", parent="o", gflops=15.8, throughput=3300.0, top1=81.0, paper_throughput=317),
    CPU | dict(step="b", label="RPE", parent="a", gflops=15.8, throughput=20.0, top1=81.5, paper_throughput=310),
    GPU | dict(step="c", label="compiled", parent="b", gflops=15.9, throughput=4000.0, top1=82.0, compile="default",
               paper_throughput=286),
]
ON_CPU = [CPU | dict(step="o", label="DeiT", parent="", gflops=4.6, throughput=90.0, top1=70.0),
          CPU | dict(step="p", label="pooled", parent="o", gflops=2.4, throughput=150.0, top1=69.0)]


def write_summary(path: Path, rows: list[dict]) -> Path:
    """A summary.csv in the results store's schema, at <recipe>/<profile>/summary.csv."""
    return write_rows(path, [{"params_m": 1.0, "seeds": "0", "status": "done"} | r for r in rows])


@pytest.fixture
def summaries(tmp_path: Path) -> tuple[Path, Path]:
    return (write_summary(tmp_path / "results/mixed/paper/summary.csv", MIXED),
            write_summary(tmp_path / "results/cpu_only/paper/summary.csv", ON_CPU))


def test_table_has_a_throughput_column_per_setting(summaries):
    frame = build_table(summaries[0]).frame.set_index("step")
    compiled = "im/s [NVIDIA H100 80GB HBM3, fp16, compiled (default)]"
    assert [c for c in frame.columns if c.startswith("im/s")] == [GPU_COLUMN, CPU_COLUMN, compiled]
    assert frame[GPU_COLUMN].dropna().to_dict() == {"o": 3000.0, "a": 3300.0}
    assert frame[CPU_COLUMN].dropna().to_dict() == {"b": 20.0} and frame[compiled].dropna().to_dict() == {"c": 4000.0}
    assert frame.at["a", "x root"] == pytest.approx(1.1)  # a over o, both on the GPU in fp16; b and c otherwise
    assert math.isnan(frame.at["b", "x root"]) and math.isnan(frame.at["c", "x root"])
    assert frame["paper x root"].round(2).to_dict() == {"o": 1.0, "a": 1.09, "b": 1.06, "c": 0.98}


def test_table_measured_alike_keeps_one_named_column(summaries):
    frame = build_table(summaries[1]).frame
    assert [c for c in frame.columns if c.startswith("im/s")] == [CPU_COLUMN]
    assert frame["x root"].tolist() == [1.0, pytest.approx(150 / 90)]


def test_overview_never_mixes_devices_in_a_column(summaries):
    frame = build_overview(list(summaries), "paper").frame
    by_recipe = frame.groupby("recipe")
    assert by_recipe[GPU_COLUMN].count().to_dict() == {"cpu_only": 0, "mixed": 1}  # mixed's root o
    assert by_recipe[CPU_COLUMN].count().to_dict() == {"cpu_only": 2, "mixed": 0}
    assert "im/s" not in frame.columns and pd.isna(frame.set_index(["recipe", "step"]).at[("mixed", "c"), "x root"])


def test_figures_split_by_setting_each_with_its_own_peak(summaries):
    s = read_summary(summaries[0])
    assert [suffix for suffix, _ in by_setting(s)] == [
        "_nvidia-h100-80gb-hbm3-fp16", "_cpu-2-threads-fp32", "_nvidia-h100-80gb-hbm3-fp16-compiled-default"]
    gpu = by_setting(s)[0][1]
    fig = efficiency_figure(gpu)
    drawn = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert any("(350,000 GMAC/s)" in t for t in drawn) and not any("(600 GMAC/s)" in t for t in drawn)
    plt.close(fig)
    assert any("NVIDIA H100 80GB HBM3, fp16" in t for t in drawn) and not any("cpu (2" in t for t in drawn)
    names = {p.stem for p in write_figures(summaries[0])}
    assert names == {"waterfall"} | {f"{kind}{suffix}" for kind in ("accuracy_vs_throughput", "efficiency")
                                     for suffix, _ in by_setting(s)}
    assert {p.stem for p in write_figures(summaries[1])} == {"waterfall", "accuracy_vs_throughput", "efficiency"}


def test_waterfall_compares_only_steps_measured_like_their_root(summaries):
    fig = waterfall_figure(read_summary(summaries[0]))
    drawn = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert "1.10×  (3,300 im/s); paper 1.09×" in drawn and drawn.count("measured unlike its chain's root") == 2  # b and c
    plt.close(fig)


def test_overview_figure_per_profile_and_setting(summaries, tmp_path: Path):
    paths = write_overview_figure(list(summaries), tmp_path / "figures")
    assert sorted({p.stem for p in paths}) == ["overview_paper_cpu-2-threads-fp32",
                                               "overview_paper_nvidia-h100-80gb-hbm3-fp16",
                                               "overview_paper_nvidia-h100-80gb-hbm3-fp16-compiled-default"]
    assert not plt.get_fignums()
