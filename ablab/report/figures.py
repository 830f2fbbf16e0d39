"""Figures from a recipe/profile summary.csv: accuracy vs speed, a ConvNeXt-style roadmap, hardware efficiency.

Conventions: `gflops` is fvcore's count (1 multiply-add = 1 FLOP, i.e. GMACs per image), `throughput` is
measured images/s at inference and `peak_gmacs` the same machine's dense matmul rate (GMAC/s), so
gflops x throughput / peak_gmacs is the share of the hardware a model actually uses.
Each figure is written beside its summary.csv as PNG and PDF, atomically. Throughput measured in different settings
(device, precision, compilation, memory format) never shares an axis: such a summary gets one accuracy and one
efficiency figure per setting (`efficiency_<setting>.png`, each with its own machine's peak), and the overview one
figure per profile and setting.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from ..io import write_figure_atomic
from ..store import summary as schema
from ..store.summary import row_delta

DPI = 150
FORMATS = ("png", "pdf")
MAX_LABEL = 40  # characters of "id: label" before it is cut with "…"
MAX_AREA = 500.0  # marker area (pt²) of the largest model; area is proportional to GFLOPs
MIN_AREA = 6.0  # floor so that a model ~100x smaller than the largest still shows
GAIN, LOSS, FLAT = "#1a7f37", "#cf222e", "0.35"  # top-1 change colours
VERDICT_COLORS = {"better": GAIN, "worse": LOSS}


@dataclass(frozen=True)
class Summary:
    """One recipe/profile summary.csv: numbers parsed, every step's chain root resolved."""

    recipe: str
    profile: str
    rows: pd.DataFrame

    @property
    def hardware(self) -> str:
        """Where throughput was measured, e.g. 'cpu (2 threads), fp32' (several joined by '; ')."""
        return "; ".join(self.settings) or "device not recorded"

    @property
    def settings(self) -> list[str]:
        """The measurement settings of the rows that were measured, in recipe order."""
        return list(dict.fromkeys(s for s in self.rows["setting"] if s))

    @property
    def colors(self) -> dict[str, str]:
        """One colour per chain root, in recipe order, so every figure of a recipe colours chains alike."""
        roots = list(dict.fromkeys(self.rows["root"]))
        return {root: f"C{i % 10}" for i, root in enumerate(roots)}


Point = tuple[float, float]


@dataclass(frozen=True)
class _Label:
    """A text to write beside a marker of `radius` points at data position (x, y)."""

    x: float
    y: float
    text: str
    radius: float


def read_summary(path: Path) -> Summary:
    """A summary.csv as the results store reads it, with each chain root's label kept beside the root."""
    df = schema.read_summary(path)
    df["root_label"] = df["root"].map(dict(zip(df["step"], df["label"])))  # kept when rows are split by setting
    return Summary(path.parent.parent.name, path.parent.name, df)


def by_setting(s: Summary) -> list[tuple[str, Summary]]:
    """(file-name suffix, the rows measured in one setting) per measurement setting; ('', s) when there is at most
    one, so that a summary measured alike keeps its plain file names."""
    if len(s.settings) <= 1:
        return [("", s)]
    return [(f"_{_slug(kind)}", Summary(s.recipe, s.profile, s.rows[s.rows["setting"] == kind]))
            for kind in s.settings]


def _slug(text: str) -> str:
    """'NVIDIA H100 80GB HBM3, fp16' -> 'nvidia-h100-80gb-hbm3-fp16': a setting as part of a file name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def hardware_efficiency(gflops: float, throughput: float, peak_gmacs: float) -> float:
    """Share of the machine's matmul rate a model achieves: GMAC/image x images/s / peak GMAC/s (NaN if no peak)."""
    if not peak_gmacs > 0:  # missing (NaN) or nonsense peak: unknown, not zero
        return math.nan
    return gflops * throughput / peak_gmacs


