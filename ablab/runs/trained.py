"""A trained step out of its results directory: the model with its weights (`load_step`), and handed on as timm's
state dict, a TorchScript module or an ONNX graph (`export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ..arch.build import Net, build
from ..arch.spec import ArchSpec
from ..io import atomic_file, load_checkpoint, read_json
from ..store.state import CHECKPOINT

Target = Literal["timm", "torchscript", "onnx"]


class NotTrained(ValueError):
    """No finished run of the step where it was looked for; the message names the path."""


def load_step(results: str | Path, step: str, seed: int = 0) -> Net:
    """Step `step`'s model as `ablab run` trained it under `results` (a <recipe>/<profile> directory): its spec.json
    built, the weights it was evaluated with loaded (the EMA's where it kept one), in eval mode."""
    where = Path(results) / step
    checkpoint = where / f"seed{seed}" / CHECKPOINT
    if not (where / "spec.json").is_file() or not checkpoint.is_file():
        raise NotTrained(f"no trained run of step '{step}' (seed {seed}) under {results}: {checkpoint} is missing; "
                         "`ablab run` trains it")
    model = build(ArchSpec.from_dict(read_json(where / "spec.json")))
    state = load_checkpoint(checkpoint)
    model.load_state_dict(state.get("ema", state["model"]))
    return model.eval()


def export(model: Net, target: Target, out: Path, batch: int = 1) -> str:
    """Write `model` to `out` for `target`; returns how to load it. timm: a state dict under timm's key names for
    the timm model of the same architecture (refused where timm has none); torchscript and onnx: traced on a batch
    of `batch` inputs (the traced graph keeps that batch size: the model's reshapes are traced as constants)."""
    spec = model.spec
    example = torch.zeros(spec.input_shape(batch))
    if target == "timm":
        from ..interop.timm import timm_twin, to_timm

        twin = timm_twin(spec)
        if twin is None:
            raise ValueError("timm has no model with this step's architecture; export to torchscript or onnx")
        name, family = twin
        with atomic_file(out, "wb") as f:  # a plain state dict, as timm's loader reads a file
            torch.save(to_timm(model.state_dict(), spec, family), f)
        return (f"timm.create_model('{name}', pretrained=True, num_classes={spec.num_classes}, "
                f"pretrained_cfg_overlay=dict(file='{out}', num_classes={spec.num_classes}))")
    if target == "torchscript":
        with torch.no_grad():
            torch.jit.trace(model, example).save(str(out))
        return f"torch.jit.load('{out}')"
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"], dynamo=False)
    return f"onnxruntime.InferenceSession('{out}')"
