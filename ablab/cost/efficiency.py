"""Hardware efficiency: a model's multiply-add rate as a share of the machine's dense matmul peak, and whether that
share is a data point at all.

A model cannot outrun the square matmuls of the machine it runs on, so a share above 1 says the throughput and the
peak were not measured alike (one under load, one idle; on different machines; a stale cached peak): neither figure
can be trusted, and the share is not plotted or compared.
"""

from __future__ import annotations

import math
from typing import Optional


def hardware_efficiency(gflops: Optional[float], images_per_s: Optional[float],
                        peak_gmacs: Optional[float]) -> float:
    """GMAC per image x images/s / peak GMAC/s; NaN where any of them is missing or not positive."""
    values = (gflops, images_per_s, peak_gmacs)
    if any(v is None or not v > 0 for v in values):  # NaN compares False: unknown, not zero
        return math.nan
    return gflops * images_per_s / peak_gmacs


def efficiency_valid(gflops: Optional[float], images_per_s: Optional[float], peak_gmacs: Optional[float]) -> bool:
    """Whether a row's efficiency is a data point: known, and at most the peak measured alike (share <= 1)."""
    return hardware_efficiency(gflops, images_per_s, peak_gmacs) <= 1.0
