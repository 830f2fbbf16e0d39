"""A recipe's `regenerates:` sections: which paper table or figure its steps regenerate, row by row, with the
paper's printed numbers. No torch.

    regenerates:
      - item: hvt/table3            # paper/item of the catalogue
        row_header: Operation       # the paper's first column (default Model)
        dataset: CIFAR-100          # what the paper's top1 / top5 columns were measured on (default ImageNet-1K)
        flops: no_norm              # the paper's FLOPs leave LayerNorm out (HVT, DeiT); default all
        plot: scatter               # a figure's drawing: scatter (top-1 vs FLOPs), curves (per epoch) or
                                    # attention_variance (the recipe's study)
        rows:
          - {step: conv, label: Conv, paper: {gflops: 1.47, params_m: 23.54, top1: 69.75, top5: 92.12}}

A row's `label:` and `paper:` default to its step's. Columns follow the rows' keys, as the paper prints them; a
numeric value keeps its printed decimals, which set how closely ours must agree ("within the paper's rounding").
Structure and speed columns get ours beside the paper's; accuracy is ours once, on the profile's own dataset,
beside however many datasets the paper prints (`cifar100_top1` beside ImageNet's `top1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from ..arch.spec import IMAGES
from ..schema import Key, Problems, did_you_mean
from ..yamlsrc import Source
from .catalogue import find, items

# what a paper column holds and how it is headed (throughput in clips/s for clip models: `tables.title`); text
# columns compare our design column as printed
NUMERIC = {"params_m": "Params (M)", "gflops": "FLOPs (G)", "throughput": IMAGES, "top1": "top-1", "top5": "top-5",
           "cifar100_top1": "CIFAR-100 top-1", "cifar100_top5": "CIFAR-100 top-5", "miou": "mIoU", "box_ap": "box AP",
           "mask_ap": "mask AP",
           "pt_epoch_minutes": "pre-training min / epoch", "pt_epoch_hours": "pre-training h / epoch",
           "pt_memory_mb": "pre-training memory (MB)", "pt_memory_gb": "pre-training memory (GB)"}
TEXT = {"depths": "depths", "dims": "dims", "heads": "heads", "tokens": "tokens"}
STRUCTURE = ("params_m", "gflops", "depths", "dims", "heads", "tokens")  # exact at paper scale, checked to rounding
COST = ("throughput", "pt_epoch_minutes", "pt_epoch_hours", "pt_memory_mb", "pt_memory_gb")
ACCURACY = ("top1", "top5", "cifar100_top1", "cifar100_top5", "miou", "box_ap", "mask_ap")
SECTION_KEYS = ("item", "row_header", "dataset", "flops", "plot", "rows", "settings", "note")
SETTING_KEYS = ("field", "label", "paper", "note")
# a figure item's drawing: top-1 against FLOPs, top-1 per row, top-1 and loss per epoch, pre-training time and
# memory per row, the recipe's attention-variance study, or GreenMIM's optimal group size per stage (simulated for
# the first row's model and pre-training masks)
PLOTS = ("scatter", "bars", "curves", "cost", "attention_variance", "group_size")
ROW_KEYS = ("step", "label", "paper")
Value = Union[float, str]
StepInfo = tuple[str, dict[str, float], Key]  # a step's label, its `paper:` and where that block is in the file


@dataclass(frozen=True)
class Row:
    step: str
    label: str
    paper: dict[str, Value]
    decimals: dict[str, int]  # printed decimals of each numeric paper value


@dataclass(frozen=True)
class SettingRow:
    """One row of a settings table: a training setting by path (e.g. 'pretrain.lr') and the paper's value."""

    field: str
    label: str
    paper: Any
    note: str = ""
    printed: str = ""  # the paper's value as the recipe writes it (8.0e-4, not 0.0008)


@dataclass(frozen=True)
class Section:
    item: str  # 'paper/id' of the catalogue
    rows: tuple[Row, ...]
    row_header: str = "Model"
    flops: Literal["all", "no_norm"] = "all"
    note: str = ""
    dataset: str = "ImageNet-1K"  # what the paper's plain top-1 / top-5 columns were measured on
    plot: str = "scatter"  # how a figure item is drawn (PLOTS)
    settings: tuple[SettingRow, ...] = ()  # a settings table (Hiera Table A1): the first row's step's settings

    @property
    def columns(self) -> tuple[str, ...]:
        """The paper's columns in its order: every key of the rows, first row first."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row.paper))
        return tuple(seen)

    def regenerates(self, trains: bool) -> tuple[str, ...]:
        """What of the item our numbers stand beside: 'structure' (params, FLOPs, configuration), 'cost' (speed,
        pre-training time and memory), 'accuracy' (only where a profile of the recipe trains), or 'settings'."""
        if self.settings:
            return ("settings",)
        cols = set(self.columns)
        out = [what for what, keys in (("structure", STRUCTURE), ("cost", COST)) if cols & set(keys)]
        if self.plot in ("cost", "group_size") and "cost" not in out:
            out.append("cost")
        if trains and (cols & set(ACCURACY) or self.plot in ("bars", "curves", "attention_variance")):
            out.append("accuracy")
        return tuple(out)


def decimals(text: str) -> int:
    """Digits after the point as printed: '22.10' -> 2, '86' -> 0."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def load_sections(p: Problems, src: Source, value: Any, steps: dict[str, StepInfo]) -> tuple[Section, ...]:
    """Every section of `regenerates:`, checked against the catalogue and the recipe's `steps`."""
    key: Key = ("regenerates",)
    if not isinstance(value, list) or not value:
        p.add(key, "regenerates is a list of sections, each {item: paper/id, rows: [{step: ..., paper: {...}}]}")
        return ()
    out = []
    for i, body in enumerate(value):
        section = _section(p, src, body, key + (i,), steps)
        if section is not None:
            out.append(section)
    return tuple(out)


