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


def export(model: Net, target: Target, out: Path) -> str:
    """Write `model` to `out` for `target`; returns how to load it. timm: a state dict under timm's key names for
    the timm model of the same architecture, shrunk ones too (refused where timm has none); torchscript and onnx:
    traced on a batch of two, taking any batch size (the batch is ONNX's dynamic axis)."""
    spec = model.spec
    example = torch.zeros(spec.input_shape(2))
    if target == "timm":
        return _to_timm(model, out)
    if target == "torchscript":
        with torch.no_grad():
            torch.jit.trace(model, example).save(str(out))
        return f"torch.jit.load('{out}')"
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    return f"onnxruntime.InferenceSession('{out}')"


def _to_timm(model: Net, out: Path) -> str:
    """The timm export: checked before it is written, by timm's model of the same architecture computing our
    logits from it."""
    import timm

    from ..interop.timm import timm_model, to_timm

    spec = model.spec
    found = timm_model(spec)
    if found is None:
        raise ValueError("timm has no model with this step's architecture; export to torchscript or onnx")
    name, family, kwargs = found
    kwargs = {**kwargs, "img_size": spec.img_size} if kwargs else {}
    state = to_timm(model.state_dict(), spec, family)
    twin = timm.create_model(name, pretrained=False, num_classes=spec.num_classes, **kwargs).eval()
    twin.load_state_dict(state)
    x = torch.randn(spec.input_shape(2), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if not torch.allclose(twin(x), model.eval()(x), atol=1e-4, rtol=1e-4):
            raise ValueError(f"timm's {name}({kwargs}) does not compute this step's logits; export to torchscript or "
                             "onnx")
    with atomic_file(out, "wb") as f:  # a plain state dict, as timm's loader reads a file
        torch.save(state, f)
    args = "".join(f", {k}={v!r}" for k, v in kwargs.items())
    return (f"timm.create_model('{name}', pretrained=True, num_classes={spec.num_classes}{args}, "
            f"pretrained_cfg_overlay=dict(file='{out}', num_classes={spec.num_classes}))")
