"""ArchSpec: a frozen, serialisable description of one vision transformer.

Every design change the papers study is a field here, so that ViT, DeiT, Swin
and HiViT are points of one spec space and two adjacent steps of a transition
differ in exactly the fields a transform touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

BlockKind = Literal["attention", "mlp"]
AttentionKind = Literal["global", "window"]
RelPos = Literal["none", "bias"]
Downsample = Literal["none", "patch_merge"]
PosEmbed = Literal["none", "learned"]
Pool = Literal["token", "avg"]


class SpecError(ValueError):
    """An ArchSpec that cannot be built; the message names the field."""


@dataclass(frozen=True)
class Stage:
    """One resolution of the model: `depth` blocks of width `dim`.

    `downsample` says how this stage's input is made from the previous
    stage's output (`patch_merge`: concat 2x2 -> LayerNorm -> Linear 4C->dim).
    `window` is the attention extent of window attention (Swin's M); windows
    at least as large as the grid become global, and then never shift.
    """

    depth: int
    dim: int
    heads: int = 0
    block: BlockKind = "attention"
    mlp_ratio: float = 4.0
    attention: AttentionKind = "global"
    window: int = 0
    shift: bool = False
    rel_pos: RelPos = "none"
    downsample: Downsample = "none"


@dataclass(frozen=True)
class ArchSpec:
    """A whole model: stem, stages, position encoding and head."""

    stages: tuple[Stage, ...]
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    patch_size: int = 16
    stem_norm: bool = False
    class_token: bool = True
    pos_embed: PosEmbed = "learned"
    pos_embed_stage: int = 0
    pool: Pool = "token"
    qkv_bias: bool = True
    norm_eps: float = 1e-5
    drop_path: float = 0.0
    name: str = field(default="", compare=False)

    # ---- derived geometry -------------------------------------------------
    def grids(self) -> list[int]:
        """Side length of the token grid in each stage."""
        side = self.img_size // self.patch_size
        out = []
        for st in self.stages:
            if st.downsample == "patch_merge":
                side //= 2
            out.append(side)
        return out

    def with_stage(self, index: int, **changes: Any) -> ArchSpec:
        """A copy with stage `index` changed."""
        stages = list(self.stages)
        stages[index] = dataclasses.replace(stages[index], **changes)
        return dataclasses.replace(self, stages=tuple(stages))

    # ---- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"] = [dict(s) for s in d["stages"]]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Build and check a spec from plain data; unknown or mistyped fields raise SpecError."""
        if not isinstance(data, dict):
            raise SpecError(f"a spec must be a mapping, got {type(data).__name__}")
        kwargs = _coerce_fields(cls, {k: v for k, v in data.items() if k != "stages"}, "")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, (list, tuple)) or not raw_stages:
            raise SpecError("field 'stages': a non-empty list of stages is required")
        stages = []
        for i, st in enumerate(raw_stages):
            if isinstance(st, Stage):
                stages.append(st)
                continue
            if not isinstance(st, dict):
                raise SpecError(f"field 'stages[{i}]': a mapping is required")
            stages.append(Stage(**_coerce_fields(Stage, st, f"stages[{i}].")))
        spec = cls(stages=tuple(stages), **kwargs)
        check(spec)
        return spec


