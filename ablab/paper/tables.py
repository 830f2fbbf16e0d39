"""One paper table as the paper prints it (its rows, its columns), each of the paper's numbers with ours beside it.

Structural numbers (params, FLOPs, depths, ...) are checked to the paper's rounding: ours, rounded to the digits
the paper prints, must equal the paper's ('✓'), else '✗'. Where the paper leaves norm layers out of its FLOPs
(`flops: no_norm`), ours leave them out too, from fvcore's per-operator count. Accuracy is the mean ± std over
the seeds trained (n), with each row's paired change against the table's first row and its 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from ..io import CorruptFile, read_json
from ..recipe import Recipe
from ..report.numbers import rate
from ..report.table import Table
from ..report.units import IMAGES, throughput_unit
from ..stats import paired_delta, seed_stats
from ..store.paths import Store
from ..settings import DENSE_METRICS
from ..store.summary import by_seed_of, read_rows, setting_label, top1_by_seed
from .catalogue import find
from .section import ACCURACY, MISSING, NUMERIC, STRUCTURE, TEXT, Row, Section, setting_value

NORM_OPS = ("layer_norm", "batch_norm", "group_norm")
SETTING_FIELDS = ("device", "dtype", "compile", "channels_last", "machine", "load")  # a summary row's setting
DENSE_DATASETS = {"scenes": "ShapeTex scenes proxy", "ade20k": "ADE20K", "coco": "COCO"}
DATASETS = {"shapetex": "ShapeTex proxy", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagefolder": "ImageFolder",
            "shapeclips": "ShapeClips proxy", "kinetics": "Kinetics"}
TOLERANCE = 1e-9  # float noise on top of half a unit of the paper's last printed digit
# a pre-training column: the summary's field (mean over seed runs) and the divisor to the paper's unit
PRETRAINING = {"pt_epoch_minutes": ("pretrain_epoch_seconds", 60), "pt_epoch_hours": ("pretrain_epoch_seconds", 3600),
               "pt_memory_mb": ("pretrain_peak_mb", 1), "pt_memory_gb": ("pretrain_peak_mb", 1024)}


@dataclass(frozen=True)
class Ours:
    """Our numbers of one step at one profile: its measurement and its summary row (either may be missing)."""

    metrics: dict[str, Any]
    summary: dict[str, str]


def ours_of(recipe: Recipe, profile: str, store: Store, step: str) -> Ours:
    """What the store holds for `step` at `profile`: metrics.json and its summary.csv row ({} where absent). Without
    metrics.json (the committed results/ keeps summaries, not run directories) params, FLOPs and throughput come
    from the summary row; FLOPs without norms (`no_norm`) need metrics.json's per-operator counts."""
    path = store.step_dir(recipe.name, profile, step) / "metrics.json"
    try:
        metrics = read_json(path) if path.is_file() else {}
    except CorruptFile:
        metrics = {}
    summary = store.summary(recipe.name, profile)
    row = read_rows(summary).get(step, {}) if summary.is_file() else {}
    if not metrics:
        metrics = {k: float(row[k]) for k in ("params_m", "gflops", "throughput")
                   if row.get(k) not in (None, "", "nan")}
    return Ours(metrics, row)


def within_rounding(ours: float, paper: float, places: int) -> bool:
    """Ours agrees with the paper's number to the digits it prints (22.09 covers 22.085 .. 22.095)."""
    return abs(ours - paper) <= 0.5 * 10 ** -places + TOLERANCE


def gflops(metrics: dict[str, Any], flops: str) -> Optional[float]:
    """Our GFLOPs in the paper's convention: all of fvcore's count, or without norm layers (`no_norm`)."""
    if "gflops" not in metrics:
        return None
    if flops == "all":
        return float(metrics["gflops"])
    if "flops" not in metrics:  # a summary row's total alone
        return None
    by_op = metrics.get("flops_by_operator") or {}
    return (float(metrics["flops"]) - sum(by_op.get(op, 0) for op in NORM_OPS)) / 1e9


def measured(name: str, ours: Ours, section: Section) -> Optional[float | str]:
    """Our value of a structural or speed column, None where nothing was measured."""
    m = ours.metrics
    if name == "gflops":
        return gflops(m, section.flops)
    if name == "params_m":
        return m.get("params_m")
    if name == "throughput":
        return m.get("throughput")
    if name in TEXT:
        return str(ours.summary.get(name, "")) or None
    if name in PRETRAINING:
        field, unit = PRETRAINING[name]
        value = ours.summary.get(field, "")
        return float(value) / unit if value not in ("", "nan") else None
    return None


