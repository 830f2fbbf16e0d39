"""Recipe: YAML -> validated transition study. Every error names the file, line and field, all of them at once.

A recipe names a base architecture and ordered steps; each step applies one registered transform to its parent
(the previous step, or the one named by `from:`), or restarts from a `base:` of its own. Every transform is
applied and every profile's specs are checked at load time, before any work starts. Recipes are data: the YAML
is safe-loaded and nothing in it is imported or evaluated. No torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .arch.presets import PRESETS, preset_spec
from .arch.shrink import shrink
from .arch.spec import ArchSpec, SpecError, check
from .mim.spec import pretrain_spec
from .overrides import Override, variant
from .paper.section import Section, load_sections
from .schema import Problems, SchemaError, did_you_mean, load
from .store.paths import identifier_problem
from .settings import (METRIC_LABELS, ClusterConfig, Measure, PretrainConfig, Profile, Scale, TaskConfig, TrainConfig,
                       visible_count)
from .transforms import TRANSFORMS, PreconditionError
from .yamlsrc import Key, Source, SourceError, load_source

PAPER_KEYS = ("params_m", "gflops", "throughput", "top1", "top5", *METRIC_LABELS)
TOP_KEYS = ("name", "title", "citation", "notes", "base", "profiles", "steps", "analysis", "cluster", "regenerates")
STEP_KEYS = ("id", "label", "transform", "params", "from", "base", "paper", "note", "train", "train_at", "expect")
EXPECT = ("better", "worse")  # a calibration step's expected verdict against its parent
PROFILE_KEYS = ("extends", "scale", "num_classes", "measure", "train", "seeds", "task")
PROFILE_FILE_SUFFIXES = (".yaml", ".yml")
PROFILES_DIR = "profiles"  # shared profile files live in a directory of this name beside the recipes
ANALYSIS_KEYS = ("attention_variance",)
ATTENTION_VARIANCE_KEYS = ("steps", "seeds", "images")


class RecipeError(SchemaError):
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
    expect: str = ""  # '' or a calibration step's expected verdict against its parent: better / worse
    # overrides of the profile's training settings; `pretrain` holds only the fields the step sets, over the
    # profile's pre-training, or None to turn it off
    train: dict[str, Any] = field(default_factory=dict)
    # more overrides at one profile only (profile -> overrides), over `train`: a mask unit or an epoch count in
    # that profile's own terms
    train_at: dict[str, dict[str, Any]] = field(default_factory=dict)

    def overrides(self, profile: str) -> dict[str, Any]:
        """The step's training overrides at `profile`: `train`, then `train_at[profile]` (nested blocks merged)."""
        out = dict(self.train)
        for name, value in self.train_at.get(profile, {}).items():
            both = isinstance(value, dict) and isinstance(out.get(name), dict)
            out[name] = {**out[name], **value} if both else value
        return out


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
    regenerates: tuple[Section, ...] = ()  # the paper tables and figures its steps regenerate (`ablab paper`)
    source: Optional[Source] = field(default=None, repr=False, compare=False)  # lines, for errors found later

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def where(self, key: Key) -> str:
        """'file:line: field' of `key` (its nearest line in the file), for problems found after loading: a
        checkpoint that is not on this machine."""
        return self.source.where(key) if self.source is not None else f"{self.path}: {'.'.join(map(str, key))}"

    def train_key(self, step_id: str, profile: str, name: str) -> Key:
        """Where `step_id`'s training field `name` at `profile` is written: the step's train_at for the profile,
        else the step's train, else the profile's train."""
        i, step = next((i, s) for i, s in enumerate(self.steps) if s.id == step_id)
        if name in step.train_at.get(profile, {}):
            return ("steps", i, "train_at", profile, name)
        return ("steps", i, "train", name) if name in step.train else ("profiles", self.of(profile), "train", name)

    def of(self, profile: str) -> str:
        """The profile as the file names it (a --set variant's own name is not in the file)."""
        return self.profiles[profile].of or profile

    def label(self, step_id: str, profile: str) -> str:
        """The step's label as printed at `profile`: under a shrink it says so ('ViT-B (cpu shrink)'), since the
        model it names is not the one trained."""
        label, prof = self.step(step_id).label, self.profiles[profile]
        return label if prof.scale is None else f"{label} ({self.of(profile)} shrink)"

    def spec(self, step_id: str, profile: str) -> ArchSpec:
        """The spec of `step_id` at `profile`'s scale."""
        prof = self.profiles[profile]
        return shrink(self.specs[step_id], prof.scale, prof.num_classes)

    def train_config(self, step_id: str, profile: str, data_root: Optional[str] = None) -> TrainConfig:
        """The profile's training settings with the step's overrides (and a data root from the CLI); pre-training's
        `set` windows, given at paper scale like the rest of the recipe, as the profile's shrink scales them."""
        cfg = step_train_config(self.profiles[profile].train, self.step(step_id).overrides(profile))
        if data_root is not None:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_root))
        if cfg.pretrain is not None and cfg.pretrain.set and self.profiles[profile].scale is not None:
            cfg = dataclasses.replace(cfg, pretrain=self._shrunk_set(step_id, profile, cfg.pretrain))
        return cfg

    def task_config(self, task: str, profile: str, data_root: Optional[str] = None) -> Any:
        """The profile's settings of a dense `task` (None where it has none), with a data root from the CLI."""
        cfg = getattr(self.profiles[profile].task, task)
        if cfg is not None and data_root is not None:
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=data_root))
        return cfg

    def _shrunk_set(self, step_id: str, profile: str, pre: PretrainConfig) -> PretrainConfig:
        """`pre` with its `set` windows replaced by what the shrink makes of them: the windows of the shrunk
        pre-training spec wherever they differ from the shrunk fine-tuning spec's."""
        prof = self.profiles[profile]
        pretraining = shrink(pretrain_spec(self.specs[step_id], pre), prof.scale, prof.num_classes)
        tuned = self.spec(step_id, profile)
        windows = {f"stages.{i}.window": a.window for i, (a, b) in enumerate(zip(pretraining.stages, tuned.stages))
                   if a.window != b.window}
        return dataclasses.replace(pre, set=windows)