def write_figures(summary: Path) -> list[Path]:
    """Draw every figure this summary supports beside it (PNG and PDF); return the written paths. The waterfall
    shows every step (ratios only between steps measured alike); the throughput axes get a figure per setting."""
    s = read_summary(summary)
    written: list[Path] = []
    drawers: list[tuple[str, Summary, Callable[[Summary], Optional[Figure]]]] = [
        ("waterfall", s, waterfall_figure),
        *[(f"{name}{suffix}", part, draw) for suffix, part in by_setting(s)
          for name, draw in (("accuracy_vs_throughput", accuracy_figure), ("efficiency", efficiency_figure))],
    ]
    for name, part, draw in drawers:
        fig = draw(part)
        if fig is not None:
            written += _save(fig, summary.parent / name)
    return written


def write_overview_figure(summaries: list[Path], out_dir: Path) -> list[Path]:
    """One accuracy-vs-throughput figure per profile and measurement setting with every recipe's steps measured
    that way: out_dir/overview_<profile>.png/pdf, or overview_<profile>_<setting> where a profile has several."""
    groups: dict[tuple[str, str], list[Summary]] = {}
    for path in summaries:
        s = read_summary(path)
        for kind in s.settings:
            part = Summary(s.recipe, s.profile, s.rows[s.rows["setting"] == kind])
            groups.setdefault((s.profile, kind), []).append(part)
    several = Counter(profile for profile, _ in groups)
    written: list[Path] = []
    for (profile, kind), group in sorted(groups.items()):
        fig = overview_figure(profile, group)
        if fig is not None:
            suffix = f"_{_slug(kind)}" if several[profile] > 1 else ""
            written += _save(fig, out_dir / f"overview_{profile}{suffix}")
    return written


def _save(fig: Figure, stem: Path) -> list[Path]:
    """Write `fig` as <stem>.png and <stem>.pdf and close it."""
    try:
        paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]
        for path in paths:
            write_figure_atomic(fig, path, dpi=DPI)
        return paths
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- accuracy vs throughput


def accuracy_figure(s: Summary) -> Optional[Figure]:
    """Top-1 vs measured throughput, marker area ∝ GFLOPs, parent→child arrows; None when no step has top-1."""
    rows = _with_accuracy(s.rows)
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=DPI)
    per_gflop = _area_scale(rows["gflops"])
    colors = [s.colors[r] for r in rows["root"]]
    labels, arrows = _plot_accuracy(ax, rows, colors, per_gflop)
    root_label = dict(zip(s.rows["root"], s.rows["root_label"]))
    chains = [(c, f"chain from {_short(r + ': ' + root_label[r], 34)}") for r, c in s.colors.items()
              if r in set(rows["root"])]
    _accuracy_axes(ax, rows, s.hardware, per_gflop, chains, "chain")
    ax.set_title(f"{s.recipe} / {s.profile}: top-1 accuracy vs measured throughput")
    fig.tight_layout()
    _place_labels(ax, labels, arrows)
    return fig


def overview_figure(profile: str, summaries: Sequence[Summary]) -> Optional[Figure]:
    """Every recipe's steps of one profile on one accuracy-vs-throughput axes, a colour per recipe."""
    groups = [(s, _with_accuracy(s.rows)) for s in summaries]
    groups = [(s, rows) for s, rows in groups if not rows.empty]
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=DPI)
    every = pd.concat([rows for _, rows in groups])
    per_gflop = _area_scale(every["gflops"], MAX_AREA / 2)  # a crowded plot: smaller markers
    labels, arrows, recipes = [], [], []
    for i, (s, rows) in enumerate(groups):
        color = f"C{i % 10}"
        step_labels, step_arrows = _plot_accuracy(ax, rows, [color] * len(rows), per_gflop)
        labels += step_labels
        arrows += step_arrows
        recipes.append((color, s.recipe))
    hardware = "; ".join(sorted({s.hardware for s, _ in groups}))
    _accuracy_axes(ax, every, hardware, per_gflop, recipes, "recipe")
    ax.set_title(f"All recipes / {profile}: top-1 accuracy vs measured throughput")
    fig.tight_layout()
    _place_labels(ax, labels, arrows)
    return fig


