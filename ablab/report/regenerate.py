"""`ablab report`: every table and figure under a results directory, rebuilt from the summaries runs wrote."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

import pandas as pd

from .columns import Column
from .figures import write_figures, write_overview_figure
from .sweep import write_sweeps
from .table import to_markdown
from .tables import build_overview, find_summaries, write_table_files, write_tables
from .variance_figure import write_variance_figure


class ReportError(Exception):
    """Nothing to report from: says what was looked for and what to run."""


def regenerate(path: Path, columns: Optional[Sequence[Column]] = None,
               reference: Optional[Path] = None) -> Iterator[str]:
    """Write tables and figures beside each <recipe>/<profile>/summary.csv under `path`, and the cross-recipe
    overview when `path` holds several recipes; yields what it prints. `columns` for every table, else each
    output's default (Markdown and CSV: all informative columns; LaTeX: a compact set). `reference`: a results
    root whose <recipe>/<profile>/summary.csv gives each table a 'reference top-1' column."""
    summaries = find_summaries(path) if path.is_dir() else []
    if not summaries:
        raise ReportError(
            f"no results under {path} (looked for <recipe>/<profile>/summary.csv); run a recipe first, e.g. "
            "`ablab run recipes/vit_to_swin.yaml` (CPU profile: trains every step) or "
            "`ablab run recipes/vit_to_swin.yaml --profile paper --measure-only`")
    readable = []
    for summary in summaries:
        try:
            table = write_tables(summary, columns, reference_summary(summary, reference))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, KeyError) as e:
            yield f"skipped {summary}: not a summary written by `ablab run` ({type(e).__name__}: {e})\n"
            continue
        readable.append(summary)
        written = [summary.parent / f"table.{ext}" for ext in ("md", "csv", "tex")] + write_figures(summary)
        variance = summary.parent / "attention_variance.csv"
        if variance.is_file():
            written += write_variance_figure(variance)
        yield to_markdown(table, columns)
        yield f"wrote {', '.join(str(p) for p in written)}\n"
    for table, paths in write_sweeps(readable):
        yield to_markdown(table)
        yield f"wrote {', '.join(str(p) for p in paths)}\n"
    if len({s.parent.parent for s in readable}) > 1:
        yield from _overview(readable, path, columns)


def reference_summary(summary: Path, reference: Optional[Path]) -> Optional[Path]:
    """The reference root's summary of the same recipe and profile as `summary`, when it has one and it is not
    `summary` itself."""
    if reference is None:
        return None
    other = reference / summary.parent.parent.name / summary.parent.name / summary.name
    return other if other.is_file() and other.resolve() != summary.resolve() else None


def _overview(summaries: list[Path], root: Path, columns: Optional[Sequence[Column]]) -> Iterator[str]:
    """The cross-recipe table per profile and the accuracy-vs-throughput overview figure."""
    by_profile = itertools.groupby(sorted(summaries, key=lambda s: s.parent.name), key=lambda s: s.parent.name)
    for profile, group in by_profile:
        table = build_overview(list(group), profile)
        write_table_files(root / f"overview_{profile}", table, columns)
        yield to_markdown(table, columns)
        yield f"wrote {root}/overview_{profile}.{{md,csv,tex}}\n"
    figures = write_overview_figure(summaries, root)
    if figures:
        yield f"wrote {', '.join(str(p) for p in figures)}\n"
