"""One typed loader and one problems collector: plain data (from YAML or Python) -> typed dataclasses.

`load(hint, value, key, problems)` checks names and types against a type hint (a dataclass, Literal, int, float,
bool, str, list / tuple, dict, Optional), then runs the dataclass's own `problems()` (ranges, conflicts). It never
raises on bad data: every problem goes to the `Problems` collector with the key path it belongs to, so one pass
reports every error of a recipe at once, each at its own file and line when the data came from a file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Iterable, Literal, Optional, Sequence, Union, get_args, get_origin, get_type_hints

from .yamlsrc import Key, Source


class SchemaError(ValueError):
    """Data that cannot be loaded; `errors` lists one 'where: message' line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """"did you mean 'x'? allowed: a, b, c" (the hint only when a choice is close)."""
    choices = list(choices)
    close = difflib.get_close_matches(str(word), choices, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}allowed: {', '.join(choices)}"


def key_name(key: Key) -> str:
    """('steps', 2, 'params', 'dim') -> 'steps[2].params.dim'."""
    name = ""
    for part in key:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


class Problems:
    """Every problem found, each with where it is: 'file:line: field: message' for data from a file,
    "field 'a.b': message" otherwise. `prefix` places keys given relative to a block inside the file."""

    def __init__(self, source: Optional[Source] = None, prefix: Key = ()) -> None:
        self.source, self.prefix = source, prefix
        self.lines: list[str] = []

    def add(self, key: Key, message: str) -> None:
        key = self.prefix + tuple(key)
        where = self.source.where(key) if self.source is not None else f"field '{key_name(key) or '<top>'}'"
        self.lines.append(f"{where}: {message}")

    def at(self, where: str, message: str) -> None:
        """A problem at a place no key of the source names: another file's line, a command-line argument."""
        self.lines.append(f"{where}: {message}")

    def unknown(self, key: Key, value: dict, allowed: Sequence[str]) -> None:
        """An error for every key of the mapping `value` (at `key`) that is not in `allowed`."""
        for k in value:
            if k not in allowed:
                self.add(tuple(key) + (k,), f"unknown field '{k}'; {did_you_mean(k, allowed)}")

    def extend(self, key: Key, found: Iterable[tuple[Union[str, Key], str]]) -> None:
        """Add (field or key path, message) pairs found inside the block at `key`."""
        for where, message in found:
            self.add(tuple(key) + ((where,) if isinstance(where, str) else tuple(where)), message)

    def raise_if_any(self, error: type[SchemaError] = SchemaError) -> None:
        if self.lines:
            raise error(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def load(hint: Any, value: Any, key: Key, problems: Problems) -> Any:
    """`value` as type `hint`, or None after adding what is wrong with it to `problems`."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, key, problems)
    if origin is Union:  # Optional[X]
        if value is None and type(None) in get_args(hint):
            return None
        inner = [a for a in get_args(hint) if a is not type(None)]
        return load(inner[0], value, key, problems)
    if origin is Literal:
        allowed = get_args(hint)
        if isinstance(value, (dict, list)) or value not in allowed:
            problems.add(key, f"{value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")
            return None
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.add(key, f"expected a list, got {value!r}")
            return None
        args = [a for a in get_args(hint) if a is not Ellipsis] or [Any]
        before = len(problems)
        items = [load(args[min(i, len(args) - 1)], v, tuple(key) + (i,), problems) for i, v in enumerate(value)]
        if len(problems) > before:
            return None
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            problems.add(key, f"expected a mapping, got {value!r}")
            return None
        return dict(value)
    check = _SCALARS.get(hint)
    if check is None:
        return value
    expected, ok = check
    if not ok(value):
        problems.add(key, f"expected {expected}, got {value!r}")
        return None
    return float(value) if hint is float else value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_SCALARS = {
    bool: ("true/false", lambda v: isinstance(v, bool)),
    int: ("an integer", _is_int),
    float: ("a finite number", lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v)),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _dataclass(cls: type, value: Any, key: Key, problems: Problems) -> Any:
    """An instance of `cls` from a mapping: unknown fields, missing required ones, types, then `cls.problems()`."""
    if isinstance(value, cls):
        return value
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    if not isinstance(value, dict):
        problems.add(key, f"a mapping with {', '.join(names)} is required")
        return None
    before = len(problems)
    problems.unknown(key, value, names)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and required and f.name not in value:
            problems.add(key, f"'{f.name}' is required")
    hints = get_type_hints(cls)
    kwargs = {n: load(hints[n], v, tuple(key) + (n,), problems) for n, v in value.items() if n in names}
    if len(problems) > before:
        return None
    obj = cls(**kwargs)
    if hasattr(obj, "problems"):
        problems.extend(key, obj.problems())
    return obj if len(problems) == before else None


def loaded(hint: Any, value: Any, error: type[SchemaError] = SchemaError) -> Any:
    """`load` for data from Python (no file): the typed value, or `error` listing every problem."""
    problems = Problems()
    out = load(hint, value, (), problems)
    problems.raise_if_any(error)
    return out