def accuracy(field: str, ours: Ours) -> str:
    """Top-1 as 'mean ± std (n = k)' over the seeds trained, top-5 as the mean; '' where nothing was trained."""
    if field == "top1":
        seeds = top1_by_seed(ours.summary)
        return f"{seed_stats(list(seeds.values()))} (n = {len(seeds)})" if seeds else ""
    value = ours.summary.get(field, "")
    return f"{float(value):.2f}" if value not in ("", "nan") else ""


def title(section: Section, name: str, unit: str = IMAGES) -> str:
    """A paper column's header: 'Params (M)', 'ImageNet-1K top-1', 'CIFAR-100 top-5', throughput's `unit` (im/s,
    or clips/s for clip models)."""
    if name in ("top1", "top5"):
        return f"{section.dataset} {NUMERIC[name]}"
    if name == "throughput":
        return unit
    return NUMERIC.get(name) or TEXT[name]


def paper_cell(row: Row, name: str) -> str:
    value = row.paper.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value:.{row.decimals[name]}f}"


def ours_cell(row: Row, name: str, value: Optional[float | str], exact: bool) -> str:
    """Ours at the paper's printed precision (one more digit; throughput as the report writes it, 3 significant
    digits below 100); at paper scale (`exact`) with ✓ / ✗ for structure against the paper (a shrunk model's numbers
    are not the paper's to match)."""
    if value is None:
        return ""
    paper = row.paper.get(name)
    if isinstance(value, str):
        return value if paper is None or not exact else f"{value} {'✓' if value == paper else '✗'}"
    places = row.decimals.get(name, 2)
    text = f"{value:.{places + 1}f}" if name != "throughput" else rate(value)
    if not exact and name != "throughput":
        return f"{value:.3g}"
    if name in STRUCTURE and isinstance(paper, float):
        text += " ✓" if within_rounding(value, paper, places) else " ✗"
    return text


def same_setting(ours: Any, paper: Any) -> bool:
    """A setting equal to the paper's: numbers to float precision, lists element by element, text exactly."""
    if isinstance(paper, (list, tuple)) and isinstance(ours, (list, tuple)):
        return len(paper) == len(ours) and all(same_setting(a, b) for a, b in zip(ours, paper))
    if isinstance(paper, (int, float)) and isinstance(ours, (int, float)) and not isinstance(ours, bool):
        return math.isclose(float(ours), float(paper), rel_tol=1e-9)
    return str(ours) == str(paper)


def build_settings_table(recipe: Recipe, section: Section, profile: str) -> Table:
    """A settings table: each setting as the paper prints it beside ours at `profile` (✓ where equal)."""
    item, step = find(section.item), section.rows[0].step
    cfg = recipe.train_config(step, profile)
    ours = [setting_value(cfg, s.field) for s in section.settings]
    frame = pd.DataFrame({
        "config": [s.label for s in section.settings],
        "paper": [s.printed for s in section.settings],
        f"ours ({profile})": ["" if o is MISSING or o is None else f"{o} {'✓' if same_setting(o, s.paper) else '✗'}"
                              for o, s in zip(ours, section.settings)],
        "how ours reads it": [s.note for s in section.settings],
    })
    caption = (f"Ours: recipe {recipe.name} ({recipe.path}), step {step}, profile {profile}; ✓ where our setting "
               "equals the paper's. " + section.note).strip()
    return Table(f"{item.paper} {item.printed}: {item.title} ({profile})", frame, caption)


def build_paper_table(recipe: Recipe, section: Section, profile: str, store: Store) -> Table:
    """The section's table: the paper's first column, then for each of its columns the paper's number and ours,
    then our paired change of top-1 against the first row where seeds were trained; throughput in clips/s where
    every row's model at `profile` is a clip model."""
    if section.settings:
        return build_settings_table(recipe, section, profile)
    item = find(section.item)
    ours = {r.step: ours_of(recipe, profile, store, r.step) for r in section.rows}
    unit = throughput_unit(recipe.spec(r.step, profile).frames for r in section.rows)
    data: dict[str, list[str]] = {section.row_header: [r.label for r in section.rows]}
    for name in section.columns:
        data[f"paper {title(section, name, unit=unit)}"] = [paper_cell(r, name) for r in section.rows]
        if name not in ACCURACY:
            exact = recipe.profiles[profile].scale is None
            data[f"ours {title(section, name, unit=unit)}"] = [
                ours_cell(r, name, measured(name, ours[r.step], section), exact) for r in section.rows]
    dataset = DATASETS[recipe.train_config(section.rows[0].step, profile).data.name]
    trained = any(top1_by_seed(o.summary) for o in ours.values())
    for field in ("top1", "top5") if recipe.profiles[profile].trains else ():
        if any(name.endswith(field) for name in section.columns) or (trained and field == "top1"):
            data[f"ours {NUMERIC[field]} ({dataset})"] = [accuracy(field, ours[r.step]) for r in section.rows]
    first = top1_by_seed(ours[section.rows[0].step].summary)
    deltas = [paired_delta(top1_by_seed(ours[r.step].summary), first) if i else None
              for i, r in enumerate(section.rows)]
    if any(d is not None for d in deltas):
        data[f"ours Δ top-1 vs {section.rows[0].label} [95% CI]"] = [
            "" if d is None else f"{d} (n = {d.n})" for d in deltas]
    data |= _dense_columns(recipe, section, profile, ours)
    caption = _caption(recipe, section, profile, ours, unit=unit)
    return Table(f"{item.paper} {item.printed}: {item.title} ({profile})", pd.DataFrame(data), caption)


