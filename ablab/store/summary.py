"""summary.csv: one row per recipe step with what its runs wrote so far. The schema, its writer (from the run
directories), its readers (raw rows to keep, a typed frame to report) and chain roots.

Columns: the measurement (params, GFLOPs, throughput with its quartiles and rounds, how and on which machine it was
measured, and whether the machine was busy); training results over seeds: top-1 mean, its sample std (blank for a
single seed, never 0.0) and n, every seed's top-1, top-5; the paired change of top-1 against the parent
(`ablab.stats`: mean, 95% interval, n, verdict, seeds needed for 80% power); hours, the seeds, a status;
pre-training (HiViT Table 8); the design columns and the paper's numbers as the recipe cites them.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ..arch.spec import DESIGN_COLUMNS, design_columns
from ..cost.fidelity import StepFidelity, fidelity
from ..io import CorruptFile, read_json, write_text_atomic
from ..stats import Delta, SeedStats, paired_delta, seed_stats
from ..settings import DENSE_METRICS
from .keys import dense_key, train_key
from .paths import Store
from .state import describe, run_state

if TYPE_CHECKING:
    import pandas as pd

    from ..recipe import Recipe

MEASURE_COLUMNS = [
    "step", "label", "parent", "transform", "params", "params_m", "gflops", "throughput", "throughput_batch",
    "device", "dtype", "compile", "channels_last", "peak_gmacs", "uncounted_ops",
    # throughput's quartiles over its rounds and their number; the machine's fingerprint; 'idle' or 'busy: <why>'
    "throughput_lo", "throughput_hi", "throughput_rounds", "machine", "load",
    "timed_at",  # when the joint timing began: steps sharing it had their rounds interleaved
    "classes",  # what the step's head tells apart: chance is 100 / classes
]
TRAIN_COLUMNS = ["top1", "top1_std", "top1_n", "top1_by_seed", "top5", "d_top1", "d_top1_lo", "d_top1_hi", "d_top1_n",
                 "verdict", "seeds_needed", "train_hours", "seeds", "status"]
DELTA_COLUMNS = ["d_top1", "d_top1_lo", "d_top1_hi", "d_top1_n", "verdict", "seeds_needed"]
# a shrunk profile's params and FLOPs ratios to the parent beside the paper scale's, and their drift (cost.fidelity)
FIDELITY_COLUMNS = ["params_x", "paper_params_x", "flops_x", "paper_flops_x", "drift"]


def dense_columns(metric: str) -> list[str]:
    """A dense task's metric (`ablab run --task`: miou, box_ap, mask_ap): mean, std and n over seeds, each seed's,
    the paired change against the parent with its interval, n and verdict, and which seed runs are not done."""
    return [metric, f"{metric}_std", f"{metric}_n", f"{metric}_by_seed", f"d_{metric}", f"d_{metric}_lo",
            f"d_{metric}_hi", f"d_{metric}_n", f"{metric}_verdict", f"{metric}_status"]


DENSE_COLUMNS = [c for metrics in DENSE_METRICS.values() for m in metrics for c in dense_columns(m)]
_DENSE_TEXT = ("_by_seed", "_verdict", "_status")
PRETRAIN_COLUMNS = ["pretrain", "pretrain_hours", "pretrain_epoch_seconds", "pretrain_peak_mb"]  # HiViT Table 8
NUMERIC = ("params", "params_m", "gflops", "throughput", "throughput_batch", "peak_gmacs", "top1", "top1_std", "top1_n",
           "top5", "d_top1", "d_top1_lo", "d_top1_hi", "d_top1_n", "seeds_needed", "train_hours", "pretrain_hours",
           "pretrain_epoch_seconds", "pretrain_peak_mb", *FIDELITY_COLUMNS, "throughput_lo", "throughput_hi",
           "throughput_rounds", "classes", *(c for c in DENSE_COLUMNS if not c.endswith(_DENSE_TEXT)))
VARIANT_COLUMN = "variant_of"  # a variant's profile; its overrides follow in `set.<field>` columns (`overrides`)
SET_PREFIX = "set."
TEXT = (VARIANT_COLUMN, "step", "label", "parent", "transform", "device", "dtype", "compile", "channels_last", "uncounted_ops",
        "top1_by_seed", "verdict", "seeds", "status", "pretrain", "expect", "machine", "load",
        "timed_at", *(c for c in DENSE_COLUMNS if c.endswith(_DENSE_TEXT)))


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


def setting_label(device: str, dtype: str, compile: str = "none", channels_last: object = False, machine: str = "",
                  load: str = "") -> str:
    """How and where a throughput figure was measured, in words, e.g. 'NVIDIA H100 80GB HBM3, fp16, channels_last,
    on node7 (AMD EPYC 9654, 192 CPUs)' ('' for an unmeasured step), with 'under load' for a figure taken while the
    machine was busy. Figures with different labels come from different machines, settings or load states and never
    form a ratio; one recorded before machines were fingerprinted names none, so it pairs with none that does."""
    if not device:
        return ""
    parts = [device, dtype or "dtype not recorded"]
    if compile and compile != "none":
        parts.append(f"compiled ({compile})")
    if str(channels_last) == "True":
        parts.append("channels_last")
    if load.startswith("busy"):
        parts.append("under load")
    if machine:
        parts.append(f"on {machine}")
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
    columns numeric, plus `root` (each step's chain root) and `setting` (how, where and under what load its
    throughput was measured: `setting_label`).
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
                     zip(df["device"], df["dtype"], df["compile"], df["channels_last"], df["machine"], df["load"])]
    return df


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def row_top1(df: pd.DataFrame, i: int) -> str:
    """Row i's top-1 as 'mean ± std' over its seeds ('mean' for one seed), '' when not trained."""
    mean, std, n = df.at[i, "top1"], df.at[i, "top1_std"], df.at[i, "top1_n"]
    if _missing(mean):
        return ""
    n = len(df.at[i, "seeds"].split()) if _missing(n) else int(n)  # a summary written before top1_n existed
    return str(SeedStats(mean, None if _missing(std) else std, n))


