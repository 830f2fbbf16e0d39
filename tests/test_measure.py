"""Throughput measurement as on a GPU, tested on the CPU: `measure:` options checked with file:line, the settings
resolved per device, a key that changes with whatever changes the figure, the batch sweep, timed rounds between
synchronisations, channels_last and torch.compile, and the device, machine, load and software recorded with every
figure."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from ablab.store import keys as store_keys
from ablab.arch.build import build
from ablab.cli import app
from ablab.cost import machine
from ablab.cost.throughput import (
    MeasureError,
    Setting,
    Timed,
    measure_throughput,
    measure_throughputs,
    resolve_setting,
)
from ablab.cost.timing import timed_rounds
from ablab.settings import Measure
from ablab.recipe import RecipeError, load_recipe
from ablab.runs.runner import measure_steps
from ablab.store.keys import measure_key as run_key
from .conftest import tiny_vit

RECIPE = """
name: tiny
base:
  spec: {img_size: 32, patch_size: 8, num_classes: 10, class_token: false, pool: avg,
         stages: [{depth: 2, dim: 32, heads: 2}]}
profiles:
  small:
    measure:
      batch_sizes: [2]
      min_time: 0.01
steps:
  - id: o
    label: tiny ViT
    paper: {throughput: 300}
  - id: a
    transform: deepen_narrow
    params: {depth: 4, dim: 16, heads: 2}
    paper: {throughput: 450}
"""
FAST = Setting(batch_sizes=(2,), min_time=0.01, warmup=1)


def errors_of(write_recipe, measure_lines: str) -> tuple[str, list[str]]:
    """Load RECIPE with its measure block's body replaced; return the path and the errors."""
    path = write_recipe(RECIPE.replace("      batch_sizes: [2]\n      min_time: 0.01\n", measure_lines))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    return str(path), info.value.errors


def test_measure_option_types_are_checked_with_file_and_line(write_recipe):
    path, errors = errors_of(write_recipe, "      amp: fp8\n      compile: fast\n      channels_last: maybe\n"
                                           "      under_load: wait\n")
    assert errors == [
        f"{path}:8: profiles.small.measure.amp: 'fp8' is not allowed; allowed: auto, none, fp16, bf16",
        f"{path}:9: profiles.small.measure.compile: 'fast' is not allowed; allowed: none, default, reduce-overhead, "
        "max-autotune, max-autotune-no-cudagraphs",
        f"{path}:10: profiles.small.measure.channels_last: expected true/false, got 'maybe'",
        f"{path}:11: profiles.small.measure.under_load: 'wait' is not allowed; allowed: mark, retry, refuse",
    ]


def test_measure_option_ranges_are_checked_with_file_and_line(write_recipe):
    path, errors = errors_of(write_recipe, "      batch_sizes: [0, 8, 8]\n      cuda_batch_sizes: [64, 64]\n"
                                           "      min_time: 0\n      warmup: 0\n      device: gpu\n"
                                           "      rounds: 0\n")
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errors] == [
        f"{path}:8: profiles.small.measure.batch_sizes", f"{path}:9: profiles.small.measure.cuda_batch_sizes",
        f"{path}:10: profiles.small.measure.min_time", f"{path}:11: profiles.small.measure.warmup",
        f"{path}:13: profiles.small.measure.rounds", f"{path}:12: profiles.small.measure.device"]
    assert "got [0, 8, 8]" in errors[0] and "1 to 1000 timed rounds are required, got 0" in errors[4]
    assert "auto, cpu, cuda or cuda:N" in errors[5]


def test_autocast_on_an_explicit_cpu_is_a_recipe_error(write_recipe):
    path, errors = errors_of(write_recipe, "      device: cpu\n      amp: fp16\n")
    assert errors == [f"{path}:9: profiles.small.measure.amp: fp16 autocast is measured on CUDA only; the CPU measures "
                      "fp32 (amp: auto is fp16 on CUDA and fp32 on the CPU)"]


