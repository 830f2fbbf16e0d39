"""Numbers as tables and figures print them: significant digits rather than fixed decimals (0.00649 GFLOPs, not
0.01), a real minus sign for display, and the paper's numbers exactly as cited."""

from __future__ import annotations

import math
from typing import Callable

MINUS = "\u2212"  # the typographic minus sign; the ASCII hyphen-minus stays in CSV files


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


def fixed(decimals: int) -> Callable[[float], str]:
    """A formatter with `decimals` fixed decimals, for ratios and percentages whose scale is known (1.04)."""

    def format_fixed(value: float) -> str:
        return f"{value:.{decimals}f}"

    return format_fixed


def cited(value: float) -> str:
    """A number as the paper printed it (the recipe's value, shortest form): 86.6, 292, 0.5."""
    return f"{value:g}"


def integer(value: float) -> str:
    """A count (seeds, MB): 4."""
    return f"{value:.0f}"


def rate(value: float) -> str:
    """Images/s: whole numbers from 100 up (8675), else 3 significant digits (4.69)."""
    return f"{value:.0f}" if abs(value) >= 100 else significant(value)


def display_minus(text: str) -> str:
    """A formatted number with its leading hyphen as a real minus sign ('-0.034' -> '−0.034')."""
    return MINUS + text[1:] if text.startswith("-") else text
