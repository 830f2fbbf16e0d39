"""Figures from summary.csv: written as PNG and PDF, skipped when the data is not there, efficiency computed right."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import pytest

from ablab.store.summary import write_rows
from ablab.report.figures import (
    accuracy_figure,
    efficiency_figure,
    hardware_efficiency,
    read_summary,
    waterfall_figure,
    write_figures,
    write_overview_figure,
)

COMMON = {"device": "cpu (2 threads)", "dtype": "fp32", "throughput_batch": "32"}
LONG = "a step label that is much longer than forty characters, as in mvitv2_to_hiera"
# Two chains (o..., r...), a branch at b (c and c2), a failed step and a missing one.
TRAINED = [
    dict(step="o", label="ViT", parent="", gflops=0.5, throughput=100, top1=50.0, top1_std="", d_top1="",
         status="done"),
    dict(step="a", label="(o) + depth", parent="o", gflops=0.4, throughput=150, top1=48.0, top1_std=0.5,
         d_top1=-2.0, seeds="0 1", status="done"),
    dict(step="b", label=LONG, parent="a", gflops=0.4, throughput=140, top1=49.0, top1_std="", d_top1=1.0,
         status="done"),
    dict(step="c", label="(b) + hierarchical", parent="b", gflops=0.3, throughput=220, top1=45.0, top1_std="",
         d_top1=-4.0, status="done"),
    dict(step="c2", label="(b) + windows", parent="b", gflops=0.6, throughput=90, top1="", top1_std="",
         d_top1="", status="failed (seed 0): loss is NaN"),
    dict(step="d", label="(c) + stage 4", parent="c", gflops=0.7, throughput="", top1="", top1_std="",
         d_top1="", status="missing"),
    dict(step="r", label="small root", parent="", gflops=0.1, throughput=800, top1=40.0, top1_std="",
         d_top1="", status="done"),
    dict(step="r1", label="small + pooling", parent="r", gflops=0.05, throughput=1500, top1=42.5, top1_std="",
         d_top1=2.5, status="incomplete (1/2 seeds)"),
]
PEAK = 200.0  # GMAC/s: o runs 0.5 GMAC x 100 im/s = 50 GMAC/s, i.e. 25% of peak


TRAINING = ("top1", "top1_std", "top5", "d_top1", "d_top1_n", "verdict", "seeds")


def write_summary(path: Path, rows: list[dict], peak: str | float | None = PEAK,
                  trained: bool = True) -> Path:
    """A summary.csv in the results store's schema at <recipe>/<profile>/summary.csv; peak None leaves it blank,
    `trained` False leaves the training columns blank (a measure-only profile)."""
    full = [COMMON | {"params_m": 1.0, "seeds": "0", "peak_gmacs": "" if peak is None else peak} | row
            | ({"d_top1_n": 1, "verdict": "n = 1"} if row.get("d_top1") != "" else {}) for row in rows]
    if not trained:
        full = [{k: v for k, v in row.items() if k not in TRAINING} | {"status": "measured"} for row in full]
    return write_rows(path, full)


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    return write_summary(tmp_path / "results" / "toy" / "cpu" / "summary.csv", TRAINED)


@pytest.fixture
def measured(tmp_path: Path) -> Path:
    """Measure-only (as a paper profile): no training columns and no peak_gmacs column."""
    return write_summary(tmp_path / "results" / "toy" / "paper" / "summary.csv", TRAINED, peak=None, trained=False)


def assert_figure_files(paths: list[Path]) -> None:
    for path in paths:
        assert path.exists() and path.stat().st_size > 0, path
        if path.suffix == ".png":
            image = matplotlib.image.imread(path)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.shape[2] in (3, 4)
        else:
            assert path.suffix == ".pdf"
            assert path.read_bytes().startswith(b"%PDF")


def texts(fig) -> list[str]:
    """Every text drawn in a figure (titles, annotations, tick labels)."""
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_hardware_efficiency_is_achieved_over_peak_macs():
    assert hardware_efficiency(0.5, 100, 200) == pytest.approx(0.25)
    assert hardware_efficiency(17.5, 4.0, 70.0) == pytest.approx(1.0)
    assert math.isnan(hardware_efficiency(0.5, 100, float("nan")))
    assert math.isnan(hardware_efficiency(0.5, 100, 0.0))


def test_trained_summary_gets_every_figure_as_png_and_pdf(trained: Path):
    paths = write_figures(trained)
    names = {p.stem for p in paths}
    assert names == {"accuracy_vs_throughput", "waterfall", "efficiency"}
    assert {p.suffix for p in paths} == {".png", ".pdf"} and len(paths) == 6
    assert all(p.parent == trained.parent for p in paths)
    assert_figure_files(paths)
    assert not list(trained.parent.glob(".*.tmp")), "temporary files left behind"
    assert not plt.get_fignums(), "figures left open"


def test_measure_only_summary_has_no_accuracy_figure(measured: Path):
    paths = write_figures(measured)
    assert {p.stem for p in paths} == {"waterfall", "efficiency"}
    assert_figure_files(paths)
    assert accuracy_figure(read_summary(measured)) is None


def test_summary_without_any_top1_value_skips_accuracy(tmp_path: Path):
    rows = [r | {"top1": "", "top1_std": "", "d_top1": "", "status": "missing"} for r in TRAINED]
    summary = write_summary(tmp_path / "toy" / "cpu" / "summary.csv", rows)
    assert {p.stem for p in write_figures(summary)} == {"waterfall", "efficiency"}


def test_efficiency_annotates_share_of_peak(trained: Path):
    fig = efficiency_figure(read_summary(trained))
    drawn = texts(fig)
    assert "o (25%)" in drawn  # 0.5 GMAC x 100 im/s / 200 GMAC/s
    assert "r1 (37.5%)" in drawn  # 0.05 x 1500 / 200
    assert any(t.endswith("of peak") for t in drawn), "no iso-efficiency line labelled"
    assert any("FLOPs are not speed" in t for t in drawn)
    plt.close(fig)


@pytest.mark.parametrize("peak", [None, ""], ids=["no column", "empty column"])
def test_efficiency_without_peak_says_so_and_guesses_nothing(tmp_path: Path, peak):
    summary = write_summary(tmp_path / "toy" / "cpu" / "summary.csv", TRAINED, peak=peak)
    fig = efficiency_figure(read_summary(summary))
    drawn = texts(fig)
    assert any("peak not measured" in t for t in drawn)
    assert not any("%" in t for t in drawn), "an efficiency was shown without a measured peak"
    plt.close(fig)
    assert_figure_files(write_figures(summary))


def test_waterfall_shows_status_instead_of_bars_and_changes_vs_parent(trained: Path):
    fig = waterfall_figure(read_summary(trained))
    drawn = texts(fig)
    assert "failed (seed 0): loss is NaN" in drawn and "missing" in drawn
    assert "\u22122.00" in drawn and "+1.00" in drawn  # change vs parent (n = 1: no interval), a real minus sign
    assert "\u22124.00" in drawn  # c's parent b is the previous row: no "vs"
    assert "+2.50" in drawn and "incomplete (1/2 seeds)" in drawn
    assert "throughput not measured" in drawn  # d has no throughput
    assert "1.50×  (150 im/s)" in drawn and "1.88×  (1,500 im/s)" in drawn  # x chain root: o and r
    labels = {t for t in drawn if t.startswith("b: ")}  # the 40-character cut of a long label
    assert len(labels) == 1 and all(len(t) == 40 and t.endswith("…") for t in labels)
    plt.close(fig)


def test_chain_roots_follow_parents_through_branches(trained: Path):
    s = read_summary(trained)
    assert dict(zip(s.rows["step"], s.rows["root"])) == {
        "o": "o", "a": "o", "b": "o", "c": "o", "c2": "o", "d": "o", "r": "r", "r1": "r"}


def test_branch_step_names_its_parent_when_it_is_not_the_row_above(tmp_path: Path):
    rows = TRAINED[:4] + [TRAINED[3] | {"step": "c3", "parent": "b", "top1": 47.0, "d_top1": -2.0}]
    fig = waterfall_figure(read_summary(write_summary(tmp_path / "toy" / "cpu" / "summary.csv", rows)))
    assert "\u22122.00 vs b" in texts(fig)
    plt.close(fig)


def test_overview_per_profile_with_top1(tmp_path: Path, trained: Path, measured: Path):
    other = write_summary(tmp_path / "results" / "other" / "cpu" / "summary.csv", TRAINED[:3], peak=None)
    out = tmp_path / "figures"
    paths = write_overview_figure([trained, measured, other], out)
    assert sorted(p.name for p in paths) == ["overview_cpu.pdf", "overview_cpu.png"]  # paper: no top-1
    assert_figure_files(paths)
    assert write_overview_figure([measured], out) == []


def test_single_model_still_gets_an_iso_efficiency_line(tmp_path: Path):
    summary = write_summary(tmp_path / "toy" / "cpu" / "summary.csv", TRAINED[:1])
    fig = efficiency_figure(read_summary(summary))
    assert "o (25%)" in texts(fig) and any(t.endswith("of peak") for t in texts(fig))
    plt.close(fig)
