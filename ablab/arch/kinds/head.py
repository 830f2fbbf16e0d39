"""Head kinds: how the final tokens become one vector: the class token (ViT, DeiT) or their average."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import HeadKind, Problem

if TYPE_CHECKING:
    from ..spec import ArchSpec


class TokenHead(HeadKind):
    """The class token's final state (ViT, DeiT)."""

    name = "token"
    describe = "class token"
    column = "cls"

    def problems(self, spec: ArchSpec) -> list[Problem]:
        return [] if spec.class_token else [("pool", "'token' pooling needs class_token: true; use 'avg'")]

    def pool(self, x: Any) -> Any:
        return x[:, 0]


class AverageHead(HeadKind):
    """The mean of the final tokens (Swin, MViTv2, Hiera, HiViT, HVT)."""

    name = "avg"
    describe = "average pool"
    column = "avg"

    def pool(self, x: Any) -> Any:
        return x.mean(dim=1)
