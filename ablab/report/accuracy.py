"""Top-1 accuracy against measured throughput (Hiera Fig. 3 style): a marker per step, area ∝ GFLOPs, an arrow
from each parent to its child, error bars of the seeds' std (and of the throughput rounds' spread where recorded),
single-seed steps hollow and marked n = 1; one figure per recipe and one per profile across recipes."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from .figure_data import Summary, omitted_note, seeds_n, short
from .measured import plausible, spread
from .numbers import significant
from .placement import Label, Point, place_labels
from .scales import log_axis, log_range
from .units import IMAGES, spelled

DPI = 150
MAX_AREA = 220.0  # marker area (pt²) of the largest model; area is proportional to GFLOPs
MIN_AREA = 8.0  # floor so that a model ~40x smaller than the largest still shows
ALIKE = 1.5  # GFLOPs within this factor of each other get one marker size: a size legend would say nothing


def accuracy_figure(s: Summary) -> Optional[Figure]:
    """Top-1 vs measured throughput of one recipe, a colour per chain, invalid throughput (above the machine's
    peak) named under the plot rather than drawn; None when no step has top-1 and a valid throughput."""
    placed = with_accuracy(s.rows)
    rows = placed[plausible(placed)]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=DPI)
    sizes = MarkerSizes(rows["gflops"], MAX_AREA)
    labels, arrows = plot_steps(ax, rows, [s.colors[r] for r in rows["root"]], sizes)
    root_label = dict(zip(s.rows["root"], s.rows["root_label"]))
    chains = [(c, f"chain from {short(r + ': ' + root_label[r], 30)}") for r, c in s.colors.items()
              if r in set(rows["root"])]
    _axes(ax, rows, s.hardware, sizes, chains, "chain", unit=s.unit)
    ax.set_title(f"{s.recipe} / {s.profile}: top-1 accuracy vs measured throughput")
    fig.tight_layout(rect=(0, 0.07 if omitted_note(fig, placed[~plausible(placed)]) else 0, 1, 1))
    place_labels(ax, labels, arrows)
    return fig


def overview_figure(profile: str, summaries: Sequence[Summary]) -> Optional[Figure]:
    """Every recipe's steps of one profile on one accuracy-vs-throughput axes, a colour per recipe; in clips/s
    where every recipe's steps are clip models, and where image and clip recipes meet, each legend entry says its
    recipe's unit."""
    groups = [(s, with_accuracy(s.rows)) for s in summaries]
    invalid = pd.concat([rows[~plausible(rows)] for _, rows in groups])
    groups = [(s, rows[plausible(rows)]) for s, rows in groups]
    groups = [(s, rows) for s, rows in groups if not rows.empty]
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=DPI)
    every = pd.concat([rows for _, rows in groups])
    sizes = MarkerSizes(every["gflops"], MAX_AREA / 2)  # a crowded plot: smaller markers
    labels: list[Label] = []
    arrows: list[tuple[Point, Point]] = []
    recipes = []
    units = {s.unit for s, _ in groups}
    for i, (s, rows) in enumerate(groups):
        color = f"C{i % 10}"
        step_labels, step_arrows = plot_steps(ax, rows, [color] * len(rows), sizes)
        labels += step_labels
        arrows += step_arrows
        recipes.append((color, s.recipe + (f" ({s.unit})" if len(units) > 1 else "")))
    hardware = "; ".join(sorted({s.hardware for s, _ in groups}))
    _axes(ax, every, hardware, sizes, recipes, "recipe", unit=units.pop() if len(units) == 1 else None)
    ax.set_title(f"All recipes / {profile}: top-1 accuracy vs measured throughput")
    fig.tight_layout(rect=(0, 0.06 if omitted_note(fig, invalid) else 0, 1, 1))
    place_labels(ax, labels, arrows)
    return fig


def with_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    """The steps that can be placed on an accuracy-vs-throughput plot: numeric top-1 and throughput."""
    return rows[rows["top1"].notna() & rows["throughput"].gt(0)]


class MarkerSizes:
    """Marker area ∝ GFLOPs, the largest model at `largest` pt² (floored at MIN_AREA), or one size for all when
    every model's GFLOPs are within ALIKE of each other."""

    def __init__(self, gflops: pd.Series, largest: float) -> None:
        known = gflops[gflops > 0]
        self.lo, self.hi = (known.min(), known.max()) if not known.empty else (math.nan, math.nan)
        self.alike = known.empty or self.hi / self.lo < ALIKE
        self.largest = largest

    def area(self, gflops: float) -> float:
        if self.alike or not gflops > 0:
            return self.largest / 2 if self.alike else MIN_AREA
        return max(gflops / self.hi * self.largest, MIN_AREA)

    def references(self) -> list[tuple[float, str]]:
        """(area, label) of a few round GFLOP values from the largest model down, each marker visibly smaller than
        the one before, and the floor ('≤ x GFLOPs') where the smallest models share it; none when alike."""
        if self.alike:
            return []
        floor = MIN_AREA * self.hi / self.largest  # GFLOPs drawn at the floor area
        values = sorted({float(significant(self.hi / k, 1)) for k in (1, 3, 10, 30)}, reverse=True)
        out = [(self.area(v), f"{v:g} GFLOPs") for v in values if v >= max(self.lo, 2 * floor)]
        if self.lo < 2 * floor:
            out.append((MIN_AREA, f"≤ {significant(2 * floor, 1)} GFLOPs"))
        return out

    def note(self) -> str:
        """The size legend's title."""
        if math.isnan(self.lo):
            return "GFLOPs not measured"
        if self.alike:
            return (f"GFLOPs {significant(self.lo)}–{significant(self.hi)}:\nalike, one marker size"
                    if self.hi > self.lo else f"GFLOPs {significant(self.lo)}: one marker size")
        return "marker area ∝ GFLOPs"


