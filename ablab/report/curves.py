"""Training curves (HVT Fig. 4): validation top-1 and training loss per epoch of every step, read from the runs'
log.csv files beside a summary; the line is the mean over seeds, the band spans the seeds (lowest to highest).
Committed results keep the figure, not the logs, so the figure is drawn where the runs are."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .figure_data import short

PANELS = (("val_top1", "validation top-1 (%)"), ("loss", "training loss"))


def seed_logs(summary: Path, steps: list[str]) -> dict[str, pd.DataFrame]:
    """Each step's per-epoch log rows of every seed (column `seed` added), for the steps with any log.csv."""
    out = {}
    for step in steps:
        frames = []
        for log in sorted((summary.parent / step).glob("seed*/log.csv")):
            try:
                rows = pd.read_csv(log)
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
                continue
            if {"epoch", "loss"} <= set(rows.columns) and len(rows):
                frames.append(rows.assign(seed=log.parent.name))
        if frames:
            out[step] = pd.concat(frames, ignore_index=True)
    return out


def curves_figure(summary: Path, labels: dict[str, str]) -> Optional[Figure]:
    """Top-1 and loss against epochs, one line per step (`labels`: step -> label, in recipe order) with its seeds'
    band; None without any log."""
    logs = seed_logs(summary, list(labels))
    if not logs:
        return None
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 4.2), constrained_layout=True)
    for ax, (column, title) in zip(axes, PANELS):
        for step, rows in logs.items():
            if column not in rows or rows[column].isna().all():
                continue
            per_epoch = rows.groupby("epoch")[column]
            epochs = per_epoch.mean().index + 1
            seeds = rows["seed"].nunique()
            (line,) = ax.plot(epochs, per_epoch.mean().values, marker="o", markersize=3,
                              label=f"{short(labels[step])} (n = {seeds})")
            if seeds > 1:
                ax.fill_between(epochs, per_epoch.min().values, per_epoch.max().values, color=line.get_color(),
                                alpha=0.18, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    labelled = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if labelled:
        labelled[0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{summary.parent.parent.name} / {summary.parent.name}: training curves (mean over seeds; band: "
                 "lowest to highest seed)", fontsize=10)
    return fig
