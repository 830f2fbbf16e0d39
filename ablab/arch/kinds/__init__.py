"""The registry of kinds: every value a spec's kind fields may take, each declared in its own module.

Adding a kind means writing its module and adding it to one line below; specs, the builder, `ablab show`, the
report, profiles' shrink and sparse masked image modeling all read it from here.
"""

from __future__ import annotations

from typing import TypeVar

from .attention import Global, MaskUnit, Window
from .base import AttentionKind, BlockKind, DownsampleKind, HeadKind, Kind, RelPosKind, StageContext
from .blocks import AttentionBlock, MlpBlock
from .downsample import GridPool, NoDownsample, PatchMerge, QPool, TokenPool
from .head import AverageHead, TokenHead
from .neighborhood import Neighborhood
from .position import BiasTable, Decomposed, NoRelPos

K = TypeVar("K")


def registry(*kinds: K) -> dict[str, K]:
    """Kinds by name, in the order given."""
    return {kind.name: kind for kind in kinds}


BLOCKS: dict[str, BlockKind] = registry(AttentionBlock(), MlpBlock())
ATTENTION: dict[str, AttentionKind] = registry(Global(), Window(), MaskUnit(), Neighborhood())
DOWNSAMPLE: dict[str, DownsampleKind] = registry(NoDownsample(), PatchMerge(), QPool(), TokenPool(), GridPool())
REL_POS: dict[str, RelPosKind] = registry(NoRelPos(), BiasTable(), Decomposed())
HEADS: dict[str, HeadKind] = registry(TokenHead(), AverageHead())

# the Stage field each registry gives the values of
STAGE_KINDS = {"block": BLOCKS, "attention": ATTENTION, "downsample": DOWNSAMPLE, "rel_pos": REL_POS}

__all__ = ["ATTENTION", "BLOCKS", "DOWNSAMPLE", "HEADS", "REL_POS", "STAGE_KINDS", "AttentionKind", "BlockKind",
           "DownsampleKind", "HeadKind", "Kind", "RelPosKind", "StageContext", "registry"]
