"""ablab status: each (step, seed) run's state read from fixture run directories alone (not started, pending,
running, requeued, incomplete, done, failed), and summary.csv rebuilt to name the same states."""

import csv
import os
import re

from typer.testing import CliRunner

from ablab.cli import app
from ablab.io import save_checkpoint, write_json_atomic
from ablab.store.state import record_job, record_submission, run_state

from .conftest import TINY_BASE

RECIPE = """
name: fixture
""" + TINY_BASE + """profiles:
  small:
    train: {epochs: 2}
steps:
  - {id: o, label: done}
  - {id: a, from: o}
  - {id: b, from: o}
  - {id: c, from: o}
  - {id: d, from: o}
  - {id: e, from: o}
"""


def started(run, epochs_logged: int) -> None:
    """run.json and log.csv as a training run leaves them after `epochs_logged` of its 2 epochs."""
    write_json_atomic(run / "run.json", {"key": "k", "train": {"epochs": 2}})
    (run / "log.csv").write_text("epoch,loss\n" + "".join(f"{e},1.0\n" for e in range(epochs_logged)))
    if epochs_logged:
        save_checkpoint(run / "checkpoint.pt", {}, epoch=epochs_logged - 1)


def finished(run, **metrics) -> None:
    started(run, 2)
    write_json_atomic(run / "metrics.json", {"seed": int(run.name[4:]), "top5": 90.0, "train_hours": 0.1, **metrics})


def fixture_runs(step_root):
    """o: done; a: running; b: pending and requeued; c: failed in the job and diverged; d: stopped with no job,
    and a submission that a later local run superseded; e: an earlier job's record and a new submission."""
    for step in "oabcde":
        write_json_atomic(step_root / step / "metrics.json", {"step": step, "params": 1})
    finished(step_root / "o/seed0", status="done", top1=41.2)
    record_submission(step_root / "a/seed0", "101", "slurm", "log")
    record_job(step_root / "a/seed0", "101", "running", host="node7", pid=1)
    started(step_root / "a/seed0", 1)
    record_submission(step_root / "b/seed0", "102", "slurm", "log")
    record_submission(step_root / "b/seed1", "103", "slurm", "log")
    record_job(step_root / "b/seed1", "103", "running", host="node7", pid=1)
    started(step_root / "b/seed1", 1)
    record_job(step_root / "b/seed1", "103", "requeued", progress="epoch 1/2")
    record_submission(step_root / "c/seed0", "104", "slurm", "log")
    record_job(step_root / "c/seed0", "104", "running", host="node8", pid=1)
    record_job(step_root / "c/seed0", "104", "failed", reason="OutOfMemoryError: CUDA out of memory")
    finished(step_root / "c/seed1", status="failed", reason="loss became nan at epoch 1, step 3 (lr 0.001)")
    started(step_root / "d/seed0", 1)
    record_submission(step_root / "d/seed1", "105", "slurm", "log")
    os.utime(step_root / "d/seed1/submitted.json", ns=(1, 1))  # long before the run below
    finished(step_root / "d/seed1", status="done", top1=40.0)
    record_submission(step_root / "e/seed0", "106", "slurm", "log")
    record_job(step_root / "e/seed0", "106", "running", host="node9", pid=1)
    record_job(step_root / "e/seed0", "106", "finished")
    record_submission(step_root / "e/seed0", "107", "slurm", "log")