def _with_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """The steps that can be placed on an accuracy-vs-throughput plot: numeric top-1 and throughput."""
    return rows[rows["top1"].notna() & rows["throughput"].gt(0)]


def _area_scale(gflops: pd.Series, largest: float = MAX_AREA) -> float:
    """Marker area per GFLOP so that the largest model gets `largest` pt²."""
    biggest = gflops[gflops > 0].max()
    return largest / biggest if biggest > 0 else 0.0


def _areas(gflops: pd.Series, per_gflop: float) -> np.ndarray:
    """Marker areas ∝ GFLOPs (floored at MIN_AREA; unknown GFLOPs get the floor)."""
    return np.maximum(gflops.fillna(0).to_numpy() * per_gflop, MIN_AREA)


def _plot_accuracy(ax: Axes, rows: pd.DataFrame, colors: list[str],
                   per_gflop: float) -> tuple[list[_Label], list[tuple[Point, Point]]]:
    """Markers (top-1 vs im/s, seed error bars), arrows parent→child; return the step-id labels and the arrows."""
    areas = _areas(rows["gflops"], per_gflop)
    x, y = rows["throughput"].to_numpy(), rows["top1"].to_numpy()
    single = (rows["top1_n"].fillna(1) < 2).to_numpy()  # one seed: no interval, drawn hollow
    for hollow in (False, True):
        pick = single == hollow
        if pick.any():
            shown = [c for c, p in zip(colors, pick) if p]
            ax.scatter(x[pick], y[pick], s=areas[pick], c="white" if hollow else shown,
                       edgecolors=shown if hollow else "black", linewidths=1.4 if hollow else 0.6,
                       alpha=0.9 if hollow else 0.75, zorder=3)
    spread = rows["top1_std"].fillna(0).to_numpy() > 0
    if spread.any():
        ax.errorbar(x[spread], y[spread], yerr=rows["top1_std"].to_numpy()[spread], fmt="none",
                    ecolor="0.3", elinewidth=0.8, capsize=3, zorder=2)
    radius = {step: math.sqrt(a) / 2 for step, a in zip(rows["step"], areas)}
    where = {step: (a, b) for step, a, b in zip(rows["step"], x, y)}
    arrows = []
    for step, parent, color in zip(rows["step"], rows["parent"], colors):
        if parent in where:
            arrows.append((where[parent], where[step]))
            ax.add_patch(FancyArrowPatch(where[parent], where[step], arrowstyle="-|>", mutation_scale=9,
                                         shrinkA=radius[parent] + 1, shrinkB=radius[step] + 1,
                                         color=color, linewidth=0.9, alpha=0.8, zorder=1))
    return [_Label(a, b, step, radius[step]) for step, (a, b) in where.items()], arrows


