"""`ablab run --executor submitit`: one submitit job per (step, seed), sent as one job array (SLURM, or submitit's
local executor), each running the ordinary runner for its step and seed into the same results layout.

Who measures: each step is measured by exactly one job, the one of its first seed still to train (or a job of its
own with --measure-only or when every seed is done), so throughput is measured on the nodes the runs use, never on
the submitting machine, and no two jobs write a step's measurements at once. summary.csv is rewritten atomically
by every job and once more after --wait; `ablab status` rebuilds it from the run directories at any time.

Requeue: on pre-emption or time-out submitit calls `RunJob.checkpoint`, which hands back the same call without
--force; the requeued job resumes from the run's last epoch checkpoint like any interrupted run.
"""

from __future__ import annotations

import os
import signal
import socket
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from ..arch.spec import ArchSpec
from ..cost.throughput import MeasureError, resolve_setting
from ..engine.loop import Progress as EngineProgress
from ..io import read_json
from ..recipe import Recipe
from ..settings import ClusterConfig, Measure
from ..store.keys import measure_key, train_key
from ..store.paths import Store
from ..store.state import ACTIVE, epoch_progress, record_job, record_submission, run_state
from .progress import RunProgress
from .runner import run_recipe

# submitit 1.5.3 finds its executors through pkg_resources, which warns on every import; nothing for us to act on
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

LOG_DIR = "submitit"  # results/<recipe>/<profile>/submitit/<job id>/: submitit's pickles and logs (git-ignored)


class RunJob(Checkpointable):
    """One job: a step's training with one seed (measuring the step first when `measure`), or with `seed` None
    the step's measurement alone; requeued on pre-emption or time-out, it resumes from its last checkpoint."""

    def __init__(self, recipe: Recipe, profile: str, store: Store, step: str, seed: Optional[int], measure: bool,
                 data_root: Optional[str]) -> None:
        self.recipe, self.profile, self.store, self.data_root = recipe, profile, store, data_root
        self.step, self.seed, self.measure = step, seed, measure

    @property
    def run_dir(self) -> Path:
        """Where the job records its state: the seed run's directory, or the step's for a measurement job."""
        if self.seed is None:
            return self.store.step_dir(self.recipe.name, self.profile, self.step)
        return self.store.seed_dir(self.recipe.name, self.profile, self.step, self.seed)

    @property
    def name(self) -> str:
        """'[step] seed k' or '[step] measurement', as the job's log lines name it."""
        return f"[{self.step}]" + (" measurement" if self.seed is None else f" seed {self.seed}")

    def __call__(self, force: bool = False) -> str:
        """Run the job's share of the recipe in every task (each a DDP rank when there are several); the first
        task records the job's state. Returns the run's final state."""
        env = submitit.JobEnvironment()
        if env.num_tasks > 1:  # the torchrun contract; the runner's DDP setup reads it
            dist = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            print(f"{self.name}: task {dist.rank} of {dist.world_size} (local rank {dist.local_rank}), "
                  f"rendezvous at {dist.master_addr}:{dist.master_port}", flush=True)
        lead = env.global_rank == 0
        if lead:
            record_job(self.run_dir, env.job_id, "running", host=socket.gethostname(), pid=os.getpid())
        progress = JobProgress(env._usr_sig())  # the pre-emption signal, as submitit 1.5.3 reads it
        try:
            run_recipe(self.recipe, self.profile, self.store, [self.step], force, log=_print,
                       train_steps=self.seed is not None, seeds=(self.seed,) if self.seed is not None else (),
                       data_root=self.data_root, progress=progress, measure_steps=self.measure)
        except KeyboardInterrupt:  # submitit's local executor cancels a job with SIGINT
            if lead:
                record_job(self.run_dir, env.job_id, "failed", reason=f"cancelled after {epoch_progress(self.run_dir)}")
            raise
        except Exception as e:
            if lead:
                record_job(self.run_dir, env.job_id, "failed", reason=f"{type(e).__name__}: {e}")
            raise
        if lead:
            record_job(self.run_dir, env.job_id, "finished")
        return run_state(self.run_dir).state

    def checkpoint(self, force: bool = False) -> DelayedSubmission:
        """Called by submitit (first task only) when the job is pre-empted or times out: the same job again, now
        without --force, so it resumes from the last epoch checkpoint instead of starting over."""
        record_job(self.run_dir, submitit.JobEnvironment().job_id, "requeued", progress=epoch_progress(self.run_dir))
        return DelayedSubmission(self, force=False)


class JobProgress(RunProgress):
    """A job's log lines, and submitit's pre-emption signal held while an epoch loop runs, handed to submitit's
    handler at the next batch or epoch boundary. That handler checkpoints, requeues and exits by raising
    SystemExit; raised wherever the signal lands (inside a finaliser or a generator's close) the exception can be
    printed and dropped, and the job trains on past its own requeue. Outside a loop the handler runs at once."""

    def __init__(self, signum: int) -> None:
        super().__init__(log=_print)
        self.signum, self.handler = signum, signal.getsignal(signum)
        self.looping = self.held = False
        if callable(self.handler):
            signal.signal(signum, self._signalled)

    def _signalled(self, signum: int, frame: Any) -> None:
        if self.looping:
            self.held = True
        else:
            self.handler(signum, frame)

    def _release(self) -> None:
        if self.held:
            self.held = False
            self.handler(self.signum, None)

    def engine_callbacks(self) -> EngineProgress:
        shown = super().engine_callbacks()

        def on_batch(done: int, total: int) -> None:
            self.looping = True
            self._release()
            shown.on_batch(done, total)

        def on_epoch(row: dict[str, Any]) -> None:
            shown.on_epoch(row)
            self._release()

        return EngineProgress(on_batch=on_batch, on_epoch=on_epoch)

    def advance(self, seconds_per_epoch: Optional[float] = None) -> None:
        super().advance(seconds_per_epoch)
        self.looping = False
        self._release()


