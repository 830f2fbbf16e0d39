"""Safe YAML loading that remembers where every key and item came from (file and line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

Key = tuple[Union[str, int], ...]


class SourceError(Exception):
    """Errors pinned to places in a source file: 'file:line: field: message', one per line."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class Source:
    """Parsed YAML data plus the line of every mapping key and sequence item."""

    path: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)

    def line(self, key: Key) -> int:
        """Line of `key`, or of its nearest ancestor that exists."""
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def where(self, key: Key) -> str:
        """'file:line: a.b[2].c' for messages."""
        name = ""
        for part in key:
            name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
        return f"{self.path}:{self.line(key)}: {name or '<top>'}"


def load_source(path: str | Path) -> Source:
    """Load a YAML file with the safe loader; duplicate keys and syntax errors raise SourceError."""
    path = Path(path)
    if not path.is_file():
        raise SourceError([f"{path}: no such recipe file"])
    text = path.read_text()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError([f"{path}:{line}: YAML syntax: {e.problem or e}"]) from None
    finally:
        loader.dispose()
    src = Source(str(path), data)
    errors: list[str] = []
    if node is not None:
        _walk(node, (), src, errors)
    if errors:
        raise SourceError(errors)
    return src


def _walk(node: yaml.Node, key: Key, src: Source, errors: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for k, v in node.value:
            name = k.value
            if name in seen:
                errors.append(f"{src.path}:{k.start_mark.line + 1}: duplicate key '{name}'")
            seen.add(name)
            src.lines[key + (name,)] = k.start_mark.line + 1
            _walk(v, key + (name,), src, errors)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            src.lines[key + (i,)] = item.start_mark.line + 1
            _walk(item, key + (i,), src, errors)