def _accuracy_axes(ax: Axes, rows: pd.DataFrame, hardware: str, per_gflop: float,
                   colors: list[tuple[str, str]], what: str) -> None:
    """Scales, limits, axis labels, and the colour and marker-size legends outside the axes on the right."""
    _log_if_wide(ax, "x", rows["throughput"])
    ax.margins(0.12)
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())  # freeze: labels are placed in this frame
    ax.set_ylim(ax.get_ylim())
    ax.set_xlabel(f"throughput (images/s, inference; {hardware})")
    ax.set_ylabel("top-1 accuracy (%, mean ± std over seeds)")
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, markersize=7, label=name) for c, name in colors]
    if (rows["top1_n"].fillna(1) < 2).any():
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="0.3",
                              markersize=7, label="hollow: one seed (n = 1), no interval"))
    if (rows["top1_std"].fillna(0) > 0).any():
        handles.append(Line2D([], [], marker="|", linestyle="", color="0.3", markersize=9,
                              label="bar: ± std over seeds"))
    first = ax.legend(handles=handles, title=f"colour = {what}", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      fontsize=8, title_fontsize=8, frameon=False)
    ax.add_artist(first)
    first.set_clip_on(False)  # add_artist clips to the axes, which would hide it from tight_layout
    sizes = [ax.scatter([], [], s=max(g * per_gflop, MIN_AREA), color="0.7", edgecolors="black", linewidths=0.6,
                        label=f"{g:g} GFLOPs") for g in _reference_gflops(rows["gflops"])]
    ax.legend(handles=sizes, title="marker area ∝ GFLOPs", loc="lower left", bbox_to_anchor=(1.02, 0.0),
              fontsize=8, title_fontsize=8, frameon=False, labelspacing=1.6, borderpad=1.0)


def _reference_gflops(gflops: pd.Series) -> list[float]:
    """Two or three round GFLOP values spanning the plotted models, for the marker-size legend."""
    known = gflops[gflops > 0]
    if known.empty:
        return []
    lo, hi = known.min(), known.max()
    return sorted({float(f"{v:.1g}") for v in (lo, math.sqrt(lo * hi), hi)})


# ---------------------------------------------------------------- waterfall (roadmap)


def waterfall_figure(s: Summary) -> Optional[Figure]:
    """A row per step in recipe order: top-1 bars with the change vs parent, and throughput vs the chain root."""
    rows = s.rows.reset_index(drop=True)
    if rows.empty:
        return None
    has_top1 = rows["top1"].notna().any()
    panels = 2 if has_top1 else 1
    fig, axes = plt.subplots(1, panels, sharey=True, squeeze=False, dpi=DPI,
                             figsize=(12.5 if has_top1 else 8.5, 0.42 * len(rows) + 1.9),
                             gridspec_kw={"width_ratios": [1.15, 1][:panels]})
    axes = list(axes[0])
    colors = [s.colors[r] for r in rows["root"]]
    axes[0].set_yticks(range(len(rows)), [_short(f"{st}: {lb}" if lb else st) for st, lb in
                                          zip(rows["step"], rows["label"])], fontsize=9)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # first step on top
    fitted = [_top1_panel(axes[0], rows, colors)] if has_top1 else []
    fitted.append(_speed_panel(axes[-1], rows, colors))
    for ax in axes:
        _chain_separators(ax, rows)
    fig.suptitle(f"{s.recipe} / {s.profile}: roadmap, step by step"
                 + ("" if has_top1 else " (no top-1: measured only)") + f"\nthroughput measured on {s.hardware}",
                 fontsize=11)
    fig.tight_layout()
    fig.subplots_adjust(wspace=0.04)  # the right panel shares the left's step labels: no gap needed for its own
    for ax, anchored in zip(axes, fitted):
        _fit_right(ax, anchored)
    return fig


