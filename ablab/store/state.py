"""Where a run stands, read from its directory alone: not started, pending, running, incomplete, done or failed.

A run directory (`<step>/seed<k>/`, or `<step>/` for a measurement job) holds what the runner writes (run.json,
log.csv, metrics.json) and, for runs handed to a scheduler, two small records written atomically by two writers,
so neither ever overwrites the other's news:
  submitted.json  the submitting process: job id, scheduler, where the job's log goes;
  job.json        the job itself (its first task only): running / requeued / finished / failed, attempt, host, reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..io import CorruptFile, checkpoint_header, read_json, write_json_atomic

CHECKPOINT = "checkpoint.pt"  # what the epoch loop writes (ablab.engine.loop), named here for the store

SUBMITTED_FILE, JOB_FILE = "submitted.json", "job.json"
ACTIVE = ("pending", "running")  # states in which a job still owns the run directory


@dataclass(frozen=True)
class RunState:
    """One run's state and what to say about it ('epoch 3/10', 'top-1 41.20', a failure's reason, a job id)."""

    state: str  # not started | pending | running | incomplete | done | failed
    detail: str = ""


def record_submission(run_dir: Path, job_id: str, cluster: str, log: str) -> None:
    """Note that a job for `run_dir` was handed to the scheduler (written by the submitting process)."""
    write_json_atomic(run_dir / SUBMITTED_FILE, {"job_id": job_id, "cluster": cluster, "log": log,
                                                 "submitted": _now()})


def record_job(run_dir: Path, job_id: str, state: str, **fields: Any) -> None:
    """Note a job's own state (running, requeued, finished, failed); a record of the same job keeps its earlier
    fields, and every start of it counts one more attempt (a requeued job starts again under the same id)."""
    path = run_dir / JOB_FILE
    earlier = read_json(path) if path.is_file() else {}
    record = earlier if earlier.get("job_id") == job_id else {"attempt": 0}
    if state == "running":
        record = {**record, "attempt": record["attempt"] + 1, "started": _now()}
    write_json_atomic(path, {**record, **fields, "job_id": job_id, "state": state, "updated": _now()})


def run_state(run_dir: Path, key: Optional[str] = None) -> RunState:
    """The state of the run in `run_dir`. A job record speaks for the run unless metrics.json was written after it
    (the run was since finished some other way); a record of an earlier job than the one last submitted is ignored.
    Given the `key` the recipe now gives the run, a finished run keyed otherwise is stale (`ablab run` redoes it)."""
    metrics, job_path, sub_path = run_dir / "metrics.json", run_dir / JOB_FILE, run_dir / SUBMITTED_FILE
    submitted, job = _record(sub_path), _record(job_path)
    if job is not None and submitted is not None and job["job_id"] != submitted["job_id"]:
        job = None  # the job submitted last has not started yet
    record_path = job_path if job is not None else sub_path
    if (job or submitted) is not None and not _newer(metrics, record_path):
        if job is None:
            return RunState("pending", f"job {submitted['job_id']}")
        where = f"job {job['job_id']} on {job['host']}" + (f", attempt {job['attempt']}" if job["attempt"] > 1 else "")
        if job["state"] == "running":
            return RunState("running", f"{epoch_progress(run_dir)} ({where})")
        if job["state"] == "requeued":
            return RunState("pending", f"requeued after {job['progress']} ({where})")
        if job["state"] == "failed":
            return RunState("failed", job["reason"])
    if metrics.is_file():
        try:
            m = read_json(metrics)
        except CorruptFile as e:
            return RunState("incomplete", f"{e.reason} in metrics.json: a rerun redoes the run")
        if key is not None and m.get("key") not in (None, key):
            return RunState("stale", "trained under settings the recipe no longer has; `ablab run` redoes it")
        if m.get("status") == "failed":
            return RunState("failed", m["reason"])
        return RunState("done", f"top-1 {m['top1']:.2f}" if m.get("top1") is not None else "measured")
    if (run_dir / "run.json").is_file():
        return RunState("incomplete", epoch_progress(run_dir))
    return RunState("not started")


def epoch_progress(run_dir: Path) -> str:
    """'epoch e/E' (e epochs of E finished, as the checkpoint itself records), 'pre-training epoch e/E' while its
    pre-training is unfinished, or 'starting' before the run has begun (measuring the step or loading data)."""
    pre = run_dir / "pretrain"
    try:
        if (pre / "run.json").is_file() and not (pre / "metrics.json").is_file():
            stage, where, epochs = "pre-training epoch", pre, read_json(pre / "run.json")["pretrain"]["epochs"]
        elif (run_dir / "run.json").is_file():
            stage, where, epochs = "epoch", run_dir, read_json(run_dir / "run.json")["train"]["epochs"]
        else:
            return "starting"
    except (CorruptFile, KeyError, TypeError) as e:
        return f"unknown progress ({e})"
    return f"{stage} {finished_epochs(where / CHECKPOINT)}/{epochs}"


def finished_epochs(checkpoint: Path) -> int:
    """Epochs a checkpoint holds, read from its header (0 when there is none or it is corrupt)."""
    try:
        return checkpoint_header(checkpoint)["epoch"] + 1 if checkpoint.is_file() else 0
    except (CorruptFile, OSError):
        return 0


def _record(path: Path) -> Optional[dict[str, Any]]:
    """A job record, or None when there is none (or it is unreadable: the run's own files speak instead)."""
    try:
        return read_json(path) if path.is_file() else None
    except CorruptFile:
        return None


def _newer(path: Path, than: Path) -> bool:
    """Whether `path` exists and was written after `than` (a tie counts as not newer)."""
    return path.is_file() and path.stat().st_mtime_ns > than.stat().st_mtime_ns


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def describe(run_dir: Path, state: RunState) -> str:
    """'failed (seed k): reason', or '<state> (seed k: detail)', as summary.csv's status column names a run."""
    name = run_dir.name.replace("seed", "seed ")
    return f"failed ({name}): {state.detail}" if state.state == "failed" else f"{state.state} ({name}: {state.detail})"
