"""Distributed training under torchrun on the CPU (gloo): two processes train like one with the same global
batch (supervised and MAE pre-training), a run cut at world size 2 resumes at world size 1, only rank 0
writes or prints, each process gets its share of every global batch, and a batch they cannot share is refused.

Tolerance. Two processes do the same arithmetic as one except for the order of additions: DDP adds two
half-batch gradients where one process sums the whole batch, and the loss is a mean of two means. Float32
addition is not associative, so each step may differ by a few ulps (~1e-7 relative) and 16 AdamW steps keep
that near 1e-6 (measured: 2.5e-7 at most on any weight). We therefore allow 1e-5 on every weight, 1e-4 on a
logged loss (logged to 5 decimals) and one validation image on top-1 / top-5: a prediction can flip only
when its two best logits lie within ~1e-6 of each other.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ablab.dist
from ablab.io import load_checkpoint
from ablab.cli import app
from ablab.data.loaders import build_data
from ablab.dist import WorldSizeError
from ablab.settings import DataConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
VAL_SIZE = 128
WEIGHT_ATOL, LOSS_ATOL, TOP_ATOL = 1e-5, 1e-4, 100 / VAL_SIZE  # why: the module docstring

RECIPE = f"""
name: tinyddp
base:
  spec: {{img_size: 32, patch_size: 8, class_token: false, pool: avg, stages: [{{depth: 2, dim: 32, heads: 2}}]}}
profiles:
  cpu:
    measure: {{batch_sizes: [8], min_time: 0.01}}
    train:
      epochs: 2
      batch_size: 32
      lr: 2.0e-3
      warmup_epochs: 0.5
      data: {{train_size: 256, val_size: {VAL_SIZE}}}
      pretrain: {{method: mae, mask_unit: 8, epochs: 1, batch_size: 32, decoder_dim: 32, decoder_heads: 2}}
steps:
  - id: o
    label: tiny ViT
    train: {{pretrain: null}}
  - id: mae
    label: MAE pre-training + fine-tuning
    from: o
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """RECIPE as a file, shared by the tests that compare runs of it."""
    path = tmp_path_factory.mktemp("recipe") / "tinyddp.yaml"
    path.write_text(RECIPE)
    return path


def run_here(*args: str) -> None:
    """`ablab run ARGS` in this process (a world of one), single-threaded like torchrun's workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(app, ["run", *args])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def one_process(recipe, tmp_path_factory) -> Path:
    """The recipe's results from one process."""
    results = tmp_path_factory.mktemp("one")
    run_here(str(recipe), "--results", str(results))
    return results / "tinyddp/cpu"


def torchrun(tmp_path: Path, *args: str, stop_after_epoch_0: bool = False) -> subprocess.CompletedProcess:
    """`python -m ablab run ... --results tmp_path/results` in two gloo processes on a free port (through
    tests/ddp_launch.py, which lists what each rank writes under tmp_path/results in tmp_path/writes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(ROOT / "tests/ddp_launch.py"), str(results), str(tmp_path / "writes")]
    cmd += ["--stop-after-epoch-0"] * stop_after_epoch_0 + ["run", *args, "--results", str(results)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.terminate()  # torchrun passes SIGTERM on to its workers (SIGKILL would orphan them)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def log_rows(run_dir: Path) -> list[dict[str, str]]:
    """A seed run's log.csv, one dict per epoch."""
    return list(csv.DictReader((run_dir / "log.csv").open()))


def assert_trained_alike(a: Path, b: Path) -> None:
    """Two seed runs' logs, final metrics and weights agree within the module's tolerance."""
    for row_a, row_b in zip(log_rows(a), log_rows(b), strict=True):
        assert abs(float(row_a["loss"]) - float(row_b["loss"])) <= LOSS_ATOL
        for col in ("val_top1", "val_top5"):
            assert abs(float(row_a[col]) - float(row_b[col])) <= TOP_ATOL, col
    weights_a = load_checkpoint(a / "checkpoint.pt")["model"]
    weights_b = load_checkpoint(b / "checkpoint.pt")["model"]
    for name, w in weights_a.items():
        torch.testing.assert_close(weights_b[name], w, atol=WEIGHT_ATOL, rtol=0, msg=name)


