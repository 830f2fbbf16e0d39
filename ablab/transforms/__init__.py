"""Registered architecture transforms: pure (spec, **params) -> spec functions, one module per paper family."""

from . import generic, hiera, hivit, hvt  # noqa: F401  (registers the transforms)
from .registry import TRANSFORMS, PreconditionError, Transform

__all__ = ["TRANSFORMS", "PreconditionError", "Transform"]
