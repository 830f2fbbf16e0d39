"""Throughput figures you can trust: each the median of several rounds with its quartiles, the machine's load watched
around it (a burner process reads as busy; injected quiet figures as idle), the policy under load (mark, retry,
refuse), efficiency above the peak measured alike refused as a data point, and a machine fingerprint in the setting
so figures from different machines or load states never form a ratio.

This machine may be shared with other work while the tests run, so no test needs it idle: the idle verdicts are
tested on injected load figures, and the real machine only in the busy direction, under burner processes."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from ablab.cli import app
from ablab.cost import load as load_module
from ablab.cost import throughput as throughput_module
from ablab.cost.efficiency import efficiency_valid, hardware_efficiency
from ablab.cost.load import Load, LoadWatch, gpu_processes, runnable_others
from ablab.cost.machine import fingerprint
from ablab.cost.throughput import RETRIES, RETRY_WAIT, MachineBusy, measure_throughput
from ablab.cost.timing import Spread
from ablab.runs.runner import measure_steps
from ablab.settings import Setting
from ablab.store.summary import read_summary, setting_label, write_rows

from .conftest import TINY_BASE, tiny_vit

FAST = Setting(batch_sizes=(2,), min_time=0.01, warmup=1, rounds=3)
TINY_SIZE = 8  # a linear classifier of 8 px images: a sweep in milliseconds however busy the machine is


def tiny_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * TINY_SIZE**2, 10))
QUIET = Load((50.0, 49.0), quiet=51.0, others=0.2, cpus=2, threads=2)  # what a quiet 2-core machine reads
CPU = {"device": "cpu (2 threads)", "dtype": "fp32", "compile": "none", "channels_last": "False"}


@pytest.fixture
def burners():
    """Processes spinning on one core each, enough that every CPU the measurement leaves free is taken and one more
    competes with its threads."""
    count = max((os.cpu_count() or 1) - torch.get_num_threads(), 0) + 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    time.sleep(0.3)  # started and spinning
    yield procs
    for p in procs:
        p.kill()
        p.wait()


# ---- spread --------------------------------------------------------------------------------------------------


def test_spread_is_the_median_with_quartiles_inside_the_values():
    s = Spread.of([10.0, 12.0, 11.0, 30.0, 9.0])  # one slow round (30) cannot move the median
    assert (s.median, s.lo, s.hi, s.n) == (11.0, 10.0, 12.0, 5)
    assert Spread.of([4.0]) == Spread(4.0, 4.0, 4.0, 1)
    assert s.text("im/s") == "11.0 im/s (quartiles 10.0, 12.0; 5 rounds)"
    assert Spread.of([4.351]).text("im/s") == "4.35 im/s (1 round)"
    with pytest.raises(ValueError):
        Spread.of([])


def test_throughput_is_the_median_of_its_rounds_with_its_spread():
    tp = measure_throughput(tiny_model(), TINY_SIZE, FAST)
    assert tp.spread.n == 3 and tp.spread.lo <= tp.images_per_s == tp.spread.median <= tp.spread.hi
    assert tp.images_per_s == tp.per_batch[2] and tp.attempts == 1 and tp.load.peak_gmacs > 0


# ---- the load verdict -------------------------------------------------------------------------------------------


def test_quiet_figures_read_idle():
    assert QUIET.state == "idle" and not QUIET.busy and QUIET.peak_gmacs == 50.0
    many = Load((900.0, 880.0), quiet=910.0, others=3.0, cpus=16, threads=8)  # 8 spare CPUs take 3 other tasks
    assert many.state == "idle"
    assert Load((50.0, 49.0), quiet=50.0).state == "idle"  # nothing counted (no /proc): the matmul alone decides


@pytest.mark.parametrize("change,said", [
    ({"others": 1.0}, "1.0 other tasks runnable on average beside 2 measuring threads on 2 CPUs"),
    ({"reference": (50.0, 30.0)}, "reference matmul at 59% of the 51.0 GMAC/s seen at best"),
    ({"gpu_processes": ("4242 python",)}, "other processes on the GPU: 4242 python"),
])
def test_each_signal_alone_makes_the_machine_busy(change, said):
    busy = dataclasses.replace(QUIET, **change)
    assert busy.busy and busy.state == f"busy: {said}"


def test_a_burner_makes_the_machine_read_busy(burners):
    assert runnable_others() >= len(burners)
    with LoadWatch("cpu", "fp32", reference_time=0.05, every=0.02) as watch:
        time.sleep(0.3)
    assert watch.load.busy and "other tasks runnable" in watch.load.state, watch.load.state


def test_own_threads_are_not_counted_as_others():
    assert load_module._own_running() >= 1  # the thread asking is running


def test_the_watch_averages_its_samples_and_keeps_the_best_reference(monkeypatch):
    counts = iter([0, 1, 0, 0, 0] + [0] * 100)  # one transient task in five samples: 0.2 on average, idle
    monkeypatch.setattr(load_module, "runnable_others", lambda: next(counts))
    monkeypatch.setattr(load_module, "matmul_gmacs", lambda *a, **k: 40.0)
    monkeypatch.setattr(load_module, "_QUIET", {})
    with LoadWatch("cpu", "fp32", every=0.01) as watch:
        time.sleep(0.045)
    assert watch.load.state == "idle" and 0 < watch.load.others < 0.5 and watch.load.quiet == 40.0
    monkeypatch.setattr(load_module, "runnable_others", lambda: 2)
    monkeypatch.setattr(load_module, "matmul_gmacs", lambda *a, **k: 20.0)  # half the rate seen before
    with LoadWatch("cpu", "fp32", every=0.01) as watch:
        time.sleep(0.02)
    assert watch.load.others == 2 and watch.load.quiet == 40.0
    assert watch.load.state.startswith("busy: 2.0 other tasks") and "reference matmul at 50%" in watch.load.state


def test_other_processes_on_the_gpu_exclude_this_one(monkeypatch):
    seen = []

    def smi(*args):
        seen.append(args)
        return f"{os.getpid()}, python\n4242, /usr/bin/python3 train.py\n"

    monkeypatch.setattr(load_module, "nvidia_smi", smi)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0))
    assert gpu_processes(torch.device("cuda:0")) == ("4242 /usr/bin/python3 train.py",)
    assert seen[0][0] == "--id=00000000:3B:00.0"  # the GPU by its PCI address, whatever CUDA_VISIBLE_DEVICES says
    monkeypatch.setattr(load_module, "nvidia_smi", lambda *args: None)  # no nvidia-smi: nothing seen
    assert gpu_processes(torch.device("cuda:0")) == ()


# ---- what happens under load -------------------------------------------------------------------------------------


class FakeWatch:
    """LoadWatch's stand-in: each sweep gets the next load of `loads`."""

    loads: list[Load] = []

    def __init__(self, *args, **kwargs) -> None:
        self.load = None

    def __enter__(self) -> FakeWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.load = FakeWatch.loads.pop(0)


