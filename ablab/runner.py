"""Runs: each (recipe, profile, step) measured once, keyed by a hash of what determines its numbers.

Layout: results/<recipe>/<profile>/<step>/{spec.json, metrics.json} and
results/<recipe>/<profile>/summary.csv. A step whose key is unchanged is
skipped; every file is written atomically, so Ctrl-C or a crash loses at most
the step in flight, and a re-run picks up from there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .build import build
from .io import read_json, write_json_atomic, write_text_atomic
from .measure.flops import count_flops
from .measure.params import count_params
from .measure.throughput import measure_throughput
from .profile import Measure
from .recipe import Recipe
from .spec import DESIGN_COLUMNS, ArchSpec, canonical, design_columns

SUMMARY_COLUMNS = [
    "step", "label", "parent", "transform", "params", "params_m", "gflops", "throughput", "throughput_batch",
    "device", "dtype", "uncounted_ops",
]


def run_key(spec: ArchSpec, measure: Measure) -> str:
    """Content hash of everything that determines a step's measurements."""
    payload = json.dumps({"spec": canonical(spec).to_dict(), "measure": asdict(measure)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def resolve_device(measure: Measure) -> str:
    if measure.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return measure.device


def default_profile(recipe: Recipe) -> str:
    """'paper' on a CUDA machine, else the first other profile (the CPU one)."""
    if torch.cuda.is_available() and "paper" in recipe.profiles:
        return "paper"
    others = [p for p in recipe.profiles if p != "paper"]
    return others[0] if others else next(iter(recipe.profiles))


def measure_step(spec: ArchSpec, measure: Measure) -> dict[str, Any]:
    """Params, FLOPs and throughput of one spec."""
    torch.manual_seed(0)
    model = build(spec)
    flops = count_flops(model, spec.img_size, spec.in_chans)
    tp = measure_throughput(model, spec.img_size, tuple(measure.batch_sizes), resolve_device(measure),
                            measure.dtype, measure.min_time, in_chans=spec.in_chans)
    params = count_params(model)
    return {
        "params": params,
        "params_m": params / 1e6,
        "gflops": flops.gflops,
        "flops": flops.total,
        "flops_by_operator": flops.by_operator,
        "uncounted_ops": flops.uncounted_ops,
        "throughput": round(tp.images_per_s, 2),
        "throughput_batch": tp.batch_size,
        "throughput_per_batch": {str(k): round(v, 2) for k, v in tp.per_batch.items()},
        "device": tp.device,
        "dtype": tp.dtype,
    }


def step_dir(results: Path, recipe: Recipe, profile: str, step_id: str) -> Path:
    return results / recipe.name / profile / step_id


def run_recipe(
    recipe: Recipe,
    profile: str,
    results: Path,
    steps: Optional[list[str]] = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Measure every (selected) step; returns the path of the summary CSV."""
    prof = recipe.profiles[profile]
    for step in recipe.steps:
        if steps and step.id not in steps:
            continue
        spec = recipe.spec(step.id, profile)
        key = run_key(spec, prof.measure)
        out = step_dir(results, recipe, profile, step.id)
        metrics_path = out / "metrics.json"
        if not force and metrics_path.is_file() and read_json(metrics_path).get("key") == key:
            log(f"[{step.id}] {step.label}: unchanged, skipped (--force re-measures)")
            continue
        start = time.perf_counter()
        measured = measure_step(spec, prof.measure)
        metrics = {
            "key": key, "recipe": recipe.name, "profile": profile, "step": step.id, "label": step.label,
            "parent": step.parent or "", "transform": step.transform or "", "transform_params": step.params,
            **measured, **design_columns(spec), "paper": step.paper, "note": step.note,
            "torch": torch.__version__, "seconds": round(time.perf_counter() - start, 2),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_json_atomic(out / "spec.json", spec.to_dict())
        write_json_atomic(metrics_path, metrics)
        uncounted = ", ".join(f"{k}x{v}" for k, v in measured["uncounted_ops"].items())
        log(f"[{step.id}] {step.label}: {measured['params_m']:.2f}M params, {measured['gflops']:.2f} GFLOPs, "
            f"{measured['throughput']:.1f} im/s ({measured['device']}, {measured['dtype']}, "
            f"batch {measured['throughput_batch']}); not counted: {uncounted or 'nothing'}")
    return write_summary(recipe, profile, results)


def write_summary(recipe: Recipe, profile: str, results: Path) -> Path:
    """summary.csv: one row per step that has metrics, in recipe order; paper numbers where cited."""
    paper_cols = sorted({f"paper_{k}" for s in recipe.steps for k in s.paper})
    rows = []
    for step in recipe.steps:
        path = step_dir(results, recipe, profile, step.id) / "metrics.json"
        if not path.is_file():
            continue
        m = read_json(path)
        row = {c: m.get(c, "") for c in SUMMARY_COLUMNS + list(DESIGN_COLUMNS)}
        row["uncounted_ops"] = " ".join(sorted(m.get("uncounted_ops", {})))
        row.update({f"paper_{k}": v for k, v in step.paper.items()})
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS + list(DESIGN_COLUMNS) + paper_cols, restval="")
    writer.writeheader()
    writer.writerows(rows)
    path = results / recipe.name / profile / "summary.csv"
    write_text_atomic(path, buf.getvalue())
    return path
