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
    """Parsed YAML data plus the line of every mapping key and sequence item, and the text of every scalar (so a
    cited 22.10 keeps its printed precision)."""

    path: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)
    texts: dict[Key, str] = field(default_factory=dict)

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


MAX_BYTES = 1 << 20  # a recipe is a page or two of YAML
MAX_NODES = 100_000  # after alias expansion: an alias "bomb" of a few hundred bytes expands to billions
MAX_DEPTH = 64  # levels of nesting


def load_source(path: str | Path) -> Source:
    """Load a YAML file with the safe loader; SourceError for a missing, oversized or non-UTF-8 file, a syntax
    error, a duplicate key, nesting deeper than MAX_DEPTH or more than MAX_NODES nodes once aliases expand."""
    path = Path(path)
    if not path.is_file():
        raise SourceError([f"{path}: no such recipe file"])
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        line = raw[:MAX_BYTES].count(b"\n") + 1
        raise SourceError([f"{path}:{line}: {len(raw):,} bytes; a recipe holds at most {MAX_BYTES:,} (this is the "
                           "line where it passes that)"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SourceError([f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})"]) from None
    _check_nesting(text, path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_shape(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 1
        raise SourceError([f"{path}:{line}: YAML syntax: {e.problem or e}"]) from None
    except RecursionError:
        raise SourceError([f"{path}:1: nesting deeper than Python can parse"]) from None
    finally:
        loader.dispose()
    src = Source(str(path), data)
    errors: list[str] = []
    if node is not None:
        _walk(node, (), src, errors)
    if errors:
        raise SourceError(errors)
    return src


def _check_nesting(text: str, path: Path) -> None:
    """SourceError at the first line nesting deeper than MAX_DEPTH, by flow brackets or by indentation, before the
    parser recurses that deep."""
    depth, quote = 0, ""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) - len(line.lstrip(" ")) > 4 * MAX_DEPTH:
            raise SourceError([f"{path}:{number}: nesting deeper than {MAX_DEPTH} levels"])
        for ch in line:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise SourceError([f"{path}:{number}: nesting deeper than {MAX_DEPTH} levels"])
            elif ch in "]}":
                depth = max(0, depth - 1)
        quote = ""  # a quoted scalar does not run on past its line in a recipe


def _check_shape(root: yaml.Node, path: Path) -> None:
    """SourceError when the document nests deeper than MAX_DEPTH or holds more than MAX_NODES nodes with every
    alias expanded (counted without expanding them)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise SourceError([f"{path}:{node.start_mark.line + 1}: nesting deeper than {MAX_DEPTH} levels"])
        if id(node) in sizes:
            return sizes[id(node)]
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        total = 1 + sum(size(child, depth + 1) for child in children)
        if total > MAX_NODES:
            raise SourceError([f"{path}:{node.start_mark.line + 1}: the document expands to more than "
                               f"{MAX_NODES:,} nodes (YAML aliases repeat what they point to)"])
        sizes[id(node)] = total
        return total

    size(root, 0)


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
    elif isinstance(node, yaml.ScalarNode):
        src.texts[key] = node.value
