"""ablab run --executor submitit on submitit's local executor: one job per (step, seed) writing what a local run
writes (same metrics for the same seed at world size 1), requeue on pre-emption resuming from the checkpoint,
several tasks per job exporting the torch.distributed environment, and the recipe's cluster: block checked."""

import csv
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import ablab
from ablab.cli import app
from ablab.settings import ClusterConfig
from ablab.store.paths import Store
from ablab.runs.executors import executor_parameters, plan, submit, wait
from ablab.io import read_json
from ablab.recipe import RecipeError, load_recipe

from .conftest import TINY_BASE

TINY = """
name: tiny
""" + TINY_BASE + """profiles:
  small:
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 2, batch_size: 32, warmup_epochs: 0.5, data: {train_size: 256, val_size: 128}}
steps:
  - id: o
    label: tiny ViT
  - id: a
    transform: relative_position_bias
"""
LONGER = TINY.replace("epochs: 2", "epochs: 5").replace("train_size: 256", "train_size: 2048")  # ~0.6 s an epoch
LOG_COLUMNS = ("epoch", "loss", "lr", "val_top1", "val_top5")  # the rest are timings


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def job_env(monkeypatch):
    """Jobs are subprocesses: they import this checkout's ablab, and they and this process use one thread each,
    so that the same seed gives the same numbers in both."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(ablab.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def log_rows(path: Path) -> list[dict[str, str]]:
    return [{k: row[k] for k in LOG_COLUMNS} for row in csv.DictReader(path.open())]


def test_jobs_write_what_a_local_run_writes(write_recipe, tmp_path, job_env):
    recipe, here, jobs = write_recipe(TINY), tmp_path / "local", tmp_path / "jobs"
    assert invoke("run", recipe, "--results", here).exit_code == 0
    result = invoke("run", recipe, "--results", jobs, "--executor", "submitit", "--cluster", "local", "--wait")
    assert result.exit_code == 0, result.output
    assert "[o] seed 0: submitted as job" in result.output and "[a] seed 0: submitted as job" in result.output
    assert "2 done" in result.output
    a, b = here / "tiny/small", jobs / "tiny/small"
    extra = files(b) - files(a)
    assert files(a) <= files(b)
    assert extra and all(f.startswith("submitit/") or f.endswith(("/submitted.json", "/job.json")) for f in extra)
    for step in "oa":
        assert read_json(b / step / "seed0/job.json")["state"] == "finished"
        ours, theirs = read_json(a / step / "seed0/metrics.json"), read_json(b / step / "seed0/metrics.json")
        for key in ("key", "status", "top1", "top5", "epochs"):
            assert ours[key] == theirs[key], (step, key)
        assert log_rows(a / step / "seed0/log.csv") == log_rows(b / step / "seed0/log.csv")
        ours, theirs = read_json(a / step / "metrics.json"), read_json(b / step / "metrics.json")
        for key in ("key", "params", "flops", "uncounted_ops"):
            assert ours[key] == theirs[key], (step, key)
    summaries = [list(csv.DictReader((root / "summary.csv").open())) for root in (a, b)]
    assert [(r["step"], r["top1"], r["status"]) for r in summaries[0]] == \
           [(r["step"], r["top1"], r["status"]) for r in summaries[1]]
    again = invoke("run", recipe, "--results", jobs, "--executor", "submitit", "--cluster", "local")
    assert "nothing to submit" in again.output and again.output.count("done earlier, skipped") == 2
    (b / "summary.csv").unlink()  # say the last two jobs rewrote it at once and one of them saw the other unfinished
    assert invoke("report", recipe, "--results", jobs).exit_code == 0  # with the recipe, report rebuilds it first
    assert [r["status"] for r in csv.DictReader((b / "summary.csv").open())] == ["done", "done"]


def test_preempted_job_is_requeued_and_resumes_from_its_checkpoint(write_recipe, tmp_path, job_env):
    recipe, results = load_recipe(write_recipe(LONGER)), tmp_path / "results"
    work = plan(recipe, "small", Store(results), ["o"], (0,), False, False, None, print)
    submission = submit(recipe, "small", Store(results), work, ClusterConfig(cluster="local"), False, print)
    run = results / "tiny/small/o/seed0"
    deadline = time.time() + 120
    while not ((run / "log.csv").is_file() and len((run / "log.csv").read_text().splitlines()) >= 2):
        assert time.time() < deadline, "the job never finished its first epoch"
        time.sleep(0.05)
    os.kill(read_json(run / "job.json")["pid"], signal.SIGUSR2)  # what SLURM sends a job it is about to pre-empt
    wait(submission, print)
    record, log = read_json(run / "job.json"), submission.jobs[0].stdout()
    assert record["state"] == "finished" and record["attempt"] == 2, log
    assert "Requeued job" in log and "resuming from its checkpoint after epoch" in log
    assert log.count("epoch 1/5:") == 1  # the second attempt did not start over
    assert [row["epoch"] for row in log_rows(run / "log.csv")] == ["0", "1", "2", "3", "4"]
    uninterrupted = tmp_path / "local"
    assert invoke("run", recipe.path, "--steps", "o", "--results", uninterrupted).exit_code == 0
    assert log_rows(run / "log.csv") == log_rows(uninterrupted / "tiny/small/o/seed0/log.csv")


def test_tasks_of_a_job_get_the_torch_distributed_environment(write_recipe, tmp_path, job_env):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    result = invoke("run", recipe, "--measure-only", "--steps", "o", "--results", results, "--executor", "submitit",
                    "--cluster", "local", "--tasks-per-node", "2", "--wait")
    assert result.exit_code == 0, result.output
    assert "[o] measurement: submitted as job" in result.output and "done" in result.output
    step = results / "tiny/small/o"
    assert read_json(step / "metrics.json")["params"] > 0 and read_json(step / "job.json")["state"] == "finished"
    logs = sorted((results / "tiny/small/submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    for rank, path in enumerate(logs):
        assert f"task {rank} of 2 (local rank {rank}), rendezvous at " in path.read_text()
    assert "[o] tiny ViT:" in logs[0].read_text() and "[o] tiny ViT:" not in logs[1].read_text()  # rank 0 measures


def test_two_tasks_per_node_train_one_run_under_gloo(write_recipe, tmp_path, job_env):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    result = invoke("run", recipe, "--steps", "o", "--results", results, "--executor", "submitit", "--cluster",
                    "local", "--tasks-per-node", "2", "--wait")
    assert result.exit_code == 0, result.output
    here = tmp_path / "local"
    assert invoke("run", recipe, "--steps", "o", "--results", here).exit_code == 0
    a, b = here / "tiny/small", results / "tiny/small"
    assert files(a) <= files(b)
    metrics = read_json(b / "o/seed0/metrics.json")
    assert metrics["status"] == "done" and metrics["world_size"] == 2 and metrics["batch_per_rank"] == 16
    assert metrics["key"] == read_json(a / "o/seed0/metrics.json")["key"]  # the same run, at another world size
    assert read_json(b / "o/seed0/job.json")["state"] == "finished"
    assert [row["epoch"] for row in log_rows(b / "o/seed0/log.csv")] == ["0", "1"]
    logs = sorted((b / "submitit").glob("*/*_log.out"))
    assert "epoch 2/2:" in logs[0].read_text() and "epoch 2/2:" not in logs[1].read_text()  # rank 0 alone logs


CLUSTER = TINY + """\
cluster:
  partition: learnfair
  gpus_per_node: 8
  tasks_per_node: 8
  timeout_min: 4320