def _coerce_fields(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Check names and types of `data` against dataclass `cls`."""
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)} - {"stages"}
    out = {}
    for key, value in data.items():
        if key not in names:
            raise SpecError(f"field '{prefix}{key}': unknown; allowed: {', '.join(sorted(names))}")
        out[key] = coerce(value, hints[key], f"{prefix}{key}")
    return out


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Return `value` as type `hint` (int, float, bool, str, Literal, list/tuple), or raise SpecError."""
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise SpecError(f"field '{where}': {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"field '{where}': expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"field '{where}': expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"field '{where}': expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"field '{where}': expected a string, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"field '{where}': expected a list, got {value!r}")
        inner = get_args(hint)[0] if get_args(hint) else Any
        items = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"field '{where}': expected a mapping, got {value!r}")
        return dict(value)
    args = get_args(hint)
    if args and type(None) in args:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    return value


def _flat_top(spec: ArchSpec) -> dict[str, Any]:
    return {k: v for k, v in spec.to_dict().items() if k not in ("stages", "name")}


def diff(old: ArchSpec, new: ArchSpec) -> list[tuple[str, Any, Any]]:
    """Fields that differ, as (path, old value, new value).

    Stages are aligned by width (difflib), so a stage inserted in front of the
    others reads as one added stage, not as every stage changed; an added or
    removed stage reads as ('stages[i]', None, Stage) or (…, Stage, None).
    """
    a, b = _flat_top(old), _flat_top(new)
    out = [(k, a[k], b[k]) for k in a if a[k] != b[k]]
    matcher = difflib.SequenceMatcher(a=[s.dim for s in old.stages], b=[s.dim for s in new.stages], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs = list(zip(range(i1, i2), range(j1, j2))) if tag in ("equal", "replace") and i2 - i1 == j2 - j1 else []
        for i, j in pairs:
            sa, sb = dataclasses.asdict(old.stages[i]), dataclasses.asdict(new.stages[j])
            where = f"stages[{j}]" if i == j else f"stages[{i}->{j}]"
            out += [(f"{where}.{k}", sa[k], sb[k]) for k in sa if sa[k] != sb[k]]
        if not pairs:
            out += [(f"stages[{i}]", old.stages[i], None) for i in range(i1, i2)]
            out += [(f"stages[{j}]", None, new.stages[j]) for j in range(j1, j2)]
    return out


def effective_window(grid: int, window: int) -> int:
    """Swin's rule: a window at least as large as the grid covers the whole grid."""
    return grid if window <= 0 or window >= grid else window


def check(spec: ArchSpec) -> None:
    """Raise SpecError if the spec cannot be built; the message names the field."""
    if spec.img_size % spec.patch_size:
        raise SpecError(f"field 'img_size': {spec.img_size} is not divisible by patch_size {spec.patch_size}")
    side = spec.img_size // spec.patch_size
    for i, st in enumerate(spec.stages):
        where = f"stages[{i}]"
        if st.depth < 0:
            raise SpecError(f"field '{where}.depth': must be >= 0, got {st.depth}")
        if st.dim <= 0:
            raise SpecError(f"field '{where}.dim': must be > 0, got {st.dim}")
        if i == 0 and st.downsample != "none":
            raise SpecError(f"field '{where}.downsample': the first stage takes the stem's output; use 'none'")
        if i > 0 and st.downsample == "none" and st.dim != spec.stages[i - 1].dim:
            raise SpecError(f"field '{where}.dim': changes width without a downsample")
        if st.downsample == "patch_merge":
            if side % 2:
                raise SpecError(f"field '{where}.downsample': patch merging needs an even grid, got {side}x{side}")
            side //= 2
        if st.block == "attention":
            if st.heads <= 0:
                raise SpecError(f"field '{where}.heads': attention blocks need heads > 0")
            if st.dim % st.heads:
                raise SpecError(f"field '{where}.heads': dim {st.dim} is not divisible by {st.heads} heads")
            if st.attention == "window":
                w = effective_window(side, st.window)
                if side % w:
                    raise SpecError(f"field '{where}.window': window {st.window} does not tile the {side}x{side} grid")
        else:
            if st.heads != 0 or st.rel_pos != "none" or st.attention != "global" or st.shift:
                raise SpecError(f"field '{where}.block': MLP-only blocks take no heads, rel_pos, window or shift")
    if spec.pos_embed != "none" and not 0 <= spec.pos_embed_stage < len(spec.stages):
        raise SpecError(f"field 'pos_embed_stage': {spec.pos_embed_stage} is not a stage index (0..{len(spec.stages) - 1})")
    if spec.class_token:
        if len(spec.stages) != 1 or spec.stages[0].attention != "global" or spec.stages[0].block != "attention":
            raise SpecError("field 'class_token': a class token needs a single stage of global attention")
    if spec.pool == "token" and not spec.class_token:
        raise SpecError("field 'pool': 'token' pooling needs class_token: true; use 'avg'")


DESIGN_COLUMNS = ("resolution", "grids", "depths", "dims", "heads", "attention", "rel_pos", "abs_pos", "pool")


def design_columns(spec: ArchSpec) -> dict[str, str]:
    """The design choices a transition table shows, one short string per column (stages joined by '-')."""

    def join(values: list[Any]) -> str:
        return "-".join(str(v) for v in values)

    def attention(st: Stage, grid: int) -> str:
        if st.block == "mlp":
            return "mlp"
        if st.attention == "global" or effective_window(grid, st.window) == grid:
            return "global"
        return f"{'swin' if st.shift else 'win'}{st.window}"

    grids = spec.grids()
    return {
        "resolution": f"{spec.img_size}px/{spec.patch_size}",
        "grids": join(grids),
        "depths": join([st.depth for st in spec.stages]),
        "dims": join([st.dim for st in spec.stages]),
        "heads": join([st.heads for st in spec.stages]),
        "attention": join([attention(st, g) for st, g in zip(spec.stages, grids)]),
        "rel_pos": join([st.rel_pos for st in spec.stages]),
        "abs_pos": "none" if spec.pos_embed == "none" else f"stage{spec.pos_embed_stage}",
        "pool": spec.pool,
    }
