"""A table as LaTeX that fits one column of an article: booktabs rules, real minus signs ($-$), thin spaces in
long numbers, headers stacked over two lines where the numbers under them are narrower.

Width is estimated, not typeset (pdflatex may be absent): every character gets its advance width in Computer
Modern Roman (cmr10, in em; the font article sets tables in), scaled to the font size. The first layout that fits
`TEXT_WIDTH` wins: \\small, then \\footnotesize, then \\scriptsize, each first with every cell on one line, then
with the model label wrapped into a paragraph column. A table that fits none is set as `table*` (a full page
width in a two-column paper) with a comment saying how wide it is."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from .columns import BY_NAME, LATEX_DEFAULT, LATEX_OPTIONAL, Column, column_of
from .table import Table

TEXT_WIDTH = 345.0  # pt: \textwidth of \documentclass{article} (10 pt, letter or A4, one column)
MIN_WRAP = 6.0  # em: a wrapped label column is never narrower than this (nor than its longest word)
UNKNOWN_EM = 0.8  # a character not in the table below counts as wide as the widest common ones

# cmr10 advance widths in em (Knuth's Computer Modern metrics), grouped; math symbols from cmsy10 / cmmi10
_EM = {ch: em for chars, em in (
    ("il.,:;'!`[]", 0.278), ("fj", 0.306), (" -", 0.333), ("I", 0.361), ("()t", 0.389), ("rs", 0.394),
    ("cez", 0.444), ("0123456789ago/*?", 0.5), ("J", 0.514), ("kqvxy", 0.528), ("bdhnpuS", 0.556), ("Z", 0.611),
    ("L", 0.625), ("F", 0.653), ("EP", 0.681), ("B", 0.708), ("wCT", 0.722), ("R", 0.736),
    ("AHNUVXY", 0.75), ("D", 0.764), ("GKOQ+=<>±×−&", 0.778), ("m%#Δ", 0.833), ("M", 0.917), ("W", 1.028),
) for ch in chars}

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "×": r"$\times$",
            "Δ": r"$\Delta$", "−": r"$-$", "✓": r"$\surd$", "✗": r"$\times$", "…": r"\ldots{}",
            "→": r"$\to$", "≤": r"$\le$", "≥": r"$\ge$"}


@dataclass(frozen=True)
class Layout:
    """A font size command, its size in pt, and the space either side of a column (\\tabcolsep, pt)."""

    command: str
    size: float
    colsep: float


LAYOUTS = (Layout("small", 9.0, 4.0), Layout("footnotesize", 8.0, 3.0), Layout("scriptsize", 7.0, 2.0))


def text_width(text: str, size: float) -> float:
    """Estimated width (pt) of `text` set in Computer Modern Roman at `size` pt."""
    return size * sum(_EM.get(ch, UNKNOWN_EM) for ch in text)


@dataclass(frozen=True)
class Fit:
    """One way to set a table: its headers, their lines, the cells as printed, the layout, each column's width
    (pt), the wrapped column (index; None if none) and the width between the outer rules (pt)."""

    headers: tuple[str, ...]
    heads: tuple[tuple[str, ...], ...]
    rows: tuple[tuple[str, ...], ...]
    layout: Layout
    widths: tuple[float, ...]
    wrapped: Optional[int]

    @property
    def width(self) -> float:
        return sum(self.widths) + 2 * self.layout.colsep * (len(self.widths) - 1)

    @property
    def fits(self) -> bool:
        return self.width <= TEXT_WIDTH + 1e-6


def layouts(headers: Sequence[str], heads: Sequence[Sequence[str]], rows: Sequence[Sequence[str]],
            sizes: Sequence[Layout]) -> list[Fit]:
    """The ways to set these columns in each of `sizes`: every cell on one line, then (where there is a 'model'
    column) the label wrapped as narrow as fits, but not below MIN_WRAP nor its longest word."""
    wrappable = headers.index("model") if "model" in headers else None
    out = []
    for layout in sizes:
        widths = [max(text_width(t, layout.size) for t in [*head, *(row[k] for row in rows)])
                  for k, head in enumerate(heads)]
        natural = Fit(tuple(headers), tuple(map(tuple, heads)), tuple(map(tuple, rows)), layout, tuple(widths), None)
        out.append(natural)
        if wrappable is not None:
            words = [w for row in rows for w in row[wrappable].split()] or [""]
            narrowest = max([MIN_WRAP * layout.size, *(text_width(w, layout.size) for w in words)])
            wrapped = list(widths)
            room = math.floor(widths[wrappable] - (natural.width - TEXT_WIDTH))  # whole pt, as the spec says
            wrapped[wrappable] = max(min(room, widths[wrappable]), math.ceil(narrowest))
            if wrapped[wrappable] < widths[wrappable]:
                out.append(Fit(natural.headers, natural.heads, natural.rows, layout, tuple(wrapped), wrappable))
    return out


def stack(header: str, under: float, size: float) -> list[str]:
    """A header over two lines, split at the space that makes it narrowest, when it is wider than `under` (the
    widest cell below, pt) and splitting saves at least an em; else one line."""
    words = header.split(" ")
    one = text_width(header, size)
    if len(words) < 2 or one <= under:
        return [header]
    splits = [[" ".join(words[:k]), " ".join(words[k:])] for k in range(1, len(words))]
    best = min(splits, key=lambda lines: max(text_width(line, size) for line in lines))
    return best if max(text_width(line, size) for line in best) <= one - size else [header]  # saves an em


def tex(text: str) -> str:
    """`text` with LaTeX's special characters escaped and ±, ×, Δ and the minus sign set in math; an opening '['
    guarded by {} so that no preceding \\\\ reads it as its optional argument."""
    out = "".join(_SPECIAL.get(ch, ch) for ch in text)
    return "{}" + out if out.startswith("[") else out


def tex_number(text: str) -> str:
    """A printed number in LaTeX: a leading hyphen as a minus sign, thin spaces between thousands from five
    digits on (15\\,364), then escaped."""
    if text.startswith("-"):
        text = "−" + text[1:]
    whole = re.match(r"([−+]?)(\d{5,})(.*)", text)
    if whole:
        sign, digits, rest = whole.groups()
        grouped = re.sub(r"(?<=\d)(?=(\d{3})+$)", ",", digits)
        return tex(sign) + grouped.replace(",", r"\,") + tex(rest)
    return tex(text)


def _shortened(headers: list[str]) -> tuple[list[str], str]:
    """Throughput headers shortened to their unit, 'im/s' or 'clips/s' (one setting; the caption names it), or
    'im/s (k)' with the settings listed for the caption."""
    settings = [h for h in headers if BY_NAME["throughput"].matches(h) and " [" in h]
    if len(settings) <= 1:
        return [h.split(" [")[0] if h in settings else h for h in headers], ""
    unit = settings[0].split(" [")[0]  # one per table (`units`)
    key = {h: f"{unit} ({k})" for k, h in enumerate(settings, 1)}
    note = f" {unit} measured as " + "; ".join(f"({k}) {h[len(unit) + 2:-1]}" for k, h in enumerate(settings, 1))
    return [key.get(h, h) for h in headers], note + "."


def to_latex(table: Table, columns: Optional[Sequence[Column]] = None) -> str:
    """A booktabs table environment, missing values as --: `columns` as asked, else the compact default set in the
    first way that fits one article column (see the module doc), leaving out LATEX_OPTIONAL columns, least
    needed first, only where \\footnotesize with a wrapped label does not fit."""
    if columns is not None:
        chosen = _first_fit([_fits(table, table.headers(columns), LAYOUTS)])
        dropped: list[str] = []
    else:
        headers = _without_uniform_n(table, table.headers(None, LATEX_DEFAULT))
        optional = [h for name in LATEX_OPTIONAL for h in headers if BY_NAME[name].matches(h)]
        small = [_fits(table, [h for h in headers if h not in optional[:k]], LAYOUTS[:2])
                 for k in range(len(optional) + 1)]
        chosen = _first_fit([*small, _fits(table, [h for h in headers if h not in optional], LAYOUTS[2:])])
        dropped = [h for h in headers if h not in chosen.headers]
    _, note = _shortened(list(chosen.headers))
    right = [column_of(h) is not None and column_of(h).right for h in chosen.headers]
    spec = "".join(f"p{{{chosen.widths[k]:.0f}pt}}" if k == chosen.wrapped else "r" if r else "l"
                   for k, r in enumerate(right))
    env = "table" if chosen.fits else "table*"
    last = len(right) - 1
    body = [" & ".join(_cell(c, r, k == chosen.wrapped and k < last) for k, (c, r) in enumerate(zip(row, right)))
            + r" \\" for row in chosen.rows]
    label = re.sub(r"[^A-Za-z0-9]+", "-", table.title).strip("-")
    comment = (f"% ablab: estimated {chosen.width:.0f} pt wide at \\{chosen.layout.command} (one article column: "
               f"{TEXT_WIDTH:.0f} pt)" + (f"; left out to fit: {', '.join(dropped)}" if dropped else "")
               + ("" if chosen.fits else "; too wide even so: choose fewer columns with ablab report --columns"))
    return "\n".join([
        comment, rf"\begin{{{env}}}[t]", r"\centering", rf"\{chosen.layout.command}",
        rf"\setlength{{\tabcolsep}}{{{chosen.layout.colsep:g}pt}}",
        rf"\caption{{{tex(table.caption + note)}}}", rf"\label{{tab:{label}}}",
        rf"\begin{{tabular}}{{@{{}}{spec}@{{}}}}", r"\toprule",
        " & ".join(_head(lines, r) for lines, r in zip(chosen.heads, right)) + r" \\",
        r"\midrule", *body, r"\bottomrule", r"\end{tabular}", rf"\end{{{env}}}", "",
    ])


def _fits(table: Table, headers: list[str], sizes: Sequence[Layout]) -> list[Fit]:
    """Every way to set `headers` of `table` in `sizes`, cells as printed (-- for a missing value)."""
    rows = [[c or "--" for c in row] for row in table.cells(headers)]
    names, _ = _shortened(headers)
    size = LAYOUTS[0].size
    heads = [stack(name, max((text_width(row[k], size) for row in rows), default=0.0), size)
             for k, name in enumerate(names)]
    return layouts(headers, heads, rows, sizes)


def _first_fit(candidates: list[list[Fit]]) -> Fit:
    """The first fit that fits, in order; the narrowest of all when none does."""
    every = [f for group in candidates for f in group]
    return next((f for f in every if f.fits), min(every, key=lambda f: f.width))


def _without_uniform_n(table: Table, headers: list[str]) -> list[str]:
    """`headers` less 'n' where every trained row has the same number of seeds: the caption says it."""
    n = table.frame["n"].dropna() if "n" in headers else None
    return [h for h in headers if h != "n"] if n is not None and n.nunique() <= 1 else headers


def _head(lines: list[str], right: bool) -> str:
    """A header cell, stacked lines in a bottom-aligned inner tabular."""
    if len(lines) == 1:
        return tex(lines[0])
    return rf"\begin{{tabular}}[b]{{@{{}}{'r' if right else 'l'}@{{}}}}" + r"\\".join(map(tex, lines)) \
        + r"\end{tabular}"


def _cell(text: str, right: bool, ragged: bool) -> str:
    """A body cell: numbers via `tex_number`, text escaped, a wrapped label ragged-right (not in the last column,
    where \\raggedright would take the row's \\\\)."""
    if text == "--":
        return text
    out = tex_number(text) if right else tex(text)
    return r"\raggedright " + out if ragged else out
