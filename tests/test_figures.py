"""Figures from summary.csv: written as PNG and PDF, skipped when the data is not there; the waterfall from zero
with 95% intervals, chance and the paper's numbers, every text inside the figure; accuracy vs throughput marks
n = 1 and draws the spreads; efficiency labels steps by name, never zooms into noise and never plots a share of
peak above 100%."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle
from scipy import stats

from ablab.report.accuracy import accuracy_figure
from ablab.report.efficiency import efficiency_figure
from ablab.report.figure_data import read_summary
from ablab.report.figures import write_figures, write_overview_figure
from ablab.report.scales import MIN_SPAN
from ablab.report.waterfall import waterfall_figure
from ablab.store.summary import write_rows

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
# four seeds per step, paired intervals, the paper's top-1: what a finished CPU profile looks like
SEEDED = [
    dict(step="o", label="ViT-B", parent="", gflops=0.5, throughput=100, top1=50.0, top1_std=2.0, top1_n=4,
         paper_top1=81.8, status="done"),
    dict(step="a", label="(o) + depth", parent="o", gflops=0.4, throughput=150, top1=60.0, top1_std=4.0, top1_n=4,
         d_top1=10.0, d_top1_lo=6.0, d_top1_hi=14.0, d_top1_n=4, verdict="better", paper_top1=82.9,
         status="done"),
]
TRAINING = ("top1", "top1_std", "top5", "d_top1", "d_top1_n", "verdict", "seeds")


def write_summary(path: Path, rows: list[dict], peak: str | float | None = PEAK, trained: bool = True,
                  classes: int | None = None) -> Path:
    """A summary.csv in the results store's schema at <recipe>/<profile>/summary.csv; peak None leaves it blank,
    `trained` False leaves the training columns blank (a measure-only profile); `classes` writes each step's
    spec.json with that many classes, as `ablab run` does."""
    full = [COMMON | {"params_m": 1.0, "seeds": "0", "peak_gmacs": "" if peak is None else peak} | row
            | ({"d_top1_n": 1, "verdict": "n = 1"} if row.get("d_top1", "") != "" and "verdict" not in row else {})
            for row in rows]
    if not trained:
        full = [{k: v for k, v in row.items() if k not in TRAINING} | {"status": "measured"} for row in full]
    for row in full if classes else []:
        (path.parent / row["step"]).mkdir(parents=True, exist_ok=True)
        (path.parent / row["step"] / "spec.json").write_text(json.dumps({"num_classes": classes}))
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


def points(ax) -> np.ndarray:
    """Every scatter marker's data position on `ax`."""
    return np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)] or
                          [np.empty((0, 2))])


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


def test_waterfall_bars_from_zero_with_intervals_chance_and_paper(tmp_path: Path):
    summary = write_summary(tmp_path / "toy" / "cpu" / "summary.csv", SEEDED, classes=10)
    fig = waterfall_figure(read_summary(summary))
    top1 = fig.axes[0]
    bars = [p for p in top1.patches if isinstance(p, Rectangle)]
    assert [b.get_x() for b in bars] == [0.0, 0.0] and [b.get_width() for b in bars] == [50.0, 60.0]
    assert top1.get_xlim()[0] == 0
    half = [stats.t.ppf(0.975, 3) * std / 2 for std in (2.0, 4.0)]  # 95% interval of the mean, n = 4
    whiskers = [seg for c in top1.collections if isinstance(c, LineCollection) for seg in c.get_segments()
                if len(seg) == 2 and seg[0][1] == seg[1][1]]
    spans = sorted((round(seg[0][0], 3), round(seg[1][0], 3)) for seg in whiskers)
    assert spans == [(round(50 - half[0], 3), round(50 + half[0], 3)), (round(60 - half[1], 3), round(60 + half[1], 3))]
    assert top1.get_xlim()[1] >= 100
    assert [line.get_xdata()[0] for line in top1.get_lines() if line.get_linestyle() == ":"] == [10.0]  # chance
    assert sorted(map(tuple, points(top1))) == [(81.8, 0.0), (82.9, 1.0)]  # the paper's top-1 as markers
    drawn = texts(fig)
    assert "+10.00 [+6.00, +14.00]" in drawn and "60.0 ± 4.0 (n = 4)" in drawn
    assert any("chance: 100 / 10 classes = 10%" in t for t in drawn)
    _assert_texts_inside(fig)
    plt.close(fig)


def _assert_texts_inside(fig) -> None:
    """No text leaves the figure, and none written beside the top-1 panel runs into the next panel."""
    fig.canvas.draw()
    renderer, frame = fig.canvas.get_renderer(), fig.bbox
    for text in fig.findobj(lambda a: hasattr(a, "get_text") and a.get_visible() and a.get_text()):
        box = text.get_window_extent(renderer)
        assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0, text.get_text()
    speed = fig.axes[-1].get_window_extent(renderer)
    assert all(t.get_window_extent(renderer).x1 < speed.x0 for t in fig.axes[0].texts)


