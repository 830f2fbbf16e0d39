"""The spec pre-training builds from the fine-tuning one: its own drop path (Hiera Table 3c) and stage windows
(GreenMIM Table 1), nothing that would keep the encoder's weights from loading into the fine-tuning model. No torch.
"""

from __future__ import annotations

import dataclasses

from ..arch.spec import ArchSpec
from ..settings import PretrainConfig
from ..transforms.generic import set_fields
from ..transforms.registry import PreconditionError


def pretrain_spec(spec: ArchSpec, cfg: PretrainConfig) -> ArchSpec:
    """`spec` as pre-training builds it: drop path cfg.drop_path, cfg.set's windows. ValueError naming the field
    for an override that is not allowed, addresses no windowed stage, or that the spec cannot take."""
    found = [f"pretrain.{name}: {message}" for name, message in cfg.problems() if name in ("set", "drop_path")]
    if found:
        raise ValueError("; ".join(found))
    try:
        out = set_fields(spec, dict(cfg.set)) if cfg.set else spec
    except PreconditionError as e:
        raise ValueError(f"pretrain.set: {e}") from None
    every = out.contexts()
    for key in cfg.set:
        which = key.split(".")[1]
        contexts = every if which == "*" else [every[int(which)]]
        if not any("window" in ctx.attention.reads(ctx.stage) for ctx in contexts):
            kinds = ", ".join(sorted({ctx.stage.attention for ctx in contexts}))
            raise ValueError(f"pretrain.set: '{key}' addresses no stage with windows ({kinds} attention reads no "
                             "window), so it would change nothing")
    return dataclasses.replace(out, drop_path=cfg.drop_path)
