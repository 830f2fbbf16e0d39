"""What a kind is: one block, attention, downsample, relative-position or head design, declared in one place.

A kind names the spec fields it reads, checks them, builds its part of the model, describes itself for
`ablab show` and the report's design columns, says how a profile's shrink treats it, and whether sparse masked
image modeling (MAE on visible mask units, GreenMIM's group window attention) can run it. Kinds see a stage
through a `StageContext`: the stage, its model, the grid it works on and the kinds of its fields. Declarations
import no torch; a kind's `build` imports its layers when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from torch import nn

    from ..spec import ArchSpec, Stage

Problem = tuple[str, str]  # (field of the stage or spec, message)


@dataclass(frozen=True)
class StageContext:
    """Stage `index` of `spec` where it sits: the grid it receives, the one its blocks work on, its kinds."""

    spec: ArchSpec
    index: int
    side_in: Optional[int]  # grid side the stage receives (None once a 1D token pool dropped the 2D layout)
    side: Optional[int]  # grid side after its downsample, where its blocks work
    tokens: int  # tokens after its downsample
    unit: int  # side of a mask unit, in this stage's tokens
    block: BlockKind
    attention: AttentionKind
    downsample: DownsampleKind
    rel_pos: RelPosKind
    prev: Optional[StageContext] = None

    @property
    def stage(self) -> Stage:
        return self.spec.stages[self.index]


class Kind:
    """Defaults every kind shares; a family's base class adds its own hooks and a kind overrides what differs."""

    name = ""
    fields: tuple[str, ...] = ()  # Stage fields the kind reads; canonical() resets the others a family may read

    def reads(self, stage: Stage) -> tuple[str, ...]:
        """The Stage fields this kind reads in `stage` (those that change the model)."""
        return self.fields

    def problems(self, ctx: StageContext) -> list[Problem]:
        """(field, message) for every way the stage cannot be built with this kind."""
        return []

    def sparse(self, ctx: StageContext, unit: int) -> Optional[str]:
        """Why sparse MAE cannot run this kind on `unit` x `unit`-token mask units (None: it can)."""
        return None

    def greenmim(self, ctx: StageContext) -> Optional[str]:
        """The operator GreenMIM's group window attention cannot run (None: it can)."""
        return None


class BlockKind(Kind):
    """What a stage's blocks are (`Stage.block`)."""

    attends = True  # blocks mix tokens, so heads, attention kinds and position biases apply
    layers: int  # residual layers per block, declared by each kind; the papers count modules of two

    def modules(self, depth: int) -> str:
        """`depth` blocks as the papers count modules of two residual layers: '1' for HiViT's 2 MLP blocks, one
        decimal when not whole."""
        count = depth * self.layers / 2
        return str(int(count)) if count.is_integer() else f"{count:.1f}"

    def build(self, ctx: StageContext, index: int, dim_in: int, dim_out: int, drop_path: float) -> nn.Module:
        """Block `index` of the stage: (B, N, dim_in) -> (B, N', dim_out)."""
        raise NotImplementedError

    def describe(self, ctx: StageContext) -> str:
        """'MLP-only', 'shifted window 7 attn', ... for `ablab show`."""
        raise NotImplementedError

    def column(self, ctx: StageContext) -> str:
        """The stage's entry in the report's attention column."""
        raise NotImplementedError


class AttentionKind(Kind):
    """Which tokens attend to which (`Stage.attention`)."""

    needs_grid = True  # works on a 2D token grid
    multiscale = False  # an MViTv2 / Hiera design (no class token)
    carries_into_pooling = False  # the Q-pooling first block of the next stage keeps this locality (Hiera)
    spec_fields: tuple[str, ...] = ()  # ArchSpec fields the kind reads

    def layout(self, ctx: StageContext, side: Optional[int], unit: int, index: int) -> tuple[Optional[int], int]:
        """(window, shift) of block `index` on a `side` x `side` grid whose mask units are `unit` tokens wide:
        attention runs inside window x window squares (window = side: one square), cyclically shifted by `shift`."""
        return side, 0

    def mask(self, ctx: StageContext, side: int, window: int, shift: int) -> Any:
        """An additive attention mask (windows or 1, 1, N, N) for a layout of this kind in `ctx`, or None."""
        return None

    def describe(self, ctx: StageContext) -> str:
        raise NotImplementedError

    def column(self, ctx: StageContext) -> str:
        raise NotImplementedError

    def one_map(self, ctx: StageContext) -> bool:
        """Whether each block has one map over all tokens per image (the attention-variance study needs it)."""
        return True

    def shrink(self, stage: Stage, old_side: int, new_side: int) -> dict[str, Any]:
        """Stage fields to change when a profile shrinks the grid from `old_side` to `new_side`."""
        return {}


class DownsampleKind(Kind):
    """How a stage's input is made from the previous stage's output (`Stage.downsample`)."""

    halves = False  # halves the 2D grid (and the mask units, in tokens); may change the width
    pools_in_block = False  # the first block pools Q and its shortcut by 2 (MViTv2, Hiera)

    def geometry(self, side: Optional[int], tokens: int, stage: Stage) -> tuple[Optional[int], int]:
        """(grid side, tokens) after the downsample."""
        return side, tokens

    def width(self, dim_in: int, stage: Stage) -> int:
        """Width of the tokens the stage's first block receives from a previous stage `dim_in` wide."""
        return dim_in

    def build(self, ctx: StageContext, dim_in: int) -> nn.Module:
        """The module placed before the stage's blocks: (B, N, dim_in) -> (B, N', dim)."""
        from torch import nn

        return nn.Identity()

    def describe(self, ctx: StageContext) -> Optional[str]:
        return None

    def column(self, ctx: StageContext) -> str:
        """The stage's entry in the report's q_pool column."""
        return "none"


class RelPosKind(Kind):
    """Relative positions added to the attention logits (`Stage.rel_pos`)."""

    needs_grid = True
    multiscale = False

    def build(self, q_side: int, kv_side: int, heads: int, head_dim: int, prefix: int,
              frames: int = 1) -> Optional[nn.Module]:
        """The bias module of an attention whose windows hold `frames` x q_side^2 queries and frames x kv_side^2
        keys: called as module(q) with q (B', heads, Nq, d), it returns an additive bias broadcastable to
        (B', heads, Nq, Nk)."""
        return None

    def describe(self, ctx: StageContext) -> Optional[str]:
        return f"rel-pos {self.name}"


class HeadKind:
    """How the final tokens become one vector per image (`ArchSpec.pool`)."""

    name = ""
    describe = ""  # for `ablab show`
    column = ""  # the report's head column

    def problems(self, spec: ArchSpec) -> list[Problem]:
        return []

    def pool(self, x: Any) -> Any:
        """(B, N, C) final tokens -> (B, C)."""
        raise NotImplementedError
