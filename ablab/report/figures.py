"""Every figure a recipe/profile summary.csv supports, written beside it as PNG and PDF (atomically): the roadmap
(`waterfall`), its dense-task twin where steps were dense backbones (`dense`: mIoU, box and mask AP), top-1 vs
throughput (`accuracy`), throughput vs GFLOPs with hardware efficiency (`efficiency`), the
training curves where the runs' logs are (`curves`), and the cross-recipe overview.

Conventions: `gflops` is fvcore's count (1 multiply-add = 1 FLOP, i.e. GMACs per image or clip), `throughput` is
measured images/s at inference (clips/s for clip models, and so labelled: `units`) and `peak_gmacs` the same
machine's dense matmul rate (GMAC/s). Throughput measured in different settings (device, precision, compilation,
memory format, machine, load) never shares an axis: such a summary gets one accuracy and one efficiency figure per
setting (`efficiency_<setting>.png`, each with its own machine's peak), and the overview one figure per profile
and setting.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..io import write_figure_atomic  # noqa: E402
from .accuracy import accuracy_figure, overview_figure  # noqa: E402
from .curves import curves_figure  # noqa: E402
from .efficiency import efficiency_figure  # noqa: E402
from .figure_data import Summary, by_setting, read_summary, slug  # noqa: E402
from .waterfall import dense_figure, waterfall_figure  # noqa: E402

DPI = 150
FORMATS = ("png", "pdf")


def write_figures(summary: Path) -> list[Path]:
    """Draw every figure this summary supports beside it (PNG and PDF); return the written paths. The waterfall
    shows every step (ratios only between steps measured alike); the throughput axes get a figure per setting."""
    s = read_summary(summary)
    written: list[Path] = []
    drawers: list[tuple[str, Summary, Callable[[Summary], Optional[Figure]]]] = [
        ("waterfall", s, waterfall_figure),
        ("dense", s, dense_figure),
        *[(f"{name}{suffix}", part, draw) for suffix, part in by_setting(s)
          for name, draw in (("accuracy_vs_throughput", accuracy_figure), ("efficiency", efficiency_figure))],
    ]
    for name, part, draw in drawers:
        fig = draw(part)
        if fig is not None:
            written += save(fig, summary.parent / name)
    curves = curves_figure(summary, dict(zip(s.rows["step"], s.rows["label"])))
    if curves is not None:
        written += save(curves, summary.parent / "curves")
    return written


def write_overview_figure(summaries: list[Path], out_dir: Path) -> list[Path]:
    """One accuracy-vs-throughput figure per profile and measurement setting with every recipe's steps measured
    that way: out_dir/overview_<profile>.png/pdf, or overview_<profile>_<setting> where a profile has several."""
    groups: dict[tuple[str, str], list[Summary]] = {}
    for path in summaries:
        s = read_summary(path)
        for kind in s.settings:
            groups.setdefault((s.profile, kind), []).append(s.only(s.rows[s.rows["setting"] == kind]))
    several = Counter(profile for profile, _ in groups)
    written: list[Path] = []
    for (profile, kind), group in sorted(groups.items()):
        fig = overview_figure(profile, group)
        if fig is not None:
            suffix = f"_{slug(kind)}" if several[profile] > 1 else ""
            written += save(fig, out_dir / f"overview_{profile}{suffix}")
    return written


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write `fig` as <stem>.png and <stem>.pdf and close it."""
    try:
        paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]
        for path in paths:
            write_figure_atomic(fig, path, dpi=DPI)
        return paths
    finally:
        plt.close(fig)
