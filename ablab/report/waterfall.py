"""The roadmap (ConvNeXt style): a row per step in recipe order, top-1 bars from zero with the 95% interval of
the mean, the chance line and the paper's numbers, the paired change against the parent written beside each bar,
and throughput as a multiple of the chain's root (only where both were measured alike on an idle machine). The
dense roadmap draws the same bars for each dense task's metric (mIoU, box and mask AP: `ablab run --task`)."""

from __future__ import annotations

import math
from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

from ..stats import CONFIDENCE
from ..settings import METRIC_LABELS, dense_heads
from ..store.summary import dense_metrics, row_delta
from .figure_data import FLAT, VERDICT_COLORS, Summary, seeds_n, short, step_name
from .numbers import rate
from .measured import alike_root, idle, plausible, spread
from .units import IMAGES

DPI = 150
ROW = 0.42  # inches per step
PANEL = 4.6  # inches of each bar panel
FONT = 8.5
PAPER_LABEL = "paper's number, as the recipe cites it"
PAPER_MARKER = {"marker": "D", "s": 24, "facecolor": "white", "edgecolor": "black", "linewidths": 1.0, "zorder": 4}


def waterfall_figure(s: Summary) -> Optional[Figure]:
    """Top-1 and throughput panels sharing one row per step; top-1 only where some step was trained."""
    rows = s.rows.reset_index(drop=True)
    if rows.empty:
        return None
    has_top1 = rows["top1"].notna().any()
    fig, axes = plt.subplots(1, 1 + has_top1, sharey=True, squeeze=False, dpi=DPI,
                             figsize=(PANEL * (1 + has_top1) + 4, ROW * len(rows) + 2.6))
    axes = list(axes[0])
    colors = [s.colors[r] for r in rows["root"]]
    axes[0].set_yticks(range(len(rows)), [step_name(st, lb) for st, lb in zip(rows["step"], rows["label"])],
                       fontsize=9)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # first step on top
    handles = _metric_panel(axes[0], rows, colors, "top1", s.classes) if has_top1 else []
    anchored, speed_handles = _speed_panel(axes[-1], rows, colors, unit=s.unit)
    for ax in axes:
        _chain_separators(ax, rows)
    fig.suptitle(f"{s.recipe} / {s.profile}: roadmap, step by step" + ("" if has_top1 else " (measured only)")
                 + f"\nthroughput measured on {s.hardware}", fontsize=11)
    legend = _legend(fig, handles + speed_handles, rows, colors)
    _fit_right(axes[-1], anchored)  # before the layout too, which would otherwise make room for the texts outside
    _layout(fig, axes, legend)
    _fit_right(axes[-1], anchored)
    return fig


def dense_figure(s: Summary) -> Optional[Figure]:
    """One panel per dense task's metric some step has (mIoU, box AP, mask AP), a row per step as in the roadmap;
    None where no step was a dense backbone."""
    rows = s.rows.reset_index(drop=True)
    metrics = dense_metrics(rows)
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), sharey=True, squeeze=False, dpi=DPI,
                             figsize=(PANEL * len(metrics) + 4, ROW * len(rows) + 2.6))
    axes = list(axes[0])
    colors = [s.colors[r] for r in rows["root"]]
    axes[0].set_yticks(range(len(rows)), [step_name(st, lb) for st, lb in zip(rows["step"], rows["label"])],
                       fontsize=9)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    handles = [h for ax, metric in zip(axes, metrics) for h in _metric_panel(ax, rows, colors, metric)]
    for ax in axes:
        _chain_separators(ax, rows)
    fig.suptitle(f"{s.recipe} / {s.profile}: each step as a dense backbone, step by step\n"
                 + "; ".join(dense_heads(metrics)), fontsize=11)
    _layout(fig, axes, _legend(fig, handles, rows, colors), beside=axes)
    return fig


