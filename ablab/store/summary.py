"""summary.csv: one row per recipe step with what its runs wrote so far. The schema, its writer (from the run
directories), its readers (raw rows to keep, a typed frame to report), chain roots and seed statistics.

Columns: the measurement (params, GFLOPs, throughput and how it was measured), training results over seeds (top-1
mean, its std -- blank for a single seed, never 0.0 -- top-5, the change of top-1 against the parent, hours, the
seeds, a status), pre-training (HiViT Table 8), the design columns and the paper's numbers as the recipe cites them.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..arch.spec import DESIGN_COLUMNS
from ..io import read_json, write_text_atomic
from .paths import Store
from .state import describe, run_state

if TYPE_CHECKING:
    import pandas as pd

    from ..recipe import Recipe

MEASURE_COLUMNS = [
    "step", "label", "parent", "transform", "params", "params_m", "gflops", "throughput", "throughput_batch",
    "device", "dtype", "compile", "channels_last", "peak_gmacs", "uncounted_ops",
]
TRAIN_COLUMNS = ["top1", "top1_std", "top5", "d_top1", "train_hours", "seeds", "status"]
PRETRAIN_COLUMNS = ["pretrain", "pretrain_hours", "pretrain_epoch_seconds", "pretrain_peak_mb"]  # HiViT Table 8
NUMERIC = ("params", "params_m", "gflops", "throughput", "throughput_batch", "peak_gmacs", "top1", "top1_std", "top5",
           "d_top1", "train_hours", "pretrain_hours", "pretrain_epoch_seconds", "pretrain_peak_mb")
TEXT = ("step", "label", "parent", "transform", "device", "dtype", "compile", "channels_last", "uncounted_ops",
        "seeds", "status", "pretrain")


@dataclass(frozen=True)
class SeedStats:
    """Mean, standard deviation (None for a single seed: unknown, not zero) and number of seeds."""

    mean: float
    std: Optional[float]
    n: int

    def __str__(self) -> str:
        """'49.30 ± 1.20' over several seeds, '49.30' for one."""
        return f"{self.mean:.2f}" if self.std is None or self.n < 2 else f"{self.mean:.2f} ± {self.std:.2f}"


def seed_stats(values: list[float]) -> SeedStats:
    """Mean and population standard deviation over seeds (the deviation of these runs, not an estimate for others);
    std is None for a single seed."""
    std = statistics.pstdev(values) if len(values) > 1 else None
    return SeedStats(statistics.fmean(values), std, len(values))


def chain_roots(steps: list[str], parents: list[str]) -> list[str]:
    """Each step's chain root: follow `parent` until a step without one (or with a parent not listed)."""
    parent = dict(zip(steps, parents))

    def root(step: str) -> str:
        seen = {step}
        while parent.get(step, "") in parent and parent[step] not in seen:
            step = parent[step]
            seen.add(step)
        return step

    return [root(s) for s in steps]


def setting_label(device: str, dtype: str, compile: str = "none", channels_last: object = False) -> str:
    """How a throughput figure was measured, in words, e.g. 'NVIDIA H100 80GB HBM3, fp16, channels_last'
    ('' for an unmeasured step): figures with different labels come from different machines or settings."""
    if not device:
        return ""
    parts = [device, dtype or "dtype not recorded"]
    if compile and compile != "none":
        parts.append(f"compiled ({compile})")
    if str(channels_last) == "True":
        parts.append("channels_last")
    return ", ".join(parts)


