"""ArchSpec: a frozen, serialisable description of one vision transformer.

Every design change the papers study is a field here, so that ViT, DeiT, Swin, HiViT, MViTv2, Hiera and HVT
are points of one spec space and two adjacent steps of a transition differ in exactly the fields a transform
touched. What a kind field's value means (a block, attention, downsample, relative-position or head kind) is
declared by its kind in `ablab.arch.kinds`; this module holds the data, its geometry and its checks. No torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any, Literal, Optional

from ..schema import Key, Problems, SchemaError, did_you_mean, loaded
from ..settings import ADDED, units_per_side
from .kinds import ATTENTION, BLOCKS, DOWNSAMPLE, HEADS, REL_POS, STAGE_KINDS, StageContext

PoolOp = Literal["conv", "max", "avg"]
Expand = Literal["attn", "mlp"]
HeadNorm = Literal["tokens", "pooled"]

IMAGES, CLIPS = "im/s", "clips/s"  # throughput of image and of clip models
KIND_FIELD = {"kind_field": True}  # read only by the kinds that name it; canonical() resets it elsewhere


class SpecError(SchemaError):
    """An ArchSpec that cannot be built; each line names the field."""


@dataclass(frozen=True)
class Stage:
    """One resolution of the model: `depth` blocks of width `dim`.

    block -- a block kind: `attention` (pre-norm attention + MLP) or `mlp` (MLP-only, HiViT's low stages).
    attention -- an attention kind: `global`; `window` (Swin's `window` x `window` windows, `shift` alternates
      shifted windows; a window at least as large as the grid is global); `mask_unit` (Hiera: local attention
      inside each mask unit, whose window shrinks with every Q pooling).
    downsample -- how this stage's input is made from the previous stage's output: `patch_merge` (Swin, HiViT);
      `q_pool` (the first block pools Q and its shortcut by 2x2: MViTv2, Hiera); `token_pool` (HVT's 1D `pool`
      over the token sequence, kernel `q_kernel`, stride 2; `conv` is a dense Conv1d); `grid_pool` (HVT's 2D
      `pool` of the token grid, Table 9).
    rel_pos -- `bias`: a learned (2W-1)^2 x heads table (Swin); `decomposed`: MViTv2's rel_pos_h / rel_pos_w.
    pos_embed -- a learned absolute position embedding is added where this stage starts.
    Pooling attention (MViTv2): K and V are pooled by `pool` with `kv_kernel` and stride `kv_stride` in every
      block; Q by `q_kernel`, stride 2 in a q_pool stage's first block. `pool_stride1` also applies the pools at
      stride 1 (MViTv2 pools with kernel 3 everywhere). `conv` is a depthwise conv over each head's channels
      followed by LayerNorm. `residual_pooling` adds the pooled Q to the attention output.
    """

    depth: int
    dim: int
    heads: int = 0
    block: str = "attention"
    mlp_ratio: float = 4.0
    attention: str = "global"
    window: int = field(default=0, metadata=KIND_FIELD)
    shift: bool = field(default=False, metadata=KIND_FIELD)
    rel_pos: str = "none"
    pos_embed: bool = False
    downsample: str = "none"
    pool: PoolOp = field(default="max", metadata=KIND_FIELD)
    q_kernel: int = field(default=2, metadata=KIND_FIELD)
    kv_kernel: int = field(default=3, metadata=KIND_FIELD)
    kv_stride: int = 1
    pool_stride1: bool = False
    residual_pooling: bool = False

    @property
    def pools_kv(self) -> bool:
        return self.kv_stride > 1 or self.pool_stride1

    @property
    def multiscale(self) -> bool:
        """An MViTv2 / Hiera stage: pooling (Q, K/V, residual), decomposed relative positions or mask units."""
        return (DOWNSAMPLE[self.downsample].pools_in_block or self.pools_kv or self.residual_pooling
                or REL_POS[self.rel_pos].multiscale or ATTENTION[self.attention].multiscale)

    def problems(self) -> list[tuple[str, str]]:
        """Values out of range, whatever the kinds."""
        out = []
        for name, least, most in (("depth", 0, 1000), ("dim", 1, 65536), ("heads", 0, 4096), ("window", 0, 4096),
                                  ("q_kernel", 1, 64), ("kv_kernel", 1, 64), ("kv_stride", 1, 64)):
            if not least <= getattr(self, name) <= most:
                out.append((name, f"must be from {least} to {most}, got {getattr(self, name)}"))
        if not 0 < self.mlp_ratio <= 64:
            out.append(("mlp_ratio", f"must be in (0, 64], got {self.mlp_ratio}"))
        return out


@dataclass(frozen=True)
class ArchSpec:
    """A whole model: stem, stages, position encoding and head.

    stem_kernel -- 0: non-overlapping patch_size x patch_size conv (ViT, Swin); an odd k: k x k conv with
      stride patch_size and padding k // 2 (MViTv2 and Hiera: 7x7, stride 4).
    mask_unit -- side of a mask unit in stem tokens (Hiera: 32 px = 8 tokens of 4 px).
    pool -- a head kind: `token` (the class token) or `avg` (the mean of the final tokens).
    head_norm -- the final LayerNorm acts on every token before pooling (`tokens`: ViT, Swin, MViTv2) or on
      the pooled vector (`pooled`: Hiera, HiViT).
    channel_expand -- at a q_pool transition, widen in the first block's attention (`attn`: MViTv2-B,
      Hiera) or in the previous stage's last MLP (`mlp`: MViTv2-L).
    frames -- input frames T (1: an image, the T = 1 case of the same model). A clip's stem is a 3D conv of
      temporal stride `patch_t` and kernel `stem_kernel_t` (0: patch_t, non-overlapping; an odd k: padded by
      k // 2; Hiera and MViTv2 video: 3 x 7 x 7 with stride 2 x 4 x 4), giving `t_tokens` token frames. Every
      2D operator (windows, mask units, Q pooling, patch merging) runs on each token frame; global attention
      runs over all of them.
    sep_pos_embed -- an absolute position embedding is a spatial table (side^2) plus a temporal one (t_tokens),
      as Hiera's video models; otherwise one table over every token.
    pool_kernel_t -- the temporal kernel of attention's Q and KV pools over a clip (stride 1 in time, padded by
      kernel // 2; MViTv2's video models: 3, so their pools are 3x3x3); 1 pools each token frame alone (Hiera).
    separate_and_pad -- Hiera's Fig. 4d trick: every pool (Q, K/V, the pooled shortcut) runs on each mask unit
      (`mask_unit` stem tokens wide, one token frame deep) alone, zero-padded at the unit's border, in training
      and inference alike, so that no kernel reads a neighbouring unit and sparse MAE can pre-train the model.
    """

    stages: tuple[Stage, ...]
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    patch_size: int = 16
    stem_kernel: int = 0
    stem_norm: bool = False
    class_token: bool = True
    pool: str = "token"
    head_norm: HeadNorm = "tokens"
    qkv_bias: bool = True
    norm_eps: float = 1e-5
    mask_unit: int = 8
    channel_expand: Expand = "attn"
    drop_path: float = 0.0
    init_std: float = field(default=0.02, metadata=ADDED)  # of every Linear weight (timm's trunc-normal 0.02)
    # each block's residual outputs (attention proj, MLP fc2) start at init_std / sqrt(2 x blocks): GPT-2's init
    depth_scaled_init: bool = field(default=False, metadata=ADDED)
    frames: int = field(default=1, metadata=ADDED)
    patch_t: int = field(default=1, metadata=ADDED)
    stem_kernel_t: int = field(default=0, metadata=ADDED)
    sep_pos_embed: bool = field(default=False, metadata=ADDED)
    pool_kernel_t: int = field(default=1, metadata=ADDED)
    separate_and_pad: bool = field(default=False, metadata=ADDED)
    name: str = field(default="", compare=False)

    # ---- derived geometry -------------------------------------------------
    @property
    def t_tokens(self) -> int:
        """Token frames after the stem: 1 for an image."""
        if self.frames == 1:
            return 1
        kernel = self.stem_kernel_t or self.patch_t
        return (self.frames + 2 * (kernel // 2 if self.stem_kernel_t else 0) - kernel) // self.patch_t + 1

    @property
    def throughput_unit(self) -> str:
        """How the model's speed is counted: im/s, or clips/s for a clip model (one sample is a clip)."""
        return throughput_unit([self.frames])

    def input_shape(self, batch: int) -> tuple[int, ...]:
        """(batch, C, H, W) for images, (batch, C, T, H, W) for clips."""
        return input_shape(batch, self.in_chans, self.img_size, self.frames)

    def mask_units(self, unit: int) -> int:
        """Mask units of `unit` px over the input: per side squared, per token frame of a clip (a unit is one token
        frame deep, as Hiera's 1 x 8 x 8-token video units); ValueError when they do not tile the image."""
        return self.t_tokens * units_per_side(self.img_size, self.patch_size, unit) ** 2

    def contexts(self) -> list[StageContext]:
        """Every stage where it sits: its input and output grid, mask-unit side and kinds (names must be known)."""
        side: Optional[int] = self.img_size // self.patch_size
        t = self.t_tokens
        tokens, unit, prev, out = t * side * side, self.mask_unit, None, []
        for i, st in enumerate(self.stages):
            down = DOWNSAMPLE[st.downsample]
            side_out, tokens = down.geometry(side, tokens, st)
            tokens = t * side_out * side_out if side_out else tokens  # 2D operators run on every token frame
            unit = unit // 2 if down.halves else unit
            prev = StageContext(self, i, side, side_out, tokens, unit, BLOCKS[st.block], ATTENTION[st.attention],
                                down, REL_POS[st.rel_pos], prev)
            out.append(prev)
            side = side_out
        return out

    def geometry(self) -> list[tuple[int, Optional[int]]]:
        """(tokens, grid side) of each stage after its downsample; side is None once tokens lose 2D layout."""
        return [(ctx.tokens, ctx.side) for ctx in self.contexts()]

    def grids(self) -> list[Optional[int]]:
        """Side length of the token grid in each stage (None after a 1D token pool)."""
        return [ctx.side for ctx in self.contexts()]

    def mask_unit_windows(self) -> list[int]:
        """Side of a mask unit, in tokens, in each stage: it halves with every Q pooling / merge."""
        return [ctx.unit for ctx in self.contexts()]

    def with_stage(self, index: int, **changes: Any) -> ArchSpec:
        """A copy with stage `index` changed."""
        stages = list(self.stages)
        stages[index] = dataclasses.replace(stages[index], **changes)
        return dataclasses.replace(self, stages=tuple(stages))

    # ---- checks -----------------------------------------------------------
    def problems(self) -> list[tuple[Key, str]]:
        """(field path, message) for every way the spec cannot be built, all of them."""
        if not self.stages:
            return [(("stages",), "a non-empty list of stages is required")]
        out: list[tuple[Key, str]] = []
        for i, st in enumerate(self.stages):
            out += [(("stages", i, name), message) for name, message in st.problems()]
            for name, kinds in STAGE_KINDS.items():
                value = getattr(st, name)
                if value not in kinds:
                    out.append((("stages", i, name), f"unknown {name} kind {value!r}; {did_you_mean(value, kinds)}"))
        if self.pool not in HEADS:
            out.append((("pool",), f"unknown head kind {self.pool!r}; {did_you_mean(self.pool, HEADS)}"))
        for name, most in (("img_size", 4096), ("in_chans", 64), ("patch_size", 4096), ("num_classes", 1 << 20),
                           ("mask_unit", 4096), ("stem_kernel", 4096), ("frames", 4096), ("patch_t", 4096),
                           ("stem_kernel_t", 4096), ("pool_kernel_t", 64)):
            least = 0 if name in ("num_classes", "stem_kernel", "stem_kernel_t") else 1
            if not least <= getattr(self, name) <= most:
                out.append(((name,), f"must be from {least} to {most}, got {getattr(self, name)}"))
        if not 0 <= self.drop_path < 1:
            out.append((("drop_path",), f"a probability in [0, 1) is required, got {self.drop_path}"))
        if not 0 < self.init_std <= 1:
            out.append((("init_std",), f"must be in (0, 1], got {self.init_std}"))
        if not 0 < self.norm_eps < 1:
            out.append((("norm_eps",), f"must be in (0, 1), got {self.norm_eps}"))
        if len(self.stages) > 64:
            out.append((("stages",), f"at most 64 stages, got {len(self.stages)}"))
        if out:
            return out
        if self.img_size % self.patch_size:
            out.append((("img_size",), f"{self.img_size} is not divisible by patch_size {self.patch_size}"))
        if self.stem_kernel and (self.stem_kernel % 2 == 0 or self.stem_kernel < self.patch_size):
            out.append((("stem_kernel",), f"an overlapping stem needs an odd kernel >= patch_size, got "
                                          f"{self.stem_kernel}"))
        out += self._time_problems()
        contexts = self.contexts()
        out += self._unit_problems(contexts)
        for ctx in contexts:
            out += [(("stages", ctx.index, name), message) for name, message in _stage_problems(ctx)]
            if ctx.side == 0:
                break  # nothing further can be built on an empty grid
        first = self.stages[0]
        if self.class_token and (len(self.stages) != 1 or first.attention != "global" or first.block != "attention"
                                 or first.multiscale):
            out.append((("class_token",), "a class token needs a single stage of plain global attention"))
        out += [((name,), message) for name, message in HEADS[self.pool].problems(self)]
        return out

    def _time_problems(self) -> list[tuple[Key, str]]:
        """What is wrong with the temporal stem of a clip model, or with temporal fields on an image model."""
        if self.frames == 1:
            return [((name,), "an image model (frames 1) has no time axis; set frames")
                    for name in ("patch_t", "stem_kernel_t", "pool_kernel_t")
                    if getattr(self, name) != getattr(ArchSpec, name)]
        out: list[tuple[Key, str]] = []
        if self.stem_kernel_t and (self.stem_kernel_t % 2 == 0 or self.stem_kernel_t < self.patch_t):
            out.append((("stem_kernel_t",), f"an overlapping temporal stem needs an odd kernel >= patch_t, got "
                                            f"{self.stem_kernel_t}"))
        elif not self.stem_kernel_t and self.frames % self.patch_t:
            out.append((("frames",), f"{self.frames} frames are not divisible by patch_t {self.patch_t}"))
        if self.pool_kernel_t % 2 == 0:
            out.append((("pool_kernel_t",), f"a temporal pool keeps the frames with an odd kernel, got "
                                            f"{self.pool_kernel_t}"))
        if self.class_token and self.sep_pos_embed:
            out.append((("sep_pos_embed",), "separate space and time embeddings take no class token"))
        return out

    def _unit_problems(self, contexts: list[StageContext]) -> list[tuple[Key, str]]:
        """What keeps separate-and-pad from pooling inside mask units: a unit that does not tile the grid a pool
        works on, or that its stride does not divide (its pooled units would not tile the pooled grid)."""
        if not self.separate_and_pad:
            return []
        out: list[tuple[Key, str]] = []
        for ctx in contexts:
            st, where = ctx.stage, f"stage {ctx.index + 1}"
            pools = [(ctx.prev.unit, ctx.side_in, 2, "Q pooling")] if ctx.downsample.pools_in_block and ctx.prev else []
            if st.pools_kv or st.pool_stride1:
                pools.append((ctx.unit, ctx.side, st.kv_stride if st.pools_kv else 1, "K/V pooling"))
            for unit, side, stride, what in pools:
                if side and (unit < stride or side % unit or unit % stride):
                    out.append((("mask_unit",), f"separate-and-pad: {what} of stride {stride} in {where} works on "
                                                f"mask units of {unit} tokens on a {side}x{side} grid; a unit must "
                                                "tile the grid and be a multiple of the stride"))
        return out

    # ---- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data; a field added later is left out while at its default, so earlier keys stay valid."""
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if not (self.__dataclass_fields__[k].metadata.get("added") and v == self.__dataclass_fields__[k].default)}
        d["stages"] = [dict(s) for s in d["stages"]]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchSpec:
        """Build and check a spec from plain data; SpecError lists every unknown, mistyped or unbuildable field."""
        return loaded(cls, data, SpecError)