def _metric_panel(ax: Axes, rows: pd.DataFrame, colors: list[str], metric: str,
                  classes: Optional[int] = None) -> list:
    """Bars of `metric`'s mean (top1, or a dense task's) from zero, whiskers of its 95% interval (Student t over
    the seeds), the paper's number as markers and chance as a line (top-1 of `classes`); beside the panel per row
    the mean ± std (n) and the paired change against the parent [95% interval] in its verdict's colour, or the
    step's status. Returns the legend handles."""
    from scipy import stats

    previous = [""] + list(rows["step"][:-1])
    seeds = seeds_n(rows) if metric == "top1" else rows[f"{metric}_n"].fillna(1).astype(int)
    status = rows["status"] if metric == "top1" else rows[f"{metric}_status"]
    ends = []
    for i, row in rows.iterrows():
        if pd.isna(row[metric]):
            _beside(ax, i, short(status[i] or "missing", 45), "0.4", italic=True)
            continue
        ax.barh(i, row[metric], height=0.62, color=colors[i], alpha=0.8)
        n = seeds[i]
        text = f"{row[metric]:.1f} (n = 1)"
        if n > 1 and row[f"{metric}_std"] > 0:
            half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * row[f"{metric}_std"] / math.sqrt(n)
            ax.errorbar(row[metric], i, xerr=half, fmt="none", ecolor="0.15", elinewidth=0.9, capsize=2.5)
            ends.append(row[metric] + half)
            text = f"{row[metric]:.1f} ± {row[f'{metric}_std']:.1f} (n = {n})"
        words = _beside(ax, i, text, "black")
        delta = row_delta(rows, i, metric)
        if delta is not None:
            vs = f" vs {row['parent']}" if row["parent"] != previous[i] else ""
            words = _after(words, f"{delta}{vs}", VERDICT_COLORS.get(delta.verdict, FLAT))
        if status[i] not in ("done", "", "missing"):
            _after(words, short(status[i], 30), "0.4", italic=True)
    handles = [Line2D([], [], color="0.15", marker="|", markersize=8, linestyle="-", linewidth=0.9,
                      label="whisker: 95% interval of the mean over seeds (Student t)")] if ends else []
    paper = rows[f"paper_{metric}"] if f"paper_{metric}" in rows else pd.Series(dtype=float)
    if paper.notna().any():
        ax.scatter(paper, paper.index, **PAPER_MARKER)
        handles.append(ax.scatter([], [], label=PAPER_LABEL, **PAPER_MARKER))
    if classes:
        chance = 100 / classes
        ax.axvline(chance, color="0.25", linestyle=":", linewidth=1.2, zorder=1)
        handles.append(Line2D([], [], color="0.25", linestyle=":", linewidth=1.2,
                              label=f"chance: 100 / {classes} classes = {chance:.3g}%"))
    if metric == "top1":
        ax.set_xlim(0, max([100.0, *ends, *paper.dropna()]))
    else:  # a margin, so that a marker at the largest value is drawn whole
        ax.set_xlim(0, max([1.0, *ends, *paper.dropna(), *rows[metric].dropna()]) * 1.04)
    name = "top-1 accuracy" if metric == "top1" else METRIC_LABELS[metric]
    ax.set_xlabel(f"{name} (%); beside: mean ± std (n seeds),\nchange vs parent [95% paired interval]")
    ax.grid(True, axis="x", alpha=0.3)
    return handles