def test_settings_resolve_per_device():
    measure = Measure(batch_sizes=(1, 8), cuda_batch_sizes=(64, 128))
    assert resolve_setting(measure, cuda_available=False) == Setting("cpu", "fp32", (1, 8), 1.0, 3, False, "none",
                                                                     5, "mark")
    assert resolve_setting(Measure(rounds=3, under_load="refuse"), cuda_available=False).under_load == "refuse"
    gpu = resolve_setting(measure, cuda_available=True)
    assert (gpu.device, gpu.dtype, gpu.batch_sizes) == ("cuda", "fp16", (64, 128))
    assert resolve_setting(Measure(amp="bf16", device="cuda:1"), cuda_available=True).dtype == "bf16"
    assert resolve_setting(Measure(amp="none"), cuda_available=True).dtype == "fp32"
    assert resolve_setting(Measure(batch_sizes=(4,)), cuda_available=True).batch_sizes == (4,)  # no CUDA sweep
    pinned = resolve_setting(dataclasses.replace(measure, device="cpu"), cuda_available=True)
    assert (pinned.device, pinned.dtype, pinned.batch_sizes) == ("cpu", "fp32", (1, 8))
    with pytest.raises(MeasureError, match="fp16 autocasts on CUDA only.*amp: auto"):
        resolve_setting(Measure(amp="fp16"), cuda_available=False)
    with pytest.raises(MeasureError, match="no CUDA device"):
        resolve_setting(Measure(device="cuda"), cuda_available=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal on a machine without CUDA")
def test_autocast_without_cuda_stops_the_run_before_any_work(write_recipe, tmp_path):
    path = write_recipe(RECIPE.replace("      min_time: 0.01\n", "      min_time: 0.01\n      amp: bf16\n"))
    result = CliRunner().invoke(app, ["run", str(path), "--measure-only", "--results", str(tmp_path / "results")])
    assert result.exit_code == 2 and "profile 'small': measure.amp bf16 autocasts on CUDA only" in result.output
    assert not (tmp_path / "results").exists()


def test_key_changes_with_everything_that_changes_the_figure(monkeypatch):
    spec = tiny_vit()
    gpu = resolve_setting(Measure(batch_sizes=(1, 8), cuda_batch_sizes=(64, 128)), cuda_available=True)
    key = run_key(spec, gpu, "NVIDIA H100 80GB HBM3")
    changed = [dataclasses.replace(gpu, **change) for change in (
        {"dtype": "bf16"}, {"dtype": "fp32"}, {"compile": "max-autotune"}, {"channels_last": True},
        {"batch_sizes": (64, 256)}, {"min_time": 2.0}, {"warmup": 10}, {"device": "cpu"}, {"rounds": 3},
        {"under_load": "retry"})]
    keys = {run_key(spec, s, "NVIDIA H100 80GB HBM3") for s in changed}
    keys |= {run_key(spec, gpu, "NVIDIA A100-SXM4-40GB"),
             run_key(tiny_vit(num_classes=100), gpu, "NVIDIA H100 80GB HBM3")}
    assert key not in keys and len(keys) == len(changed) + 2
    other_cpu_sweep = resolve_setting(Measure(batch_sizes=(2,), cuda_batch_sizes=(64, 128)), cuda_available=True)
    assert run_key(spec, other_cpu_sweep, "NVIDIA H100 80GB HBM3") == key  # the CPU sweep does not run on CUDA
    auto, fp32 = (resolve_setting(Measure(amp=a), cuda_available=False) for a in ("auto", "none"))
    assert run_key(spec, auto, "cpu (2 threads)") == run_key(spec, fp32, "cpu (2 threads)")
    assert run_key(spec, auto, "cpu (2 threads)") != run_key(spec, auto, "cpu (4 threads)")
    monkeypatch.setattr(store_keys, "MEASURE_SCHEMA", store_keys.MEASURE_SCHEMA + 1)
    assert run_key(spec, gpu, "NVIDIA H100 80GB HBM3") != key


class Fixed(torch.nn.Module):
    """A model whose forward takes a set time per image, records its calls, and runs out of memory above `oom`."""

    def __init__(self, name: str, per_image: float, log: list, oom: int = 10**9) -> None:
        super().__init__()
        self.name, self.per_image, self.log, self.oom = name, per_image, log, oom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > self.oom:
            raise torch.OutOfMemoryError("CUDA out of memory")
        self.log.append(self.name)
        time.sleep(self.per_image * len(x))
        return x


def test_sweep_reports_each_models_fastest_batch_and_stops_at_its_first_out_of_memory():
    log: list[str] = []
    fast, tight = Fixed("fast", 0.0002, log), Fixed("tight", 0.002, log, oom=4)
    setting = dataclasses.replace(FAST, batch_sizes=(8, 2, 4), rounds=3)
    a, b = measure_throughputs([Timed(fast, 32), Timed(tight, 32)], setting)
    assert list(a.per_batch) == [2, 4, 8] and all(v is not None for v in a.per_batch.values())
    assert b.per_batch[8] is None and b.batch_size in (2, 4) and b.images_per_s == b.per_batch[b.batch_size]
    assert a.images_per_s > b.images_per_s and a.spread.n == b.spread.n == 3
    with pytest.raises(MeasureError, match="out of memory at every batch size"):
        measure_throughputs([Timed(Fixed("none", 0.001, [], oom=0), 32)], setting)


def test_rounds_of_several_models_interleave_in_alternating_order():
    log: list[str] = []
    models = [Fixed(name, 0.002, log) for name in "abc"]
    setting = dataclasses.replace(FAST, rounds=4, warmup=0, min_time=0.001)
    measure_throughputs([Timed(m, 32) for m in models], setting)
    timed = "".join(log)[3:]  # after each model's one calibrating call
    assert timed == "abc" "cba" "abc" "cba", timed  # round r of every model before round r + 1 of any


def test_timed_rounds_lie_between_synchronisations():
    events: list[str] = []

    def call() -> None:
        events.append("call")
        time.sleep(0.002)

    seconds = timed_rounds(call, lambda: events.append("sync"), warmup=2, min_time=0.005, rounds=3)
    assert events[:3] == ["call", "call", "sync"] and events[-1] == "sync"
    rounds = "".join("c" if e == "call" else "s" for e in events[2:])
    assert re.fullmatch(r"(sc+s)+", rounds), rounds  # every timed call sits between two synchronisations
    calls = [r.count("c") for r in re.findall(r"sc+s", rounds)]
    assert len(seconds) == 3 and calls[-3:] == [calls[-1]] * 3  # the kept rounds repeat the first long-enough one
    assert all(s >= 0.002 and calls[-1] * s >= 0.005 for s in seconds)
    assert all(c * 0.002 < 0.005 for c in calls[:-3])  # the rounds before were too short and not kept


def test_channels_last_reaches_the_model_and_its_input():
    model = build(tiny_vit())
    seen = []
    model.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    tp = measure_throughput(model, 32, dataclasses.replace(FAST, batch_sizes=(2, 4), channels_last=True))
    assert seen and all(seen) and model.training  # train mode restored
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert set(tp.per_batch) == {2, 4} and tp.images_per_s == tp.per_batch[tp.batch_size] > 0
    assert tp.device.startswith("cpu (") and tp.dtype == "fp32" and tp.setting.channels_last


def test_autocast_setting_on_the_cpu_is_refused():
    with pytest.raises(MeasureError, match="CUDA only"):
        measure_throughput(build(tiny_vit()), 32, dataclasses.replace(FAST, dtype="fp16"))


@pytest.mark.skipif(not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "clang++")),
                    reason="torch.compile (inductor) on the CPU needs a C++ compiler, and none is on PATH")
