"""The pre-training model of a method for a spec: MAE, SimMIM or GreenMIM, each imported only when used."""

from __future__ import annotations

from torch import nn

from ..arch.spec import ArchSpec
from ..settings import PretrainConfig
from .spec import pretrain_spec


class PretrainUnsupported(ValueError):
    """The method cannot pre-train this spec (e.g. sparse MAE through overlapping convs); the message says why."""


def build_pretrainer(spec: ArchSpec, cfg: PretrainConfig) -> nn.Module:
    """The cfg.method model for the spec pre-training builds from the fine-tuning `spec` (`pretrain_spec`: its own
    drop path and windows) with `.encoder`, `.unit`, forward(images, mask) -> loss; ValueError for settings out of
    range, PretrainUnsupported with the builder's reason when the method cannot take the spec or its mask unit."""
    problems = "; ".join(f"{name}: {message}" for name, message in cfg.problems())
    if problems:
        raise ValueError(f"pretrain settings: {problems}")
    spec = pretrain_spec(spec, cfg)
    if spec.frames > 1 and cfg.method != "mae":
        raise PretrainUnsupported(f"{cfg.method} cannot pre-train this model: it masks images; clips pre-train with "
                                  "method mae (Hiera's video MAE, mask units one token frame deep)")
    try:
        if cfg.method == "mae":
            from .mae import build_mae

            return build_mae(spec, cfg)
        if cfg.method == "greenmim":
            from .greenmim import build_greenmim

            return build_greenmim(spec, cfg)
        from .simmim import build_simmim

        return build_simmim(spec, cfg)
    except ValueError as e:  # SpecError, MaskError, SparseError and the builders' own checks
        raise PretrainUnsupported(f"{cfg.method} cannot pre-train this model: {e}") from e
