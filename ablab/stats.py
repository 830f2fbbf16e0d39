"""Statistics of a step: its mean over seeds and the paired difference to its parent, with how sure we are of it.

Seed k of a step is paired with seed k of its parent (same data order and initialisation seed), so a step's
difference is estimated from the per-seed differences d_k = top1(step, k) - top1(parent, k):

- mean and sample standard deviation (n - 1) of the d_k, n the number of seeds both finished;
- a 95% confidence interval from Student's t with n - 1 degrees of freedom: mean +- t(0.975, n-1) * sd / sqrt(n);
- a verdict: `better` when the interval lies above 0, `worse` when below, `not resolved` when it holds 0, and
  `n = 1` when a single pair gives no interval at all;
- the seeds a paired two-sided t-test at alpha 0.05 would need to resolve a difference of the measured size with
  80% power (noncentral t), given the measured spread.
A single seed has no standard deviation: it is None (blank), never 0.0. scipy is imported when needed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional

CONFIDENCE = 0.95
POWER = 0.80
MAX_SEEDS = 1000  # `seeds_needed` above this reads as "more than"


@dataclass(frozen=True)
class SeedStats:
    """Mean, sample standard deviation (None for a single seed: unknown, not zero) and number of seeds."""

    mean: float
    std: Optional[float]
    n: int

    def __str__(self) -> str:
        """'49.30 ± 1.20' over several seeds, '49.30' for one."""
        return f"{self.mean:.2f}" if self.std is None or self.n < 2 else f"{self.mean:.2f} ± {self.std:.2f}"


def seed_stats(values: list[float]) -> SeedStats:
    """Mean and sample standard deviation (n - 1) over seeds; std is None for a single seed."""
    return SeedStats(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass(frozen=True)
class Delta:
    """A step's paired difference to its parent over n common seeds."""

    mean: float
    n: int
    sd: Optional[float] = None  # of the per-seed differences; None for n = 1
    lo: Optional[float] = None  # 95% confidence interval; None for n = 1
    hi: Optional[float] = None
    seeds_needed: Optional[int] = None  # for 80% power at this effect size; None when it cannot be said

    @property
    def verdict(self) -> str:
        if self.lo is None:
            return "n = 1"
        if self.lo > 0:
            return "better"
        if self.hi < 0:
            return "worse"
        return "not resolved"

    @property
    def half_width(self) -> Optional[float]:
        return None if self.lo is None else (self.hi - self.lo) / 2

    def __str__(self) -> str:
        """'+1.20 [-0.40, +2.80]' (or '+1.20' for one pair)."""
        if self.lo is None:
            return signed(self.mean)
        return f"{signed(self.mean)} [{signed(self.lo)}, {signed(self.hi)}]"


def signed(x: float, digits: int = 2) -> str:
    """'+1.20', '−0.40' (a real minus sign), '0.00'."""
    text = f"{x:+.{digits}f}"
    return text[1:] if float(text) == 0 else text.replace("-", "\u2212")


def paired_delta(step: dict[int, float], parent: dict[int, float]) -> Optional[Delta]:
    """The paired difference of `step` to `parent` over the seeds both have (seed -> value); None if none."""
    seeds = sorted(set(step) & set(parent))
    diffs = [step[s] - parent[s] for s in seeds]
    if not diffs:
        return None
    mean = statistics.fmean(diffs)
    if len(diffs) == 1:
        return Delta(mean, 1)
    from scipy import stats

    n, sd = len(diffs), statistics.stdev(diffs)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)
    return Delta(mean, n, sd, mean - half, mean + half, seeds_needed(mean, sd))


def power(effect: float, sd: float, n: int) -> float:
    """Power of a two-sided paired t-test at 1 - CONFIDENCE to find a true mean difference `effect` with per-seed
    differences of standard deviation `sd` over `n` pairs."""
    from scipy import stats

    if n < 2:
        return 0.0
    df, crit = n - 1, stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)
    nc = abs(effect) / sd * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(effect: float, sd: float) -> Optional[int]:
    """The fewest pairs (at least 2) giving 80% power for `effect` at spread `sd`; MAX_SEEDS + 1 when even that is
    too few (or the effect is 0), 2 when the differences do not vary at all."""
    if sd == 0:
        return 2 if effect != 0 else None
    if effect == 0:
        return MAX_SEEDS + 1
    lo, hi = 2, 2
    while power(effect, sd, hi) < POWER:
        if hi > MAX_SEEDS:
            return MAX_SEEDS + 1
        lo, hi = hi, hi * 2
    while lo < hi:  # power grows with n: the first n that reaches it
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if power(effect, sd, mid) < POWER else (lo, mid)
    return lo
