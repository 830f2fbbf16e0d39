"""Throughput against GFLOPs with each model's hardware efficiency (achieved GMAC/s over the machine's matmul
peak) and iso-efficiency lines: why FLOPs are not speed.

Both axes are logarithmic and never zoomed into noise (`scales`): the throughput axis covers every point's
measured spread. A share above 100% of peak cannot be a measurement of the model (nothing outruns the machine's
own square matmuls): such a point is not drawn, only named under the plot. Figures measured on a busy machine are
drawn hollow."""

from __future__ import annotations

import math
import textwrap
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..cost.efficiency import hardware_efficiency
from .figure_data import Summary, omitted_note, percent, step_name
from .measured import idle, plausible, spread
from .placement import Label, place_labels
from .scales import log_axis, log_range
from .units import IMAGES, ITEM, spelled

DPI = 150
AREA = 45.0  # marker area, pt²
LABEL = 28  # characters of "id: label" beside a point
CAPTION_WIDTH = 80  # characters a line of the caption over the axes holds at its font size


def efficiency_figure(s: Summary) -> Optional[Figure]:
    """Measured throughput (im/s, or clips/s for clip models) vs GFLOPs, each valid point labelled with its step
    and share of peak; None when no step has both numbers."""
    rows = s.rows[s.rows["gflops"].gt(0) & s.rows["throughput"].gt(0)]
    if rows.empty:
        return None
    share = pd.Series([hardware_efficiency(g, t, p) for g, t, p in
                       zip(rows["gflops"], rows["throughput"], rows["peak_gmacs"])], index=rows.index)
    invalid = ~plausible(rows)
    shown = rows[~invalid]
    peaks = rows["peak_gmacs"][rows["peak_gmacs"] > 0]
    peak = peaks.median() if not peaks.empty else math.nan  # the median shrugs off a stray re-measurement
    fig, ax = plt.subplots(figsize=(9, 6), dpi=DPI)
    lo, hi = spread(shown)
    busy = ~idle(shown)
    colors = np.array([s.colors[r] for r in shown["root"]], dtype=object)
    for hollow in (False, True):
        pick = (busy == hollow).to_numpy()
        if pick.any():
            ax.scatter(shown["gflops"][pick], shown["throughput"][pick], s=AREA, zorder=3,
                       c="white" if hollow else list(colors[pick]),
                       edgecolors=list(colors[pick]) if hollow else "black", linewidths=1.4 if hollow else 0.6)
    if lo.notna().any():
        err = np.vstack([(shown["throughput"] - lo).fillna(0), (hi - shown["throughput"]).fillna(0)]).clip(min=0)
        ax.errorbar(shown["gflops"], shown["throughput"], yerr=err, fmt="none", ecolor="0.3", elinewidth=0.8,
                    capsize=2.5, zorder=2)
    framed = shown if not shown.empty else rows  # an omitted point does not stretch the axes
    log_axis(ax, "x", *log_range(framed["gflops"]))
    log_axis(ax, "y", *log_range([*framed["throughput"], *lo.dropna(), *hi.dropna()]))
    ax.set_xlabel(f"GFLOPs per {ITEM[s.unit]} (fvcore: 1 multiply-add = 1 FLOP; log scale)")
    ax.set_ylabel(f"measured throughput ({spelled(s.unit)}; log scale)\n{s.hardware}")
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, s, shown, lo.notna().any(), busy.any())
    fig.suptitle(f"{s.recipe} / {s.profile}: throughput vs GFLOPs"
                 + ("" if peak > 0 else " (peak not measured: no hardware efficiency)"))
    ax.set_title(_caption(peak, peaks, unit=s.unit), fontsize=8.5)
    if peak > 0:
        _zoom_out_to_an_iso_line(ax, peak)
        log_axis(ax, "x", *ax.get_xlim())
        log_axis(ax, "y", *ax.get_ylim())
    fig.tight_layout(rect=(0, 0.06 if omitted_note(fig, rows[invalid]) else 0, 1, 1))
    curves = _iso_curves(ax, peak) if peak > 0 else {}
    for level, (xs, _) in curves.items():
        ax.plot(xs, level * peak / xs, linestyle="--", color="0.55", linewidth=0.9, zorder=1)
    radius = math.sqrt(AREA) / 2
    place_labels(ax, [Label(g, t, step_name(step, label, LABEL) + ("" if math.isnan(e) else f" ({percent(e)})"),
                            radius)
                      for g, t, step, label, e in zip(shown["gflops"], shown["throughput"], shown["step"],
                                                      shown["label"], share[~invalid])])
    points = ax.transData.transform(shown[["gflops", "throughput"]].to_numpy())
    for level, (_, screen) in curves.items():  # after the step labels, so that the curves' labels keep off them
        _label_curve(ax, screen, f"{percent(level)} of peak", points)
    return fig


