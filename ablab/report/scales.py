"""Axis ranges that never zoom into noise, on log scales with plain-number ticks.

Throughput and GFLOPs axes are logarithmic (ratios are what compare across models) and span at least MIN_SPAN,
and always the measured spread of every point: 4.52-4.60 im/s is noise around 4.56, drawn as 3.2-6.5 im/s
rather than blown up to fill the plot."""

from __future__ import annotations

import math
from typing import Iterable

from matplotlib import ticker
from matplotlib.axes import Axes

MIN_SPAN = 2.0  # an axis covers at least this factor (high / low)
MARGIN = 1.15  # room beyond the outermost point or error bar, as a factor


def log_range(values: Iterable[float], min_span: float = MIN_SPAN) -> tuple[float, float]:
    """(low, high) covering every positive value (points and the ends of their error bars) with MARGIN either side,
    widened about its geometric centre to at least `min_span`."""
    known = [v for v in values if v > 0 and math.isfinite(v)]
    if not known:
        return 1.0, 10.0
    lo, hi = min(known) / MARGIN, max(known) * MARGIN
    if hi / lo < min_span:
        centre, half = math.sqrt(lo * hi), math.sqrt(min_span)
        lo, hi = centre / half, centre * half
    return lo, hi


def log_axis(ax: Axes, axis: str, lo: float, hi: float) -> None:
    """Set `axis` ('x' or 'y') to a log scale from `lo` to `hi`, its ticks labelled as plain numbers: every
    mantissa across a factor of 3, 1-2-3-5 up to 30, 1-2-5 up to 1000, decades beyond."""
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo, hi)
    span = hi / lo
    shown = tuple(range(1, 10)) if span <= 3 else (1, 2, 3, 5) if span <= 30 else (1, 2, 5) if span <= 1000 else (1,)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(ticker.LogLocator(base=10, subs=shown))
    target.set_minor_locator(ticker.LogLocator(base=10, subs=[s for s in range(1, 10) if s not in shown]))
    target.set_major_formatter(ticker.FuncFormatter(lambda value, _: _plain(value)))
    target.set_minor_formatter(ticker.NullFormatter())


def _plain(value: float) -> str:
    """A tick value without exponent or float noise: 0.005, 40, 8,000."""
    text = f"{value:.6g}"
    return f"{float(text):,.0f}" if float(text) >= 1000 else text