def _top1_panel(ax: Axes, rows: pd.DataFrame, colors: list[str]) -> list[tuple[float, list[Text]]]:
    """Top-1 bars from zero with ± std over seeds, the value and the paired change vs the parent with its 95%
    interval after each (green: better, red: worse, grey: not resolved or n = 1); status text for the rest."""
    top1 = rows["top1"].dropna()
    anchored = []
    previous = [""] + list(rows["step"][:-1])
    for i, row in rows.iterrows():
        if pd.isna(row["top1"]):
            anchored.append((0.0, [_note(ax, _short(row["status"] or "missing", 45), (0.0, i))]))
            continue
        ax.barh(i, row["top1"], height=0.62, color=colors[i], alpha=0.8)
        end = row["top1"]
        if row["top1_std"] > 0:
            ax.errorbar(end, i, xerr=row["top1_std"], fmt="none", ecolor="0.2", elinewidth=0.8, capsize=2)
            end += row["top1_std"]
        n = "" if pd.isna(row["top1_n"]) else f" (n = {int(row['top1_n'])})"
        texts = [ax.annotate(f"{row['top1']:.1f}{n}", (end, i), xytext=(4, 0), textcoords="offset points",
                             va="center", fontsize=8.5)]
        delta = row_delta(rows, i)
        if delta is not None:
            vs = f" vs {row['parent']}" if row["parent"] != previous[i] else ""
            texts.append(_after(texts[-1], f"{delta}{vs}", VERDICT_COLORS.get(delta.verdict, FLAT)))
        if row["status"] not in ("done", "", "missing"):
            texts.append(_after(texts[-1], _short(row["status"], 30), "0.4", italic=True))
        anchored.append((end, texts))
    ax.set_xlim(0, top1.max() * 1.05)
    ax.set_xlabel("top-1 accuracy (%, ± std over seeds); change vs parent [95% CI]")
    ax.grid(True, axis="x", alpha=0.3)
    return anchored


def _speed_panel(ax: Axes, rows: pd.DataFrame, colors: list[str]) -> list[tuple[float, list[Text]]]:
    """Throughput as a multiple of the chain root's, with the multiple and images/s written after each bar."""
    speed = dict(zip(rows["step"], rows["throughput"]))
    alike = rows["setting"] == rows["root"].map(dict(zip(rows["step"], rows["setting"])))
    ratio = (rows["throughput"] / rows["root"].map(speed)).where(alike)
    anchored = []
    for i, row in rows.iterrows():
        if not ratio[i] > 0:
            why = "measured unlike its chain's root" if row["throughput"] > 0 else "throughput not measured"
            anchored.append((0.0, [_note(ax, why, (0.0, i))]))
            continue
        ax.barh(i, ratio[i], height=0.62, color=colors[i], alpha=0.8)
        text = ax.annotate(f"{ratio[i]:.2f}×  ({_rate(row['throughput'])} im/s)", (ratio[i], i),
                           xytext=(4, 0), textcoords="offset points", va="center", fontsize=8.5,
                           bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        anchored.append((ratio[i], [text]))
    ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, max(ratio.max(), 1.0) * 1.05 if ratio.notna().any() else 1.2)
    ax.set_xlabel("throughput relative to the chain's root (×)")
    ax.grid(True, axis="x", alpha=0.3)
    return anchored


def _note(ax: Axes, text: str, xy: tuple[float, float]) -> Text:
    """Grey italic text in place of a bar (failed, missing or unmeasured step)."""
    return ax.annotate(text, xy, xytext=(4, 0), textcoords="offset points", va="center", fontsize=8.5,
                       color="0.4", style="italic")


def _after(previous: Text, text: str, color: str, italic: bool = False) -> Text:
    """Text written just right of `previous` (chained to its box, so no width guessing)."""
    return previous.axes.annotate(text, xy=(1, 0.5), xycoords=previous, xytext=(5, 0), textcoords="offset points",
                                  va="center", fontsize=8.5, color=color, style="italic" if italic else "normal")


def _chain_separators(ax: Axes, rows: pd.DataFrame) -> None:
    """A thin line above each row that starts a new chain (e.g. deit_to_hvt's DeiT-Ti chain)."""
    for i in range(1, len(rows)):
        if rows["root"][i] != rows["root"][i - 1]:
            ax.axhline(i - 0.5, color="0.5", linewidth=0.8)


