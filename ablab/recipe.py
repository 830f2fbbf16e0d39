"""Recipe: YAML -> validated transition study. Every error names the file, line and field.

A recipe names a base architecture and ordered steps; each step applies one
registered transform to its parent (the previous step, or the one named by
`from:`), or restarts from a `base:` of its own. All transforms are applied
and every profile's specs are checked at load time, before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, get_args, get_type_hints

from .cluster import ClusterConfig
from .presets import PRESETS, preset
from .profile import Measure, Profile, Scale, apply_profile
from .spec import ArchSpec, SpecError, coerce, effective_window
from .data.loaders import data_num_classes
from .mim.config import PretrainConfig
from .mim.masking import MaskError, units_per_side, visible_count
from .train.config import TrainConfig
from .transforms import TRANSFORMS, PreconditionError
from .yamlsrc import Key, Source, SourceError, load_source

PAPER_KEYS = ("params_m", "gflops", "throughput", "top1", "miou")
TOP_KEYS = ("name", "title", "citation", "notes", "base", "profiles", "steps", "analysis", "cluster")
STEP_KEYS = ("id", "label", "transform", "params", "from", "base", "paper", "note", "train")
PROFILE_KEYS = ("scale", "num_classes", "measure", "train", "seeds")
ANALYSIS_KEYS = ("attention_variance",)
ATTENTION_VARIANCE_KEYS = ("steps", "seeds", "images")


class RecipeError(SourceError):
    """A recipe that cannot run; `errors` lists 'file:line: field: message' lines."""


@dataclass(frozen=True)
class Step:
    id: str
    label: str
    transform: Optional[str]
    params: dict[str, Any]
    parent: Optional[str]
    paper: dict[str, float]
    note: str = ""
    train: dict[str, Any] = field(default_factory=dict)  # overrides of the profile's training settings
    # (`pretrain` holds only the fields the step sets, over the profile's pre-training, or None to turn it off)


@dataclass(frozen=True)
class AttentionVarianceStudy:
    """HiViT Fig. 2: per-block variance across `seeds` of `steps`' attention maps on `images` validation images."""

    steps: tuple[str, ...]
    seeds: tuple[int, ...]
    images: int


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    citation: str
    notes: str
    path: str
    steps: tuple[Step, ...]
    profiles: dict[str, Profile]
    specs: dict[str, ArchSpec] = field(repr=False)  # paper-scale spec of every step
    attention_variance: Optional[AttentionVarianceStudy] = None  # from `analysis: {attention_variance: ...}`
    cluster: ClusterConfig = ClusterConfig()  # what `ablab run --executor submitit` asks for per job

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def spec(self, step_id: str, profile: str) -> ArchSpec:
        """The spec of `step_id` at `profile`'s scale."""
        return apply_profile(self.specs[step_id], self.profiles[profile])

    def train_config(self, step_id: str, profile: str, data_root: Optional[str] = None) -> TrainConfig:
        """The profile's training settings with the step's overrides (and a data root from the CLI)."""
        cfg = step_train_config(self.profiles[profile].train, self.step(step_id).train)
        if data_root is not None:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_root))
        return cfg