def throughput_unit(frames: Iterable[int]) -> str:
    """'clips/s' when every model given by its input frames is a clip model (frames > 1), else 'im/s': image
    models, none known, or a mix (no recipe mixes them; the overview, across recipes, keeps each recipe's unit)."""
    known = list(frames)
    return CLIPS if known and all(f > 1 for f in known) else IMAGES


def input_shape(batch: int, in_chans: int, img_size: int, frames: int = 1) -> tuple[int, ...]:
    """A batch's shape: (batch, C, H, W) for images, (batch, C, T, H, W) for clips of `frames` frames."""
    return (batch, in_chans, img_size, img_size) if frames == 1 else (batch, in_chans, frames, img_size, img_size)


def _stage_problems(ctx: StageContext) -> list[tuple[str, str]]:
    """What is wrong with one stage in its model: sizes, its downsample, its blocks."""
    st, prev = ctx.stage, ctx.prev
    if ctx.side == 0:
        return [("downsample", "the grid is empty here: the image is too small for this many downsamplings")]
    out = []
    if ctx.index == 0 and st.downsample != "none":
        out.append(("downsample", "the first stage takes the stem's output; use 'none'"))
    if prev is not None and not ctx.downsample.halves and st.dim != prev.stage.dim:
        out.append(("dim", f"changes width ({prev.stage.dim} -> {st.dim}) without a patch_merge or q_pool"))
    return out + ctx.downsample.problems(ctx) + ctx.block.problems(ctx)


