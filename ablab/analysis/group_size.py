"""GreenMIM Fig. 4: the attention cost (Eq. 8) of every group size at each windowed stage under random masks.

For every stage with (shifted) window attention over several windows, batch-wise masks hide `ratio` of the mask
units; the visible tokens of each window are packed by the optimal grouping (Alg. 1) at every group size, so the
cheapest group size and the whole cost curve are known per mask. `group_size_figure` draws the mean cost +- std
against the group size (log-log) per stage, with how many masks found each size optimal. A group size below a
mask's largest window cannot hold it: left of the grey band's edge the mean is over the masks it holds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import torch  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..arch.geometry import effective_window  # noqa: E402
from ..arch.kinds.base import StageContext  # noqa: E402
from ..arch.spec import ArchSpec  # noqa: E402
from ..mim.group_attention import window_sizes  # noqa: E402
from ..mim.grouping import optimal_grouping  # noqa: E402
from ..mim.masking import random_mask, token_mask  # noqa: E402
from ..settings import units_per_side  # noqa: E402


@dataclass(frozen=True)
class StageGroups:
    """One stage's sweep: where it sits (0-based index, grid side, effective window, window count) and, per mask,
    the optimal group size and the Eq. 8 cost of every group size."""

    stage: int
    grid: int
    window: int
    windows: int
    chosen: tuple[int, ...]
    costs: tuple[dict[int, int], ...]


def _windowed(spec: ArchSpec) -> list[tuple[StageContext, int]]:
    """The stages with window attention over more than one window, each with its effective window."""
    out = []
    for ctx in spec.contexts():
        if ctx.attention.name == "window" and ctx.side:
            window = effective_window(ctx.side, ctx.stage.window)
            if window < ctx.side:
                out.append((ctx, window))
    return out


def simulate(spec: ArchSpec, mask_unit: int, masks: int = 100, ratio: float = 0.75, seed: int = 0
             ) -> list[StageGroups]:
    """Per windowed stage of `spec`: the exhaustive optimal grouping of the visible tokens per window under
    `masks` batch-wise random masks of `mask_unit` px units at `ratio`, all drawn from one generator at `seed`."""
    if masks < 1:
        raise ValueError(f"at least one mask is needed, got {masks}")
    stages = _windowed(spec)
    if not stages:
        raise ValueError(f"{spec.name or 'the spec'} has no window attention stage with more than one window")
    side = units_per_side(spec.img_size, spec.patch_size, mask_unit)
    for ctx, _ in stages:
        if ctx.side % side:
            raise ValueError(f"mask unit {mask_unit} px is not a whole number of stage {ctx.index + 1}'s "
                             f"{spec.img_size / ctx.side:g} px tokens ({ctx.side}x{ctx.side} grid)")
    generator = torch.Generator().manual_seed(seed)
    drawn = [random_mask(1, side * side, ratio, generator, batchwise=True) for _ in range(masks)]
    out = []
    for ctx, window in stages:
        grid, chosen, costs = ctx.side, [], []
        for mask in drawn:
            keep = token_mask(mask, side, grid // side)[0].nonzero().squeeze(1)
            sizes = window_sizes(torch.stack([keep // grid, keep % grid], dim=1), grid, window)
            best = optimal_grouping(sizes, ctx.stage.dim, exhaustive=True)
            chosen.append(best.group_size)
            costs.append(best.costs)
        out.append(StageGroups(stage=ctx.index, grid=grid, window=window, windows=(grid // window) ** 2,
                               chosen=tuple(chosen), costs=tuple(costs)))
    return out


def _panel(ax: Axes, result: StageGroups) -> Axes:
    """One stage: mean cost +- std against the group size (log-log), and on a twin axis (returned) how many
    masks found each group size optimal; both axes labelled."""
    chosen, costs, square = list(result.chosen), result.costs, result.window * result.window
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
    if sizes.start <= square < sizes.stop:
        ax.axvline(square, color="k", ls=":", lw=1.2, label=f"$g_s$ = {result.window}×{result.window}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    marks = sorted({16, 25, square, 100, 200, 400})
    ax.set_xticks([t for t in marks if sizes.start <= t < sizes.stop - 8] + [sizes.stop - 1])
    ax.set_xlim(sizes.start - 0.5, sizes.stop - 0.5)
    ax.set_xlabel("group size $g_s$")
    ax.set_ylabel("attention FLOPs (Eq. 8; log scale)")
    ax.grid(alpha=0.3, which="both", lw=0.5)
    ax.set_title(f"stage {result.stage + 1}: {result.windows} window{'s' * (result.windows > 1)}, "
                 f"{sizes.stop - 1} visible tokens\noptimal $g_s$ = {statistics.mean(chosen):.1f} ± "
                 f"{statistics.pstdev(chosen):.1f}", fontsize=10)
    twin = ax.twinx()
    twin.hist(chosen, bins=[g - 0.5 for g in range(sizes.start, sizes.stop + 1)], color="C3", alpha=0.5,
              label="masks whose optimum is $g_s$ (right axis)")
    twin.set_ylim(0, 4 * max(chosen.count(g) for g in set(chosen)))  # bars in the lower quarter
    twin.tick_params(axis="y", colors="C3", labelsize=8)
    twin.set_ylabel("masks with this optimum", color="C3")
    return twin


def group_size_figure(results: list[StageGroups], title: str) -> Figure:
    """Fig. 4: one panel per simulated stage under `title`, with one legend for every panel's entries."""
    fig, axes = plt.subplots(1, len(results), squeeze=False, figsize=(5.0 * len(results), 4.1))
    twins = [_panel(ax, result) for ax, result in zip(axes[0], results)]
    entries = {}  # label -> handle, the first panel's first; the window line may fall in some panels only
    for ax in [*axes[0], *twins]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