BUSY = dataclasses.replace(QUIET, others=2.0)


@pytest.mark.parametrize("policy,loads,attempts,state", [
    ("mark", [BUSY], 1, "busy"),
    ("retry", [BUSY, BUSY, QUIET], 3, "idle"),
    ("retry", [BUSY] * 3, 3, "busy"),
    ("retry", [QUIET], 1, "idle"),
])
def test_under_load_marks_or_retries(monkeypatch, policy, loads, attempts, state):
    monkeypatch.setattr(throughput_module, "LoadWatch", FakeWatch)
    monkeypatch.setattr(FakeWatch, "loads", list(loads))
    waits = []
    tp = measure_throughput(tiny_model(), TINY_SIZE, dataclasses.replace(FAST, under_load=policy), wait=waits.append)
    assert tp.attempts == attempts and tp.load.state.startswith(state) and tp.images_per_s > 0
    assert waits == [RETRY_WAIT] * (attempts - 1) and attempts <= 1 + RETRIES


def test_refuse_records_no_figure_under_load(monkeypatch):
    monkeypatch.setattr(throughput_module, "LoadWatch", FakeWatch)
    monkeypatch.setattr(FakeWatch, "loads", [BUSY])
    with pytest.raises(MachineBusy, match="no figure recorded after 1 attempt: the machine was busy: 2.0 other"):
        measure_throughput(tiny_model(), TINY_SIZE, dataclasses.replace(FAST, under_load="refuse"))
    monkeypatch.setattr(FakeWatch, "loads", [BUSY])
    m, = measure_steps([tiny_vit()], dataclasses.replace(FAST, under_load="refuse"))
    assert m["params"] > 0 and m["gflops"] > 0  # what does not depend on the load is still measured
    assert m["throughput"] is None and m["throughput_lo"] is None and m["throughput_per_batch"] == {}
    assert m["load"] == BUSY.state and m["load_attempts"] == 1 and m["peak_gmacs"] == 50.0