def check(spec: ArchSpec) -> None:
    """Raise SpecError listing every way `spec` cannot be built."""
    found = Problems()
    found.extend((), spec.problems())
    found.raise_if_any(SpecError)


def canonical(spec: ArchSpec) -> ArchSpec:
    """The same model with every field that has no effect reset to its default (a kind field its kinds do not
    read, the mask unit without mask-unit attention, the name), so that specs compare and hash by what they build."""
    default = Stage(depth=1, dim=1)
    kind_fields = [f.name for f in dataclasses.fields(Stage) if f.metadata.get("kind_field")]
    stages, spec_fields = [], set()
    for ctx in spec.contexts():
        st = ctx.stage
        used = set().union(*(kind.reads(st) for kind in (ctx.block, ctx.attention, ctx.downsample, ctx.rel_pos)))
        stages.append(dataclasses.replace(st, **{f: getattr(default, f) for f in kind_fields if f not in used}))
        spec_fields |= set(ctx.attention.spec_fields)
    contexts = spec.contexts()
    separate = spec.separate_and_pad and any(_overlapping_pools(ctx) for ctx in contexts)
    mask_unit = spec.mask_unit if "mask_unit" in spec_fields or separate else ArchSpec.mask_unit
    sep = spec.sep_pos_embed and any(st.pos_embed for st in spec.stages)
    pools = any(_pooled_contexts(ctx) for ctx in contexts)
    return dataclasses.replace(spec, stages=tuple(stages), mask_unit=mask_unit, sep_pos_embed=sep,
                               pool_kernel_t=spec.pool_kernel_t if pools else 1, separate_and_pad=separate, name="")


