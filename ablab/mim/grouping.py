"""GreenMIM's optimal grouping (Section 3.3, Alg. 1): pack uneven windows of visible tokens into equal groups.

A window attention layer on masked features has windows with different numbers of visible tokens. GreenMIM
packs whole windows into groups of `group_size` slots (padding the rest) and attends within each group under a
block-diagonal mask. Which group size is cheapest depends on the mask, so Alg. 1 sweeps every size from the
largest window to all visible tokens, packs the windows by repeated subset-sum knapsacks (Eq. 7) and keeps the
size whose attention FLOPs (Eq. 8) are smallest. Plain Python: it runs once per batch on a few dozen integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional


def knapsack(capacity: int, sizes: list[int]) -> list[int]:
    """Indices (ascending) of a subset of `sizes` with the largest total <= capacity (Eq. 7).

    Subset-sum DP over a bitset of reachable totals (bit t set: some subset of the items so far sums to t).
    Ties between subsets of the same total go to the one whose largest index is smallest, then the next
    largest, and so on: the subset with the smallest sum of 2^index.
    """
    limit = (1 << (capacity + 1)) - 1
    reachable = [1]  # reachable[i]: totals reachable with items 0..i-1
    for size in sizes:
        reachable.append((reachable[-1] | (reachable[-1] << size)) & limit)
    target = reachable[-1].bit_length() - 1
    chosen = []
    for i in range(len(sizes) - 1, -1, -1):
        if not (reachable[i] >> target) & 1:  # target needs item i
            chosen.append(i)
            target -= sizes[i]
    return chosen[::-1]


def partition(group_size: int, sizes: list[int]) -> list[list[int]]:
    """Alg. 1's inner loop: knapsack the remaining windows into one group at a time until none remain.

    Returns groups of indices into `sizes`; windows of size 0 hold no tokens and are left out.
    """
    if any(s > group_size for s in sizes):
        raise ValueError(f"group size {group_size} is smaller than the largest window ({max(sizes)})")
    remaining = [i for i, s in enumerate(sizes) if s > 0]
    groups = []
    while remaining:
        picked = knapsack(group_size, [sizes[i] for i in remaining])
        groups.append([remaining[j] for j in picked])
        taken = set(picked)
        remaining = [i for j, i in enumerate(remaining) if j not in taken]
    return groups


def cost(group_size: int, n_groups: int, channels: int) -> int:
    """Eq. 8: FLOPs of multi-head attention on `n_groups` groups of `group_size` tokens of width `channels`."""
    return n_groups * (4 * group_size * channels**2 + 2 * group_size**2 * channels)


@dataclass(frozen=True)
class Grouping:
    """The cheapest packing found: its group size, groups (indices into the window sizes) and Eq. 8 cost,
    and the cost of every group size evaluated (all candidates when exhaustive: GreenMIM Fig. 4's sweep)."""

    group_size: int
    groups: list[list[int]]
    cost: int
    costs: dict[int, int] = field(repr=False)


def optimal_grouping(sizes: list[int], channels: int, candidates: Optional[Iterable[int]] = None,
                     exhaustive: bool = False) -> Grouping:
    """Alg. 1: the group size among `candidates` (default: max(sizes) .. sum(sizes)) whose packing costs least.

    Candidates smaller than the largest window cannot hold it and are skipped; the first of equal costs wins.
    Any packing of T tokens into groups of gs costs at least T * (4C^2 + 2 gs C) (T / gs groups or more), which
    grows with gs, so unless `exhaustive` the sweep stops once that bound reaches the best cost found.
    """
    largest, total = max(sizes, default=0), sum(sizes)
    if total == 0:
        raise ValueError("no visible tokens to group")
    sweep = range(largest, total + 1) if candidates is None else sorted(g for g in candidates if g >= largest)
    best: Optional[Grouping] = None
    costs: dict[int, int] = {}
    for gs in sweep:
        if best is not None and not exhaustive and total * (4 * channels**2 + 2 * gs * channels) >= best.cost:
            break
        groups = partition(gs, sizes)
        costs[gs] = cost(gs, len(groups), channels)
        if best is None or costs[gs] < best.cost:
            best = Grouping(gs, groups, costs[gs], costs)
    if best is None:
        raise ValueError(f"no candidate group size holds the largest window ({largest} tokens)")
    return best