def row_mean(df: pd.DataFrame, i: int, metric: str) -> str:
    """Row i's `metric` (a dense task's: miou, box_ap) as 'mean ± std' over its seeds ('mean' for one), '' where
    there is none."""
    mean, std, n = df.at[i, metric], df.at[i, f"{metric}_std"], df.at[i, f"{metric}_n"]
    return "" if _missing(mean) else str(SeedStats(mean, None if _missing(std) else std, int(n)))


def dense_metrics(df: pd.DataFrame) -> list[str]:
    """The dense tasks' metrics (miou, box_ap, mask_ap) some row of the frame has a value of."""
    return [m for metrics in DENSE_METRICS.values() for m in metrics if df[m].notna().any()]


def row_delta(df: pd.DataFrame, i: int, metric: str = "top1") -> Optional[Delta]:
    """Row i's paired change of `metric` against its parent, as the summary recorded it (None where it has none)."""
    d = f"d_{metric}"
    if _missing(df.at[i, d]) or _missing(df.at[i, f"{d}_n"]):
        return None
    lo, hi = df.at[i, f"{d}_lo"], df.at[i, f"{d}_hi"]
    return Delta(df.at[i, d], int(df.at[i, f"{d}_n"]), lo=None if _missing(lo) else lo,
                 hi=None if _missing(hi) else hi)


# ---- writing -------------------------------------------------------------------------------------------------


