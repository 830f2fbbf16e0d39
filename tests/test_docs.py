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
