"""Damaged run files: every kind, truncated or garbled, ends in a message naming the file and a rerun that gives the
same result as an undamaged run; leftovers of interrupted writes are removed; two processes on one results
directory train each run exactly once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablab.cli import app
from ablab.io import CorruptFile, checkpoint_header, load_checkpoint, save_checkpoint

from .conftest import TINY_TRAINED

RECIPE = "name: damaged\n" + TINY_TRAINED.replace("epochs: 1", "epochs: 2")


def run(recipe: Path, results: Path) -> str:
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result.output


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("clean")
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE)
    run(recipe, root / "results")
    metrics = json.loads((root / "results/damaged/cpu/o/seed0/metrics.json").read_text())
    return recipe, root / "results", metrics


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-200:-184] = bytes(16)  # 16 bytes inside the last tensor
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


# (file, damage, whether the finished run's metrics go too, so the run must resume from that file, what is said)
CASES = [
    ("seed0/checkpoint.pt", truncate, True, "truncated"),
    ("seed0/checkpoint.pt", empty, True, "not an ablab checkpoint"),
    ("seed0/checkpoint.pt", garble, True, "does not match its checksum"),
    ("seed0/metrics.json", truncate, False, "metrics.json: not valid JSON"),
    ("seed0/run.json", truncate, True, "run.json: not valid JSON"),
    ("seed0/log.csv", truncate, False, "rewritten from the checkpoint"),
    ("metrics.json", truncate, False, "o/metrics.json: not valid JSON"),
]


@pytest.mark.parametrize("name,damage,drop_metrics,said", CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES])
def test_damaged_file_is_named_and_the_rerun_is_right(clean, tmp_path, name, damage, drop_metrics, said):
    recipe, results, metrics = clean
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    step = copy / "damaged/cpu/o"
    damage(step / name)
    if drop_metrics:  # an unfinished run: what is left to resume from is the damaged file
        (step / "seed0/metrics.json").unlink()
    status = CliRunner().invoke(app, ["status", str(recipe), "--results", str(copy)])
    assert status.exit_code == 0 and "Traceback" not in status.output, status.output
    output = run(recipe, copy)
    assert said in output, output
    again = json.loads((step / "seed0/metrics.json").read_text())
    assert (again["top1"], again["top5"]) == (metrics["top1"], metrics["top5"])
    assert len((step / "seed0/log.csv").read_text().splitlines()) == 3


def test_leftovers_of_interrupted_writes_are_removed(clean, tmp_path):
    recipe, results, _ = clean
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    leftover = copy / "damaged/cpu/o/seed0/.checkpoint.pt.abc123.tmp"
    leftover.write_bytes(b"half a checkpoint")
    assert "removed .checkpoint.pt.abc123.tmp" in run(recipe, copy) and not leftover.exists()


def test_checkpoints_carry_their_epoch_and_refuse_garbage(tmp_path):
    import torch

    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.ones(3)}, epoch=4)
    assert checkpoint_header(path)["epoch"] == 4 and torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    torch.save({"w": torch.ones(3)}, path)  # a plain torch file is not trusted
    with pytest.raises(CorruptFile, match="not an ablab checkpoint"):
        load_checkpoint(path)


def test_two_processes_on_one_results_directory_train_each_run_once(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.replace("epochs: 2", "epochs: 4").replace(
        "  - {id: o, label: tiny}", "  - {id: o, label: tiny}\n  - {id: p, label: again, from: o}"))
    command = [sys.executable, "-m", "ablab", "run", str(recipe), "--results", str(tmp_path / "results"),
               "--seeds", "0,1"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    text = "\n".join(outputs)
    for step in ("o", "p"):
        for seed in (0, 1):
            trained = text.count(f"[{step}] seed {seed}: top-1")
            assert trained == 1, (step, seed, text)
            assert json.loads((tmp_path / f"results/damaged/cpu/{step}/seed{seed}/metrics.json").read_text())[
                "status"] == "done"
    assert "being written by process" in text or text.count("done earlier, skipped") >= 1
