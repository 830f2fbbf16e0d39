"""GreenMIM Fig. 4: the attention cost (Eq. 8) of every group size at Swin-B's stages 1-3 under random masks.

    python benchmarks/greenmim_groups.py [OUT.png] [--masks 100] [--ratio 0.75] [--seed 0]

Swin-B at 224 px: 4 px tokens, 7x7 windows, widths 128 / 256 / 512 on 56^2 / 28^2 / 14^2 grids (64 / 16 / 4
windows). Each batch-wise mask hides 75% of the 32 px mask units; for every stage the visible tokens per window
are packed by the optimal grouping (Alg. 1) at every group size. Prints the optimal group size per stage
(mean +- std over masks) and plots the mean cost +- std against the group size (log-log), like Fig. 4; the figure
is written to OUT.png and OUT.pdf. A group size below a mask's largest window cannot hold it: left of the grey
band's edge the mean is over the masks it holds.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import torch  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from ablab.io import write_figure_atomic  # noqa: E402
from ablab.mim.group_attention import window_sizes  # noqa: E402
from ablab.mim.grouping import optimal_grouping  # noqa: E402
from ablab.mim.masking import random_mask, token_mask  # noqa: E402
from ablab.settings import units_per_side  # noqa: E402
from ablab.arch.presets import preset_spec as preset  # noqa: E402

IMG, PATCH, UNIT, WINDOW = 224, 4, 32, 7


def simulate(masks: int, ratio: float, seed: int) -> list[tuple[list[int], list[dict[int, int]]]]:
    """Per stage 1-3 of Swin-B: the optimal group size and the cost of every group size, for each mask."""
    spec = preset("swin_b")
    side = units_per_side(IMG, PATCH, UNIT)
    generator = torch.Generator().manual_seed(seed)
    drawn = [random_mask(1, side * side, ratio, generator, batchwise=True) for _ in range(masks)]
    out = []
    for stage, grid in enumerate(spec.grids()[:3]):
        chosen, costs = [], []
        for mask in drawn:
            keep = token_mask(mask, side, UNIT // (PATCH * 2**stage))[0].nonzero().squeeze(1)
            sizes = window_sizes(torch.stack([keep // grid, keep % grid], dim=1), grid, WINDOW)
            best = optimal_grouping(sizes, spec.stages[stage].dim, exhaustive=True)
            chosen.append(best.group_size)
            costs.append(best.costs)
        out.append((chosen, costs))
    return out


def panel(ax: Axes, title: str, chosen: list[int], costs: list[dict[int, int]]) -> Axes:
    """One stage: mean cost +- std against the group size (log-log), and on a twin axis (returned) how many
    masks found each group size optimal; both axes labelled."""
    fits_all = max(min(c) for c in costs)  # from here on every mask's largest window fits
    sizes = range(min(min(c) for c in costs), max(max(c) for c in costs) + 1)
    mean = [statistics.mean(c[g] for c in costs if g in c) for g in sizes]
    std = [statistics.pstdev(c[g] for c in costs if g in c) for g in sizes]
    split = fits_all - sizes.start
    ax.axvspan(sizes.start, fits_all, color="0.9", lw=0, label="$g_s$ below some masks' largest window")
    ax.plot(sizes[:split + 1], mean[:split + 1], color="C0", lw=1, ls="--", label="mean over the masks it holds")
    ax.plot(sizes[split:], mean[split:], color="C0", lw=1.3, label="mean cost")
    ax.fill_between(sizes, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    color="C0", alpha=0.25, lw=0, label="± std over masks")
    if sizes.start <= WINDOW * WINDOW < sizes.stop:
        ax.axvline(WINDOW * WINDOW, color="k", ls=":", lw=1.2, label=f"$g_s$ = {WINDOW}×{WINDOW}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xticks([t for t in (16, 25, 49, 100, 200, 400) if sizes.start <= t < sizes.stop - 8] + [sizes.stop - 1])
    ax.set_xlim(sizes.start - 0.5, sizes.stop - 0.5)
    ax.set_xlabel("group size $g_s$")
    ax.set_ylabel("attention FLOPs (Eq. 8; log scale)")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.set_title(f"{title}, {sizes.stop - 1} visible tokens\noptimal $g_s$ = {statistics.mean(chosen):.1f} ± "
                 f"{statistics.pstdev(chosen):.1f}", fontsize=10)
    twin = ax.twinx()
    twin.hist(chosen, bins=[g - 0.5 for g in range(sizes.start, sizes.stop + 1)], color="C3", alpha=0.5,
              label="masks whose optimum is $g_s$ (right axis)")
    twin.set_ylim(0, 4 * max(chosen.count(g) for g in set(chosen)))  # bars in the lower quarter
    twin.tick_params(axis="y", colors="C3", labelsize=8)
    twin.set_ylabel("masks with this optimum", color="C3")
    return twin


def plot(results: list[tuple[list[int], list[dict[int, int]]]], ratio: float, out: Path) -> None:
    """Fig. 4: one panel per stage, a shared legend, written as PNG and PDF."""
    fig, axes = plt.subplots(1, len(results), figsize=(5.0 * len(results), 4.1))
    windows = [(grid // WINDOW) ** 2 for grid in preset("swin_b").grids()]
    for stage, (ax, (chosen, costs)) in enumerate(zip(axes, results)):
        twin = panel(ax, f"stage {stage + 1}: {windows[stage]} window{'s' * (windows[stage] > 1)}", chosen, costs)
    (lines, labels), (bars, bar_labels) = axes[0].get_legend_handles_labels(), twin.get_legend_handles_labels()
    fig.legend(lines + bars, labels + bar_labels, loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.suptitle(f"GreenMIM optimal grouping on Swin-B (224 px): {len(results[0][0])} batch-wise masks of 32 px "
                 f"units at {ratio:.0%}", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    for suffix in (".png", ".pdf"):
        write_figure_atomic(fig, out.with_suffix(suffix))
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="results/greenmim_groups.png")
    parser.add_argument("--masks", type=int, default=100)
    parser.add_argument("--ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    results = simulate(args.masks, args.ratio, args.seed)
    for stage, (chosen, _) in enumerate(results):
        print(f"stage {stage + 1}: optimal group size {statistics.mean(chosen):.1f} ± {statistics.pstdev(chosen):.1f}"
              f" (min {min(chosen)}, max {max(chosen)})")
    plot(results, args.ratio, Path(args.out))
    print(f"wrote {Path(args.out).with_suffix('.png')} and .pdf")


if __name__ == "__main__":
    main()
