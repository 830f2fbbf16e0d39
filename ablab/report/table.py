"""A built table and its plain-text outputs: which columns show, each number written as its column writes it,
Markdown with real minus signs, CSV as written there."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .columns import BY_NAME, Column, column_of, pick
from .numbers import display_minus


@dataclass(frozen=True)
class Table:
    """A table's every column (numbers as numbers), its caption, and the columns shown only when asked for,
    because here they say nothing (a design column that never changes, top-5 at its ceiling)."""

    title: str
    frame: pd.DataFrame
    caption: str
    hidden: tuple[str, ...] = ()

    def headers(self, columns: Optional[Sequence[Column]] = None, default: Sequence[str] = ()) -> list[str]:
        """The headers to show: `columns` when given (hidden ones too), else the `default` names' (every column
        when empty), never the hidden ones."""
        if columns is not None:
            return pick(list(self.frame.columns), list(columns))
        shown = [h for h in self.frame.columns if h not in self.hidden]
        return pick(shown, [BY_NAME[n] for n in default]) if default else shown

    def cells(self, headers: Sequence[str]) -> list[list[str]]:
        """The rows as text: each number written the way its column writes numbers, '' where there is none."""
        writers = [column_of(h) for h in headers]
        return [[_cell(value, writer) for value, writer in zip(row, writers)]
                for row in self.frame[list(headers)].itertuples(index=False)]


def _cell(value: object, column: Optional[Column]) -> str:
    """One cell as text: '' for a missing value, a number by its column's writer, anything else as it is."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if column is not None and column.number is not None and isinstance(value, (int, float, np.number)):
        return column.number(float(value))
    return str(value)


def to_markdown(table: Table, columns: Optional[Sequence[Column]] = None) -> str:
    """A Markdown table (every informative column unless `columns` says which), numbers right-aligned with a real
    minus sign, then the caption."""
    headers = table.headers(columns)
    right = [column_of(h) is not None and column_of(h).right for h in headers]
    rows = [[display_minus(c) if r else c for c, r in zip(row, right)] for row in table.cells(headers)]
    body = pd.DataFrame(rows, columns=headers).to_markdown(
        index=False, disable_numparse=True, colalign=["right" if r else "left" for r in right])
    return f"### {table.title}\n\n{body}\n\n{table.caption}\n"


def to_csv(table: Table, columns: Optional[Sequence[Column]] = None) -> str:
    """The Markdown table's cells as CSV (numbers as written there, ASCII minus)."""
    headers = table.headers(columns)
    return pd.DataFrame(table.cells(headers), columns=headers).to_csv(index=False)