def step_train_config(profile_train: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """A profile's training settings with a step's overrides. A nested block (`data:`, `pretrain:`) overrides only
    the fields the step sets. Pre-training is the profile's choice: a step's `pretrain:` fields adjust the
    profile's pre-training (`pretrain: null` turns it off for the step); a profile without pre-training trains
    every step from scratch."""
    overrides = dict(overrides)
    for name, fields in list(overrides.items()):
        if isinstance(fields, dict):
            inner = getattr(profile_train, name)
            overrides[name] = None if inner is None else dataclasses.replace(inner, **fields)
    if "pretrain" in overrides and profile_train.pretrain is None:
        del overrides["pretrain"]
    return dataclasses.replace(profile_train, **overrides)


def recipe_files(root: Path) -> list[Path]:
    """Every recipe under `root`, in a stable order: its YAML files outside the shared profiles' directories."""
    return sorted(p for p in root.rglob("*.yaml") if PROFILES_DIR not in p.relative_to(root).parts[:-1])


def load_recipe(path: str | Path, overrides: tuple[Override, ...] = (), profile: Optional[str] = None) -> Recipe:
    """Parse and validate a recipe; raises RecipeError listing every problem found. `overrides` (from the command
    line) set fields of `profile` before anything is checked, and that profile becomes their variant
    (`ablab.overrides.variant`)."""
    try:
        src = load_source(path)
    except SourceError as e:
        raise RecipeError(e.errors) from None
    p = Problems(src)
    data = src.data
    if not isinstance(data, dict):
        raise RecipeError([f"{src.path}:1: a recipe is a mapping with {', '.join(TOP_KEYS)}"])
    p.unknown((), data, TOP_KEYS)
    _extend(p, src)
    if overrides:
        _override(p, src, str(profile), overrides)
    name = data.get("name")
    problem = identifier_problem(name, "recipe name")
    if problem:
        p.add(("name",), problem)
    base = _base(p, data["base"], ("base",)) if "base" in data else None
    profiles = _profiles(p, data.get("profiles"))
    steps, broken = _steps(p, data.get("steps"), "base" in data, list(profiles))
    study = _analysis(p, data["analysis"], [s.id for s, _ in steps]) if "analysis" in data else None
    cluster = _load(p, ClusterConfig, data.get("cluster") or {}, ("cluster",)) or ClusterConfig()
    specs = _resolve(p, steps, base, broken)
    sections = (load_sections(p, src, data["regenerates"],
                              {s.id: (s.label, s.paper, ("steps", i, "paper")) for i, (s, _) in enumerate(steps)})
                if "regenerates" in data else ())
    settings_ok = not len(p)
    _check_profiles(p, specs, profiles)
    if settings_ok:
        _check_pretraining(p, [s for s, _ in steps], specs, profiles)
    if study is not None and all(sid in specs for sid in study.steps):
        _check_study(p, study, specs, profiles)
    p.raise_if_any(RecipeError)
    recipe = Recipe(name, str(data.get("title", name)), str(data.get("citation", "")), str(data.get("notes", "")),
                    src.path, tuple(s for s, _ in steps), profiles, specs, study, cluster, sections, src)
    return _as_variant(recipe, str(profile), overrides) if overrides else recipe


def _extend(p: Problems, src: Source) -> None:
    """Graft every `extends:` profile file (a path relative to the recipe, holding one profile's fields) under its
    profile; the profile's own fields override the file's, nested blocks merging, and each field keeps the file
    and line it came from."""
    profiles = src.data.get("profiles")
    for name, body in (profiles.items() if isinstance(profiles, dict) else ()):
        if not isinstance(body, dict) or "extends" not in body:
            continue
        key = ("profiles", name, "extends")
        target = body.pop("extends")
        if not isinstance(target, str) or Path(target).is_absolute() or not target.endswith(PROFILE_FILE_SUFFIXES):
            p.add(key, f"a profile file's path relative to the recipe, ending in .yaml, is required, got {target!r}")
            continue
        try:
            other = load_source(Path(src.path).parent / target, what="profile")
        except SourceError as e:
            p.add(key, f"'{target}' cannot be read: " + "; ".join(e.errors))
            continue
        if not isinstance(other.data, dict):
            p.add(key, f"'{target}' holds no profile: a mapping of {', '.join(PROFILE_KEYS[1:])} is required")
            continue
        if "extends" in other.data:
            p.at(f"{other.path}:{other.lines[('extends',)]} (extended by {src.path}:{src.lines.get(key, 1)})",
                 "extends: a profile file cannot extend another (one level: every value is in the recipe or in the "
                 "file it extends)")
            continue
        src.graft(("profiles", name), other, key)


def _override(p: Problems, src: Source, profile: str, overrides: tuple[Override, ...]) -> None:
    """Set each override's field of `profile` in the recipe's data, placed at its command-line argument; blocks it
    goes through are made where the profile leaves them out, but a profile that only measures gets no `train:`."""
    profiles = src.data.get("profiles")
    if not isinstance(profiles, dict) or profile not in profiles:
        p.at(src.path, f"no profile '{profile}' to override")
        return
    if not isinstance(profiles[profile], dict):
        src.put(("profiles", profile), {}, overrides[0].arg)
    for o in overrides:
        key: Key = ("profiles", profile)
        if o.path[0] == "extends":
            p.at(o.arg, "'extends' names a file read before overrides; override its fields instead")
            continue
        for part in o.path[:-1]:
            node = src.get(key)
            key += (part,)
            if node.get(part) is None:
                if key == ("profiles", profile, "train"):
                    p.at(o.arg, f"profile '{profile}' has no train: block (it only measures)")
                    break
                src.put(key, {}, o.arg)
            elif not isinstance(node[part], dict):
                p.at(o.arg, f"'{'.'.join(key[2:])}' is a value, not a block of fields")
                break
        else:
            src.put(key + (o.path[-1],), o.value, o.arg)


def _as_variant(recipe: Recipe, profile: str, overrides: tuple[Override, ...]) -> Recipe:
    """`recipe` with `profile` renamed to its variant under `overrides`, which it records."""
    name = variant(profile, overrides)
    prof = dataclasses.replace(recipe.profiles[profile], name=name, of=profile,
                               overrides=tuple((o.name, o.value) for o in overrides))
    profiles = {name if n == profile else n: prof if n == profile else value for n, value in recipe.profiles.items()}
    steps = tuple(dataclasses.replace(s, train_at={name if n == profile else n: v for n, v in s.train_at.items()})
                  for s in recipe.steps)
    return dataclasses.replace(recipe, profiles=profiles, steps=steps)


def _load(p: Problems, hint: Any, value: Any, key: Key) -> Any:
    """`schema.load`, None when anything was wrong."""
    before = len(p)
    out = load(hint, value, key, p)
    return out if len(p) == before else None


def _base(p: Problems, value: Any, key: Key) -> Optional[ArchSpec]:
    """`{preset: NAME, set: {...}}` or `{spec: {...}}` -> ArchSpec."""
    if not isinstance(value, dict) or ("preset" in value) == ("spec" in value):
        p.add(key, "base needs exactly one of 'preset: NAME' (with optional 'set: {field: value}') or 'spec: {...}'")
        return None
    p.unknown(key, value, ("preset", "set", "spec"))
    if "spec" in value:
        return _load(p, ArchSpec, value["spec"], key + ("spec",))
    name = value["preset"]
    if name not in PRESETS:
        p.add(key + ("preset",), f"unknown preset '{name}'; {did_you_mean(name, sorted(PRESETS))}")
        return None
    spec = preset_spec(name)
    if "set" in value:
        try:
            spec = TRANSFORMS["set_fields"](spec, fields=value["set"] or {})
        except (PreconditionError, SpecError) as e:
            p.add(key + ("set",), str(e))
            return None
    return spec


def _profiles(p: Problems, value: Any) -> dict[str, Profile]:
    """Every well-formed profile; a broken one is reported and left out."""
    key: Key = ("profiles",)
    if not isinstance(value, dict) or not value:
        p.add(key, "profiles: a mapping of at least one profile (e.g. paper: {}, cpu: {scale: ...}) is required")
        return {}
    out = {}
    for name, body in value.items():
        k, body, before = key + (name,), body or {}, len(p)
        problem = identifier_problem(name, "profile name")
        if problem:
            p.add(k, problem)
            continue
        if not isinstance(body, dict):
            p.add(k, "a profile is a mapping with scale, num_classes, measure")
            continue
        p.unknown(k, body, PROFILE_KEYS)
        scale = _load(p, Scale, body["scale"], k + ("scale",)) if "scale" in body else None
        measure = _load(p, Measure, body.get("measure") or {}, k + ("measure",))
        train = _load(p, TrainConfig, body.get("train") or {}, k + ("train",))
        classes = _load(p, int, body["num_classes"], k + ("num_classes",)) if "num_classes" in body else None
        trains = "train" in body  # a profile without `train:` only measures: no dataset decides its head
        known = train.data.num_classes if train is not None and trains else None
        if classes is not None and known is not None and classes != known:
            p.add(k + ("num_classes",), f"{classes} classes, but dataset '{train.data.name}' has {known}")
        seeds = _seeds(p, body["seeds"], k + ("seeds",), 1) if "seeds" in body else ()
        task = _load(p, TaskConfig, body.get("task") or {}, k + ("task",))
        if "task" in body and not trains:
            p.add(k + ("task",), "a dense task starts from each step's classification run: the profile needs train:")
        if len(p) == before:
            out[str(name)] = Profile(str(name), scale, classes if classes is not None else known, measure, train, seeds,
                                     trains, task)
    return out


def _seeds(p: Problems, value: Any, key: Key, least: int) -> tuple[int, ...]:
    """A list of at least `least` distinct integer seeds."""
    if not isinstance(value, list) or len(value) < least:
        p.add(key, f"a list of at least {least} integer seed{'s' if least > 1 else ''} is required, got {value!r}")
        return ()
    seeds = tuple(_load(p, int, v, key + (i,)) for i, v in enumerate(value))
    for i, seed in enumerate(seeds):
        if seed is not None and not 0 <= seed < 2**31:
            p.add(key + (i,), f"a seed is in [0, 2**31), got {seed}")
    if len(set(seeds)) != len(seeds):
        p.add(key, f"seeds repeat: {value}")
    return seeds


def _steps(p: Problems, value: Any, has_base: bool,
           profiles: list[str]) -> tuple[list[tuple[Step, Optional[ArchSpec]]], set[str]]:
    """Every step with its own `base:` (if any), and the ids of steps whose definition has an error."""
    if not isinstance(value, list) or not value:
        p.add(("steps",), "steps: a non-empty list of steps is required")
        return [], set()
    out: list[tuple[Step, Optional[ArchSpec]]] = []
    broken: set[str] = set()
    for i, body in enumerate(value):
        k: Key = ("steps", i)
        if not isinstance(body, dict):
            p.add(k, "a step is a mapping with id, label, transform, params, from, base, paper, note")
            continue
        before = len(p)
        p.unknown(k, body, STEP_KEYS)
        sid = body.get("id")
        problem = identifier_problem(sid, "step id")
        if problem:
            p.add(k + ("id",), problem + (" (quote ids YAML reads as other types)" if not isinstance(sid, str)
                                          else ""))
            sid = f"#{i}"
        elif sid in {s.id for s, _ in out}:
            p.add(k + ("id",), f"duplicate step id '{sid}'")
        elif sid == "base":
            p.add(k + ("id",), "'base' is reserved: 'from: base' names the recipe's base model")
        step_base = _base(p, body["base"], k + ("base",)) if "base" in body else None
        tname, params = body.get("transform"), body.get("params") or {}
        if tname is not None:
            if tname not in TRANSFORMS:
                p.add(k + ("transform",), f"unknown transform '{tname}'; {did_you_mean(tname, sorted(TRANSFORMS))}")
            elif not isinstance(params, dict):
                p.add(k + ("params",), "params is a mapping of parameter: value")
            else:
                params = _params(p, tname, params, k + ("params",))
        elif "params" in body:
            p.add(k + ("params",), "params without a transform")
        if "from" in body and "base" in body:
            p.add(k + ("from",), "a step takes either 'from' (a parent step) or 'base', not both")
        parent = body.get("from")
        if parent == "base":  # the recipe's base, as a first step would take it
            if not has_base:
                p.add(k + ("from",), "'from: base' names the recipe's top-level base, and this recipe has none")
            parent = None
        elif parent is None and "base" not in body and out:
            parent = out[-1][0].id
        if tname is None and parent is not None and "from" not in body:  # `from: X` alone: X's model, trained anew
            p.add(k, "a step after the first needs a transform (or a 'base:' to restart from, or a 'from:' to repeat "
                     "that step's model)")
        if tname is None and parent is None and "base" not in body and not has_base:
            p.add(k, "the first step has no transform: the recipe needs a top-level 'base'")
        paper = body.get("paper") or {}
        if not isinstance(paper, dict):
            p.add(k + ("paper",), f"paper is a mapping of {', '.join(PAPER_KEYS)}")
            paper = {}
        p.unknown(k + ("paper",), paper, PAPER_KEYS)
        paper = {name: _load(p, float, v, k + ("paper", name)) for name, v in paper.items() if name in PAPER_KEYS}
        train = _step_train(p, body.get("train") or {}, k + ("train",))
        train_at = _train_at(p, body.get("train_at") or {}, k + ("train_at",), profiles)
        expect = body.get("expect", "")
        if expect not in ("",) + EXPECT:
            p.add(k + ("expect",), f"{expect!r} is not allowed; allowed: {', '.join(EXPECT)}")
        if expect and parent is None:
            p.add(k + ("expect",), "a step without a parent has nothing to be better or worse than")
        if len(p) > before:
            broken.add(sid)
        step = Step(sid, str(body.get("label", sid)), tname, params, parent, paper, str(body.get("note", "")),
                    str(expect), train, train_at)
        out.append((step, step_base))
    return out, broken


def _step_train(p: Problems, value: Any, key: Key) -> dict[str, Any]:
    """A step's overrides of the profile's training settings: only the fields it sets, in nested blocks too."""
    if not value:
        return {}
    checked = _load(p, TrainConfig, value, key)
    if checked is None:
        return {}
    train = {n: getattr(checked, n) for n in value}
    for name, inner in train.items():
        if dataclasses.is_dataclass(inner):
            train[name] = {n: getattr(inner, n) for n in value[name]}
    return train


def _train_at(p: Problems, value: Any, key: Key, profiles: list[str]) -> dict[str, dict[str, Any]]:
    """`train_at: {profile: overrides}`: every profile named exists, every override checks as `train:` does."""
    if not isinstance(value, dict):
        p.add(key, "train_at is a mapping of profile: {training overrides at that profile}")
        return {}
    out = {}
    for name, body in value.items():
        if name not in profiles:
            p.add(key + (name,), f"no profile '{name}'; {did_you_mean(str(name), profiles)}")
            continue
        out[str(name)] = _step_train(p, body or {}, key + (name,))
    return out


def _params(p: Problems, tname: str, given: dict, key: Key) -> dict[str, Any]:
    t = TRANSFORMS[tname]
    names = tuple(param.name for param in t.params)
    out = {}
    for name, value in given.items():
        if name not in names:
            p.add(key + (name,), f"unknown parameter '{name}' of transform '{tname}'; {did_you_mean(name, names)}")
            continue
        hint = next(param.hint for param in t.params if param.name == name)
        out[name] = _load(p, hint, value, key + (name,))
    for param in t.params:
        if param.required and param.name not in given:
            p.add(key, f"transform '{tname}' needs parameter '{param.name}' ({param.describe()})")
    return out


def _resolve(p: Problems, steps: list[tuple[Step, Optional[ArchSpec]]], base: Optional[ArchSpec],
             broken: set[str]) -> dict[str, ArchSpec]:
    """Apply every step's transform to its parent's spec, in dependency order; report cycles, dangling `from`,
    and transforms that do not fit. A step whose definition or parent is broken is
    left out (its own errors are already reported)."""
    index: dict[str, int] = {}
    for i, (s, _) in enumerate(steps):
        index.setdefault(s.id, i)  # a repeated id is reported where it repeats; its first step is the one resolved
    specs: dict[str, ArchSpec] = {}
    state: dict[str, str] = {}

    def visit(sid: str, chain: list[str]) -> Optional[ArchSpec]:
        i = index[sid]
        step, step_base = steps[i]
        if state.get(sid) == "done":
            return specs.get(sid)
        if state.get(sid) == "active":
            cycle = " -> ".join(chain[chain.index(sid):] + [sid])
            p.add(("steps", i, "from"), f"'from' forms a cycle: {cycle}")
            return None
        state[sid] = "active"
        if step.parent is not None and step.parent not in index:
            p.add(("steps", i, "from"), f"'from: {step.parent}' names no step; {did_you_mean(step.parent, list(index))}")
            parent_spec = None
        elif step.parent is not None:
            parent_spec = visit(step.parent, chain + [sid])
        else:
            parent_spec = step_base or base
        spec = parent_spec if sid not in broken else None
        if spec is not None and step.transform is not None:
            try:
                spec = TRANSFORMS[step.transform](parent_spec, **step.params)
                check(spec)
            except (PreconditionError, SpecError) as e:
                p.add(("steps", i, "transform"), f"{step.transform}: {e}")
                spec = None
        state[sid] = "done"
        if spec is not None:
            specs[sid] = spec
        return spec

    for sid in index:
        visit(sid, [])
    return specs


def _check_profiles(p: Problems, specs: dict[str, ArchSpec], profiles: dict[str, Profile]) -> None:
    for name, prof in profiles.items():
        for sid, spec in specs.items():
            try:
                shrink(spec, prof.scale, prof.num_classes)
            except SpecError as e:
                p.add(("profiles", name), f"step '{sid}' cannot be built at this profile's scale: "
                                          f"{'; '.join(e.errors)}")


def _check_pretraining(p: Problems, steps: list[Step], specs: dict[str, ArchSpec],
                       profiles: dict[str, Profile]) -> None:
    """Every step a profile pre-trains has settings that hold together and a mask unit that tiles its image
    into whole tokens, with at least one unit masked; errors point at the step's field where it sets one."""
    for name, prof in profiles.items():
        for i, step in enumerate(steps):
            if step.id not in specs:
                continue
            cfg = step_train_config(prof.train, step.overrides(name)).pretrain
            if cfg is None:
                continue
            own = step.overrides(name).get("pretrain") or {}
            at = step.train_at.get(name, {}).get("pretrain") or {}

            def where(field_name: str) -> Key:
                if field_name in at:
                    return ("steps", i, "train_at", name, "pretrain", field_name)
                return (("steps", i, "train", "pretrain", field_name) if field_name in own
                        else ("profiles", name, "train", "pretrain", field_name))

            if own:  # the step's fields over the profile's: check what they make together
                for field_name, message in cfg.problems():
                    p.add(where(field_name), f"profile '{name}', step '{step.id}': {message}")
            try:
                spec = shrink(specs[step.id], prof.scale, prof.num_classes)
            except SpecError:
                continue  # the profile's own error, reported with it
            try:  # the encoder pre-training builds, at paper scale and at the profile's
                shrink(pretrain_spec(specs[step.id], cfg), prof.scale, prof.num_classes)
            except (ValueError, SpecError) as e:
                field_name = "drop_path" if str(e).startswith("pretrain.drop_path") else "set"
                p.add(where(field_name), f"profile '{name}', step '{step.id}': {e}")
                continue
            try:
                units = spec.mask_units(cfg.mask_unit)
            except ValueError as e:
                p.add(where("mask_unit"), f"profile '{name}', step '{step.id}': {e}")
                continue
            if 0 < cfg.mask_ratio < 1 and visible_count(units, cfg.mask_ratio) == units:
                p.add(where("mask_ratio"), f"profile '{name}', step '{step.id}': {cfg.mask_ratio} of {units} mask units "
                                           "masks none")


def _analysis(p: Problems, value: Any, step_ids: list[str]) -> Optional[AttentionVarianceStudy]:
    """`analysis: {attention_variance: {steps: [...], seeds: [...], images: K}}` -> the study, checked."""
    key: Key = ("analysis",)
    if not isinstance(value, dict) or not value:
        p.add(key, f"analysis is a mapping with {', '.join(ANALYSIS_KEYS)}")
        return None
    p.unknown(key, value, ANALYSIS_KEYS)
    if "attention_variance" not in value:
        return None
    body, key = value["attention_variance"], key + ("attention_variance",)
    if not isinstance(body, dict):
        p.add(key, f"a mapping with {', '.join(ATTENTION_VARIANCE_KEYS)} is required")
        return None
    p.unknown(key, body, ATTENTION_VARIANCE_KEYS)
    for name in ATTENTION_VARIANCE_KEYS:
        if name not in body:
            p.add(key, f"'{name}' is required")
    steps = body.get("steps")
    if "steps" in body and (not isinstance(steps, list) or not steps):
        p.add(key + ("steps",), f"a non-empty list of step ids is required, got {steps!r}")
    for i, sid in enumerate(steps if isinstance(steps, list) else []):
        if sid not in step_ids:
            p.add(key + ("steps", i), f"no step '{sid}'; {did_you_mean(sid, step_ids)}")
        elif sid in steps[:i]:
            p.add(key + ("steps", i), f"step '{sid}' is listed twice")
    seeds = _seeds(p, body["seeds"], key + ("seeds",), 2) if "seeds" in body else ()
    images = _load(p, int, body["images"], key + ("images",)) if "images" in body else None
    if images is not None and images < 1:
        p.add(key + ("images",), f"at least 1 image is required, got {images}")
    if not isinstance(steps, list) or not seeds or images is None or any(sid not in step_ids for sid in steps):
        return None
    return AttentionVarianceStudy(tuple(map(str, steps)), seeds, images)


def _check_study(p: Problems, study: AttentionVarianceStudy, specs: dict[str, ArchSpec],
                 profiles: dict[str, Profile]) -> None:
    """Every studied step has one global attention map per block, all steps see the same images, enough of them."""
    key: Key = ("analysis", "attention_variance")
    for sid in study.steps:
        for ctx in specs[sid].contexts():
            if ctx.block.attends and not ctx.attention.one_map(ctx):
                p.add(key + ("steps",), f"step '{sid}' stage {ctx.index} has {ctx.stage.attention} attention; the "
                                        "study needs global attention (one T x T map per image) in every block")
    for name, prof in profiles.items():
        sizes = {sid: shrink(specs[sid], prof.scale, prof.num_classes).img_size for sid in study.steps}
        if len(set(sizes.values())) > 1:
            p.add(key + ("steps",), f"profile '{name}': the steps take different image sizes {sizes}; the study "
                                    "shows every model the same images")
        data = prof.train.data
        if data.name == "shapetex" and study.images > data.val_size:
            p.add(key + ("images",), f"{study.images} images, but profile '{name}' has a validation split of "
                                     f"{data.val_size}")