def _pooled_contexts(ctx: StageContext) -> bool:
    """Whether a stage's attention pools anything (Q at its transition, K/V, Q at stride 1)."""
    st = ctx.stage
    return st.pools_kv or st.pool_stride1 or ctx.downsample.pools_in_block


def _overlapping_pools(ctx: StageContext) -> bool:
    """Whether a stage has a pool whose kernel reads past its stride (or over time): what separate-and-pad changes."""
    st, spec = ctx.stage, ctx.spec
    overlaps = (st.pool_stride1 and st.q_kernel > 1) or (st.pools_kv and st.kv_kernel != st.kv_stride)
    overlaps = overlaps or (ctx.downsample.pools_in_block and st.q_kernel != 2)
    return overlaps or (_pooled_contexts(ctx) and spec.pool_kernel_t > 1)


def _flat_top(spec: ArchSpec) -> dict[str, Any]:
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name not in ("stages", "name")}


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

    contexts, stages = spec.contexts(), spec.stages
    expands = any(ctx.downsample.pools_in_block and ctx.stage.dim != ctx.prev.stage.dim for ctx in contexts[1:])
    return {
        "resolution": (f"{spec.frames}x" if spec.frames > 1 else "") + f"{spec.img_size}px/"
                      + (f"{spec.patch_t}x" if spec.frames > 1 else "") + f"{spec.patch_size}"
                      + (f"k{spec.stem_kernel}" if spec.stem_kernel else ""),
        "tokens": join([ctx.tokens for ctx in contexts]),
        "depths": join([ctx.block.modules(ctx.stage.depth) for ctx in contexts]),  # as papers count them
        "dims": join([st.dim for st in stages]),
        "heads": join([st.heads for st in stages]),
        "attention": kinds([ctx.block.column(ctx) for ctx in contexts]),
        "rel_pos": kinds([st.rel_pos for st in stages]),
        "abs_pos": kinds([f"s{i}" for i, st in enumerate(stages) if st.pos_embed]) or "none",
        "q_pool": kinds([ctx.downsample.column(ctx) for ctx in contexts]),
        "kv_pool": kinds([f"{st.pool}{st.kv_kernel}s{st.kv_stride}" if st.pools_kv else "none" for st in stages]),
        "stride1_pools": kinds(["yes" if st.pool_stride1 else "no" for st in stages]),
        "res_pool": kinds(["yes" if st.residual_pooling else "no" for st in stages]),
        "expand": spec.channel_expand if expands else "none",
        "head": HEADS[spec.pool].column,
    }