def test_compile_runs_the_model_through_torch_compile(monkeypatch):
    calls = []
    real = torch.compile

    def spy(model, **kwargs):
        calls.append(kwargs)
        return real(model, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    tp = measure_throughput(build(tiny_vit()), 32, dataclasses.replace(FAST, compile="default"))
    assert calls == [{"mode": "default", "dynamic": False}] and tp.images_per_s > 0


def test_device_and_versions_recorded_on_the_cpu():
    record = machine.device_record("cpu")
    assert record["device_kind"] == "cpu" and record["device"] == f"cpu ({torch.get_num_threads()} threads)"
    assert record["processor"]
    versions = machine.software_versions()
    assert versions["torch"] == torch.__version__ and versions["timm"] and versions["fvcore"] and versions["python"]


def test_device_record_of_a_gpu(monkeypatch):
    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", major=9, minor=0, total_memory=80 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: props)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 90100)
    monkeypatch.setattr(machine, "nvidia_driver", lambda index=0: "550.54.15")
    assert machine.device_record("cuda:0") == {
        "device_kind": "cuda", "device": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gib": 80.0,
        "driver": "550.54.15", "cuda": "12.4", "cudnn": 90100}


def test_driver_is_none_without_nvidia_smi(monkeypatch):
    monkeypatch.setattr(machine.shutil, "which", lambda name: None)
    assert machine.nvidia_driver() is None


def test_measure_steps_records_setting_device_spread_load_and_versions():
    m, other = measure_steps([tiny_vit(), tiny_vit()], dataclasses.replace(FAST, channels_last=True, rounds=4))
    assert m["timed_with"] == other["timed_with"] == 2 and m["params"] == other["params"]
    assert m["timed_at"] == other["timed_at"] != measure_steps([tiny_vit()], FAST)[0]["timed_at"]
    assert (m["dtype"], m["compile"], m["channels_last"], m["warmup"], m["min_time"]) == ("fp32", "none", True, 1, 0.01)
    assert m["device"] == m["machine"]["device"] and m["machine"]["device_kind"] == "cpu"
    assert m["versions"]["torch"] == torch.__version__ and m["peak_gmacs"] == max(m["reference_gmacs"]) > 0
    assert list(m["throughput_per_batch"]) == ["2"] and m["throughput_batch"] == 2
    assert m["throughput_lo"] <= m["throughput"] <= m["throughput_hi"] and m["throughput_rounds"] == m["rounds"] == 4
    assert m["load"] == "idle" or m["load"].startswith("busy: "), m["load"]  # this machine may be shared
    assert m["load_attempts"] == 1 and m["under_load"] == "mark" and m["runnable_others"] >= 0
    assert m["fingerprint"] == machine.fingerprint() and f"{os.cpu_count()} CPUs" in m["fingerprint"]


def test_measure_only_run_prints_ours_beside_the_paper(write_recipe, tmp_path):
    result = CliRunner().invoke(app, ["run", str(write_recipe(RECIPE)), "--measure-only", "--results",
                                      str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert "fp32, batch 2, paper 300 im/s)" in result.output and "paper 450 im/s" in result.output
    header = next(line for line in result.output.splitlines() if line.startswith("| step"))
    where = re.escape(machine.fingerprint())  # which machine, and whether it was busy, is part of the setting
    assert re.search(rf"im/s \[cpu \(\d+ threads\), fp32(, under load)?, on {where}\] \|", header), header
    assert all(re.search(rf"\|\s+{name}\s+\|", header) for name in ("paper im/s", "x root", "paper x root")), header
    row = next(line for line in result.output.splitlines() if line.startswith("| a "))
    assert re.search(r" 1\.50?$", row.rstrip(" |")), row  # the paper's a over o: 450 / 300
