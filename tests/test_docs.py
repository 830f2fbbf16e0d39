"""The reference stays true: every transform, preset, kind and settings field is documented, every link resolves."""

import dataclasses
import re
from pathlib import Path

from ablab.arch.kinds import ATTENTION, BLOCKS, DOWNSAMPLE, HEADS, REL_POS
from ablab.arch.presets import PRESETS
from ablab.settings import DataConfig, Measure, PretrainConfig, Scale, TrainConfig
from ablab.transforms import TRANSFORMS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "docs" / "recipes.md").read_text()


def test_every_transform_preset_and_kind_is_in_the_reference():
    names = [*TRANSFORMS, *PRESETS, *ATTENTION, *BLOCKS, *DOWNSAMPLE, *REL_POS, *HEADS]
    assert [n for n in names if f"`{n}`" not in REFERENCE] == []


def test_every_settings_field_is_in_the_reference():
    fields = [f.name for cls in (TrainConfig, Measure, Scale, DataConfig, PretrainConfig)
              for f in dataclasses.fields(cls)]
    assert [f for f in fields if not re.search(rf"\b{f}\b", REFERENCE)] == []


def test_links_resolve():
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def _markdown_table(lines: list[str]) -> list[dict[str, str]]:
    """The rows of the first Markdown table in `lines`, by header."""
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = lines[start:next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))]
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def test_the_readme_quotes_the_committed_table():
    """The README's abridged vit_to_swin table says what results/vit_to_swin/cpu/table.md says, cell for cell."""
    readme = (ROOT / "README.md").read_text().splitlines()
    at = next(i for i, line in enumerate(readme) if "results/vit_to_swin/cpu/table.md" in line)
    quoted = _markdown_table(readme[at:])
    table = {row["step"]: row for row in _markdown_table((ROOT / "results/vit_to_swin/cpu/table.md").read_text()
                                                         .splitlines())}
    assert quoted and [row["step"] for row in quoted] == list(table)
    assert [(row["step"], h) for row in quoted for h, cell in row.items() if table[row["step"]].get(h) != cell] == []
