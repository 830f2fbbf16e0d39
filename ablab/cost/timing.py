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


def calibrate(fn: Callable[[], object], sync: Callable[[], None], warmup: int, min_time: float) -> tuple[int, float]:
    """After `warmup` untimed calls, rounds of calls back to back between two synchronisations, the calls doubled
    (the shorter rounds warm up further) until a round lasts `min_time`: that round's calls and seconds per call."""
    for _ in range(warmup):
        fn()
    calls = 1
    while True:
        elapsed = timed_round(fn, sync, calls) * calls
        if elapsed >= min_time:
            return calls, elapsed / calls
        calls = max(2 * calls, math.ceil(1.2 * calls * min_time / max(elapsed, 1e-6)))


def timed_round(fn: Callable[[], object], sync: Callable[[], None], calls: int) -> float:
    """Seconds per call of `calls` calls of `fn` back to back between two synchronisations."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def timed_rounds(fn: Callable[[], object], sync: Callable[[], None], warmup: int, min_time: float,
                 rounds: int) -> list[float]:
    """Seconds per call of `fn` in each of `rounds` timed rounds: the first is `calibrate`'s round that lasted
    `min_time`, and the others repeat its number of calls."""
    calls, first = calibrate(fn, sync, warmup, min_time)
    return [first] + [timed_round(fn, sync, calls) for _ in range(rounds - 1)]
