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
    cited 22.10 keeps its printed precision). Keys grafted from another file (a profile a recipe extends) or set on
    the command line name their own origin in `files`; line 0 is a place with no line (a command-line argument)."""

    path: str
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)
    texts: dict[Key, str] = field(default_factory=dict)
    files: dict[Key, str] = field(default_factory=dict)
    via: dict[Key, str] = field(default_factory=dict)  # where a file was grafted -> 'file:line' of what grafted it

    def _known(self, key: Key) -> Key:
        """`key`, or its nearest ancestor with a recorded place."""
        while key and key not in self.lines:
            key = key[:-1]
        return key

    def where(self, key: Key) -> str:
        """'file:line: a.b[2].c' for messages ('--set a.b=1: a.b' for a command-line argument)."""
        name = ""
        for part in key:
            name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
        known = self._known(key)
        origin, line = self.files.get(known, self.path), self.lines.get(known, 1)
        root = next((known[:n] for n in range(len(known), -1, -1) if known[:n] in self.via), None)
        grafted = origin != self.path and line and root is not None  # not the file's own, nor an argument's
        via = f" (extended by {self.via[root]})" if grafted else ""
        return f"{origin}{f':{line}' if line else ''}{via}: {name or '<top>'}"

    def graft(self, key: Key, other: Source, by: Key) -> None:
        """Put `other`'s mapping under `key` beneath what is there: fields present at `key` win, nested mappings
        merge, and every field taken from `other` keeps its own file and line (and says it came through `by`)."""
        here = self.get(key)
        self.via[key] = f"{self.path}:{self.lines.get(by, 1)}"

        def merge(mine: dict, theirs: dict, at: Key, inner: Key) -> None:
            for name, value in theirs.items():
                if name not in mine:
                    mine[name] = value
                    self._adopt(other, at + (name,), inner + (name,))
                elif isinstance(mine[name], dict) and isinstance(value, dict):
                    merge(mine[name], value, at + (name,), inner + (name,))

        merge(here, other.data, key, ())

    def _adopt(self, other: Source, at: Key, inner: Key) -> None:
        """Record the places of `other`'s subtree at `inner` as this source's subtree at `at`."""
        for table in ("lines", "texts"):
            mine, theirs = getattr(self, table), getattr(other, table)
            mine.update({at + k[len(inner):]: v for k, v in theirs.items() if k[:len(inner)] == inner})
        self.files.update({at + k[len(inner):]: other.files.get(k, other.path) for k in other.lines
                           if k[:len(inner)] == inner})

    def get(self, key: Key) -> Any:
        """The data at `key` (KeyError / IndexError / TypeError where there is none)."""
        value = self.data
        for part in key:
            value = value[part]
        return value

    def put(self, key: Key, value: Any, origin: str) -> None:
        """Set `key` (its parents exist and are mappings) to `value`, placed at `origin` with no line: what was
        there before, and every place recorded under it, is gone."""
        self.get(key[:-1])[key[-1]] = value
        for table in (self.lines, self.texts, self.files):
            for k in [k for k in table if k[:len(key)] == key]:
                del table[k]
        self.lines[key], self.files[key] = 0, origin


MAX_BYTES = 1 << 20  # a recipe is a page or two of YAML
MAX_NODES = 100_000  # after alias expansion: an alias "bomb" of a few hundred bytes expands to billions
MAX_DEPTH = 64  # levels of nesting


def load_source(path: str | Path, what: str = "recipe") -> Source:
    """Load a YAML file with the safe loader; SourceError for a missing, oversized or non-UTF-8 file, a syntax
    error, a duplicate key, nesting deeper than MAX_DEPTH or more than MAX_NODES nodes once aliases expand."""
    path = Path(path)
    if not path.is_file():
        raise SourceError([f"{path}: no such {what} file"])
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        line = raw[:MAX_BYTES].count(b"\n") + 1
        raise SourceError([f"{path}:{line}: {len(raw):,} bytes; a {what} file holds at most {MAX_BYTES:,} (this is the "
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
