"""Command-line overrides of a profile's settings, Hydra style: `--set train.lr=1e-3` changes one field,
`--sweep train.lr=1e-3,5e-4` runs one variant of the profile per value (several sweeps: every combination).

A path names a field of the profile (`train.lr`, `train.pretrain.mask_ratio`, `seeds`, `scale.width`); a value is
YAML (`true`, `[0.08, 1.0]`, `null`), and numbers may be written as on any command line (`1e-3`). Overrides go into
the recipe's data before it is validated, so they are checked like the recipe's own fields, with the argument
named where a file would name its line. A profile with overrides is a variant of its own: its results go to a
directory named after them (`cpu+train.lr=0.001`), so nothing of the profile's own runs is overwritten.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Any

import yaml

PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
VALUE_TEXT = re.compile(r"[A-Za-z0-9_.+-]{1,24}")  # a value that names a directory as it is


class OverrideError(ValueError):
    """Arguments that cannot be read as overrides; `errors` lists one line per argument."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Override:
    """`path` (a profile's field, dotted) set to `value`; `arg` is the argument as given, for messages."""

    path: tuple[str, ...]
    value: Any
    arg: str

    @property
    def name(self) -> str:
        return ".".join(self.path)


def _value(text: str) -> Any:
    """A YAML value; numbers YAML 1.1 reads as text (1e-3) as numbers."""
    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str):
        for number in (int, float):
            try:
                return number(value)
            except ValueError:
                pass
    return value


def _split(text: str) -> list[str]:
    """Comma-separated values, commas inside [...] or {...} kept: '[1,2],[3,4]' -> ['[1,2]', '[3,4]']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _parse(option: str, text: str, many: bool) -> list[Override]:
    arg = f"{option} {text}"
    path, sep, values = text.partition("=")
    path = path.strip()
    if not sep or not PATH.fullmatch(path):
        raise OverrideError([f"{arg}: expected FIELD=VALUE{',VALUE...' if many else ''} with a dotted field of the "
                             "profile, e.g. train.lr=1e-3"])
    try:
        parsed = [_value(v) for v in (_split(values) if many else [values])]
    except yaml.YAMLError as e:
        raise OverrideError([f"{arg}: the value is not YAML: {str(e).splitlines()[0]}"]) from None
    if many and len(parsed) < 2:
        raise OverrideError([f"{arg}: a sweep takes at least two comma-separated values; one value is --set"])
    if many and len({repr(v) for v in parsed}) < len(parsed):
        raise OverrideError([f"{arg}: values repeat"])
    return [Override(tuple(path.split(".")), v, arg) for v in parsed]


def points(sets: list[str], sweeps: list[str]) -> list[tuple[Override, ...]]:
    """Every combination of the sweeps' values, each with the --set overrides: the variants to run (one empty
    point when there are no overrides). OverrideError lists every argument that cannot be read, and every field
    given twice."""
    errors: list[str] = []
    fixed, swept = [], []
    for option, texts, many in (("--set", sets, False), ("--sweep", sweeps, True)):
        for text in texts:
            try:
                parsed = _parse(option, text, many)
            except OverrideError as e:
                errors += e.errors
                continue
            (swept.append(parsed) if many else fixed.extend(parsed))
    named = [o.name for o in fixed] + [values[0].name for values in swept]
    errors += [f"{name}: given more than once (in --set and --sweep)" for name in sorted(set(named))
               if named.count(name) > 1]
    if errors:
        raise OverrideError(errors)
    return [tuple(fixed) + combo for combo in itertools.product(*swept)]


def _text(value: Any) -> str:
    """`value` as a directory name part: as printed when that is safe and short, else a digest of it."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if VALUE_TEXT.fullmatch(text):
        return text
    return "h" + hashlib.sha256(repr(value).encode()).hexdigest()[:8]


def variant(profile: str, point: tuple[Override, ...]) -> str:
    """The directory name of `profile` under `point`: 'cpu+train.lr=0.001' (the profile's own name when empty)."""
    return profile + "".join(f"+{o.name}={_text(o.value)}" for o in point)
