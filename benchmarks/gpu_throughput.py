"""Inference throughput of every step of some recipes, each figure with its spread and the machine's load, beside
the papers' im/s.

    python benchmarks/gpu_throughput.py recipes/vit_to_swin.yaml recipes/mvitv2_to_hiera.yaml \
        [--profile paper] [--steps o,a] [--amp fp16] [--batch-sizes 64,128,256] [--compile max-autotune] \
        [--channels-last] [--rounds 5] [--under-load mark|retry|refuse] [--json out.json]

Measures as the profile's `measure:` says (on a GPU: fp16 autocast over its cuda_batch_sizes), with the options
above taking precedence, through ablab.cost.throughput (eval, inference_mode, warm-up, synchronised timing in
several rounds, best batch of the sweep, the load watched around it), a recipe's steps timed together with their
rounds interleaved (compiled ones one after the other), all its models on the device at once. Per step: our median
im/s with its quartiles and rounds, the batch, our ratio to the chain's root measured in this run with the ratio of
the quartiles' far ends as its spread (only between figures taken in the same load state), the machine's load, the
paper's im/s and the paper's ratio, since only ratios compare across GPUs. Counts no FLOPs and writes nothing under
results/ (`ablab run RECIPE --profile paper --measure-only` measures the same way and keeps the results).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch

from ablab.arch.build import build
from ablab.io import write_json_atomic
from ablab.cost.machine import device_record, fingerprint, software_versions
from ablab.cost.throughput import MachineBusy, MeasureError, Throughput, Timed, measure_throughputs, resolve_setting
from ablab.settings import COMPILE_MODES, UNDER_LOAD, Measure
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


def ratio(tp: Throughput, root: Throughput) -> Optional[tuple[float, float, float]]:
    """`tp` over `root`: the ratio of medians, and of the quartiles' far ends (lo / root's hi, hi / root's lo) as
    its spread; None unless both were taken in the same load state (idle, or both busy)."""
    if tp.load.busy != root.load.busy:
        return None
    return (tp.images_per_s / root.images_per_s, tp.spread.lo / root.spread.hi, tp.spread.hi / root.spread.lo)


def bench_recipe(recipe: Recipe, profile: str, overrides: dict[str, Any],
                 steps: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """Measure every (chosen) step of `recipe` at `profile`, all together (their rounds interleaved, as `ablab run`
    does: `measure_throughputs`), then print a line per step; return the rows."""
    try:
        setting = resolve_setting(_measure(recipe, profile, overrides))
    except MeasureError as e:
        raise SystemExit(f"{recipe.path}: profile '{profile}': {e}") from None
    chosen = [step for step in recipe.steps if not steps or step.id in steps]
    specs = [recipe.spec(step.id, profile) for step in chosen]
    try:
        figures = measure_throughputs([Timed(build(spec), spec.img_size, spec.in_chans, spec.frames)
                                       for spec in specs], setting)
    except MachineBusy as e:
        print(f"{recipe.name:16s} not measured: {e}", flush=True)
        return []
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    ours = {step.id: tp for step, tp in zip(chosen, figures)}
    rows: list[dict[str, Any]] = []
    for step, spec, tp in zip(chosen, specs, figures):
        root = _root(recipe, step.id)
        x = ratio(tp, ours[root]) if root in ours else None
        paper: Optional[float] = step.paper.get("throughput")
        paper_root = recipe.step(root).paper.get("throughput")
        row = {"recipe": recipe.name, "step": step.id, "label": step.label, "unit": spec.throughput_unit,
               "im_s": round(tp.images_per_s, 1),
               "im_s_lo": round(tp.spread.lo, 1), "im_s_hi": round(tp.spread.hi, 1), "rounds": tp.spread.n,
               "batch": tp.batch_size, "per_batch": tp.per_batch, "timed_with": len(specs),
               "x_root": None if x is None else [round(v, 3) for v in x], "load": tp.load.state,
               "attempts": tp.attempts, "peak_gmacs": round(tp.load.peak_gmacs, 1),
               "paper_im_s": paper, "paper_x_root": round(paper / paper_root, 3) if paper and paper_root else None,
               "setting": setting_label(tp.device, tp.dtype, setting.compile, setting.channels_last, fingerprint(),
                                        tp.load.state)}
        rows.append(row)
        against = "unlike" if x is None else f"x{x[0]:.2f} [{x[1]:.2f}, {x[2]:.2f}]"
        print(f"{recipe.name:16s} {step.id:14s} {tp.spread.text(spec.throughput_unit):44s} batch {tp.batch_size:4d}  "
              f"{against} of {root:10s}  paper {paper or '-':>6}  paper x{row['paper_x_root'] or '-'}  "
              f"{tp.load.state}", flush=True)
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
    parser.add_argument("--rounds", type=int, help="timed rounds per batch size (the figure is their median)")
    parser.add_argument("--under-load", choices=UNDER_LOAD, help="what a busy machine gets: mark, retry, refuse")
    parser.add_argument("--steps", help="comma-separated step ids (default: every step; a step's chain root is "
                                        "needed for its ratio)")
    parser.add_argument("--json", type=Path, help="write every row, the device and the software versions here")
    args = parser.parse_args()
    overrides: dict[str, Any] = {k: v for k, v in {"amp": args.amp, "min_time": args.min_time, "compile": args.compile,
                                                   "channels_last": args.channels_last, "rounds": args.rounds,
                                                   "under_load": args.under_load}.items() if v is not None}
    if args.batch_sizes:
        sizes = tuple(int(b) for b in args.batch_sizes.split(","))
        overrides.update(batch_sizes=sizes, cuda_batch_sizes=sizes)
    recipes = [load_recipe(path) for path in args.recipes]
    steps = args.steps.split(",") if args.steps else None
    rows = [row for recipe in recipes for row in bench_recipe(recipe, args.profile, overrides, steps)]
    machine = device_record(resolve_setting(_measure(recipes[0], args.profile, overrides)).device)
    print(f"measured on {fingerprint()}: {machine}, {software_versions()}")
    if args.json:
        write_json_atomic(args.json, {"rows": rows, "machine": machine, "fingerprint": fingerprint(),
                                      "versions": software_versions()})


if __name__ == "__main__":
    main()