def _speed_panel(ax: Axes, rows: pd.DataFrame, colors: list[str],
                 unit: str = IMAGES) -> tuple[list[tuple[float, list[Text]]], list]:
    """Throughput as a multiple of the chain root's from zero (whiskers: the timed rounds' spread where recorded),
    the paper's own ratio as markers, and the multiple and the throughput in `unit` (im/s or clips/s) written after
    each bar. Returns the texts to fit inside the axes and the legend handles."""
    speed = dict(zip(rows["step"], rows["throughput"]))
    ratio = (rows["throughput"] / rows["root"].map(speed)).where(alike_root(rows))
    paper = pd.Series(float("nan"), index=rows.index)
    if "paper_throughput" in rows:
        paper = rows["paper_throughput"] / rows["root"].map(dict(zip(rows["step"], rows["paper_throughput"])))
    lo, hi = spread(rows)
    calm, valid = idle(rows), plausible(rows)
    anchored, ends = [], [1.0]
    for i, row in rows.iterrows():
        if not ratio[i] > 0:
            why = ("throughput not measured" if not row["throughput"] > 0 else
                   "measured under load: no ratio" if not calm[i] else
                   "above 100% of peak: invalid measurement" if not valid[i] else "measured unlike its chain's root")
            start = paper[i] if paper[i] > 0 else 0.0  # after the paper's marker, never over it
            anchored.append((start, [_note(ax, why, start, i)]))
            continue
        ax.barh(i, ratio[i], height=0.62, color=colors[i], alpha=0.8)
        end = ratio[i]
        if lo[i] > 0 and hi[i] > 0:
            low, high = ratio[i] * lo[i] / row["throughput"], ratio[i] * hi[i] / row["throughput"]
            ax.errorbar(ratio[i], i, xerr=[[max(ratio[i] - low, 0.0)], [max(high - ratio[i], 0.0)]], fmt="none",
                        ecolor="0.15", elinewidth=0.9, capsize=2.5)
            end = max(high, end)
        words = f"{ratio[i]:.2f}×  ({rate(row['throughput'], grouped=True)} {unit})"
        if paper[i] > 0:  # the text follows the paper's marker, never covers it, and says which number it is
            end, words = max(end, paper[i]), f"{words}; paper {paper[i]:.2f}×"
        text = ax.annotate(words, (end, i), xytext=(6, 0),
                           textcoords="offset points", va="center", fontsize=FONT,
                           bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        anchored.append((end, [text]))
        ends.append(end)
    handles = []
    if lo.notna().any():
        handles.append(Line2D([], [], color="0.15", marker="|", markersize=8, linewidth=0.9,
                              label="whisker: spread of the timed rounds"))
    if paper.notna().any():
        ax.scatter(paper, paper.index, **PAPER_MARKER)
        ends += list(paper.dropna())
        handles.append(ax.scatter([], [], label=PAPER_LABEL, **PAPER_MARKER))
    ax.axvline(1.0, color="0.3", linewidth=0.8, linestyle="--")
    ax.set_xlim(0, max(ends) * 1.05)
    ax.set_xlabel("throughput relative to the chain's root (×)")
    ax.grid(True, axis="x", alpha=0.3)
    return anchored, handles


def _beside(ax: Axes, i: int, text: str, color: str, italic: bool = False) -> Text:
    """Text just right of the top-1 panel at row `i`, between the two panels (the layout makes room for it)."""
    return ax.annotate(text, (1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                       va="center", fontsize=FONT, color=color, style="italic" if italic else "normal",
                       annotation_clip=False)


def _after(previous: Text, text: str, color: str, italic: bool = False) -> Text:
    """Text written just right of `previous` (chained to its box, so no width guessing)."""
    return previous.axes.annotate(text, xy=(1, 0.5), xycoords=previous, xytext=(5, 0), textcoords="offset points",
                                  va="center", fontsize=FONT, color=color, style="italic" if italic else "normal",
                                  annotation_clip=False)


def _note(ax: Axes, text: str, x: float, i: int) -> Text:
    """Grey italic text in place of a bar (unmeasured step, or one measured unlike its root), from `x` on."""
    return ax.annotate(text, (x, i), xytext=(6, 0), textcoords="offset points", va="center", fontsize=FONT,
                       color="0.4", style="italic")


def _chain_separators(ax: Axes, rows: pd.DataFrame) -> None:
    """A thin line above each row that starts a new chain (e.g. deit_to_hvt's DeiT-Ti chain)."""
    for i in range(1, len(rows)):
        if rows["root"][i] != rows["root"][i - 1]:
            ax.axhline(i - 0.5, color="0.5", linewidth=0.8)


def _legend(fig: Figure, handles: list, rows: pd.DataFrame, colors: list[str]) -> Optional[Legend]:
    """The figure's legend below the panels: a patch per chain where there are several, then `handles`."""
    chains = dict(zip(rows["root"], colors))
    names = dict(zip(rows["root"], rows["root_label"]))
    patches = [Patch(color=c, alpha=0.8, label=f"chain from {step_name(r, names[r], 30)}") for r, c in chains.items()]
    shown = list({h.get_label(): h for h in (patches if len(patches) > 1 else []) + handles}.values())
    if not shown:
        return None
    return fig.legend(handles=shown, loc="lower center", ncol=min(3, len(shown)), fontsize=8, frameon=False)


def _layout(fig: Figure, axes: list[Axes], legend: Optional[Legend], beside: Optional[list[Axes]] = None) -> None:
    """Size the figure to its row labels, the texts written right of the `beside` panels (default: all but the
    last) and the panels, then lay it out above the legend."""
    renderer = fig.canvas.get_renderer()
    ticks = max((t.get_window_extent(renderer).width for t in axes[0].get_yticklabels()), default=0.0)
    words = 0.0  # the texts written right of each panel, beyond its frame
    for ax in axes[:-1] if beside is None else beside:
        frame = ax.get_window_extent(renderer)
        words += max([frame.x1, *(t.get_window_extent(renderer).x1 for t in ax.texts)]) - frame.x1
    fig.set_size_inches((ticks + words) / fig.dpi + PANEL * len(axes) + 0.8, fig.get_figheight())
    below = 0.0 if legend is None else (legend.get_window_extent(renderer).height + 8) / fig.bbox.height
    fig.tight_layout(rect=(0, below, 1, 1))


def _fit_right(ax: Axes, anchored: list[tuple[float, list[Text]]]) -> None:
    """Widen the x range until every text written after a bar ends inside the axes (text widths are fixed); the
    ticks stay those of the narrower range, none at the right edge where its label would leave the figure."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    lo, hi = ax.get_xlim()
    need = hi
    for value, texts in anchored:
        start = ax.transData.transform((value, 0))[0]
        width = max(t.get_window_extent(renderer).x1 for t in texts) - start + 6
        if width < frame.width:
            need = max(need, lo + (value - lo) * frame.width / (frame.width - width))
    ax.set_xticks([t for t in ax.get_xticks() if lo <= t <= lo + 0.95 * (hi - lo)])
    ax.set_xlim(lo, need)
