"""The transform registry: a dict of named, documented, typed spec -> spec functions."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, get_type_hints

from ..arch.spec import ArchSpec


class PreconditionError(ValueError):
    """A transform was applied to a spec it does not fit; the message says why."""


@dataclass(frozen=True)
class Param:
    name: str
    hint: Any
    default: Any  # inspect.Parameter.empty when required

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def describe(self) -> str:
        hint = self.hint.__name__ if isinstance(self.hint, type) else str(self.hint).replace("typing.", "")
        return f"{self.name}: {hint}" + ("" if self.required else f" = {self.default!r}")


@dataclass(frozen=True)
class Transform:
    name: str
    fn: Callable[..., ArchSpec]
    paper: str
    params: tuple[Param, ...]

    @property
    def doc(self) -> str:
        """First line of the docstring."""
        return (inspect.getdoc(self.fn) or "").splitlines()[0]

    def __call__(self, spec: ArchSpec, **params: Any) -> ArchSpec:
        return self.fn(spec, **params)


TRANSFORMS: dict[str, Transform] = {}


def transform(paper: str) -> Callable[[Callable[..., ArchSpec]], Callable[..., ArchSpec]]:
    """Register `fn(spec, **params) -> spec` under its name; `paper` names the step it reproduces."""

    def register(fn: Callable[..., ArchSpec]) -> Callable[..., ArchSpec]:
        hints = get_type_hints(fn)
        sig = inspect.signature(fn)
        params = tuple(Param(p.name, hints.get(p.name, Any), p.default) for p in list(sig.parameters.values())[1:])
        TRANSFORMS[fn.__name__] = Transform(fn.__name__, fn, paper, params)
        return fn

    return register


def require(condition: bool, message: str) -> None:
    """Raise PreconditionError(message) unless `condition` holds."""
    if not condition:
        raise PreconditionError(message)
