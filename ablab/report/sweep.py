"""Sweep tables: the variants of one profile (`ablab run --sweep`, `--set`) side by side, grouped by step, each
variant's top-1 over seeds and its paired change against the first variant of its step (seed k with seed k)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..io import write_text_atomic
from ..stats import paired_delta
from ..store.summary import SET_PREFIX, VARIANT_COLUMN, read_summary, row_top1, top1_by_seed
from .table import Table, to_csv, to_markdown
from .tables import header


def variant_groups(summaries: list[Path]) -> Iterator[tuple[Path, str, list[Path]]]:
    """(recipe directory, profile, its variants' summaries) for every profile that has variants among `summaries`."""
    def key(summary: Path) -> tuple[str, str]:
        df = pd.read_csv(summary, dtype=str, keep_default_na=False, usecols=lambda c: c == VARIANT_COLUMN)
        return str(summary.parent.parent), (df[VARIANT_COLUMN].iloc[0] if len(df) and VARIANT_COLUMN in df else "")

    keyed = sorted((key(s), s) for s in summaries)
    for (recipe_dir, profile), group in itertools.groupby(keyed, key=lambda pair: pair[0]):
        if profile:
            yield Path(recipe_dir), profile, [s for _, s in group]


def _order(text: str) -> tuple[int, float, str]:
    """A `set.` cell's place in the order: numbers by value, before any text."""
    number = pd.to_numeric(pd.Series([text]), errors="coerce").iloc[0]
    return (1, 0.0, text) if pd.isna(number) else (0, float(number), "")


def build_sweep(profile: str, summaries: list[Path]) -> Table:
    """One row per (step, variant) of the steps some variant ran, steps in recipe order, variants ordered by their
    values; a column per field whose value differs between variants, fields set alike named in the caption."""
    frames = [read_summary(s).assign(variant=s.parent.name) for s in summaries]
    df = pd.concat(frames, ignore_index=True)
    fields = sorted({c for f in frames for c in f if c.startswith(SET_PREFIX)})
    swept = [c for c in fields if df[c].nunique(dropna=False) > 1]
    fixed = [f"{c[len(SET_PREFIX):]}={df[c].iloc[0]}" for c in fields if c not in swept]
    ran = set(df.loc[df["status"] != "missing", "step"])
    df = df[df["step"].isin(ran)]  # steps none of the variants ran (`--steps`) are left out
    order = {step: i for i, step in enumerate(frames[0]["step"])}
    df["order"] = df["step"].map(lambda s: order.get(s, len(order)))
    df = df.sort_values(["order", *swept], key=lambda col: col.map(_order) if col.name in swept else col,
                        kind="stable", ignore_index=True)
    out = pd.DataFrame({header("step"): df["step"], header("model"): df["label"]})
    for c in swept:
        out[c[len(SET_PREFIX):]] = df[c]
    out[header("top1")] = [row_top1(df, i) for i in df.index]
    out[header("n")] = df["top1_n"]
    deltas = []
    for i in df.index:
        first = df.index[df["step"] == df.at[i, "step"]][0]
        delta = None if i == first else paired_delta(top1_by_seed(df.loc[i]), top1_by_seed(df.loc[first]))
        deltas.append(delta)
    out["Δ vs first [95% CI]"] = ["" if d is None else str(d) for d in deltas]
    out[header("verdict")] = ["" if d is None else d.verdict for d in deltas]
    out[header("status")] = df["status"]
    caption = (f"Variants of profile '{profile}' (`ablab run --sweep / --set`): top-1 mean ± std over n seeds; Δ the "
               "mean paired change (seed k with seed k) against the step's first row, with its 95% Student-t interval"
               + (f"; set in every row: {', '.join(fixed)}" if fixed else "") + ".")
    return Table(f"{summaries[0].parent.parent.name}: sweep of {profile}", out, caption)


def write_sweeps(summaries: list[Path]) -> Iterator[tuple[Table, list[Path]]]:
    """Write <recipe>/sweep_<profile>.md and .csv for every profile with variants among `summaries`."""
    for recipe_dir, profile, group in variant_groups(summaries):
        table = build_sweep(profile, group)
        paths = [recipe_dir / f"sweep_{profile}.{ext}" for ext in ("md", "csv")]
        write_text_atomic(paths[0], to_markdown(table))
        write_text_atomic(paths[1], to_csv(table))
        yield table, paths