def _section(p: Problems, src: Source, body: Any, key: Key, steps: dict[str, StepInfo]) -> Section | None:
    if not isinstance(body, dict):
        p.add(key, f"a section is a mapping with {', '.join(SECTION_KEYS)}")
        return None
    before = len(p)
    p.unknown(key, body, SECTION_KEYS)
    item = str(body.get("item", ""))
    if find(item) is None:
        p.add(key + ("item",), f"no item '{item}' in the catalogue; {did_you_mean(item, sorted(items()))}")
    elif find(item).kind == "diagram":
        p.add(key + ("item",), f"'{item}' is a diagram: there is nothing to measure")
    flops = body.get("flops", "all")
    if flops not in ("all", "no_norm"):
        p.add(key + ("flops",), f"{flops!r} is not allowed; allowed: all, no_norm (the paper leaves norms out)")
    plot = body.get("plot", "scatter")
    if plot not in PLOTS:
        p.add(key + ("plot",), f"{plot!r} is not allowed; allowed: {', '.join(PLOTS)}")
    rows_value = body.get("rows")
    if not isinstance(rows_value, list) or not rows_value:
        p.add(key + ("rows",), "rows: a non-empty list of {step: ID, label: ..., paper: {...}} is required")
        rows_value = []
    rows = [_row(p, src, r, key + ("rows", j), steps) for j, r in enumerate(rows_value)]
    settings = _settings(p, src, body["settings"], key + ("settings",)) if "settings" in body else ()
    if settings and len(rows_value) != 1:
        p.add(key + ("rows",), "a settings table reads one step's settings: give exactly one row")
    if len(p) > before:
        return None
    return Section(item, tuple(r for r in rows if r is not None), str(body.get("row_header", "Model")), flops,
                   str(body.get("note", "")), str(body.get("dataset", "ImageNet-1K")), plot, settings)


def _settings(p: Problems, src: Source, value: Any, key: Key) -> tuple[SettingRow, ...]:
    """`settings: [{field: pretrain.lr, label: learning rate, paper: 8.0e-4}]`, each field a TrainConfig path."""
    from ..settings import TrainConfig  # a path is checked against the settings' fields

    if not isinstance(value, list) or not value:
        p.add(key, "settings: a non-empty list of {field: train.path, label: ..., paper: value} is required")
        return ()
    out = []
    for i, body in enumerate(value):
        if not isinstance(body, dict) or "field" not in body or "paper" not in body:
            p.add(key + (i,), f"a setting is a mapping with {', '.join(SETTING_KEYS)} (field and paper required)")
            continue
        p.unknown(key + (i,), body, SETTING_KEYS)
        path = str(body["field"])
        if setting_value(TrainConfig(), path, default_pretrain=True) is MISSING:
            p.add(key + (i, "field"), f"'{path}' is no training setting (e.g. lr, pretrain.mask_ratio)")
            continue
        printed = src.texts.get(key + (i, "paper"), str(body["paper"]))
        out.append(SettingRow(path, str(body.get("label", path)), body["paper"], str(body.get("note", "")), printed))
    return tuple(out)


MISSING = object()


def setting_value(cfg: Any, path: str, default_pretrain: bool = False) -> Any:
    """The setting at dotted `path` of a TrainConfig (MISSING where there is none); `default_pretrain` reads
    pre-training fields from defaults when `cfg` has no pre-training (to check a path)."""
    from dataclasses import fields, is_dataclass

    from ..settings import PretrainConfig

    value = cfg
    for part in path.split("."):
        if value is None and default_pretrain:
            value = PretrainConfig()
        if not is_dataclass(value) or part not in {f.name for f in fields(value)}:
            return MISSING
        value = getattr(value, part)
    return value


def _row(p: Problems, src: Source, body: Any, key: Key, steps: dict[str, StepInfo]) -> Row | None:
    if not isinstance(body, dict):
        p.add(key, f"a row is a mapping with {', '.join(ROW_KEYS)}")
        return None
    p.unknown(key, body, ROW_KEYS)
    step = str(body.get("step", ""))
    if step not in steps:
        p.add(key + ("step",), f"no step '{step}'; {did_you_mean(step, list(steps))}")
        return None
    given = body.get("paper")
    if given is None:
        paper, where = dict(steps[step][1]), steps[step][2]
    elif not isinstance(given, dict):
        p.add(key + ("paper",), "paper is a mapping of column: the paper's number")
        return None
    else:
        paper, where = given, key + ("paper",)
    values: dict[str, Value] = {}
    places: dict[str, int] = {}
    for name, value in paper.items():
        if name in NUMERIC and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = float(value)
            text = src.texts.get(where + (name,))
            places[name] = decimals(text if text is not None else repr(float(value)))
        elif name in TEXT and isinstance(value, str):
            values[name] = value
        else:
            p.add(where + (name,),
                  f"'{name}: {value!r}': a number for {', '.join(NUMERIC)}, or text for {', '.join(TEXT)}")
    return Row(step, str(body.get("label", steps[step][0])), values, places)