def plot_steps(ax: Axes, rows: pd.DataFrame, colors: list[str],
               sizes: MarkerSizes) -> tuple[list[Label], list[tuple[Point, Point]]]:
    """Markers (top-1 vs throughput), error bars (std over seeds; throughput spread where recorded), arrows
    parent→child; return the labels (step id, 'n = 1' for a single seed) and the arrows."""
    areas = np.array([sizes.area(g) for g in rows["gflops"]])
    x, y = rows["throughput"].to_numpy(), rows["top1"].to_numpy()
    single = (seeds_n(rows) < 2).to_numpy()  # one seed: no std, drawn hollow
    for hollow in (False, True):
        pick = single == hollow
        if pick.any():
            shown = [c for c, p in zip(colors, pick) if p]
            ax.scatter(x[pick], y[pick], s=areas[pick], c="white" if hollow else shown,
                       edgecolors=shown if hollow else "black", linewidths=1.4 if hollow else 0.6,
                       alpha=0.9 if hollow else 0.7, zorder=3)
    std = rows["top1_std"].to_numpy()
    lo, hi = (v.to_numpy() for v in spread(rows))
    yerr = np.where(np.isnan(std), 0.0, std)
    xerr = np.vstack([np.where(np.isnan(lo), 0.0, x - lo), np.where(np.isnan(hi), 0.0, hi - x)]).clip(min=0)
    bars = (yerr > 0) | (xerr.sum(axis=0) > 0)
    if bars.any():
        ax.errorbar(x[bars], y[bars], yerr=yerr[bars], xerr=xerr[:, bars], fmt="none", ecolor="0.3",
                    elinewidth=0.8, capsize=2.5, zorder=2)
    radius = {step: math.sqrt(a) / 2 for step, a in zip(rows["step"], areas)}
    where = {step: (a, b) for step, a, b in zip(rows["step"], x, y)}
    arrows = []
    for step, parent, color in zip(rows["step"], rows["parent"], colors):
        if parent in where:
            arrows.append((where[parent], where[step]))
            ax.add_patch(FancyArrowPatch(where[parent], where[step], arrowstyle="-|>", mutation_scale=9,
                                         shrinkA=radius[parent] + 1, shrinkB=radius[step] + 1,
                                         color=color, linewidth=0.9, alpha=0.8, zorder=1))
    texts = [step + (" (n = 1)" if one else "") for step, one in zip(rows["step"], single)]
    return [Label(a, b, text, radius[step]) for (step, (a, b)), text in zip(where.items(), texts)], arrows


def _axes(ax: Axes, rows: pd.DataFrame, hardware: str, sizes: MarkerSizes, colors: list[tuple[str, str]],
          what: str, unit: Optional[str] = IMAGES) -> None:
    """Scales, limits, axis labels (throughput in `unit`; None: each colour's own, as its legend entry says), and
    the colour and marker-size legends outside the axes on the right."""
    lo, hi = spread(rows)
    log_axis(ax, "x", *log_range([*rows["throughput"], *lo.dropna(), *hi.dropna()]))
    std = rows["top1_std"].fillna(0)
    bottom, top = (rows["top1"] - std).min(), (rows["top1"] + std).max()
    pad = max(0.1 * (top - bottom), 2.0)  # at least 2 points of room: labels sit above and below markers
    ax.set_ylim(bottom - pad, top + pad)
    ax.set_xlabel(f"throughput ({spelled(unit) if unit else 'images/s or clips/s, as the legend says'}, inference; "
                  f"log scale)\n{hardware}")
    ns = sorted(set(seeds_n(rows)))
    seeds = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    ax.set_ylabel("top-1 accuracy (%), one seed each (n = 1)" if ns == [1] else
                  f"top-1 accuracy (%): mean ± std over seeds ({seeds})")
    ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, markersize=7, label=name) for c, name in colors]
    if (seeds_n(rows) < 2).any():
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="0.3",
                              markersize=7, label="hollow, 'n = 1': one seed,\nno std, no error bar"))
    if (std > 0).any():
        handles.append(Line2D([], [], marker="|", linestyle="", color="0.3", markersize=9,
                              label="vertical bar: ± std over seeds"))
    if lo.notna().any():
        handles.append(Line2D([], [], marker="_", linestyle="", color="0.3", markersize=9,
                              label="horizontal bar: spread of\nthe timed rounds"))
    first = ax.legend(handles=handles, title=f"colour = {what}", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      fontsize=8, title_fontsize=8, frameon=False, alignment="left")
    ax.add_artist(first)
    first.set_clip_on(False)  # add_artist clips to the axes, which would hide it from tight_layout
    references = sizes.references() or [(sizes.largest / 2, "every step")]
    diameter = math.sqrt(max(area for area, _ in references))  # pt
    handles = [ax.scatter([], [], s=area, color="0.75", edgecolors="black", linewidths=0.6, label=label)
               for area, label in references]
    ax.legend(handles=handles, title=sizes.note(), loc="lower left", bbox_to_anchor=(1.02, 0.0), fontsize=8,
              title_fontsize=8, frameon=False, alignment="left", labelspacing=max(1.0, 0.9 * diameter / 8),
              handletextpad=max(0.8, 0.5 * diameter / 8), borderpad=0.8)
