"""ArchSpec: a frozen, serialisable description of one vision transformer.

Every design change the papers study is a field here, so that ViT, DeiT, Swin,
HiViT, MViTv2, Hiera and HVT are points of one spec space and two adjacent steps of a transition
differ in exactly the fields a transform touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Optional, get_args, get_origin, get_type_hints

BlockKind = Literal["attention", "mlp"]
AttentionKind = Literal["global", "window", "mask_unit"]
RelPos = Literal["none", "bias", "decomposed"]
Downsample = Literal["none", "patch_merge", "q_pool", "token_pool"]
PoolOp = Literal["conv", "max", "avg"]
Expand = Literal["attn", "mlp"]
Pool = Literal["token", "avg"]
HeadNorm = Literal["tokens", "pooled"]


class SpecError(ValueError):
    """An ArchSpec that cannot be built; the message names the field."""


@dataclass(frozen=True)
class Stage:
    """One resolution of the model: `depth` blocks of width `dim`.

    downsample -- how this stage's input is made from the previous stage's output:
      `patch_merge` concat 2x2 -> LayerNorm -> Linear 4C->dim (Swin, HiViT);
      `q_pool` the first block pools Q and its shortcut by 2x2 (MViTv2, Hiera);
      `token_pool` a 1D `pool` (kernel `q_kernel`, stride 2, no padding) over the token sequence (HVT);
      its `conv` op is a dense Conv1d (HVT Table 3).
    attention -- `global`; `window` (Swin's M x M windows, `shift` alternates shifted windows; a window
      at least as large as the grid is global and never shifts); `mask_unit` (Hiera: local attention
      inside each mask unit, whose window shrinks with every Q pooling).
    rel_pos -- `bias`: a learned (2W-1)^2 x heads table (Swin); `decomposed`: MViTv2's rel_pos_h / rel_pos_w.
    pos_embed -- a learned absolute position embedding is added where this stage starts.
    Pooling attention (MViTv2): K and V are pooled by `pool` with `kv_kernel` and stride `kv_stride` in
      every block; Q by `q_kernel`, stride 2 in a q_pool stage's first block. `pool_stride1` also applies
      the pools at stride 1 (MViTv2 pools with kernel 3 everywhere). `conv` is a depthwise conv over each
      head's channels followed by LayerNorm. `residual_pooling` adds the pooled Q to the attention output.
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
    pos_embed: bool = False
    downsample: Downsample = "none"
    pool: PoolOp = "max"
    q_kernel: int = 2
    kv_kernel: int = 3
    kv_stride: int = 1
    pool_stride1: bool = False
    residual_pooling: bool = False

    @property
    def pools_kv(self) -> bool:
        return self.kv_stride > 1 or self.pool_stride1

    @property
    def multiscale(self) -> bool:
        """Blocks of this stage need MViT-style pooling blocks (Q/KV pooling, decomposed RPE, mask units)."""
        return (self.downsample == "q_pool" or self.pools_kv or self.rel_pos == "decomposed"
                or self.residual_pooling or self.attention == "mask_unit")


@dataclass(frozen=True)
class ArchSpec:
    """A whole model: stem, stages, position encoding and head.

    stem_kernel -- 0: non-overlapping patch_size x patch_size conv (ViT, Swin); an odd k: k x k conv with
      stride patch_size and padding k // 2 (MViTv2 and Hiera: 7x7, stride 4).
    mask_unit -- side of a mask unit in stem tokens (Hiera: 32 px = 8 tokens of 4 px).
    head_norm -- the final LayerNorm acts on every token before pooling (`tokens`: ViT, Swin, MViTv2) or on
      the pooled vector (`pooled`: Hiera, HiViT).
    channel_expand -- at a q_pool transition, widen in the first block's attention (`attn`: MViTv2-B,
      Hiera) or in the previous stage's last MLP (`mlp`: MViTv2-L).
    """

    stages: tuple[Stage, ...]
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    patch_size: int = 16
    stem_kernel: int = 0
    stem_norm: bool = False
    class_token: bool = True
    pool: Pool = "token"
    head_norm: HeadNorm = "tokens"
    qkv_bias: bool = True
    norm_eps: float = 1e-5
    mask_unit: int = 8
    channel_expand: Expand = "attn"
    drop_path: float = 0.0
    name: str = field(default="", compare=False)

    # ---- derived geometry -------------------------------------------------
    def geometry(self) -> list[tuple[int, Optional[int]]]:
        """(tokens, grid side) of each stage after its downsample; side is None once tokens lose 2D layout."""
        side: Optional[int] = self.img_size // self.patch_size
        tokens = side * side
        out = []
        for st in self.stages:
            if st.downsample in ("patch_merge", "q_pool"):
                side = side // 2 if side else None
                tokens = side * side if side else tokens // 4
            elif st.downsample == "token_pool":
                side, tokens = None, (tokens - st.q_kernel) // 2 + 1
            out.append((tokens, side))
        return out

    def grids(self) -> list[Optional[int]]:
        """Side length of the token grid in each stage (None after a 1D token pool)."""
        return [side for _, side in self.geometry()]

    def mask_unit_windows(self) -> list[int]:
        """Side of a mask unit, in tokens, in each stage: it halves with every Q pooling / merge."""
        out, unit = [], self.mask_unit
        for st in self.stages:
            if st.downsample in ("patch_merge", "q_pool"):
                unit //= 2
            out.append(unit)
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


