"""Numbers as tables and figures print them: significant digits rather than fixed decimals (0.00649 GFLOPs, not
0.01), a real minus sign for display, and the paper's numbers exactly as cited."""

from __future__ import annotations

from typing import Callable

from ..numbers import significant

MINUS = "\u2212"  # the typographic minus sign; the ASCII hyphen-minus stays in CSV files


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


def rate(value: float, grouped: bool = False) -> str:
    """Images/s: whole numbers from 100 up (8675, or 8,675 `grouped` as figure labels print them), else 3
    significant digits (4.69)."""
    return f"{value:{',' if grouped else ''}.0f}" if abs(value) >= 100 else significant(value)


def display_minus(text: str) -> str:
    """A formatted number with its leading hyphen as a real minus sign ('-0.034' -> '−0.034')."""
    return MINUS + text[1:] if text.startswith("-") else text
