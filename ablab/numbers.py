"""Numbers as ablab prints them: significant digits rather than fixed decimals, so 0.00649 GFLOPs does not read
0.01 and 8675 im/s does not read 8675.31."""

from __future__ import annotations

import math


def significant(value: float, digits: int = 3) -> str:
    """`value` to `digits` significant digits without exponent, keeping every integer digit and trailing zeros:
    0.006489936 -> '0.00649', 0.349882 -> '0.350', 86.57 -> '86.6', 8675.3 -> '8675', -0.0342 -> '-0.0342'."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    text = f"{value:.{decimals}f}"
    if len(text.lstrip("-").replace(".", "").lstrip("0")) > digits and decimals > 0:  # 0.9996 rounds up to 1.000
        text = f"{value:.{decimals - 1}f}"
    return text
