"""The catalogue of every numbered table and figure of the four papers (`catalogue.yaml`), and what keeps one from
being regenerated. Which items are regenerated is declared by recipes, not here. No torch."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from ..yamlsrc import load_source

FILE = Path(__file__).with_name("catalogue.yaml")
Kind = Literal["table", "figure", "diagram"]


@dataclass(frozen=True)
class Item:
    """One numbered table or figure: `paper/id` names it (e.g. 'hvt/table3')."""

    paper: str
    id: str
    kind: Kind
    title: str
    missing: str = ""  # what keeps it (or part of it) from being regenerated, with the issue that brings it

    @property
    def name(self) -> str:
        return f"{self.paper}/{self.id}"

    @property
    def printed(self) -> str:
        """'Table 3', 'Figure 4', 'Table A1' as the paper prints it."""
        for word in ("table", "figure"):
            if self.id.startswith(word):
                return f"{word.capitalize()} {self.id[len(word):]}"
        return self.id


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    file: str  # under ../shared/papers/
    items: tuple[Item, ...]


@lru_cache(maxsize=1)
def papers() -> dict[str, Paper]:
    """Every paper of the catalogue, by id, its items in the paper's order."""
    data = load_source(FILE).data["papers"]
    return {pid: Paper(pid, body["title"], body["file"],
                       tuple(Item(pid, i["id"], i["kind"], i["title"], i.get("missing", "")) for i in body["items"]))
            for pid, body in data.items()}


def items() -> dict[str, Item]:
    """Every item of every paper, by 'paper/id'."""
    return {item.name: item for paper in papers().values() for item in paper.items}


def find(name: str) -> Optional[Item]:
    return items().get(name)
