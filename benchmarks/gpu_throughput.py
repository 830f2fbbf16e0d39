"""Paper-scale inference throughput of every step of some recipes, beside the papers' im/s.

    python benchmarks/gpu_throughput.py recipes/vit_to_swin.yaml recipes/mvitv2_to_hiera.yaml \
        [--amp fp16] [--batch-sizes 64,128,256] [--compile max-autotune] [--channels-last] [--json out.json]

Measures as the profile's `measure:` says (on a GPU: fp16 autocast over its cuda_batch_sizes), with the options
above taking precedence, through ablab.cost.throughput (eval, inference_mode, warm-up, synchronised timing,
best batch of the sweep). Per step: our best im/s and batch, our ratio to the chain's root measured in this run,
the paper's im/s and the paper's ratio, since only ratios compare across GPUs. Counts no FLOPs and writes nothing
under results/ (`ablab run RECIPE --profile paper --measure-only` measures the same way and keeps the results).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch

from ablab.arch.build import build
from ablab.io import write_json_atomic
from ablab.cost.machine import device_record, software_versions
from ablab.cost.throughput import MeasureError, measure_throughput, resolve_setting
from ablab.settings import COMPILE_MODES, Measure
from ablab.store.summary import setting_label
from ablab.recipe import Recipe, load_recipe


def _root(recipe: Recipe, step_id: str) -> str:
    """The first step of `step_id`'s chain (follow `from` / the previous step until a step without a parent)."""
    while recipe.step(step_id).parent is not None:
        step_id = recipe.step(step_id).parent
    return step_id


def _measure(recipe: Recipe, profile: str, overrides: dict[str, Any]) -> Measure:
    """The profile's measure settings with the command line's overrides, checked like a recipe's."""
    measure = dataclasses.replace(recipe.profiles[profile].measure, **overrides)
    problems = [f"{name}: {message}" for name, message in measure.problems()]
    if problems:
        raise SystemExit(f"{recipe.path}: profile '{profile}': " + "; ".join(problems))
    return measure


def bench_recipe(recipe: Recipe, profile: str, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Measure every step of `recipe` at `profile`, printing a line per step; return the rows."""
    try:
        setting = resolve_setting(_measure(recipe, profile, overrides))
    except MeasureError as e:
        raise SystemExit(f"{recipe.path}: profile '{profile}': {e}") from None
    rows: list[dict[str, Any]] = []
    ours: dict[str, float] = {}
    for step in recipe.steps:
        spec = recipe.spec(step.id, profile)
        tp = measure_throughput(build(spec), spec.img_size, setting, spec.in_chans)
        ours[step.id] = tp.images_per_s
        root = _root(recipe, step.id)
        paper: Optional[float] = step.paper.get("throughput")
        paper_root = recipe.step(root).paper.get("throughput")
        row = {"recipe": recipe.name, "step": step.id, "label": step.label, "im_s": round(tp.images_per_s, 1),
               "batch": tp.batch_size, "per_batch": tp.per_batch, "x_root": round(tp.images_per_s / ours[root], 3),
               "paper_im_s": paper, "paper_x_root": round(paper / paper_root, 3) if paper and paper_root else None,
               "setting": setting_label(tp.device, tp.dtype, setting.compile, setting.channels_last)}
        rows.append(row)
        print(f"{recipe.name:16s} {step.id:14s} {row['im_s']:9.1f} im/s  batch {tp.batch_size:4d}  "
              f"x{row['x_root']:.2f} of {root:10s}  paper {paper or '-':>6}  paper x{row['paper_x_root'] or '-'}",
              flush=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+", type=Path)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--amp", choices=["auto", "none", "fp16", "bf16"])
    parser.add_argument("--batch-sizes", help="comma-separated sweep, used on the CPU and on CUDA")
    parser.add_argument("--min-time", type=float)
    parser.add_argument("--compile", choices=COMPILE_MODES)
    parser.add_argument("--channels-last", action="store_true", default=None)
    parser.add_argument("--json", type=Path, help="write every row, the device and the software versions here")
    args = parser.parse_args()
    overrides: dict[str, Any] = {k: v for k, v in {"amp": args.amp, "min_time": args.min_time, "compile": args.compile,
                                                   "channels_last": args.channels_last}.items() if v is not None}
    if args.batch_sizes:
        sizes = tuple(int(b) for b in args.batch_sizes.split(","))
        overrides.update(batch_sizes=sizes, cuda_batch_sizes=sizes)
    recipes = [load_recipe(path) for path in args.recipes]
    rows = [row for recipe in recipes for row in bench_recipe(recipe, args.profile, overrides)]
    machine = device_record(resolve_setting(_measure(recipes[0], args.profile, overrides)).device)
    print(f"measured on {machine}, {software_versions()}")
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "machine": machine, "versions": software_versions()})


if __name__ == "__main__":
    main()