def _dense_columns(recipe: Recipe, section: Section, profile: str, ours: dict[str, Ours]) -> dict[str, list[str]]:
    """Each dense task's metric the paper prints (mIoU, box / mask AP), ours where the steps were its backbones
    (`ablab run --task`): mean ± std (n) over seeds, and the paired change against the first row."""
    out = {}
    for task, metrics in DENSE_METRICS.items():
        cfg = recipe.task_config(task, profile)
        for metric in (m for m in metrics if m in section.columns):
            seeds = {r.step: by_seed_of(ours[r.step].summary, f"{metric}_by_seed") for r in section.rows}
            if cfg is None or not any(seeds.values()):
                continue
            label, first = f"{NUMERIC[metric]} ({DENSE_DATASETS[cfg.data.name]})", seeds[section.rows[0].step]
            out[f"ours {label}"] = [f"{seed_stats(list(v.values()))} (n = {len(v)})" if v else "" for v in seeds.values()]
            deltas = [paired_delta(seeds[r.step], first) if i else None for i, r in enumerate(section.rows)]
            if any(d is not None for d in deltas):
                out[f"ours Δ {NUMERIC[metric]} vs {section.rows[0].label} [95% CI]"] = [
                    "" if d is None else f"{d} (n = {d.n})" for d in deltas]
    return out


def _caption(recipe: Recipe, section: Section, profile: str, ours: dict[str, Ours], unit: str = IMAGES) -> str:
    prof = recipe.profiles[profile]
    data = recipe.train_config(section.rows[0].step, profile).data.name
    scale = "paper scale" if prof.scale is None else f"the {profile} shrink (img {prof.scale.img_size} px)"
    trained = any(o.summary.get("top1") not in (None, "", "nan") for o in ours.values())
    parts = [f"Ours from recipe {recipe.name} ({recipe.path}), profile {profile}: models at {scale}."]
    if "throughput" in section.columns:
        settings = sorted({setting_label(*(o.summary.get(f, "") for f in SETTING_FIELDS)) for o in ours.values()}
                          - {""})
        parts.append(f"Our {unit}: {'; '.join(settings) or 'not measured'} (the paper's: its own hardware); compare "
                     f"ratios between rows, never {unit} across the two.")
    if prof.scale is not None:
        parts.append("Our params and FLOPs are the shrunk models': compare them as ratios between rows.")
    elif any(name in STRUCTURE for name in section.columns):
        parts.append("✓: ours equals the paper's number at the digits it prints; ✗: it does not"
                     + (" (FLOPs without norm layers, as the paper counts them)." if section.flops == "no_norm"
                        else " (FLOPs by fvcore, one multiply-add = one FLOP)."))
    if trained:
        proxy = " (compare directions and gaps, not levels)" if data == "shapetex" else ""
        parts.append(f"Our accuracy: trained on {DATASETS[data]}{proxy}, mean ± std over n seeds; Δ the mean paired change "
                     "against the first row with its 95% Student-t interval.")
    elif not prof.trains:
        parts.append("This profile only measures: the accuracy is the paper's alone.")
    elif any(name in ACCURACY for name in section.columns):
        parts.append("Our accuracy columns are blank until the steps are trained at this profile.")
    if section.note:
        parts.append(section.note)
    return " ".join(parts)


def joined(parts: list[tuple[str, Table]]) -> Optional[Table]:
    """One table item that several recipes regenerate (Hiera Table 1: images and video) as the paper prints it: the
    rows' first column once, then each recipe's columns (a header two recipes share gets its recipe's name); None
    where the recipes' rows differ, so the tables stay apart."""
    first = parts[0][1].frame
    key = first.columns[0]
    if any(t.frame.columns[0] != key or list(t.frame[key]) != list(first[key]) for _, t in parts[1:]):
        return None
    headers = [c for _, t in parts for c in t.frame.columns[1:]]
    data: dict[str, list[Any]] = {key: list(first[key])}
    for recipe, t in parts:
        for c in t.frame.columns[1:]:
            data[c if headers.count(c) == 1 else f"{c} ({recipe})"] = list(t.frame[c])
    return Table(parts[0][1].title, pd.DataFrame(data), " ".join(t.caption for _, t in parts),
                 hidden=tuple(h for _, t in parts for h in t.hidden))
