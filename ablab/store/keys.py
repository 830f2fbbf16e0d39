"""Content keys: a hash of everything that determines a result, so finished work is found and stale work redone.

A settings field marked as added after results were first recorded (`ablab.settings.ADDED`) is left out while
it holds its default, in nested blocks too, and a field removed since (`ablab.settings.REMOVED`) is put back at
the value it always had, so keys of earlier results stay valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from ..arch.spec import ArchSpec, canonical
from ..settings import REMOVED, DetectionConfig, SegmentationConfig, Setting, TrainConfig

MEASURE_SCHEMA = 4  # bumped when the key or what a measurement records changes, so older measurements are redone
# Generated datasets whose content changed after results were first recorded: the revision joins the key of every
# run that reads them, so runs on the earlier content are redone (ShapeClips 2: a panning dotted scene).
DATA_REVISION = {"shapeclips": 2}


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def settings_data(obj: Any) -> dict[str, Any]:
    """A settings dataclass as plain data, without the added fields that still hold their defaults and with the
    removed ones at their recorded value."""
    out = dict(REMOVED.get(type(obj).__name__, {}))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("added") and value == _default(f):
            continue
        out[f.name] = settings_data(value) if dataclasses.is_dataclass(value) else value
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def measure_key(spec: ArchSpec, setting: Setting, device: str) -> str:
    """Everything that determines a step's measurements: the spec, the measurement as it runs here (device,
    precision, sweep, timing, memory format, compilation) and the device's name (GPU model, CPU threads)."""
    return _digest({"spec": canonical(spec).to_dict(), "measure": dataclasses.asdict(setting), "device": device,
                    "schema": MEASURE_SCHEMA})


def structure_key(spec: ArchSpec) -> str:
    """What determines a step's params and FLOPs alone (`--no-throughput`): the spec."""
    return _digest({"spec": canonical(spec).to_dict(), "measure": "params and FLOPs", "schema": MEASURE_SCHEMA})


def train_key(spec: ArchSpec, cfg: TrainConfig, seed: int) -> str:
    """Everything that determines a training run's result, pre-training included, and the content of the checkpoint
    it starts from (`init`: its SHA-256, so a file replaced under the same path is a new run)."""
    payload = {"spec": canonical(spec).to_dict(), "train": settings_data(cfg), "seed": seed, **_revision(cfg)}
    if cfg.init is not None:
        payload["init_sha256"] = file_sha256(cfg.init.path)
    return _digest(payload)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes ('missing' where it cannot be read: preflight refuses such a run)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "missing"
    return digest.hexdigest()


def pretrain_key(spec: ArchSpec, cfg: TrainConfig, seed: int) -> str:
    """Everything that determines a pre-training's encoder: spec, pre-training settings, images, seed."""
    return _digest({"spec": canonical(spec).to_dict(), "pretrain": settings_data(cfg.pretrain),
                    "data": dataclasses.asdict(cfg.data), "seed": seed, **_revision(cfg)})


def _revision(cfg: TrainConfig) -> dict[str, int]:
    """The revision of the generated dataset `cfg` reads, where it has one (nothing in the keys of the others)."""
    return {"data_revision": DATA_REVISION[cfg.data.name]} if cfg.data.name in DATA_REVISION else {}


def dense_key(train: str, task: str, cfg: DetectionConfig | SegmentationConfig) -> str:
    """Everything that determines a dense task's run: the classification run it starts from (its key), the task
    and its settings."""
    return _digest({"train": train, task: settings_data(cfg)})