def _fit_right(ax: Axes, anchored: list[tuple[float, list[Text]]]) -> None:
    """Widen the x range until every text written after a bar ends inside the axes (text widths are fixed)."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    lo, hi = ax.get_xlim()
    need = hi
    for value, texts in anchored:
        start = ax.transData.transform((value, 0))[0]
        width = max(t.get_window_extent(renderer).x1 for t in texts) - start + 6
        if width < frame.width:
            need = max(need, lo + (value - lo) * frame.width / (frame.width - width))
    ax.set_xlim(lo, need)


# ---------------------------------------------------------------- efficiency


def efficiency_figure(s: Summary) -> Optional[Figure]:
    """Measured im/s vs GFLOPs with each model's share of the machine's peak and iso-efficiency lines."""
    rows = s.rows[s.rows["gflops"].gt(0) & s.rows["throughput"].gt(0)]
    if rows.empty:
        return None
    eff = [hardware_efficiency(g, t, p) for g, t, p in zip(rows["gflops"], rows["throughput"], rows["peak_gmacs"])]
    peak = rows["peak_gmacs"].median()  # one machine per summary; the median shrugs off a stray re-measurement
    fig, ax = plt.subplots(figsize=(9, 6), dpi=DPI)
    colors = [s.colors[r] for r in rows["root"]]
    ax.scatter(rows["gflops"], rows["throughput"], s=45, c=colors, edgecolors="black", linewidths=0.6, zorder=3)
    _log_if_wide(ax, "x", rows["gflops"])
    _log_if_wide(ax, "y", rows["throughput"])
    ax.margins(0.12)
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    ax.set_xlabel("GFLOPs per image (fvcore: 1 multiply-add = 1 FLOP)")
    ax.set_ylabel(f"measured throughput (images/s; {s.hardware})")
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=_short(f"chain from {r}", 30))
               for r, c in s.colors.items() if r in set(rows["root"])]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.suptitle(f"{s.recipe} / {s.profile}: throughput vs GFLOPs"
                 + ("" if peak > 0 else " (peak not measured: no hardware efficiency)"))
    ax.set_title(_efficiency_caption(peak), fontsize=8.5)
    if peak > 0:
        _zoom_out_to_an_iso_line(ax, peak)
    fig.tight_layout()
    if peak > 0:
        _iso_efficiency(ax, peak, ax.transData.transform(rows[["gflops", "throughput"]].to_numpy()))
    radius = math.sqrt(45) / 2
    _place_labels(ax, [_Label(g, t, step + ("" if math.isnan(e) else f" ({_percent(e)})"), radius)
                       for g, t, step, e in zip(rows["gflops"], rows["throughput"], rows["step"], eff)])
    return fig


def _efficiency_caption(peak: float) -> str:
    """The sentence under the title: FLOPs are not speed, and what the percentages mean."""
    if not peak > 0:
        return "FLOPs are not speed: models with the same GFLOPs run at different rates."
    return (f"FLOPs are not speed. % = achieved GMAC/s (GFLOPs × im/s) / peak matmul rate of this machine "
            f"({peak:,.0f} GMAC/s);\ndashed: equal share of peak (im/s = share × peak / GFLOPs)")


def _iso_curves(ax: Axes, peak: float) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Shares of peak (1-2-5 steps, decades only if many) whose line im/s = share x peak / GFLOPs runs a good
    stretch through the axes: share -> (GFLOPs samples, display pixels along the line)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    frame = ax.get_window_extent()
    curves = {}
    for share in [m * 10.0**e for e in range(-5, 1) for m in (1, 2, 5) if m * 10.0**e <= 1]:
        rate = share * peak
        a, b = max(x0, rate / y1), min(x1, rate / y0) if y0 > 0 else x1
        if a >= b:
            continue
        xs = np.geomspace(a, b, 200) if ax.get_xscale() == "log" else np.linspace(a, b, 200)
        screen = ax.transData.transform(np.column_stack([xs, rate / xs]))
        if np.hypot(*np.diff(screen, axis=0).T).sum() > 0.15 * math.hypot(frame.width, frame.height):
            curves[share] = (xs, screen)
    if len(curves) > 4:
        curves = {k: v for k, v in curves.items() if math.log10(k).is_integer()} or curves
    return curves


def _zoom_out_to_an_iso_line(ax: Axes, peak: float) -> None:
    """Widen both axes step by step (a few times at most) until one iso-efficiency line crosses the plot, so that
    e.g. a single model still gets its reference line."""
    for _ in range(8):
        if _iso_curves(ax, peak):
            return
        for get, set_, scale in ((ax.get_xlim, ax.set_xlim, ax.get_xscale()),
                                 (ax.get_ylim, ax.set_ylim, ax.get_yscale())):
            lo, hi = get()
            if scale == "log":
                step = (hi / lo) ** 0.25
                set_(lo / step, hi * step)
            else:
                step = (hi - lo) * 0.25
                set_(max(lo - step, 0.0) if lo >= 0 else lo - step, hi + step)


def _iso_efficiency(ax: Axes, peak: float, points: np.ndarray) -> None:
    """Dashed lines of equal hardware efficiency, each labelled along itself away from the data `points` (pixels)."""
    for share, (xs, screen) in _iso_curves(ax, peak).items():
        ax.plot(xs, share * peak / xs, linestyle="--", color="0.55", linewidth=0.9, zorder=1)
        _label_curve(ax, screen, f"{_percent(share)} of peak", points)


def _label_curve(ax: Axes, screen: np.ndarray, text: str, points: np.ndarray) -> None:
    """Write `text` along a curve (display pixels) at the first of a few spots along it clear of the points."""
    steps = np.hypot(*np.diff(screen, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    spots = [int(np.searchsorted(along, f * along[-1])) for f in (0.5, 0.35, 0.65, 0.2, 0.8)]
    spots = [min(max(k, 1), len(screen) - 2) for k in spots]
    clearance = [np.hypot(*(points - screen[k]).T).min() if len(points) else np.inf for k in spots]
    k = next((k for k, c in zip(spots, clearance) if c > 45), spots[int(np.argmax(clearance))])
    dx, dy = screen[k + 1] - screen[k - 1]
    angle = math.degrees(math.atan2(dy, dx))
    angle = angle - 180 if angle > 90 else angle + 180 if angle < -90 else angle  # never upside down
    x, y = ax.transData.inverted().transform(screen[k])
    ax.text(x, y, text, fontsize=7.5, color="0.35", ha="center", va="center", rotation=angle,
            rotation_mode="anchor", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
            zorder=2)


def _rate(value: float) -> str:
    """Images/s to 3 significant digits without exponent: 877.81 -> '878', 4718 -> '4,718', 1.2 -> '1.2'."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _percent(share: float) -> str:
    """0.423 -> '42.3%', 0.00123 -> '0.123%', 1 -> '100%'."""
    return f"{100 * share:.3g}%"