def _legend(ax: Axes, s: Summary, shown: pd.DataFrame, bars: bool, busy: bool) -> None:
    """Chains by colour, then what hollow markers and error bars mean, outside the axes on the right."""
    names = dict(zip(s.rows["root"], s.rows["root_label"]))  # a root measured in another setting is not a row
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"chain from {step_name(r, names[r], 24)}")
               for r, c in s.colors.items() if r in set(shown["root"])]
    if busy:
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="0.3",
                              label="hollow: measured on a busy machine"))
    if bars:
        handles.append(Line2D([], [], marker="|", linestyle="", color="0.3", markersize=9,
                              label="bar: spread of the timed rounds"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)


def _caption(peak: float, peaks: pd.Series, unit: str = IMAGES) -> str:
    """The sentence under the title: FLOPs are not speed, and what the percentages mean (throughput in `unit`)."""
    if not peak > 0:
        return "FLOPs are not speed: models with the same GFLOPs run at different rates."
    varied = peaks.max() / peaks.min() > 1.05
    measured = (f"median over the steps {peak:,.0f} GMAC/s, {peaks.min():,.0f}-{peaks.max():,.0f}" if varied
                else f"{peak:,.0f} GMAC/s")
    lines = (f"FLOPs are not speed. % = achieved GMAC/s (GFLOPs × {unit}) / peak matmul rate of this machine "
             f"({measured});", f"dashed: equal share of peak ({unit} = share × peak / GFLOPs)")
    return "\n".join(part for line in lines for part in textwrap.wrap(line, CAPTION_WIDTH))


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


def _label_curve(ax: Axes, screen: np.ndarray, text: str, points: np.ndarray) -> None:
    """Write `text` along a curve (display pixels) at the first of a few spots along it clear of the `points`
    (pixels) and of the texts already written."""
    steps = np.hypot(*np.diff(screen, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    spots = [int(np.searchsorted(along, f * along[-1])) for f in (0.5, 0.35, 0.65, 0.2, 0.8)]
    spots = [min(max(k, 1), len(screen) - 2) for k in spots]
    renderer = ax.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]

    def clearance(k: int) -> float:
        x, y = screen[k]
        to_points = np.hypot(*(points - screen[k]).T).min() if len(points) else np.inf
        to_texts = [math.hypot(max(b.x0 - x, 0, x - b.x1), max(b.y0 - y, 0, y - b.y1)) for b in boxes]
        return min([to_points, *to_texts])

    clear = [clearance(k) for k in spots]
    k = next((k for k, c in zip(spots, clear) if c > 45), spots[int(np.argmax(clear))])
    dx, dy = screen[k + 1] - screen[k - 1]
    angle = math.degrees(math.atan2(dy, dx))
    angle = angle - 180 if angle > 90 else angle + 180 if angle < -90 else angle  # never upside down
    x, y = ax.transData.inverted().transform(screen[k])
    ax.text(x, y, text, fontsize=7.5, color="0.35", ha="center", va="center", rotation=angle,
            rotation_mode="anchor", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.0},
            zorder=2)