def test_status_reads_every_state_from_the_results_directory(write_recipe, tmp_path):
    recipe, results = write_recipe(RECIPE), tmp_path / "results"
    fixture_runs(results / "fixture/small")
    result = CliRunner().invoke(app, ["status", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    runs, steps = lines[:lines.index("")], lines[lines.index("") + 1:]  # the run table, then the step table
    rows = {tuple(line.split()[:2]): " ".join(line.split()[2:]) for line in runs[1:-1]}
    assert lines[0].split() == ["step", "seed", "state", "detail"]
    assert rows == {
        ("o", "0"): "done top-1 41.20",
        ("a", "0"): "running epoch 1/2 (job 101 on node7)",
        ("b", "0"): "pending job 102",
        ("b", "1"): "pending requeued after epoch 1/2 (job 103 on node7)",
        ("c", "0"): "failed OutOfMemoryError: CUDA out of memory",
        ("c", "1"): "failed loss became nan at epoch 1, step 3 (lr 0.001)",
        ("d", "0"): "incomplete epoch 1/2",
        ("d", "1"): "done top-1 40.00",
        ("e", "0"): "pending job 107",
    }
    assert runs[-1] == "2 done, 1 running, 3 pending, 2 failed, 1 incomplete"
    assert steps[0].split()[:4] == ["step", "model", "top-1", "n"] and steps[0].split()[-1] == "status"
    assert steps[1].split()[:4] == ["o", "done", "41.20", "1"] and steps[1].split()[-1] == "done"
    assert lines[-1] == f"wrote {results}/fixture/small/summary.csv"
    summary = {r["step"]: r for r in csv.DictReader((results / "fixture/small/summary.csv").open())}
    assert summary["o"]["status"] == "done" and summary["o"]["top1"] == "41.2"
    assert summary["a"]["status"] == "running (seed 0: epoch 1/2 (job 101 on node7))"
    assert summary["b"]["status"] == ("pending (seed 0: job 102); pending (seed 1: requeued after epoch 1/2 "
                                      "(job 103 on node7))")
    assert summary["c"]["status"] == ("failed (seed 0): OutOfMemoryError: CUDA out of memory; "
                                      "failed (seed 1): loss became nan at epoch 1, step 3 (lr 0.001)")
    assert summary["d"]["status"] == "incomplete (seed 0: epoch 1/2)" and summary["d"]["top1"] == "40.0"
    assert summary["e"]["status"] == "pending (seed 0: job 107)"


def test_a_step_never_run_is_not_started_and_a_requeued_job_counts_its_attempts(write_recipe, tmp_path):
    recipe, results = write_recipe(RECIPE), tmp_path / "results"
    result = CliRunner().invoke(app, ["status", str(recipe), "--results", str(results)])
    assert result.exit_code == 0 and result.output.splitlines()[-1] == "6 not started"
    assert not results.exists()  # a status query of nothing writes nothing
    run = tmp_path / "seed0"
    record_job(run, "7", "running", host="h", pid=1)
    record_job(run, "7", "requeued", progress="epoch 1/2")
    record_job(run, "7", "running", host="h", pid=2)
    assert run_state(run).detail == "starting (job 7 on h, attempt 2)"


def test_a_run_the_recipe_has_moved_away_from_is_stale_not_done(write_recipe, tmp_path):
    recipe = write_recipe("name: moved\n" + TINY_BASE + """profiles:
  cpu:
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 1, batch_size: 32, lr: 1.0e-3, data: {name: shapetex, train_size: 64, val_size: 32}}
steps:
  - {id: o, label: tiny}
""")
    results = tmp_path / "results"
    assert CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)]).exit_code == 0
    recipe.write_text(recipe.read_text().replace("lr: 1.0e-3", "lr: 2.0e-3"))
    status = CliRunner().invoke(app, ["status", str(recipe), "--results", str(results)])
    assert status.exit_code == 0 and "o     0     stale  trained under settings the recipe no longer has" in status.output
    [row] = csv.DictReader((results / "moved/cpu/summary.csv").open())
    assert row["top1"] == "" and row["status"].startswith("stale (seed 0:")  # not averaged in
    rerun = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert rerun.exit_code == 0 and "[o] seed 0: top-1" in rerun.output  # the runner redoes it
    [row] = csv.DictReader((results / "moved/cpu/summary.csv").open())
    assert row["status"] == "done" and row["top1"] != ""


CHANCE = """
name: chance
""" + TINY_BASE + """profiles:
  small:
    scale: {img_size: 32, width: 0.5}
    train: {epochs: 2}
steps:
  - {id: o, label: learns}
  - {id: a, label: two seeds at chance, from: o}
  - {id: b, label: one seed at chance, from: o}
  - {id: c, label: one seed above chance, from: o}
"""


def test_status_names_steps_within_noise_of_chance_under_labels_that_say_the_shrink(write_recipe, tmp_path):
    recipe, results = write_recipe(CHANCE), tmp_path / "results"
    # 2,000 validation images (the default): two binomial standard errors of chance (10%) are 1.34 points
    for step, top1s in {"o": (41.2, 43.0), "a": (10.3, 9.1), "b": (10.9,), "c": (12.0,)}.items():
        write_json_atomic(results / "chance/small" / step / "metrics.json", {"step": step, "params": 1})
        for seed, top1 in enumerate(top1s):
            finished(results / "chance/small" / step / f"seed{seed}", status="done", top1=top1)
    result = CliRunner().invoke(app, ["status", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: step a (two seeds at chance (small shrink)): top-1 9.70 ± 0.85 (n = 2) is within noise of chance, "
        "10.0% for 10 classes: it learned nothing measurable",
        "warning: step b (one seed at chance (small shrink)): top-1 10.90 (n = 1) is within noise of chance, "
        "10.0% for 10 classes: it learned nothing measurable",
    ]  # not o (far above), nor c (one seed, 2.0 points above: more than two standard errors)
    assert any(re.match(r"o +learns \(small shrink\) +42\.10 ± 1\.27 +2 +done$", line) for line in lines)