def write_summary(recipe: Recipe, profile: str, store: Store) -> Path:
    """summary.csv for one recipe and profile from its run directories, one row per step in recipe order, with a
    status (missing, measured, done, incomplete with the epoch reached, failed with the reason).

    What no run directory on disk speaks for is kept from the previous summary.csv: a fresh clone holds the
    committed summaries but no run data, and measuring or running some steps there must not erase the rest."""
    paper_cols = sorted({f"paper_{k}" for s in recipe.steps for k in s.paper})
    path = store.summary(recipe.name, profile)
    previous = read_rows(path)
    drifts = {f.step: f for f in fidelity(recipe, profile)}
    rows = []
    for step in recipe.steps:
        out, before = store.step_dir(recipe.name, profile, step.id), previous.get(step.id, {})
        m = _measurement(out)
        if m is not None:
            row: dict[str, Any] = {c: m.get(c, "") for c in MEASURE_COLUMNS}
            row["uncounted_ops"] = " ".join(sorted(m.get("uncounted_ops", {})))
            row["machine"] = m.get("fingerprint", "")  # metrics.json's `machine` is the device record
            row.update(_seed_summary(store, recipe, profile, step.id))
            if row["status"] == "measured" and before.get("status") not in (None, "missing", "measured"):
                row.update({c: before.get(c, "") for c in TRAIN_COLUMNS + PRETRAIN_COLUMNS})  # trained elsewhere
        elif before and not out.is_dir():
            row = _kept(before)
        else:
            row = {"step": step.id, "label": step.label, "parent": step.parent or "",
                   "transform": step.transform or "", "status": "missing"}
        if row.get("status") != "missing":
            row.update(design_columns(recipe.spec(step.id, profile)))  # how today's code describes the spec
        row.update({f"paper_{k}": v for k, v in step.paper.items()})
        row["classes"] = recipe.spec(step.id, profile).num_classes
        row["label"] = recipe.label(step.id, profile)  # the recipe's label today, saying so under a shrink
        row.update(fidelity_columns(drifts.get(step.id)))
        if step.expect:
            row["expect"] = step.expect
        row.update(_variant_columns(recipe, profile))
        for task in DENSE_METRICS:
            if getattr(recipe.profiles[profile].task, task) is not None and row.get("status") != "missing":
                row.update(_dense_summary(store, recipe, profile, step.id, task))
        rows.append(row)
    by_seed = {row["step"]: top1_by_seed(row) for row in rows}
    for row in rows:
        delta = paired_delta(by_seed[row["step"]], by_seed.get(row["parent"], {})) if row["parent"] else None
        row.update(delta_columns(delta))
    for metric in (m for metrics in DENSE_METRICS.values() for m in metrics):
        found = {row["step"]: by_seed_of(row, f"{metric}_by_seed") for row in rows}
        for row in rows:
            if row.get(f"{metric}_by_seed"):
                delta = paired_delta(found[row["step"]], found.get(row["parent"], {})) if row["parent"] else None
                row.update(delta_columns(delta, metric))
    return write_rows(path, rows, paper_cols)


def _kept(row: dict[str, str]) -> dict[str, str]:
    """A previous summary row kept as it is, in today's schema: a file written before `top1_n` existed recorded a
    single seed's std as 0.0, which is unknown, not zero."""
    row = dict(row)
    if row.get("top1") and not row.get("top1_n"):
        row["top1_n"] = str(len(row.get("seeds", "").split()) or 1)
    if row.get("top1_n") == "1":
        row["top1_std"] = ""
    return row


def _measurement(out: Path) -> Optional[dict[str, Any]]:
    """A step's metrics.json, or None when it is absent or damaged (`ablab run` names it and measures again)."""
    try:
        return read_json(out / "metrics.json") if (out / "metrics.json").is_file() else None
    except CorruptFile:
        return None


def fidelity_columns(step: Optional[StepFidelity]) -> dict[str, Any]:
    """A step's ratios to its parent (shrunk and paper scale) and their drift; blank at paper scale or for a root."""
    if step is None:
        return dict.fromkeys(FIDELITY_COLUMNS, "")
    return {"params_x": round(step.params, 4), "paper_params_x": round(step.paper_params, 4),
            "flops_x": round(step.flops, 4), "paper_flops_x": round(step.paper_flops, 4), "drift": round(step.drift, 4)}