def files(root: Path) -> set[str]:
    """Every file under `root`, relative to it: a results layout."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_two_processes_train_like_one_and_only_rank_0_writes(recipe, one_process, tmp_path):
    done = torchrun(tmp_path, str(recipe))
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / "results/tinyddp/cpu"
    assert files(two) == files(one_process)  # the same results layout
    for step in ("o", "mae"):
        assert_trained_alike(one_process / step / "seed0", two / step / "seed0")
        one, run = (json.loads((d / step / "seed0/metrics.json").read_text()) for d in (one_process, two))
        assert (one["world_size"], one["batch_per_rank"], one["global_batch"]) == (1, 32, 32)
        assert (run["world_size"], run["batch_per_rank"], run["global_batch"]) == (2, 16, 32)
        assert run["lr_scaling"].startswith("none") and run["key"] == one["key"]
    pre_one, pre_two = (json.loads((d / "mae/seed0/pretrain/metrics.json").read_text()) for d in (one_process, two))
    assert abs(pre_one["pretrain_loss"] - pre_two["pretrain_loss"]) <= LOSS_ATOL
    assert (pre_two["pretrain_world_size"], pre_two["pretrain_batch_per_rank"]) == (2, 16)

    writes = {rank: (tmp_path / f"writes/rank{rank}.txt").read_text().split() for rank in (0, 1)}
    assert writes[1] == [], "rank 1 wrote under results/"
    expected = {"summary.csv", "o/metrics.json", "o/seed0/checkpoint.pt", "mae/seed0/pretrain/encoder.pt"}
    assert {f"tinyddp/cpu/{name}" for name in expected} <= set(writes[0])
    assert done.stdout.count("[o] seed 0: top-1") == 1 and done.stdout.count("wrote ") == 1  # rank 0 alone prints


def test_run_cut_at_two_processes_resumes_at_one(recipe, one_process, tmp_path):
    cut = torchrun(tmp_path, str(recipe), "--steps", "o", stop_after_epoch_0=True)
    assert cut.returncode != 0 and "run the same command to resume" in cut.stderr
    run_dir = tmp_path / "results/tinyddp/cpu/o/seed0"
    assert len(log_rows(run_dir)) == 1 and not (run_dir / "metrics.json").exists()
    run_here(str(recipe), "--steps", "o", "--results", str(tmp_path / "results"))
    assert_trained_alike(one_process / "o/seed0", run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["world_size"] == 1


def test_each_process_gets_its_share_of_every_global_batch():
    cfg = TrainConfig(batch_size=8, data=DataConfig(train_size=64, val_size=20))
    whole = build_data(cfg, 32, seed=3)
    halves = [build_data(cfg, 32, seed=3, rank=r, world=2) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(whole.train(1), halves[0].train(1), halves[1].train(1), strict=True):
        assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))  # flips included
    val = [torch.cat([y for _, y in d.val()]) for d in halves]
    assert [len(v) for v in val] == [10, 10] and torch.equal(torch.cat(val), torch.cat([y for _, y in whole.val()]))


def test_a_batch_the_processes_cannot_share_is_refused_before_any_work(write_recipe, tmp_path, monkeypatch):
    with pytest.raises(WorldSizeError, match="batch_size 30 .* world size 4"):
        build_data(TrainConfig(batch_size=30), 32, seed=0, rank=0, world=4)
    monkeypatch.setenv("WORLD_SIZE", "4")  # as torchrun sets it; no process group is joined:
    monkeypatch.setattr(ablab.dist, "init_distributed", lambda device_type: pytest.fail("joined a group"))
    odd = write_recipe(RECIPE.replace("epochs: 1, batch_size: 32", "epochs: 1, batch_size: 30"))
    result = CliRunner().invoke(app, ["run", str(odd), "--results", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "step mae: pretrain batch_size 30 (the global batch) is not divisible by the world size 4" in result.output
    assert not (tmp_path / "tinyddp").exists()