def test_waterfall_shows_status_instead_of_bars_and_changes_vs_parent(trained: Path):
    fig = waterfall_figure(read_summary(trained))
    drawn = texts(fig)
    assert "failed (seed 0): loss is NaN" in drawn and "missing" in drawn
    assert "\u22122.00" in drawn and "+1.00" in drawn  # change vs parent (n = 1: no interval), a real minus sign
    assert "\u22124.00" in drawn  # c's parent b is the previous row: no "vs"
    assert "+2.50" in drawn and "incomplete (1/2 seeds)" in drawn
    assert "50.0 (n = 1)" in drawn  # one seed: no std, no whisker, said so
    assert "throughput not measured" in drawn  # d has no throughput
    assert "1.50×  (150 im/s)" in drawn and "1.88×  (1,500 im/s)" in drawn  # x chain root: o and r
    labels = {t for t in drawn if t.startswith("b: ")}  # the 40-character cut of a long label
    assert len(labels) == 1 and all(len(t) == 40 and t.endswith("…") for t in labels)
    _assert_texts_inside(fig)
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


def test_accuracy_marks_single_seeds_and_draws_both_spreads(tmp_path: Path):
    rows = [SEEDED[0] | {"throughput_lo": 90, "throughput_hi": 110}, SEEDED[1] | {"top1_n": 1, "top1_std": ""}]
    fig = accuracy_figure(read_summary(write_summary(tmp_path / "toy" / "cpu" / "summary.csv", rows)))
    drawn = texts(fig)
    assert "a (n = 1)" in drawn and "o" in drawn
    bars = [seg for c in fig.axes[0].collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    vertical = sorted((seg[0][1], seg[1][1]) for seg in bars if seg[0][0] == seg[1][0])
    horizontal = sorted((seg[0][0], seg[1][0]) for seg in bars if seg[0][1] == seg[1][1])
    assert vertical == [(48.0, 52.0)] and horizontal == [(90.0, 110.0)]  # o: std over seeds, timed rounds' spread
    assert any("n = 1" in t and "no std" in t for t in drawn)  # the legend says what hollow means
    plt.close(fig)


def test_overview_per_profile_with_top1(tmp_path: Path, trained: Path, measured: Path):
    other = write_summary(tmp_path / "results" / "other" / "cpu" / "summary.csv", TRAINED[:3], peak=None)
    out = tmp_path / "figures"
    paths = write_overview_figure([trained, measured, other], out)
    assert sorted(p.name for p in paths) == ["overview_cpu.pdf", "overview_cpu.png"]  # paper: no top-1
    assert_figure_files(paths)
    assert write_overview_figure([measured], out) == []


def test_efficiency_labels_steps_by_name_with_share_of_peak(trained: Path):
    fig = efficiency_figure(read_summary(trained))
    drawn = texts(fig)
    assert "o: ViT (25%)" in drawn  # 0.5 GMAC x 100 im/s / 200 GMAC/s
    assert "r1: small + pooling (37.5%)" in drawn  # 0.05 x 1500 / 200
    assert any(t.startswith("b: a step label") and t.endswith("… (28%)") for t in drawn)  # cut, share kept
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


def test_no_figure_plots_a_throughput_above_peak(tmp_path: Path):
    rows = TRAINED[:2] + [TRAINED[2] | {"throughput": 600}]  # b: 0.4 GMAC x 600 im/s = 240 GMAC/s > 200
    s = read_summary(write_summary(tmp_path / "toy" / "cpu" / "summary.csv", rows))
    for draw, placed in ((efficiency_figure, [(0.4, 150.0), (0.5, 100.0)]), (accuracy_figure, [(100, 50), (150, 48)])):
        fig = draw(s)
        assert sorted(map(tuple, points(fig.axes[0]))) == placed
        drawn = texts(fig)
        assert not any(t.startswith("b: ") or t == "b" for t in drawn)
        assert any(t.startswith("Not plotted, above 100% of peak: b (120%)") and "invalid measurement" in t
                   for t in drawn)
        plt.close(fig)
    fig = waterfall_figure(s)
    assert "above 100% of peak: invalid measurement" in texts(fig) and "2.80×  (140 im/s)" not in texts(fig)
    plt.close(fig)


@pytest.mark.parametrize("spread", [{}, {"throughput_lo": 4.2, "throughput_hi": 4.9}], ids=["no spread", "spread"])
def test_efficiency_axes_never_zoom_into_noise(tmp_path: Path, spread):
    rows = [dict(step="o", label="ViT-B", parent="", gflops=17.5, throughput=4.6, status="measured") | spread,
            dict(step="a", label="deeper", parent="o", gflops=15.8, throughput=4.52, status="measured") | spread]
    fig = efficiency_figure(read_summary(write_summary(tmp_path / "toy" / "paper" / "summary.csv", rows,
                                                       peak=90.0, trained=False)))
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 / x0 >= MIN_SPAN and y1 / y0 >= MIN_SPAN  # 4.52 and 4.6 im/s do not fill the plot
    assert y0 < spread.get("throughput_lo", 4.52) and y1 > spread.get("throughput_hi", 4.6)
    assert ax.get_yscale() == "log" and all(math.isfinite(v) for v in (x0, x1, y0, y1))
    plt.close(fig)


def test_single_model_still_gets_an_iso_efficiency_line(tmp_path: Path):
    summary = write_summary(tmp_path / "toy" / "cpu" / "summary.csv", TRAINED[:1])
    fig = efficiency_figure(read_summary(summary))
    assert "o: ViT (25%)" in texts(fig) and any(t.endswith("of peak") for t in texts(fig))
    plt.close(fig)
