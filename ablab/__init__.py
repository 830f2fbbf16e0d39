"""ablab: architecture-transition ablations for vision transformers.

The Python API (the `ablab` command line does the same from a shell)::

    import ablab
    model = ablab.create_model("swin_b")                 # an nn.Module, as timm.create_model
    print(ablab.measure(model).gflops)                    # params, FLOPs (and throughput when asked)
    spec = ablab.apply(ablab.spec("vit_b16", class_token=False, pool="avg"), "deepen_narrow", depth=24)
    recipe = ablab.load_recipe("recipes/vit_to_swin.yaml")
    ablab.run(recipe, profile="cpu", steps=["o"])        # measure, train and evaluate into runs/
    model = ablab.load_step("runs/vit_to_swin/cpu", "o")  # that step's model with its trained weights

Importing ablab imports no torch; each function imports what it needs when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .arch.spec import ArchSpec, Stage
from .recipe import Recipe, load_recipe

if TYPE_CHECKING:
    from torch import nn

    from .cost.model import Measurement

__all__ = ["ArchSpec", "Recipe", "Stage", "apply", "create_model", "load_recipe", "load_step", "measure", "presets",
           "run", "spec"]


def presets() -> dict[str, Optional[str]]:
    """Every preset architecture's name, with the name of its timm twin (None where timm has none)."""
    from .arch.presets import PRESETS

    return {name: p.timm for name, p in PRESETS.items()}


def spec(name: str, **fields: Any) -> ArchSpec:
    """Preset `name` as an ArchSpec, with `fields` set as `set_fields` sets them (`num_classes=10`, or
    `**{"stages.*.mlp_ratio": 3.0}`)."""
    from .arch.presets import preset_spec

    out = preset_spec(name)
    return apply(out, "set_fields", fields=fields) if fields else out


def apply(arch: ArchSpec, transform: str, **params: Any) -> ArchSpec:
    """The spec `transform` makes of `arch` (a pure function: `arch` is unchanged); PreconditionError when the
    transform does not fit it. `ablab transforms` (or `ablab.transforms.TRANSFORMS`) lists them."""
    from .arch.spec import check
    from .transforms import TRANSFORMS

    if transform not in TRANSFORMS:
        raise KeyError(f"unknown transform '{transform}'; known: {', '.join(sorted(TRANSFORMS))}")
    out = TRANSFORMS[transform](arch, **params)
    check(out)
    return out


def load_step(results: Union[str, Path], step: str, seed: int = 0) -> nn.Module:
    """Step `step` as `ablab run` trained it under `results` (a <recipe>/<profile> directory): the model with the
    weights it was evaluated with, in eval mode (`ablab export` hands it to timm, TorchScript or ONNX)."""
    from .runs.trained import load_step as load

    return load(results, step, seed)


def create_model(name_or_spec: Union[str, ArchSpec], **fields: Any) -> nn.Module:
    """The model of a preset (with `fields` set, as `spec`) or of an ArchSpec, freshly initialised."""
    from .arch.build import build

    arch = spec(name_or_spec, **fields) if isinstance(name_or_spec, str) else name_or_spec
    if fields and not isinstance(name_or_spec, str):
        arch = apply(arch, "set_fields", fields=fields)
    return build(arch)


def measure(spec_or_model: Union[ArchSpec, nn.Module], img_size: Optional[int] = None, in_chans: Optional[int] = None,
            throughput: bool = False, device: str = "auto") -> Measurement:
    """Exact params and FLOPs (fvcore, attention included; one multiply-add = one FLOP) of one image, and with
    `throughput` images/s on `device` (fp16 autocast on CUDA, fp32 on the CPU, as `ablab run` measures).
    A built ablab model or a spec knows its image size (and frames: a clip model is measured per clip); any other
    nn.Module needs `img_size`."""
    from .arch.build import build
    from .cost.model import measure as measure_model
    from .cost.throughput import resolve_setting
    from .settings import Measure

    model = build(spec_or_model) if isinstance(spec_or_model, ArchSpec) else spec_or_model
    known = getattr(model, "spec", None)
    size = img_size or (known.img_size if known is not None else None)
    if size is None:
        raise ValueError("measure: give img_size for a model that is not an ablab model")
    chans = in_chans or (known.in_chans if known is not None else 3)
    setting = resolve_setting(Measure(device=device)) if throughput else None
    return measure_model(model, size, chans, setting, frames=known.frames if known is not None else 1)


def run(recipe: Union[Recipe, str, Path], profile: Optional[str] = None, steps: Optional[list[str]] = None,
        seeds: Optional[tuple[int, ...]] = None, train: bool = True, results: Union[str, Path] = "runs",
        force: bool = False, data_root: Optional[str] = None, throughput: bool = True) -> Path:
    """`ablab run` from Python: measure every (selected) step (params and FLOPs, and throughput unless told not
    to) and, with `train`, train and evaluate it with each seed (default: the profile's seeds, else 0) into
    `results`; returns the summary.csv path."""
    from .runs.preflight import preflight
    from .runs.runner import default_profile, run_recipe
    from .store.paths import Store

    r = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    profile = profile or default_profile(r)
    if profile not in r.profiles:
        raise KeyError(f"{r.path}: no profile '{profile}'; this recipe has: {', '.join(r.profiles)}")
    chosen = steps or [s.id for s in r.steps]
    preflight(r, profile, chosen, data_root, 1, train, measure_here=throughput)
    return run_recipe(r, profile, Store(Path(results)), chosen, force, train_steps=train,
                      seeds=tuple(seeds or r.profiles[profile].seeds or (0,)), data_root=data_root,
                      throughput=throughput)