def columns(rows: list[dict[str, Any]], paper: list[str]) -> list[str]:
    """The schema's columns for `rows`: pre-training columns only when a row pre-trained, fidelity columns only
    when the profile shrinks, then `paper` columns."""
    pretrain = PRETRAIN_COLUMNS if any(row.get("pretrain") for row in rows) else []
    shrunk = FIDELITY_COLUMNS if any(row.get("drift") not in (None, "") for row in rows) else []
    expect = ["expect"] if any(row.get("expect") for row in rows) else []
    dense = [c for metrics in DENSE_METRICS.values() for m in metrics if any(row.get(f"{m}_status") for row in rows)
             for c in dense_columns(m)]
    settings = sorted({k for row in rows for k in row if k.startswith(SET_PREFIX)})
    variant = [VARIANT_COLUMN, *settings] if any(row.get(VARIANT_COLUMN) for row in rows) else []
    return (MEASURE_COLUMNS + shrunk + TRAIN_COLUMNS + dense + expect + variant + pretrain + list(DESIGN_COLUMNS)
            + paper)


def _variant_columns(recipe: Recipe, profile: str) -> dict[str, Any]:
    """A variant profile's columns: the profile it varies and each overridden field's value ({} for a profile)."""
    prof = recipe.profiles[profile]
    if not prof.of:
        return {}
    return {VARIANT_COLUMN: prof.of, **{SET_PREFIX + name: value for name, value in prof.overrides}}


