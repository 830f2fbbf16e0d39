"""How far a measured throughput can be trusted and compared, from a summary frame: the machine's load while it
was measured, the spread of its timed rounds, and which steps may be divided by their chain's root.

Newer summaries carry `load` ('idle', or 'busy: ...') and `throughput_lo` / `throughput_hi` (the spread of the
timed rounds); older ones lack them, which reads as idle with an unknown spread."""

from __future__ import annotations

import math

import pandas as pd

from ..cost.efficiency import hardware_efficiency


def idle(df: pd.DataFrame) -> pd.Series:
    """Per row: measured on an idle machine, or before the load was recorded (no `load` value)."""
    if "load" not in df:
        return pd.Series(True, index=df.index)
    return df["load"].fillna("").astype(str).str.strip().isin(["", "idle"])


def spread(df: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(low, high) throughput of each row's timed rounds; NaN where the summary does not record them."""
    def column(name: str) -> pd.Series:
        if name not in df:
            return pd.Series(math.nan, index=df.index)
        return pd.to_numeric(df[name], errors="coerce")

    return column("throughput_lo"), column("throughput_hi")


def plausible(df: pd.DataFrame) -> pd.Series:
    """Per row: its throughput is within what the machine can do (at most 100% of the matmul peak measured with
    it, `ablab.cost.efficiency`), or there is no peak to tell; above it, throughput and peak were not measured
    alike and the figure is invalid."""
    share = pd.Series([hardware_efficiency(g, t, p) for g, t, p in zip(df["gflops"], df["throughput"],
                                                                       df["peak_gmacs"])], index=df.index)
    return ~(share > 1.0)


def at_root(df: pd.DataFrame, values: pd.Series) -> pd.Series:
    """Per row: `values` (aligned with `df`) at the row's chain root; NaN where the root has no row."""
    return df["root"].map(pd.Series(values.to_numpy(), index=df["step"]))


def together(df: pd.DataFrame) -> pd.Series:
    """Per row: timed together with its chain root (the same `timed_at`: rounds interleaved), or either figure
    predates `timed_at` (unknown, taken as together). Timed apart, a ratio carries the machine's drift between the
    two timings (up to 1.4x on a 2-core VM: docs/measurement.md)."""
    if "timed_at" not in df:
        return pd.Series(True, index=df.index)
    at = df["timed_at"].fillna("").astype(str)
    root_at = at_root(df, at).fillna("")
    return (at == root_at) | (at == "") | (root_at == "")


def alike_root(df: pd.DataFrame) -> pd.Series:
    """Per row: its throughput may be divided by its chain root's, because both were measured in the same setting
    (device, precision, machine), timed together (`together`), neither on a busy machine and both plausibly
    (`plausible`); any other ratio would measure the machine, not the model."""
    trusted = idle(df) & plausible(df)
    root_trusted = at_root(df, trusted)
    return (df["setting"] == at_root(df, df["setting"])) & together(df) & trusted & root_trusted.fillna(False).astype(bool)


def ratio_to_root(df: pd.DataFrame, speed: pd.Series, alike: bool = True) -> pd.Series:
    """Each row's `speed` as a multiple of its chain root's; NaN where `alike` and the two were not measured alike
    (see `alike_root`). `alike` False is for the paper's own numbers, measured by the paper on one machine."""
    ratio = speed / at_root(df, speed)
    return ratio.where(alike_root(df)) if alike else ratio