# ---------------------------------------------------------------- shared helpers


def _short(text: str, limit: int = MAX_LABEL) -> str:
    """Cut `text` to `limit` characters, ending with '…' when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _log_if_wide(ax: Axes, axis: str, values: pd.Series) -> None:
    """Log scale when the values span more than 10x, with plain-number tick labels (a few minor ones too)."""
    known = values[values > 0]
    if known.empty or known.max() / known.min() <= 10:
        return
    decades = math.log10(known.max() / known.min())
    shown = (2, 3, 5) if decades < 1.5 else (3,) if decades < 3 else ()

    def minor(value: float, _: int) -> str:
        mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
        return f"{value:g}" if mantissa in shown else ""

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_formatter(ticker.FuncFormatter(minor))


_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
_RINGS = (2, 14, 30, 50)  # label distance (points) beyond the marker's edge; the outer two get a leader line
_HA = {1: "left", 0: "center", -1: "right"}
_VA = {1: "bottom", 0: "center", -1: "top"}


def _place_labels(ax: Axes, labels: Sequence[_Label], segments: Sequence[tuple[Point, Point]] = ()) -> None:
    """Write each label at the first spot around its marker (8 directions, near to far) that covers no marker,
    line, text or the axes edge, else at the least covering one: deterministic, legible for tens of points."""
    renderer = ax.figure.canvas.get_renderer()
    scale = ax.figure.dpi / 72
    frame = ax.get_window_extent(renderer)
    centers = ax.transData.transform([(label.x, label.y) for label in labels])
    markers = [_marker_box(ax, label, scale) for label in labels]
    texts = [t.get_window_extent(renderer) for t in ax.texts]
    lines = [box for a, b in segments for box in _line_boxes(ax.transData.transform([a, b]))]
    for i, label in enumerate(labels):
        others = markers[:i] + markers[i + 1:]
        best: Optional[tuple[float, Text, Bbox]] = None
        for ring, dx, dy in [(ring, dx, dy) for ring in _RINGS for dx, dy in _DIRECTIONS]:
            gap = label.radius + ring
            leader = {"arrowstyle": "-", "color": "0.5", "linewidth": 0.5, "shrinkA": 1, "shrinkB": label.radius}
            text = ax.annotate(label.text, (label.x, label.y), xytext=(dx * gap, dy * gap),
                               textcoords="offset points", ha=_HA[dx], va=_VA[dy], fontsize=8, zorder=4,
                               arrowprops=None if ring == _RINGS[0] else leader)
            text.update_positions(renderer)
            box = Text.get_window_extent(text, renderer)  # the words only, not the leader line
            # covering words or leaving the axes is worse than covering a marker or a line
            cost = (3 * sum(_overlap(box, t) for t in texts) + sum(_overlap(box, m) for m in others)
                    + sum(_overlap(box, seg) for seg in lines) + 3 * (box.width * box.height - _overlap(box, frame)))
            if ring == _RINGS[0]:  # farther out, a leader line shows which point a label names...
                cost += _ambiguity(box, centers[i], centers)
            else:  # ...as long as it crosses no other marker or label
                anchor = centers[i] + np.array([dx, dy]) * gap * scale
                cost += 10 * sum(_overlap(dot, obstacle) for dot in _line_boxes(np.array([anchor, centers[i]]))
                                 for obstacle in others + texts)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        texts.append(best[2].padded(3))  # keep the next label from touching this one


def _ambiguity(box: Bbox, own: np.ndarray, centers: np.ndarray) -> float:
    """How much the label box fails to be clearly nearest its own marker's centre (another centre must be 1.5x as
    far), in weighted pixels: > 0 means a reader could pair it with the wrong point."""
    dx = np.maximum.reduce([box.x0 - centers[:, 0], np.zeros(len(centers)), centers[:, 0] - box.x1])
    dy = np.maximum.reduce([box.y0 - centers[:, 1], np.zeros(len(centers)), centers[:, 1] - box.y1])
    distance, same = np.hypot(dx, dy), np.all(centers == own, axis=1)
    if same.all():
        return 0.0
    return 20.0 * max(0.0, 1.5 * distance[same].min() - distance[~same].min())


def _line_boxes(ends: np.ndarray, step: float = 6.0) -> list[Bbox]:
    """Small squares (display pixels) every `step` pixels along a segment, so labels keep off lines."""
    (x0, y0), (x1, y1) = ends
    n = max(2, int(math.hypot(x1 - x0, y1 - y0) / step))
    return [Bbox.from_extents(x - 1.5, y - 1.5, x + 1.5, y + 1.5)
            for x, y in zip(np.linspace(x0, x1, n), np.linspace(y0, y1, n))]


def _marker_box(ax: Axes, label: _Label, scale: float) -> Bbox:
    """The square (display pixels) around a marker of `label.radius` points."""
    cx, cy = ax.transData.transform((label.x, label.y))
    r = label.radius * scale + 4  # a margin so no label touches another point's marker
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)


def _overlap(a: Bbox, b: Bbox) -> float:
    """Area (pixels²) shared by two boxes."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