def write_rows(path: Path, rows: list[dict[str, Any]], paper: Optional[list[str]] = None) -> Path:
    """Write `rows` as summary.csv (atomically) in the schema's columns, blank where a row has no value; every
    paper_* key of a row gets a column. ValueError naming a column the schema does not have."""
    paper = paper if paper is not None else sorted({k for row in rows for k in row if k.startswith("paper_")})
    fields = columns(rows, paper)
    unknown = sorted({k for row in rows for k in row} - set(fields) - set(PRETRAIN_COLUMNS) - set(FIDELITY_COLUMNS)
                     - {"expect"})
    if unknown:
        raise ValueError(f"summary.csv has no column {', '.join(unknown)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())
    return path


def by_seed_of(row: dict[str, Any], column: str) -> dict[int, float]:
    """Seed -> value of a summary row's per-seed column ('0:49.300 1:50.100'), {} where it is blank."""
    cell = str(row.get(column) or "")
    return {int(seed): float(value) for seed, value in (item.split(":") for item in cell.split())}


def top1_by_seed(row: dict[str, Any]) -> dict[int, float]:
    """Seed -> top-1 of a summary row: its `top1_by_seed` ('0:49.300 1:50.100'); a row written before that column
    existed gives its top-1 for its one seed, or nothing when it averaged several."""
    if row.get("top1_by_seed"):
        return by_seed_of(row, "top1_by_seed")
    seeds = str(row.get("seeds") or "").split()
    if len(seeds) == 1 and str(row.get("top1") or "") not in ("", "nan"):
        return {int(seeds[0]): float(row["top1"])}
    return {}


def delta_columns(delta: Optional[Delta], metric: str = "top1") -> dict[str, Any]:
    """The summary's columns of a paired difference of `metric` (top1, or a dense task's: no power column), blank
    where it has none."""
    names = [f"d_{metric}", f"d_{metric}_lo", f"d_{metric}_hi", f"d_{metric}_n",
             "verdict" if metric == "top1" else f"{metric}_verdict"] + (["seeds_needed"] if metric == "top1" else [])
    if delta is None:
        return dict.fromkeys(names, "")

    def rounded(x: Optional[float]) -> Any:
        return "" if x is None else round(x, 3)

    values = [rounded(delta.mean), rounded(delta.lo), rounded(delta.hi), delta.n, delta.verdict,
              "" if delta.seeds_needed is None else delta.seeds_needed]
    return dict(zip(names, values))


def run_key(recipe: Recipe, profile: str, step: str, seed: int, run_dir: Path) -> Optional[str]:
    """The key the recipe now gives a run (with the data root the run recorded), or None when unknown."""
    try:
        root = read_json(run_dir / "run.json")["train"]["data"]["root"]
    except (CorruptFile, OSError, KeyError, TypeError):
        return None
    return train_key(recipe.spec(step, profile), recipe.train_config(step, profile, root), seed)


def _seed_summary(store: Store, recipe: Recipe, profile: str, step: str) -> dict[str, Any]:
    """top-1 mean / std, top-5 mean, train hours and status over a step's seed runs; a run that is not done
    (pending, running, stopped, failed, or stale: trained under settings the recipe no longer has) is named in the
    status, never averaged in."""
    dirs = {seed: store.seed_dir(recipe.name, profile, step, seed)
            for seed in store.seeds_on_disk(recipe.name, profile, step)}
    states = {d: run_state(d, run_key(recipe, profile, step, seed, d)) for seed, d in dirs.items()}
    started = [d for d, s in states.items() if s.state != "not started"]
    if not started:
        return {"status": "measured"}
    done = {seed: read_json(d / "metrics.json") for seed, d in dirs.items() if states[d].state == "done"}
    out: dict[str, Any] = {"seeds": " ".join(str(seed) for seed, d in dirs.items() if d in started)}
    if done:
        top1 = seed_stats([r["top1"] for r in done.values()])
        out.update(top1=round(top1.mean, 3), top1_std="" if top1.std is None else round(top1.std, 3), top1_n=top1.n,
                   top1_by_seed=" ".join(f"{seed}:{r['top1']:.3f}" for seed, r in done.items()),
                   top5=round(statistics.fmean(r["top5"] for r in done.values()), 3),
                   train_hours=round(statistics.fmean(r["train_hours"] for r in done.values()), 5))
        out.update(_pretrain_summary(list(done.values())))
    out["status"] = "; ".join(describe(d, states[d]) for d in started if states[d].state != "done") or "done"
    return out


def _dense_summary(store: Store, recipe: Recipe, profile: str, step: str, task: str) -> dict[str, Any]:
    """Each of `task`'s metrics (mean / std / n) over a step's runs of that task that are done under today's settings
    (those of its classification runs' keys), and a status naming the others."""
    metrics = DENSE_METRICS[task]
    found, others = {}, []
    for seed in store.seeds_on_disk(recipe.name, profile, step):
        run_dir = store.seed_dir(recipe.name, profile, step, seed)
        path = run_dir / task / "metrics.json"
        key = run_key(recipe, profile, step, seed, run_dir)
        cfg = recipe.task_config(task, profile, _recorded_root(run_dir / task / "run.json", task))
        try:
            m = read_json(path) if path.is_file() else {}
        except CorruptFile:
            m = {}
        if m.get("status") == "done" and key is not None and m.get("key") == dense_key(key, task, cfg):
            found[seed] = m
        elif (run_dir / task).is_dir():
            others.append(f"seed {seed}: {m.get('status') if m.get('key') == dense_key(key or '', task, cfg) else 'stale'}"
                          if m else f"seed {seed}: unfinished")
    if not found and not others:
        return {f"{metric}_status": "not run" for metric in metrics}
    out: dict[str, Any] = {}
    for metric in metrics:
        out[f"{metric}_status"] = "; ".join(others) or "done"
        if found:
            stats = seed_stats([m[metric] for m in found.values()])
            out.update({metric: round(stats.mean, 3), f"{metric}_std": "" if stats.std is None else round(stats.std, 3),
                        f"{metric}_n": stats.n,
                        f"{metric}_by_seed": " ".join(f"{seed}:{m[metric]:.3f}" for seed, m in found.items())})
    return out


def _recorded_root(path: Path, task: str) -> Optional[str]:
    """The data root a dense run recorded (its --data-root), None where it recorded none."""
    try:
        return read_json(path)[task]["data"]["root"] or None
    except (CorruptFile, OSError, KeyError, TypeError):
        return None


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