def canonical(spec: ArchSpec) -> ArchSpec:
    """The same model with every field that has no effect reset to its default (unused kernels, windows...),
    so that specs compare and hash by what they build."""
    default = Stage(depth=1, dim=1)
    stages = []
    for st in spec.stages:
        pools_q = st.downsample in ("q_pool", "token_pool") or st.pool_stride1
        changes = {
            "q_kernel": st.q_kernel if pools_q else default.q_kernel,
            "kv_kernel": st.kv_kernel if st.pools_kv else default.kv_kernel,
            "pool": st.pool if (pools_q or st.pools_kv) else default.pool,
            "window": st.window if st.attention == "window" else default.window,
            "shift": st.shift if st.attention == "window" else default.shift,
        }
        stages.append(dataclasses.replace(st, **changes))
    mask_unit = spec.mask_unit if any(st.attention == "mask_unit" for st in spec.stages) else 8
    return dataclasses.replace(spec, stages=tuple(stages), mask_unit=mask_unit, name="")


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


def pool_padding(kernel: int, stride: int) -> int:
    """Padding of a pool: none when kernel = stride (no overlap), else kernel // 2 (MViTv2)."""
    return 0 if kernel == stride else kernel // 2


def check(spec: ArchSpec) -> None:
    """Raise SpecError if the spec cannot be built; the message names the field."""
    if spec.img_size % spec.patch_size:
        raise SpecError(f"field 'img_size': {spec.img_size} is not divisible by patch_size {spec.patch_size}")
    if spec.stem_kernel and (spec.stem_kernel % 2 == 0 or spec.stem_kernel < spec.patch_size):
        raise SpecError(f"field 'stem_kernel': an overlapping stem needs an odd kernel >= patch_size, "
                        f"got {spec.stem_kernel}")
    side: Optional[int] = spec.img_size // spec.patch_size
    units = spec.mask_unit_windows()
    for i, st in enumerate(spec.stages):
        _check_stage(spec, i, st, side, units[i])
        side = spec.grids()[i]
    if spec.class_token and (len(spec.stages) != 1 or spec.stages[0].attention != "global"
                             or spec.stages[0].block != "attention" or spec.stages[0].multiscale):
        raise SpecError("field 'class_token': a class token needs a single stage of plain global attention")
    if spec.pool == "token" and not spec.class_token:
        raise SpecError("field 'pool': 'token' pooling needs class_token: true; use 'avg'")