"""


def test_cluster_block_loads_and_the_command_line_overrides_it(write_recipe, tmp_path):
    r = load_recipe(write_recipe(CLUSTER))
    assert r.cluster == ClusterConfig(partition="learnfair", gpus_per_node=8, tasks_per_node=8, timeout_min=4320)
    assert load_recipe(write_recipe(TINY)).cluster == ClusterConfig()
    params = executor_parameters(r.cluster, "job")
    assert params["slurm_partition"] == "learnfair" and params["slurm_array_parallelism"] == 256
    assert params["tasks_per_node"] == 8 and params["timeout_min"] == 4320 and "mem_gb" not in params
    local = executor_parameters(ClusterConfig(cluster="local", partition="x"), "job")
    assert not any(k.startswith("slurm_") for k in local)
    result = invoke("run", write_recipe(CLUSTER), "--measure-only", "--results", tmp_path, "--executor", "submitit",
                    "--cluster", "local", "--nodes", "2")
    assert result.exit_code == 2 and "cluster nodes: the local cluster is this one machine: nodes must be 1" in \
        result.output
    result = invoke("run", write_recipe(TINY), "--measure-only", "--results", tmp_path, "--partition", "gpu")
    assert result.exit_code == 2 and "--partition: cluster options apply to --executor submitit only" in result.output
    result = invoke("run", write_recipe(TINY), "--measure-only", "--results", tmp_path, "--executor", "slurmm")
    assert result.exit_code == 2 and "'slurmm' is not one of" in " ".join(result.output.split())


def test_cluster_block_errors_name_file_line_and_allowed_values(write_recipe):
    path = write_recipe(CLUSTER.replace("partition: learnfair", "partiton: learnfair\n  cluster: pbs")
                        .replace("gpus_per_node: 8", "gpus_per_node: eight"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors == [
        f"{path}:20: cluster.partiton: unknown field 'partiton'; did you mean 'partition'? allowed: cluster, "
        "partition, nodes, gpus_per_node, tasks_per_node, cpus_per_task, mem_gb, timeout_min, array_parallelism",
        f"{path}:21: cluster.cluster: 'pbs' is not allowed; allowed: slurm, local",
        f"{path}:22: cluster.gpus_per_node: expected an integer, got 'eight'"]
    path = write_recipe(CLUSTER.replace("tasks_per_node: 8", "tasks_per_node: 0\n  mem_gb: -4"))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors == [f"{path}:22: cluster.tasks_per_node: must be at least 1, got 0",
                                 f"{path}:23: cluster.mem_gb: must be positive, got -4.0"]
    path = write_recipe(TINY + "cluster: [slurm]\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.errors[0].startswith(f"{path}:19: cluster: a mapping with cluster, partition, nodes")