def step_train_config(profile_train: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A profile's training settings with a step's overrides.

    Pre-training is the profile's choice: a step's `pretrain:` fields adjust the profile's pre-training
    (`pretrain: null` turns it off for the step); a profile without pre-training trains every step from scratch."""
    overrides = dict(overrides)
    if "pretrain" in overrides:
        fields = overrides.pop("pretrain")
        if profile_train.pretrain is not None:
            overrides["pretrain"] = None if fields is None else dataclasses.replace(profile_train.pretrain, **fields)
    return dataclasses.replace(profile_train, **overrides)


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}allowed: {', '.join(choices)}"


class _Checker:
    """Collects every error of one recipe with its location."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.errors: list[str] = []

    def error(self, key: Key, message: str) -> None:
        self.errors.append(f"{self.src.where(key)}: {message}")

    def keys(self, value: dict, key: Key, allowed: tuple[str, ...]) -> None:
        for k in value:
            if k not in allowed:
                self.error(key + (k,), f"unknown field '{k}'; {did_you_mean(k, allowed)}")

    def typed(self, value: Any, hint: Any, key: Key) -> Any:
        try:
            return coerce(value, hint, "")
        except SpecError as e:
            self.error(key, str(e).split(": ", 1)[1])
            return None


def load_recipe(path: str | Path) -> Recipe:
    """Parse and validate a recipe; raises RecipeError listing every problem found."""
    try:
        src = load_source(path)
    except SourceError as e:
        raise RecipeError(e.errors) from None
    c = _Checker(src)
    data = src.data
    if not isinstance(data, dict):
        raise RecipeError([f"{src.path}:1: a recipe is a mapping with {', '.join(TOP_KEYS)}"])
    c.keys(data, (), TOP_KEYS)
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        c.error(("name",), f"a name of letters, digits, '_', '-' or '.' is required, got {name!r}")
    base = _base(c, data.get("base"), ("base",)) if "base" in data else None
    profiles = _profiles(c, data.get("profiles"), ("profiles",))
    steps = _steps(c, data.get("steps"), base)
    study = _analysis(c, data["analysis"], [s.id for s, _ in steps]) if "analysis" in data else None
    cluster = _dataclass_from(c, ClusterConfig, data.get("cluster") or {}, ("cluster",)) or ClusterConfig()
    specs = _resolve(c, steps, base) if not c.errors else {}
    if not c.errors:
        _check_profiles(c, specs, profiles)
    if not c.errors:
        _check_pretraining(c, [s for s, _ in steps], specs, profiles)
    if study is not None and not c.errors:
        _check_study(c, study, specs, profiles)
    if c.errors:
        raise RecipeError(c.errors)
    return Recipe(name, str(data.get("title", name)), str(data.get("citation", "")), str(data.get("notes", "")),
                  src.path, tuple(s for s, _ in steps), profiles, specs, study, cluster)


def _base(c: _Checker, value: Any, key: Key) -> Optional[ArchSpec]:
    """`{preset: NAME, set: {...}}` or `{spec: {...}}` -> ArchSpec."""
    if not isinstance(value, dict) or ("preset" in value) == ("spec" in value):
        c.error(key, "base needs exactly one of 'preset: NAME' (with optional 'set: {field: value}') or 'spec: {...}'")
        return None
    c.keys(value, key, ("preset", "set", "spec"))
    if "spec" in value:
        try:
            return ArchSpec.from_dict(value["spec"])
        except SpecError as e:
            c.error(key + ("spec",), str(e))
            return None
    name = value["preset"]
    if name not in PRESETS:
        c.error(key + ("preset",), f"unknown preset '{name}'; {did_you_mean(name, sorted(PRESETS))}")
        return None
    spec = preset(name)
    if "set" in value:
        try:
            spec = TRANSFORMS["set_fields"](spec, fields=value["set"] or {})
        except (PreconditionError, SpecError) as e:
            c.error(key + ("set",), str(e))
            return None
    return spec


def _profiles(c: _Checker, value: Any, key: Key) -> dict[str, Profile]:
    if not isinstance(value, dict) or not value:
        c.error(key, "profiles: a mapping of at least one profile (e.g. paper: {}, cpu: {scale: ...}) is required")
        return {}
    out = {}
    for name, body in value.items():
        k = key + (name,)
        body = body or {}
        if not isinstance(body, dict):
            c.error(k, "a profile is a mapping with scale, num_classes, measure")
            continue
        c.keys(body, k, PROFILE_KEYS)
        scale = _dataclass_from(c, Scale, body["scale"], k + ("scale",)) if "scale" in body else None
        measure = _dataclass_from(c, Measure, body.get("measure") or {}, k + ("measure",)) or Measure()
        train = _dataclass_from(c, TrainConfig, body.get("train") or {}, k + ("train",)) or TrainConfig()
        classes = c.typed(body["num_classes"], int, k + ("num_classes",)) if "num_classes" in body else None
        known = data_num_classes(train.data)
        if classes is not None and known is not None and classes != known:
            c.error(k + ("num_classes",), f"{classes} classes, but dataset '{train.data.name}' has {known}")
        seeds = _seeds(c, body["seeds"], k + ("seeds",), 1) if "seeds" in body else ()
        out[str(name)] = Profile(str(name), scale, classes if classes is not None else known, measure, train, seeds)
    return out


def _dataclass_from(c: _Checker, cls: type, value: Any, key: Key) -> Any:
    if not isinstance(value, dict):
        c.error(key, f"a mapping with {', '.join(cls.__dataclass_fields__)} is required")
        return None
    c.keys(value, key, tuple(cls.__dataclass_fields__))
    hints = get_type_hints(cls)
    kwargs, errors_before = {}, len(c.errors)
    for n, v in value.items():
        if n not in hints:
            continue
        inner = _optional_dataclass(hints[n])
        if dataclasses.is_dataclass(hints[n]):
            kwargs[n] = _dataclass_from(c, hints[n], v or {}, key + (n,))
        elif inner is not None:
            kwargs[n] = None if v is None else _dataclass_from(c, inner, v, key + (n,))
        else:
            kwargs[n] = c.typed(v, hints[n], key + (n,))
    try:
        obj = cls(**kwargs)
    except TypeError as e:
        c.error(key, str(e))
        return None
    if hasattr(obj, "problems") and len(c.errors) == errors_before:  # ranges, once every value has its type
        for name, message in obj.problems():
            c.error(key + (name,), message)
    return obj


def _optional_dataclass(hint: Any) -> Optional[type]:
    """X for a hint Optional[X] where X is a dataclass: a settings block that may be left out or null."""
    args = get_args(hint)
    inner = [a for a in args if a is not type(None)]
    return inner[0] if type(None) in args and len(inner) == 1 and dataclasses.is_dataclass(inner[0]) else None


def _steps(c: _Checker, value: Any, base: Optional[ArchSpec]) -> list[tuple[Step, Optional[ArchSpec]]]:
    if not isinstance(value, list) or not value:
        c.error(("steps",), "steps: a non-empty list of steps is required")
        return []
    out: list[tuple[Step, Optional[ArchSpec]]] = []
    seen: set[str] = set()
    for i, body in enumerate(value):
        k: Key = ("steps", i)
        if not isinstance(body, dict):
            c.error(k, "a step is a mapping with id, label, transform, params, from, base, paper, note")
            continue
        c.keys(body, k, STEP_KEYS)
        sid = body.get("id")
        if not isinstance(sid, str) or not sid:
            c.error(k + ("id",), f"a string id is required (quote ids YAML reads as other types), got {sid!r}")
            sid = f"#{i}"
        elif sid in seen:
            c.error(k + ("id",), f"duplicate step id '{sid}'")
        seen.add(sid)
        step_base = _base(c, body["base"], k + ("base",)) if "base" in body else None
        tname = body.get("transform")
        params = body.get("params") or {}
        if tname is not None:
            if tname not in TRANSFORMS:
                c.error(k + ("transform",), f"unknown transform '{tname}'; {did_you_mean(tname, sorted(TRANSFORMS))}")
            elif not isinstance(params, dict):
                c.error(k + ("params",), "params is a mapping of parameter: value")
            else:
                params = _params(c, tname, params, k + ("params",))
        elif "params" in body:
            c.error(k + ("params",), "params without a transform")
        if "from" in body and "base" in body:
            c.error(k + ("from",), "a step takes either 'from' (a parent step) or 'base', not both")
        parent = body.get("from")
        if parent is None and "base" not in body and out:
            parent = out[-1][0].id
        if tname is None and parent is not None and "from" not in body:  # `from: X` alone: X's model, trained anew
            c.error(k, "a step after the first needs a transform (or a 'base:' to restart from, or a 'from:' "
                       "to repeat that step's model)")
        if tname is None and parent is None and "base" not in body and base is None:
            c.error(k, "the first step has no transform: the recipe needs a top-level 'base'")
        paper = body.get("paper") or {}
        if not isinstance(paper, dict):
            c.error(k + ("paper",), f"paper is a mapping of {', '.join(PAPER_KEYS)}")
            paper = {}
        c.keys(paper, k + ("paper",), PAPER_KEYS)
        paper = {p: c.typed(v, float, k + ("paper", p)) for p, v in paper.items() if p in PAPER_KEYS}
        train = body.get("train") or {}
        if train:
            checked = _dataclass_from(c, TrainConfig, train, k + ("train",))
            train = {n: getattr(checked, n) for n in train} if checked is not None else {}
            if isinstance(train.get("pretrain"), PretrainConfig):  # keep only the fields the step sets
                train["pretrain"] = {n: getattr(train["pretrain"], n) for n in body["train"]["pretrain"]
                                     if n in PretrainConfig.__dataclass_fields__}
        step = Step(sid, str(body.get("label", sid)), tname, params, parent, paper, str(body.get("note", "")), train)
        out.append((step, step_base))
    return out


def _params(c: _Checker, tname: str, given: dict, key: Key) -> dict[str, Any]:
    t = TRANSFORMS[tname]
    names = tuple(p.name for p in t.params)
    out = {}
    for name, value in given.items():
        if name not in names:
            c.error(key + (name,), f"unknown parameter '{name}' of transform '{tname}'; {did_you_mean(name, names)}")
            continue
        hint = next(p.hint for p in t.params if p.name == name)
        out[name] = c.typed(value, hint, key + (name,))
    for p in t.params:
        if p.required and p.name not in given:
            c.error(key, f"transform '{tname}' needs parameter '{p.name}' ({p.describe()})")
    return out


def _resolve(c: _Checker, steps: list[tuple[Step, Optional[ArchSpec]]], base: Optional[ArchSpec]) -> dict[str, ArchSpec]:
    """Apply every step's transform to its parent's spec, in dependency order; report cycles and dangling `from`."""
    index = {s.id: i for i, (s, _) in enumerate(steps)}
    for i, (s, _) in enumerate(steps):
        if s.parent is not None and s.parent not in index:
            c.error(("steps", i, "from"), f"'from: {s.parent}' names no step; {did_you_mean(s.parent, list(index))}")
    if c.errors:
        return {}
    specs: dict[str, ArchSpec] = {}
    state: dict[str, str] = {}

    def visit(sid: str, chain: list[str]) -> Optional[ArchSpec]:
        i = index[sid]
        step, step_base = steps[i]
        if state.get(sid) == "done":
            return specs.get(sid)
        if state.get(sid) == "active":
            cycle = " -> ".join(chain[chain.index(sid):] + [sid])
            c.error(("steps", i, "from"), f"'from' forms a cycle: {cycle}")
            return None
        state[sid] = "active"
        parent_spec = visit(step.parent, chain + [sid]) if step.parent is not None else (step_base or base)
        spec = None
        if parent_spec is not None:
            spec = parent_spec
            if step.transform is not None:
                try:
                    spec = TRANSFORMS[step.transform](parent_spec, **step.params)
                except (PreconditionError, SpecError) as e:
                    c.error(("steps", i, "transform"), f"{step.transform}: {e}")
                    spec = None
        state[sid] = "done"
        if spec is not None:
            specs[sid] = spec
        return spec

    for s, _ in steps:
        visit(s.id, [])
    return specs


def _check_profiles(c: _Checker, specs: dict[str, ArchSpec], profiles: dict[str, Profile]) -> None:
    for name, prof in profiles.items():
        for sid, spec in specs.items():
            try:
                apply_profile(spec, prof)
            except SpecError as e:
                c.error(("profiles", name), f"step '{sid}' cannot be built at this profile's scale: {e}")


def _check_pretraining(c: _Checker, steps: list[Step], specs: dict[str, ArchSpec],
                       profiles: dict[str, Profile]) -> None:
    """Every step a profile pre-trains has settings that hold together and a mask unit that tiles its image
    into whole tokens, with at least one unit masked; errors point at the step's field where it sets one."""
    for name, prof in profiles.items():
        for i, step in enumerate(steps):
            cfg = step_train_config(prof.train, step.train).pretrain
            if cfg is None:
                continue
            own = step.train.get("pretrain") or {}

            def where(field_name: str) -> Key:
                return (("steps", i, "train", "pretrain", field_name) if field_name in own
                        else ("profiles", name, "train", "pretrain", field_name))

            if own:  # the step's fields over the profile's: check what they make together
                for field_name, message in cfg.problems():
                    c.error(where(field_name), f"profile '{name}', step '{step.id}': {message}")
            spec = apply_profile(specs[step.id], prof)
            try:
                units = units_per_side(spec.img_size, spec.patch_size, cfg.mask_unit) ** 2
            except MaskError as e:
                c.error(where("mask_unit"), f"profile '{name}', step '{step.id}': {e}")
                continue
            if 0 < cfg.mask_ratio < 1 and visible_count(units, cfg.mask_ratio) == units:
                c.error(where("mask_ratio"), f"profile '{name}', step '{step.id}': {cfg.mask_ratio} of {units} "
                                             "mask units masks none")


def _seeds(c: _Checker, value: Any, key: Key, least: int) -> tuple[int, ...]:
    """A list of at least `least` distinct integer seeds."""
    if not isinstance(value, list) or len(value) < least:
        c.error(key, f"a list of at least {least} integer seed{'s' if least > 1 else ''} is required, got {value!r}")
        return ()
    seeds = tuple(c.typed(v, int, key + (i,)) for i, v in enumerate(value))
    if len(set(seeds)) != len(seeds):
        c.error(key, f"seeds repeat: {value}")
    return seeds


def _analysis(c: _Checker, value: Any, step_ids: list[str]) -> Optional[AttentionVarianceStudy]:
    """`analysis: {attention_variance: {steps: [...], seeds: [...], images: K}}` -> the study, checked."""
    key: Key = ("analysis",)
    if not isinstance(value, dict) or not value:
        c.error(key, f"analysis is a mapping with {', '.join(ANALYSIS_KEYS)}")
        return None
    c.keys(value, key, ANALYSIS_KEYS)
    if "attention_variance" not in value:
        return None
    body, key = value["attention_variance"], key + ("attention_variance",)
    if not isinstance(body, dict):
        c.error(key, f"a mapping with {', '.join(ATTENTION_VARIANCE_KEYS)} is required")
        return None
    c.keys(body, key, ATTENTION_VARIANCE_KEYS)
    for name in ATTENTION_VARIANCE_KEYS:
        if name not in body:
            c.error(key, f"'{name}' is required")
    steps = body.get("steps")
    if "steps" in body and (not isinstance(steps, list) or not steps):
        c.error(key + ("steps",), f"a non-empty list of step ids is required, got {steps!r}")
    for i, sid in enumerate(steps if isinstance(steps, list) else []):
        if sid not in step_ids:
            c.error(key + ("steps", i), f"no step '{sid}'; {did_you_mean(sid, step_ids)}")
        elif sid in steps[:i]:
            c.error(key + ("steps", i), f"step '{sid}' is listed twice")
    seeds = _seeds(c, body["seeds"], key + ("seeds",), 2) if "seeds" in body else ()
    images = c.typed(body["images"], int, key + ("images",)) if "images" in body else None
    if images is not None and images < 1:
        c.error(key + ("images",), f"at least 1 image is required, got {images}")
    if not isinstance(steps, list) or not seeds or images is None:
        return None
    return AttentionVarianceStudy(tuple(map(str, steps)), seeds, images)


def _check_study(c: _Checker, study: AttentionVarianceStudy, specs: dict[str, ArchSpec],
                 profiles: dict[str, Profile]) -> None:
    """Every studied step has one global attention map per block, all steps see the same images, enough of them."""
    key: Key = ("analysis", "attention_variance")
    for sid in study.steps:
        for i, (st, grid) in enumerate(zip(specs[sid].stages, specs[sid].grids())):
            windowed = st.attention == "window" and grid is not None and effective_window(grid, st.window) < grid
            if st.block == "attention" and (windowed or st.attention == "mask_unit"):
                c.error(key + ("steps",), f"step '{sid}' stage {i} has {st.attention} attention; the study needs "
                                          "global attention (one T x T map per image) in every block")
    for name, prof in profiles.items():
        sizes = {sid: apply_profile(specs[sid], prof).img_size for sid in study.steps}
        if len(set(sizes.values())) > 1:
            c.error(key + ("steps",), f"profile '{name}': the steps take different image sizes {sizes}; "
                                      "the study shows every model the same images")
        data = prof.train.data
        if data.name == "shapetex" and study.images > data.val_size:
            c.error(key + ("images",), f"{study.images} images, but profile '{name}' has a validation split of "
                                       f"{data.val_size}")
