"""How faithfully a profile's shrink keeps what each step is: its params and FLOPs ratios to its parent, under the
profile and at paper scale. A step whose ratios drift from the paper's changes something else than its design
change (a block the shrink added, a stage whose share of the compute grew), so its accuracy delta would measure the
shrink; `BAND` is how far a ratio may drift.

Costs come from the model built on torch's meta device (no memory, no arithmetic) under `FlopCounterMode`
(multiply-adds of matmuls, convolutions and attention: fvcore's convention without its norm counts, within 0.5%
of it), so a paper-scale model costs a second, and are cached per canonical spec in ABLAB_CACHE (default
~/.cache/ablab): a later check imports no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..arch.spec import ArchSpec, canonical
from ..io import write_json_atomic
from ..recipe import Recipe

BAND = 0.05
CACHE_VERSION = 2


@dataclass(frozen=True)
class StepFidelity:
    """A step's params and FLOPs ratios to its parent at paper scale and under a profile."""

    step: str
    parent: str
    paper_params: float
    params: float
    paper_flops: float
    flops: float

    @property
    def params_drift(self) -> float:
        return abs(self.params / self.paper_params - 1)

    @property
    def flops_drift(self) -> float:
        return abs(self.flops / self.paper_flops - 1)

    @property
    def drift(self) -> float:
        """The larger relative drift of the two ratios: 0 is a perfectly faithful shrink."""
        return max(self.params_drift, self.flops_drift)

    @property
    def inside(self) -> bool:
        return self.drift <= BAND

    def describe(self) -> str:
        """'params x2.31 (paper x1.32), FLOPs x1.17 (paper x0.97)'."""
        return (f"params x{self.params:.3f} (paper x{self.paper_params:.3f}), FLOPs x{self.flops:.3f} "
                f"(paper x{self.paper_flops:.3f})")


def cache_dir() -> Path:
    return Path(os.environ.get("ABLAB_CACHE") or Path.home() / ".cache" / "ablab")


@dataclass(frozen=True)
class Cost:
    """What one image costs a model: parameters, multiply-adds, and activations (floats) of its largest module
    output and of all its module outputs together (what training keeps for the backward pass)."""

    params: int
    macs: int
    largest: int
    activations: int


class CostCache:
    """A Cost per canonical spec, computed on the meta device when missing."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or cache_dir() / "costs.json"
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            stored = {}
        self.costs: dict[str, list[int]] = stored.get("costs", {}) if stored.get("version") == CACHE_VERSION else {}
        self.added = 0

    def __call__(self, spec: ArchSpec) -> Cost:
        key = hashlib.sha256(json.dumps(canonical(spec).to_dict(), sort_keys=True).encode()).hexdigest()[:20]
        if key not in self.costs:
            cost = meta_cost(spec)
            self.costs[key] = [cost.params, cost.macs, cost.largest, cost.activations]
            self.added += 1
        return Cost(*self.costs[key])

    def save(self) -> None:
        if self.added:
            try:
                write_json_atomic(self.path, {"version": CACHE_VERSION, "costs": self.costs})
            except OSError:
                pass  # a read-only home only costs the next check its time
            self.added = 0


def meta_cost(spec: ArchSpec) -> Cost:
    """The Cost of one image (or clip) through `spec`'s model, built and run on the meta device (no memory, no arithmetic)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..arch.build import build

    with torch.device("meta"):
        model = build(spec).eval()
    sizes: list[int] = []

    def record(module: object, inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel())

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    x = torch.zeros(spec.input_shape(1), device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return Cost(sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2, max(sizes, default=0),
                sum(sizes))


def fidelity(recipe: Recipe, profile: str, cache: Optional[CostCache] = None) -> list[StepFidelity]:
    """Every step with a parent: its ratios under `profile` beside the paper-scale ones (empty for a profile that
    does not shrink)."""
    if recipe.profiles[profile].scale is None:
        return []
    own = cache or CostCache()
    paper = {s.id: own(recipe.specs[s.id]) for s in recipe.steps}
    shrunk = {s.id: own(recipe.spec(s.id, profile)) for s in recipe.steps}
    if cache is None:
        own.save()
    return [StepFidelity(s.id, s.parent, paper[s.id].params / paper[s.parent].params,
                         shrunk[s.id].params / shrunk[s.parent].params, paper[s.id].macs / paper[s.parent].macs,
                         shrunk[s.id].macs / shrunk[s.parent].macs)
            for s in recipe.steps if s.parent]
