"""Timed rounds of a call and their spread: every speed figure is the median of several rounds, with its quartiles.

A single timed round says nothing about how far the next one would land; several rounds give a median that one
slow round cannot move, and an interquartile range that says how steady the machine was while they ran.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable

from ..numbers import significant


@dataclass(frozen=True)
class Spread:
    """A rate over `n` timed rounds: the median and the lower / upper quartiles (all three equal for n = 1)."""

    median: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        """Median and quartiles of `values` (inclusive quartiles: they never leave the range of the values)."""
        if not values:
            raise ValueError("a spread needs at least one value")
        if len(values) == 1:
            return cls(values[0], values[0], values[0], 1)
        lo, median, hi = statistics.quantiles(values, n=4, method="inclusive")
        return cls(median, lo, hi, len(values))

    def scaled(self, factor: float) -> Spread:
        """The spread of every value times `factor` (> 0): seconds per call into images/s and back."""
        return Spread(self.median * factor, self.lo * factor, self.hi * factor, self.n)

    def text(self, unit: str) -> str:
        """'4.35 im/s (quartiles 4.20, 4.51; 5 rounds)': the median with its interquartile range and n."""
        if self.n == 1:
            return f"{significant(self.median)} {unit} (1 round)"
        return f"{significant(self.median)} {unit} (quartiles {significant(self.lo)}, {significant(self.hi)}; {self.n} rounds)"


def timed_rounds(fn: Callable[[], object], sync: Callable[[], None], warmup: int, min_time: float,
                 rounds: int) -> list[float]:
    """Seconds per call of `fn` in each of `rounds` timed rounds, after `warmup` untimed calls. Calls run back to
    back between two synchronisations; the first round doubles its calls (the shorter rounds warm up further) until
    it lasts `min_time`, and the others repeat its number of calls."""
    for _ in range(warmup):
        fn()
    calls, out = 1, []
    while len(out) < rounds:
        sync()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        elapsed = time.perf_counter() - start
        if out or elapsed >= min_time:
            out.append(elapsed / calls)
        else:
            calls = max(2 * calls, math.ceil(1.2 * calls * min_time / max(elapsed, 1e-6)))
    return out