# ---- efficiency ----------------------------------------------------------------------------------------------


def test_efficiency_above_the_peak_is_not_a_data_point():
    assert hardware_efficiency(2.0, 10.0, 40.0) == 0.5 and efficiency_valid(2.0, 10.0, 40.0)
    assert efficiency_valid(4.0, 10.0, 40.0)  # exactly the peak
    assert math.isclose(hardware_efficiency(15.47, 10.0, 78.0), 1.983, rel_tol=1e-3)  # the 198%
    assert not efficiency_valid(15.47, 10.0, 78.0)
    for missing in (None, math.nan, 0.0, -1.0):  # unknown is not valid either
        assert math.isnan(hardware_efficiency(2.0, 10.0, missing)) and not efficiency_valid(2.0, 10.0, missing)
        assert not efficiency_valid(missing, 10.0, 40.0) and not efficiency_valid(2.0, missing, 40.0)


# ---- machines and settings -----------------------------------------------------------------------------------


def test_the_fingerprint_names_host_processor_and_cpus():
    assert fingerprint().startswith(f"{socket.gethostname()} (") and fingerprint().endswith(f", {os.cpu_count()} CPUs)")


def test_the_setting_says_which_machine_and_whether_it_was_busy():
    assert setting_label("cpu (2 threads)", "fp32") == "cpu (2 threads), fp32"  # a summary from before
    assert setting_label("cpu (2 threads)", "fp32", machine="vm (AMD EPYC, 2 CPUs)", load="idle") == \
        "cpu (2 threads), fp32, on vm (AMD EPYC, 2 CPUs)"
    assert setting_label("cpu (2 threads)", "fp32", "default", True, "vm (AMD EPYC, 2 CPUs)", "busy: 1.0 other") == \
        "cpu (2 threads), fp32, compiled (default), channels_last, under load, on vm (AMD EPYC, 2 CPUs)"


def test_rows_from_other_machines_or_loads_never_share_a_setting(tmp_path):
    here, there = "vm (AMD EPYC, 2 CPUs)", "ci-7 (Intel Xeon, 2 CPUs)"
    rows = [CPU | dict(step="o", parent="", throughput=100.0, machine=here, load="idle", throughput_lo=98.0,
                       throughput_hi=101.0, throughput_rounds=5),
            CPU | dict(step="a", parent="o", throughput=240.0, machine=there, load="idle"),
            CPU | dict(step="b", parent="o", throughput=60.0, machine=here, load="busy: 1.0 other tasks"),
            CPU | dict(step="c", parent="o", throughput=90.0, machine=here, load="idle"),
            CPU | dict(step="d", parent="o", throughput=80.0)]  # kept from a summary without the new columns
    df = read_summary(write_rows(tmp_path / "r/cpu/summary.csv", [{"label": r["step"]} | r for r in rows]))
    settings = dict(zip(df["step"], df["setting"]))
    assert settings["o"] == settings["c"] and len(set(settings.values())) == 4
    assert "under load" in settings["b"] and settings["d"] == "cpu (2 threads), fp32"
    assert (df.at[0, "throughput_lo"], df.at[0, "throughput_hi"], df.at[0, "throughput_rounds"]) == (98.0, 101.0, 5)
    assert math.isnan(df.at[4, "throughput_lo"]) and df.at[4, "load"] == "" and df.at[4, "machine"] == ""


# ---- the acceptance check, in miniature ----------------------------------------------------------------------

SAME_THREE = """
name: same
""" + TINY_BASE + """profiles:
  small:
    measure: {batch_sizes: [2], min_time: 0.02, rounds: 3}
steps:
  - {id: a, label: tiny}
  - {id: b, label: again, from: a}
  - {id: c, label: and again, from: a}
"""


def test_identical_models_under_a_burner_are_marked_as_taken_under_load(write_recipe, tmp_path, burners):
    """One model three times, measured while burners spin: never a ratio of figures that are not marked."""
    result = CliRunner().invoke(app, ["run", str(write_recipe(SAME_THREE)), "--measure-only", "--results",
                                      str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    assert result.output.count("busy: ") >= 3 and "quartiles" in result.output
    df = read_summary(tmp_path / "results/same/small/summary.csv")
    assert df["load"].str.startswith("busy: ").all() and df["setting"].str.contains("under load").all()
    assert (df["machine"] == fingerprint()).all() and (df["throughput_rounds"] == 3).all()
    assert (df["throughput_lo"] <= df["throughput"]).all() and (df["throughput"] <= df["throughput_hi"]).all()
