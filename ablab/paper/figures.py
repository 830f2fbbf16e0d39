"""A paper figure item drawn from our runs beside the paper's points: `scatter` (top-1 against FLOPs, the paper's
panel and ours side by side, since a proxy's top-1 has another level) or `curves` (top-1 and training loss per
epoch, the mean over seeds with their range as a band, from each run's log.csv)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..recipe import Recipe  # noqa: E402
from ..stats import seed_stats  # noqa: E402
from ..store.paths import Store  # noqa: E402
from ..store.summary import top1_by_seed  # noqa: E402
from .section import Section  # noqa: E402
from .tables import DATASETS, gflops, ours_of  # noqa: E402

DPI = 150
FONT = 8.5


def paper_figure(recipe: Recipe, section: Section, profile: str, store: Store, title: str) -> Optional[Figure]:
    """The section's figure at `profile`, None when it has nothing to draw."""
    draw = {"curves": _curves, "bars": _bars, "cost": _cost}.get(section.plot, _scatter)
    return draw(recipe, section, profile, store, title)


def _bars(recipe: Recipe, section: Section, profile: str, store: Store, title: str) -> Optional[Figure]:
    """Our top-1 per row (mean, whiskers ± std; hollow for one seed), the paper's as a diamond where it has one."""
    stats = [seed_stats(list(s.values())) if (s := top1_by_seed(ours_of(recipe, profile, store, r.step).summary))
             else None for r in section.rows]
    if not any(stats):
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(section.rows) + 1.6), dpi=DPI)
    ys = range(len(section.rows))[::-1]
    for y, row, st in zip(ys, section.rows, stats):
        if st is not None:
            ax.barh(y, st.mean, xerr=st.std or 0.0, capsize=3, color="white" if st.n == 1 else "tab:blue",
                    edgecolor="tab:blue")
            ax.text(st.mean + (st.std or 0.0), y, f"  {st.mean:.1f} (n = {st.n})", va="center", fontsize=FONT)
        if "top1" in row.paper:
            ax.scatter(row.paper["top1"], y, marker="D", color="black", zorder=3)
    data = DATASETS[recipe.train_config(section.rows[0].step, profile).data.name]
    ax.set(yticks=list(ys), yticklabels=[r.label for r in section.rows], xlim=(0, 100),
           xlabel=f"top-1 (%), ours at {profile} on {data}: mean ± std over seeds")
    ax.tick_params(labelsize=FONT)
    fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def _scatter(recipe: Recipe, section: Section, profile: str, store: Store, title: str) -> Optional[Figure]:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=DPI)
    for row in section.rows:
        if "gflops" in row.paper and "top1" in row.paper:
            left.scatter(row.paper["gflops"], row.paper["top1"], marker="D", color="black", zorder=3)
            left.annotate(row.label, (row.paper["gflops"], row.paper["top1"]), fontsize=FONT,
                          xytext=(4, 4), textcoords="offset points")
        ours = ours_of(recipe, profile, store, row.step)
        x, seeds = gflops(ours.metrics, section.flops), top1_by_seed(ours.summary)
        if x is None or not seeds:
            continue
        st = seed_stats(list(seeds.values()))
        right.errorbar(x, st.mean, yerr=st.std or 0.0, fmt="o", capsize=3,
                       mfc="white" if st.n == 1 else None, color="tab:blue", zorder=3)
        right.annotate(f"{row.label} (n = {st.n})", (x, st.mean), fontsize=FONT, xytext=(4, 4),
                       textcoords="offset points")
    data = DATASETS[recipe.train_config(section.rows[0].step, profile).data.name]
    left.set(title=f"paper ({section.dataset})", xlabel="GFLOPs", ylabel="top-1 (%)")
    right.set(title=f"ours ({profile}, {data}; mean ± std over seeds)", xlabel="GFLOPs", ylabel="top-1 (%)")
    if not right.collections and not right.lines:
        right.text(0.5, 0.5, "not trained at this profile", ha="center", va="center", transform=right.transAxes)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.margins(x=0.3, y=0.15)  # room for the labels
    fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def _cost(recipe: Recipe, section: Section, profile: str, store: Store, title: str) -> Optional[Figure]:
    """Pre-training seconds per epoch and peak memory per row (means over seeds), each also as a multiple of the
    first row's, the way the paper's efficiency claims read ('~2x speed-up, ~60% less memory')."""
    rows = [(r.label, ours_of(recipe, profile, store, r.step).summary) for r in section.rows]
    rows = [(label, float(s["pretrain_epoch_seconds"]), float(s["pretrain_peak_mb"])) for label, s in rows
            if s.get("pretrain_epoch_seconds") not in (None, "", "nan")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.5 * len(rows) + 1.8), dpi=DPI)
    ys = range(len(rows))[::-1]
    for ax, index, name in ((axes[0], 1, "s / epoch"), (axes[1], 2, "peak MB")):
        first = rows[0][index]
        ax.barh(list(ys), [r[index] for r in rows], color="tab:blue")
        for y, r in zip(ys, rows):
            ax.text(r[index], y, f"  {r[index]:.3g} ({r[index] / first:.2f}×)", va="center", fontsize=FONT)
        ax.set(yticks=list(ys), yticklabels=[r[0] for r in rows] if index == 1 else [],
               xlabel=f"pre-training {name} at {profile} (× the first row)")
        ax.margins(x=0.3)
    fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def _curves(recipe: Recipe, section: Section, profile: str, store: Store, title: str) -> Optional[Figure]:
    fig, (acc, loss) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=DPI)
    drawn = False
    for row in section.rows:
        runs = [_log(store.seed_dir(recipe.name, profile, row.step, seed) / "log.csv")
                for seed in store.seeds_on_disk(recipe.name, profile, row.step)]
        runs = [r for r in runs if r]
        if not runs:
            continue
        epochs = min(len(r) for r in runs)  # the epochs every seed finished
        xs = [int(runs[0][e]["epoch"]) + 1 for e in range(epochs)]
        for ax, name in ((acc, "val_top1"), (loss, "loss")):
            values = [[r[e][name] for r in runs] for e in range(epochs)]
            line, = ax.plot(xs, [statistics.fmean(v) for v in values], marker="o", label=f"{row.label} "
                            f"(n = {len(runs)})")
            if len(runs) > 1:
                ax.fill_between(xs, [min(v) for v in values], [max(v) for v in values], alpha=0.2,
                                color=line.get_color())
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    acc.set(xlabel="epoch", ylabel="validation top-1 (%)", title="top-1 (band: range over seeds)")
    for ax in (acc, loss):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    acc.legend(fontsize=FONT)
    fig.suptitle(title, fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def _log(path: Path) -> list[dict[str, float]]:
    """A run's log.csv as numbers per epoch ([] when there is none)."""
    if not path.is_file():
        return []
    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]