@dataclass(frozen=True)
class Submission:
    """Jobs handed to the scheduler, and where their logs go."""

    jobs: list[submitit.Job]
    work: list[RunJob]
    folder: Path


def plan(recipe: Recipe, profile: str, store: Store, steps: Optional[list[str]], seeds: tuple[int, ...],
         measure_only: bool, force: bool, data_root: Optional[str], log: Callable[[str], None]) -> list[RunJob]:
    """The jobs still to run: finished work (same key) is skipped, as the runner would, and so is a run whose
    job is pending or running (unless `force`), so that two jobs never write one run directory."""
    prof, work = recipe.profiles[profile], []
    for step in [s for s in recipe.steps if not steps or s.id in steps]:
        spec, out = recipe.spec(step.id, profile), store.step_dir(recipe.name, profile, step.id)
        measure = force or not _measured(out / "metrics.json", spec, prof.measure)
        todo = []
        if not measure_only:
            cfg = recipe.train_config(step.id, profile, data_root)
            for seed in seeds:
                run = store.seed_dir(recipe.name, profile, step.id, seed)
                if not force and _up_to_date(run / "metrics.json", train_key(spec, cfg, seed)):
                    log(f"[{step.id}] seed {seed}: done earlier, skipped (--force re-runs)")
                elif not force and _busy(run, log, f"[{step.id}] seed {seed}"):
                    continue
                else:
                    todo.append(seed)
        # the step's first job always measures: its runner skips a measurement up to date on that job's node
        work += [RunJob(recipe, profile, store, step.id, seed, i == 0, data_root) for i, seed in enumerate(todo)]
        if measure and not todo and (force or not _busy(out, log, f"[{step.id}] measurement")):
            work.append(RunJob(recipe, profile, store, step.id, None, True, data_root))
    return work


def submit(recipe: Recipe, profile: str, store: Store, work: list[RunJob], cluster: ClusterConfig, force: bool,
           log: Callable[[str], None]) -> Submission:
    """Hand `work` to submitit as one job array with `cluster`'s resources and record each job's submission."""
    folder = store.profile_dir(recipe.name, profile) / LOG_DIR
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster.cluster)
    executor.update_parameters(**executor_parameters(cluster, f"ablab-{recipe.name}-{profile}"))
    with submitit.helpers.clean_env(), executor.batch():  # no SLURM_* or RANK of an enclosing job leaks in
        jobs = [executor.submit(job, force=force) for job in work]
    for job, w in zip(jobs, work):
        record_submission(w.run_dir, job.job_id, cluster.cluster, str(job.paths.stdout))
        log(f"{w.name}: submitted as job {job.job_id}" + (" (measures the step first)" if w.measure and w.seed
                                                           is not None else ""))
    return Submission(jobs, work, folder)


def executor_parameters(cluster: ClusterConfig, name: str) -> dict[str, Any]:
    """submitit's AutoExecutor parameters for `cluster` (SLURM-only ones only when it is SLURM)."""
    params = {k: v for k, v in asdict(cluster).items() if k not in ("cluster", "partition", "array_parallelism")}
    params = {"name": name, **{k: v for k, v in params.items() if v is not None}}
    if cluster.cluster == "slurm":
        params["slurm_array_parallelism"] = cluster.array_parallelism
        if cluster.partition:
            params["slurm_partition"] = cluster.partition
    return params


def wait(submission: Submission, log: Callable[[str], None]) -> None:
    """Block until every job has ended; a failed job is reported with the reason it recorded."""
    for job, w in zip(submission.jobs, submission.work):
        try:
            job.result()
        except Exception:  # the job recorded why; submitit's error only repeats the traceback of its log
            log(f"{w.name}: job {job.job_id} failed: {run_state(w.run_dir).detail} (log: {job.paths.stdout})")


def _measured(metrics_path: Path, spec: ArchSpec, measure: Measure) -> bool:
    """Whether the step's measurement is up to date for the device it was taken on. The submitting machine (a
    login node) cannot key the jobs' devices, so this only decides whether a step needs a job of its own."""
    if not metrics_path.is_file():
        return False
    stored = read_json(metrics_path)
    try:
        setting = resolve_setting(measure, cuda_available=not str(stored.get("device", "cpu")).startswith("cpu"))
    except MeasureError:
        return False
    return stored.get("key") == measure_key(spec, setting, stored.get("device", ""))


def _up_to_date(metrics_path: Path, key: str) -> bool:
    """Whether `metrics_path` holds results of the work keyed `key` (as the runner decides what to skip)."""
    return metrics_path.is_file() and read_json(metrics_path).get("key") == key


def _busy(run_dir: Path, log: Callable[[str], None], name: str) -> bool:
    """Whether a job already owns `run_dir` (pending or running); says so."""
    state = run_state(run_dir)
    if state.state in ACTIVE:
        log(f"{name}: {state.state} ({state.detail}), not resubmitted (--force resubmits)")
    return state.state in ACTIVE


def _print(line: str) -> None:
    """A job's log line, flushed at once so that the scheduler's log file follows the run."""
    print(line, flush=True)