# ---- reading -------------------------------------------------------------------------------------------------


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    """The rows of an existing summary.csv by step, as written (strings), or {} when there is none."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["step"]: row for row in csv.DictReader(f)}


def read_summary(path: Path) -> pd.DataFrame:
    """summary.csv as a typed frame: numbers as floats (NaN where blank), text as str ('' where absent), paper
    columns numeric, plus `root` (each step's chain root) and `setting` (how its throughput was measured).
    Columns an older file lacks are added empty, so every reader sees one schema. ValueError for a file that is
    not a summary."""
    import pandas as pd

    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "step" not in df:
        raise ValueError(f"{path}: no 'step' column")
    for col in TEXT:
        df[col] = df[col].astype(str) if col in df else ""
    for col in list(NUMERIC) + [c for c in df if c.startswith("paper_")]:
        df[col] = pd.to_numeric(df[col], errors="coerce") if col in df else float("nan")
    df["root"] = chain_roots(list(df["step"]), list(df["parent"]))
    df["setting"] = [setting_label(*values) for values in
                     zip(df["device"], df["dtype"], df["compile"], df["channels_last"])]
    return df


# ---- writing -------------------------------------------------------------------------------------------------


def write_summary(recipe: Recipe, profile: str, store: Store) -> Path:
    """summary.csv for one recipe and profile from its run directories, one row per step in recipe order, with a
    status (missing, measured, done, incomplete with the epoch reached, failed with the reason).

    What no run directory on disk speaks for is kept from the previous summary.csv: a fresh clone holds the
    committed summaries but no run data, and measuring or running some steps there must not erase the rest."""
    paper_cols = sorted({f"paper_{k}" for s in recipe.steps for k in s.paper})
    path = store.summary(recipe.name, profile)
    previous = read_rows(path)
    rows = []
    for step in recipe.steps:
        out, before = store.step_dir(recipe.name, profile, step.id), previous.get(step.id, {})
        if (out / "metrics.json").is_file():
            m = read_json(out / "metrics.json")
            row: dict[str, Any] = {c: m.get(c, "") for c in MEASURE_COLUMNS + list(DESIGN_COLUMNS)}
            row["uncounted_ops"] = " ".join(sorted(m.get("uncounted_ops", {})))
            row.update(_seed_summary(store, recipe.name, profile, step.id))
            if row["status"] == "measured" and before.get("status") not in (None, "missing", "measured"):
                row.update({c: before.get(c, "") for c in TRAIN_COLUMNS + PRETRAIN_COLUMNS})  # trained elsewhere
        elif before and not out.is_dir():
            row = dict(before)
        else:
            row = {"step": step.id, "label": step.label, "parent": step.parent or "",
                   "transform": step.transform or "", "status": "missing"}
        row.update({f"paper_{k}": v for k, v in step.paper.items()})
        rows.append(row)
    top1 = {row["step"]: _number(row.get("top1")) for row in rows}
    for row in rows:
        mine, parent = top1[row["step"]], top1.get(row["parent"])
        row["d_top1"] = round(mine - parent, 3) if mine is not None and parent is not None else ""
    return write_rows(path, rows, paper_cols)


def columns(rows: list[dict[str, Any]], paper: list[str]) -> list[str]:
    """The schema's columns for `rows`: pre-training columns only when a row pre-trained, then `paper` columns."""
    pretrain = PRETRAIN_COLUMNS if any(row.get("pretrain") for row in rows) else []
    return MEASURE_COLUMNS + TRAIN_COLUMNS + pretrain + list(DESIGN_COLUMNS) + paper


def write_rows(path: Path, rows: list[dict[str, Any]], paper: Optional[list[str]] = None) -> Path:
    """Write `rows` as summary.csv (atomically) in the schema's columns, blank where a row has no value; every
    paper_* key of a row gets a column. ValueError naming a column the schema does not have."""
    paper = paper if paper is not None else sorted({k for row in rows for k in row if k.startswith("paper_")})
    fields = columns(rows, paper)
    unknown = sorted({k for row in rows for k in row} - set(fields) - set(PRETRAIN_COLUMNS))
    if unknown:
        raise ValueError(f"summary.csv has no column {', '.join(unknown)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path


def _number(value: Any) -> Optional[float]:
    """A cell as a number, or None when blank or not numeric."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _seed_summary(store: Store, recipe: str, profile: str, step: str) -> dict[str, Any]:
    """top-1 mean / std, top-5 mean, train hours and status over a step's seed runs; a run that is not done
    (pending, running, stopped or failed) is named in the status, never averaged in."""
    dirs = {seed: store.seed_dir(recipe, profile, step, seed) for seed in store.seeds_on_disk(recipe, profile, step)}
    states = {d: run_state(d) for d in dirs.values()}
    started = [d for d, s in states.items() if s.state != "not started"]
    if not started:
        return {"status": "measured"}
    done = [read_json(d / "metrics.json") for d in started if states[d].state == "done"]
    out: dict[str, Any] = {"seeds": " ".join(str(seed) for seed, d in dirs.items() if d in started)}
    if done:
        top1 = seed_stats([r["top1"] for r in done])
        out.update(top1=round(top1.mean, 3), top1_std="" if top1.std is None else round(top1.std, 3),
                   top5=round(statistics.fmean(r["top5"] for r in done), 3),
                   train_hours=round(statistics.fmean(r["train_hours"] for r in done), 5))
        out.update(_pretrain_summary(done))
    out["status"] = "; ".join(describe(d, states[d]) for d in started if states[d].state != "done") or "done"
    return out


def _pretrain_summary(done: list[dict[str, Any]]) -> dict[str, Any]:
    """Pre-training method, hours, seconds per epoch and peak memory (means over the finished seed runs)."""
    runs = [r for r in done if r.get("pretrain_method")]
    if not runs:
        return {}

    def mean(name: str, digits: int) -> float:
        return round(statistics.fmean(r[name] for r in runs), digits)

    return {"pretrain": " ".join(sorted({r["pretrain_method"] for r in runs})),
            "pretrain_hours": mean("pretrain_hours", 5), "pretrain_epoch_seconds": mean("pretrain_epoch_seconds", 2),
            "pretrain_peak_mb": mean("pretrain_peak_mb", 1)}
