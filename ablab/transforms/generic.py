"""Generic transforms, for steps no paper-specific transform covers: set any spec field; restrict global attention
to a local neighbourhood."""

from __future__ import annotations

from typing import Any, Optional

from ..arch.spec import ArchSpec, SpecError
from .registry import PreconditionError, require, transform


@transform(paper="any (a field-level edit)")
def set_fields(spec: ArchSpec, fields: dict) -> ArchSpec:
    """Set spec fields by name; 'stages.2.heads' or 'stages.*.mlp_ratio' address stages."""
    data = spec.to_dict()
    for key, value in fields.items():
        parts = str(key).split(".")
        if parts[0] != "stages":
            if len(parts) != 1:
                raise PreconditionError(f"'{key}': only stage fields take a dotted path (stages.<i|*>.<field>)")
            data[key] = value
            continue
        if len(parts) != 3:
            raise PreconditionError(f"'{key}': a stage field is addressed as stages.<index or *>.<field>")
        _set_stage_field(data["stages"], key, parts[1], parts[2], value)
    try:
        return ArchSpec.from_dict(data)
    except SpecError as e:
        raise PreconditionError(str(e)) from None


def _set_stage_field(stages: list[dict], key: str, which: str, name: str, value: Any) -> None:
    if which == "*":
        targets = range(len(stages))
    elif which.isdigit() and int(which) < len(stages):
        targets = [int(which)]
    else:
        raise PreconditionError(f"'{key}': stage '{which}' does not exist (0..{len(stages) - 1} or *)")
    for i in targets:
        stages[i][name] = value


@transform(paper="none: a local-attention ablation (the neighbourhood attention kind)")
def neighborhood_attention(spec: ArchSpec, size: int = 3, stages: Optional[list[int]] = None) -> ArchSpec:
    """Restrict global attention to each token's size x size neighbourhood (default: every global attention stage)."""
    targets = ([i for i, st in enumerate(spec.stages) if st.block == "attention" and st.attention == "global"]
               if stages is None else stages)
    require(bool(targets), "no stage has global attention")
    for i in targets:
        require(0 <= i < len(spec.stages) and spec.stages[i].block == "attention"
                and spec.stages[i].attention == "global", f"stage {i} has no global attention")
    require(size >= 1 and size % 2 == 1, f"size must be an odd number of tokens, got {size}")
    for i in targets:
        spec = spec.with_stage(i, attention="neighborhood", window=size)
    return spec