def _check_stage(spec: ArchSpec, i: int, st: Stage, side: Optional[int], unit: int) -> None:
    """Check stage `i` whose input grid side (before its downsample) is `side`."""
    where = f"stages[{i}]"

    def fail(name: str, message: str) -> None:
        raise SpecError(f"field '{where}.{name}': {message}")

    if st.depth < 0 or st.dim <= 0:
        fail("depth", f"depth must be >= 0 and dim > 0, got {st.depth} and {st.dim}")
    prev = spec.stages[i - 1] if i else None
    if i == 0 and st.downsample != "none":
        fail("downsample", "the first stage takes the stem's output; use 'none'")
    if prev and st.downsample in ("none", "token_pool") and st.dim != prev.dim:
        fail("dim", f"changes width ({prev.dim} -> {st.dim}) without a patch_merge or q_pool")
    if st.downsample in ("patch_merge", "q_pool"):
        if side is None or side % 2:
            fail("downsample", f"{st.downsample} needs an even 2D grid, got {side}")
        side //= 2
    if st.downsample == "q_pool" and st.q_kernel < 2:
        fail("q_kernel", f"Q pooling with stride 2 needs a kernel >= 2, got {st.q_kernel}")
    if st.downsample == "token_pool":
        if st.q_kernel < 2:
            fail("q_kernel", f"a 1D token pool needs a kernel >= 2, got {st.q_kernel}")
        side = None
    if st.block == "mlp":
        if st.heads != 0 or st.rel_pos != "none" or st.attention != "global" or st.shift or st.multiscale:
            fail("block", "MLP-only blocks take no heads, rel_pos, windows, shift or pooling")
        return
    if st.heads <= 0 or st.dim % st.heads:
        fail("heads", f"attention needs heads > 0 dividing dim {st.dim}, got {st.heads}")
    needs_grid = st.attention != "global" or st.rel_pos != "none" or st.multiscale
    if needs_grid and side is None:
        fail("attention", "windows, relative positions and 2D pooling need a 2D grid (not after a token_pool)")
    if st.attention == "window" and side % effective_window(side, st.window):
        fail("window", f"window {st.window} does not tile the {side}x{side} grid")
    if st.attention == "mask_unit" and (unit < 1 or side % unit):
        fail("attention", f"mask units of {spec.mask_unit} stem tokens give {unit}-token units here, "
                          f"which do not tile the {side}x{side} grid")
    if st.attention != "global" and st.rel_pos == "decomposed":
        fail("rel_pos", "decomposed relative positions are for global (pooled) attention")
    if st.attention == "mask_unit" and st.pools_kv:
        fail("kv_stride", "mask-unit attention takes no KV pooling")
    if st.pools_kv and side % st.kv_stride:
        fail("kv_stride", f"KV stride {st.kv_stride} does not divide the {side}x{side} grid")
    local_pool = st.attention == "mask_unit" or (prev is not None and prev.attention == "mask_unit")
    if st.downsample == "q_pool" and local_pool and st.q_kernel != 2:
        fail("q_kernel", "Q pooling inside mask units must not overlap (kernel = stride = 2); overlapping "
                         "kernels need Hiera's separate-and-pad trick (Fig. 4d)")
    if st.pos_embed and st.downsample == "q_pool":
        fail("pos_embed", "a q_pool stage starts inside its first block; put the embedding on another stage")


DESIGN_COLUMNS = (
    "resolution", "tokens", "depths", "dims", "heads", "attention", "rel_pos", "abs_pos", "q_pool", "kv_pool",
    "stride1_pools", "res_pool", "expand", "head",
)


def design_columns(spec: ArchSpec) -> dict[str, str]:
    """The design choices a transition table shows, one short string per column (stages joined by '-')."""

    def join(values: list[Any]) -> str:  # numbers read as 2-2-18-2
        return "-".join(str(v) for v in values)

    def kinds(values: list[str]) -> str:  # kinds read as mu8/mu4/global/global
        return "/".join(values)

    def attention(st: Stage, side: Optional[int], unit: int) -> str:
        if st.block == "mlp":
            return "mlp"
        if st.attention == "mask_unit":
            return f"mu{unit}"
        if st.attention == "window" and effective_window(side, st.window) != side:
            return f"{'swin' if st.shift else 'win'}{st.window}"
        return "global"

    geo, units, stages = spec.geometry(), spec.mask_unit_windows(), spec.stages
    q_pool = [f"{st.pool}{st.q_kernel}" if st.downsample in ("q_pool", "token_pool") else "none" for st in stages]
    kv_pool = [f"{st.pool}{st.kv_kernel}s{st.kv_stride}" if st.pools_kv else "none" for st in stages]
    expands = any(st.downsample == "q_pool" and st.dim != p.dim for p, st in zip(stages, stages[1:]))
    return {
        "resolution": f"{spec.img_size}px/{spec.patch_size}" + (f"k{spec.stem_kernel}" if spec.stem_kernel else ""),
        "tokens": join([t for t, _ in geo]),
        "depths": join([st.depth for st in stages]),
        "dims": join([st.dim for st in stages]),
        "heads": join([st.heads for st in stages]),
        "attention": kinds([attention(st, side, u) for st, (_, side), u in zip(stages, geo, units)]),
        "rel_pos": kinds([st.rel_pos for st in stages]),
        "abs_pos": kinds([f"s{i}" for i, st in enumerate(stages) if st.pos_embed]) or "none",
        "q_pool": kinds(q_pool),
        "kv_pool": kinds(kv_pool),
        "stride1_pools": kinds(["yes" if st.pool_stride1 else "no" for st in stages]),
        "res_pool": kinds(["yes" if st.residual_pooling else "no" for st in stages]),
        "expand": spec.channel_expand if expands else "none",
        "head": "cls" if spec.pool == "token" else "avg",
    }
