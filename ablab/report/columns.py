"""The columns a transition table can have: the name `ablab report --columns` takes, other names it answers to,
its header, how its numbers are written and aligned, and which columns each output shows by default.

Markdown and CSV show every column a table has (wide is fine on screen); LaTeX shows a compact set that fits one
column of an article, the numbers a paper's transition table gives (HiViT Table 2, Hiera Table 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..arch.spec import DESIGN_COLUMNS
from ..settings import METRIC_LABELS
from .numbers import cited, fixed, integer, rate, significant
from .units import IMAGES, UNITS


@dataclass(frozen=True)
class Column:
    """A table column: `name` on the command line, `header` in the table, numbers written by `number` (None: text
    as built), right-aligned when numeric."""

    name: str
    header: str
    aliases: tuple[str, ...] = ()
    number: Optional[Callable[[float], str]] = None
    numeric: bool = False

    def titled(self, unit: str = IMAGES) -> str:
        """The header where throughput is counted in `unit` ('clips/s' for clip models, `units`); only the
        throughput columns' headers name the unit."""
        return self.header.replace(IMAGES, unit)

    def matches(self, header: str) -> bool:
        """Whether a table header is this column's, in either unit; throughput has one column per setting,
        'im/s [<setting>]' or 'clips/s [<setting>]'."""
        return any(header == h or header.startswith(f"{h} [") for h in {self.titled(unit) for unit in UNITS})

    @property
    def right(self) -> bool:
        return self.numeric or self.number is not None


COLUMNS = (
    Column("recipe", "recipe"),
    Column("role", "", ("from_to",)),
    Column("step", "step", ("id",)),
    Column("model", "model", ("label",)),
    *(Column(name, name) for name in DESIGN_COLUMNS),
    Column("params", "Params (M)", ("params_m",), significant),
    Column("paper_params", "paper Params (M)", ("paper_params_m",), cited),
    Column("diff_params", "diff Params (M)", (), lambda x: significant(x, 2)),
    Column("gflops", "GFLOPs", ("flops",), significant),
    Column("paper_gflops", "paper GFLOPs", (), cited),
    Column("diff_gflops", "diff GFLOPs", (), lambda x: significant(x, 2)),
    Column("throughput", IMAGES, ("ims", "speed"), rate),  # headers in clips/s for clip models: `titled`
    Column("paper_throughput", f"paper {IMAGES}", (), cited),
    Column("load", "load"),
    Column("params_x", "params ×parent (paper)", (), numeric=True),
    Column("flops_x", "FLOPs ×parent (paper)", (), numeric=True),
    Column("drift", "drift", (), numeric=True),
    Column("x_root", "x root", ("speedup",), significant),
    Column("paper_x_root", "paper x root", (), significant),
    Column("top1", "top-1", ("acc",), numeric=True),
    Column("n", "n", (), integer),
    Column("delta", "Δ top-1 [95% CI]", ("d_top1", "change"), numeric=True),
    Column("verdict", "verdict"),
    Column("expected", "expected", ("expect",)),
    Column("seeds_needed", "seeds for 80% power", ("power",), numeric=True),
    Column("top5", "top-5", (), fixed(1)),
    Column("train_h", "train h", ("train_hours",), lambda x: significant(x, 2)),
    Column("pretrain", "pretrain"),
    Column("pt_epoch_s", "pt s/epoch", ("pretrain_epoch_seconds",), significant),
    Column("pt_peak_mb", "pt peak MB", ("pretrain_peak_mb",), integer),
    Column("ref_top1", "reference top-1", ("reference",), numeric=True),
    Column("paper_top1", "paper top-1", (), cited),
    *(column for metric, label in METRIC_LABELS.items() for column in (  # a dense task's (`ablab run --task`)
        Column(metric, label, (), numeric=True),
        Column(f"d_{metric}", f"Δ {label} [95% CI]", (), numeric=True),
        Column(f"{metric}_verdict", f"{label} verdict"),
        Column(f"paper_{metric}", f"paper {label}", (), cited))),
    Column("status", "status"),
)
BY_NAME = {key: column for column in COLUMNS for key in (column.name, *column.aliases)}
# the compact LaTeX set: what a paper's transition table gives, plus whatever says a number is missing or failed
LATEX_DEFAULT = ("recipe", "role", "step", "model", "params", "paper_params", "gflops", "paper_gflops", "x_root",
                 "paper_x_root", "top1", "n", "delta", "paper_top1", "status")
# left out of the LaTeX default in this order while it does not fit one article column (never an explicit choice)
LATEX_OPTIONAL = ("paper_x_root", "x_root", "paper_params", "paper_gflops", "params")


class ColumnError(ValueError):
    """A --columns name no table column has; the message lists every known name."""


def resolve(names: str) -> list[Column]:
    """'step,model,top1' (names or aliases, comma-separated, case-insensitive) as columns, in the order given."""
    wanted = [name.strip().lower() for name in names.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in BY_NAME]
    if unknown or not wanted:
        known = ", ".join(c.name + (f" ({', '.join(c.aliases)})" if c.aliases else "") for c in COLUMNS)
        said = f"unknown column {', '.join(repr(n) for n in unknown)}" if unknown else "no column named"
        raise ColumnError(f"--columns: {said}; known columns (aliases): {known}")
    return list(dict.fromkeys(BY_NAME[name] for name in wanted))


def column_of(header: str) -> Optional[Column]:
    """The registered column a table header belongs to (None for a header no column claims)."""
    return next((c for c in COLUMNS if c.matches(header)), None)


def pick(headers: list[str], columns: list[Column]) -> list[str]:
    """The table's headers for `columns`, in their order; a column this table lacks (status when every step is
    done, paper numbers a recipe does not cite) is left out."""
    return [h for c in columns for h in headers if c.matches(h)]
