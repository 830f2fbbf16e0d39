"""The `ablab` command line: transforms, validate, show, run, status, report, paper, bench. It parses arguments and
prints; the work is done below it."""

from __future__ import annotations

import errno
import signal
from pathlib import Path
from typing import Any, Literal, Optional

import typer

from .arch.describe import describe, describe_diff
from .recipe import Recipe, RecipeError, load_recipe
from .settings import ClusterConfig
from .store.paths import REFERENCE, RUNS, Store
from .transforms import TRANSFORMS

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

RESULTS = typer.Option(RUNS, "--results", help=f"Results directory (the lab's committed reference is {REFERENCE}/).")
CLUSTER = "Cluster (--executor submitit; overrides the recipe's cluster: block)"


def _fail(lines: list[str], code: int = 2) -> None:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def _load(path: Path) -> Recipe:
    try:
        return load_recipe(path)
    except RecipeError as e:
        _fail(["error: invalid recipe", *e.errors])
        raise  # unreachable: _fail exits


SET = typer.Option([], "--set", help="Override a field of the profile, e.g. --set train.lr=1e-3 (repeatable); "
                   "results go to a directory of their own, <profile>+train.lr=0.001.")
SWEEP = typer.Option([], "--sweep", help="Run the profile once per value, e.g. --sweep train.lr=1e-3,5e-4 "
                     "(repeatable: every combination); each point is keyed and stored as --set would store it.")


def _variants(path: Path, profile: Optional[str], sets: list[str], sweeps: list[str]) -> list[tuple[Recipe, str]]:
    """The recipe at `path` with each point of the overrides applied to `profile` (the default one when None), and
    the profile each is to run; exits listing every problem of every point before anything runs."""
    from .overrides import OverrideError, points

    r = _load(path)
    try:
        chosen = points(sets, sweeps)
    except OverrideError as e:
        _fail(["error: invalid overrides", *e.errors])
    if chosen == [()]:
        return [(r, _profile(r, profile))]
    name = _profile(r, profile)
    out, errors = [], []
    for point in chosen:
        try:
            v = load_recipe(path, point, name)
        except RecipeError as e:
            errors += [line for line in e.errors if line not in errors]
            continue
        out.append((v, next(p.name for p in v.profiles.values() if p.of == name)))
    if errors:
        _fail(["error: invalid overrides", *errors])
    return out


def _steps(recipe: Recipe, steps: Optional[str]) -> Optional[list[str]]:
    """`--steps a,b` as step ids (None: every step); exits naming the ids the recipe does not have."""
    chosen = [s.strip() for s in steps.split(",")] if steps else None
    unknown = [s for s in chosen or [] if s not in {st.id for st in recipe.steps}]
    if unknown:
        _fail([f"error: --steps: no step {', '.join(unknown)} in {recipe.path}; steps: "
               f"{', '.join(s.id for s in recipe.steps)}"])
    return chosen


def _profile(recipe: Recipe, profile: Optional[str]) -> str:
    from .runs.runner import default_profile

    if profile is None:
        return default_profile(recipe)
    if profile not in recipe.profiles:
        _fail([f"error: {recipe.path}: no profile '{profile}'; this recipe has: {', '.join(recipe.profiles)}"])
    return profile


@app.command()
def transforms() -> None:
    """List every transform: name, parameters, one-line doc, the paper step it reproduces."""
    for t in TRANSFORMS.values():
        typer.echo(f"{t.name}({', '.join(p.describe() for p in t.params)})")
        typer.echo(f"    {t.doc}")
        typer.echo(f"    paper: {t.paper}")


@app.command()
def validate(
    recipes: list[Path] = typer.Argument(..., help="One or more recipe files."),
    strict: bool = typer.Option(False, "--strict", help="A step whose shrink drifts from the paper's ratios is an "
                                "error, not a warning."),
    profile: Optional[str] = typer.Option(None, help="The profile --set / --sweep change (default: as `ablab run`)."),
    sets: list[str] = SET,
    sweeps: list[str] = SWEEP,
) -> None:
    """Check recipes (fields, transforms, parameters, steps, every profile) without running anything, and how
    faithfully each shrunk profile keeps every step's params and FLOPs ratios to its parent (docs/recipes.md).
    With --set / --sweep: each variant of the profile they change, as `ablab run` would load it."""
    from .cost.fidelity import BAND, CostCache, fidelity

    loaded = ([r for recipe in recipes for r, _ in _variants(recipe, profile, sets, sweeps)] if sets or sweeps
              else [_load(recipe) for recipe in recipes])
    cache, drifted = CostCache(), []
    for r in loaded:
        typer.echo(f"ok: {r.path}: {len(r.steps)} steps ({', '.join(s.id for s in r.steps)}), "
                   f"profiles: {', '.join(r.profiles)}")
        for profile in r.profiles:
            steps = fidelity(r, profile, cache)
            if not steps:
                continue
            worst_params = max(steps, key=lambda f: f.params_drift)
            worst_flops = max(steps, key=lambda f: f.flops_drift)
            typer.echo(f"  fidelity of profile '{profile}' (ratios to the parent, shrunk vs paper scale): params "
                       f"drift at most {worst_params.params_drift:.1%} ({worst_params.step}), FLOPs "
                       f"{worst_flops.flops_drift:.1%} ({worst_flops.step}); band {BAND:.0%}")
            for f in steps:
                if not f.inside:
                    drifted.append(f"{r.path}: profile '{profile}': step '{f.step}' drifts {f.drift:.1%}: "
                                   f"{f.describe()}")
    cache.save()
    for line in drifted:
        typer.echo(f"{'error' if strict else 'warning'}: {line}", err=True)
    if drifted and strict:
        raise typer.Exit(2)


@app.command()
def show(recipe: Path, profile: Optional[str] = typer.Option(
        None, help="Profile whose scale to show (default: as `ablab run`: paper on CUDA, else the CPU one)."),
        params: bool = typer.Option(False, "--params", help="Also each step's per-module parameter table (fvcore's, "
                                    "three levels deep: stem, stages, blocks)."),
        steps: Optional[str] = typer.Option(None, help="Comma-separated step ids to show (default: all).")) -> None:
    """Print each step's architecture, what changed from its parent, and under a shrunk profile how the step's
    params and FLOPs ratios to its parent compare with the paper scale's."""
    from .cost.fidelity import fidelity

    r = _load(recipe)
    profile = _profile(r, profile)
    drift = {f.step: f for f in fidelity(r, profile)}
    chosen = _steps(r, steps)
    typer.echo(f"{r.title}  [{profile}]")
    for step in (s for s in r.steps if chosen is None or s.id in chosen):
        spec = r.spec(step.id, profile)
        how = (f"{step.transform}({', '.join(f'{k}={v}' for k, v in step.params.items())})" if step.transform
               else "no transform (the same model)" if step.parent else "base")
        typer.echo(f"\n[{step.id}] {r.label(step.id, profile)}"
                   + (f"  <- {step.parent} via {how}" if step.parent else f"  ({how})"))
        for line in describe(spec):
            typer.echo(f"    {line}")
        if step.parent:
            typer.echo("  changes:")
            for line in describe_diff(r.spec(step.parent, profile), spec):
                typer.echo(f"    {line}")
        if step.id in drift:
            f = drift[step.id]
            typer.echo(f"  vs {step.parent}: {f.describe()}; drift {f.drift:.1%}"
                       + ("" if f.inside else " (outside the band)"))
        if params:
            from .cost.params import params_table

            typer.echo(params_table(spec))


@app.command()
def run(
    recipes: list[Path] = typer.Argument(..., help="One or more recipe files, run one after the other."),
    profile: Optional[str] = typer.Option(None, help="Profile to run (default: paper on CUDA, else the CPU one)."),
    measure_only: bool = typer.Option(False, "--measure-only", help="Measure params, FLOPs and throughput only."),
    no_throughput: bool = typer.Option(False, "--no-throughput", help="Leave throughput out of the measurement: "
                                       "params and FLOPs take seconds where timing paper-scale models takes minutes."),
    steps: Optional[str] = typer.Option(None, help="Comma-separated step ids to run (default: all)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated training seeds, e.g. 0,1,2 (summaries show mean "
                                        "± std; default: the profile's seeds, else 0)."),
    data_root: Optional[str] = typer.Option(None, help="Dataset directory (CIFAR, ImageFolder or Kinetics profiles; "
                                            "with --task, the task's: ADE20K's or COCO's release folder)."),
    sets: list[str] = SET,
    sweeps: list[str] = SWEEP,
    task: str = typer.Option("classification", help="classification, segmentation or detection: also every finished "
                             "seed run as the backbone of UperNet (mIoU) or Mask R-CNN (box and mask AP), the profile's "
                             "task: block, beside top-1."),
    force: bool = typer.Option(False, "--force", help="Redo measurements and runs that are up to date."),
    wait_locks: bool = typer.Option(False, "--wait-locks", help="Wait for runs another process is writing instead "
                                    "of skipping them."),
    results: Path = RESULTS,
    executor: Literal["local", "submitit"] = typer.Option(
        "local", help="local: every run in this process, one after the other; submitit: one job per (step, seed), "
                      "sent as a job array to SLURM (or submitit's local executor), into the same results layout."),
    cluster: Optional[Literal["slurm", "local"]] = typer.Option(
        None, help="slurm, or local: submitit's local executor on this machine (default: the recipe's, else slurm).",
        rich_help_panel=CLUSTER),
    partition: Optional[str] = typer.Option(None, help="SLURM partition.", rich_help_panel=CLUSTER),
    nodes: Optional[int] = typer.Option(None, help="Nodes per job (default 1).", rich_help_panel=CLUSTER),
    gpus_per_node: Optional[int] = typer.Option(None, help="GPUs per node (default 0).", rich_help_panel=CLUSTER),
    tasks_per_node: Optional[int] = typer.Option(None, help="Processes per node; above 1 each is a DDP rank "
                                                 "(default 1).", rich_help_panel=CLUSTER),
    cpus_per_task: Optional[int] = typer.Option(None, help="CPUs per task.", rich_help_panel=CLUSTER),
    mem_gb: Optional[float] = typer.Option(None, help="Memory per node, GB.", rich_help_panel=CLUSTER),
    timeout_min: Optional[int] = typer.Option(None, help="Time limit per job in minutes; a job reaching it is "
                                              "requeued and resumes (default 1440).", rich_help_panel=CLUSTER),
    array_parallelism: Optional[int] = typer.Option(None, help="Jobs of the array running at once (default 256).",
                                                    rich_help_panel=CLUSTER),
    wait: bool = typer.Option(False, "--wait", help="Wait for the jobs, then rewrite the summary and show each "
                              "run's state.", rich_help_panel=CLUSTER),
) -> None:
    """Build, measure, train and evaluate every step of each recipe; results go to runs/<recipe>/<profile>/ (--results).

    Finished work is skipped and interrupted training resumes from its last epoch, so re-running after
    Ctrl-C or a crash continues where it stopped. A recipe's `analysis:` runs after training.
    Under torchrun every process trains each run (batch_size is the global batch); rank 0 writes and prints.
    """
    overrides = {k: v for k, v in dict(cluster=cluster, partition=partition, nodes=nodes, gpus_per_node=gpus_per_node,
                                       tasks_per_node=tasks_per_node, cpus_per_task=cpus_per_task, mem_gb=mem_gb,
                                       timeout_min=timeout_min, array_parallelism=array_parallelism).items()
                 if v is not None}
    from .settings import TASKS

    if task not in TASKS:
        _fail([f"error: --task: '{task}' is not one of {', '.join(TASKS)}"])
    if task != "classification" and (measure_only or executor == "submitit"):
        _fail([f"error: --task {task} trains on top of the classification runs, here: not with --measure-only or "
               "--executor submitit"])
    if executor == "submitit" and no_throughput:
        _fail(["error: --no-throughput: params and FLOPs take seconds; measure them here (--executor local)"])
    if executor == "local" and (overrides or wait):
        given = [f"--{k.replace('_', '-')}" for k in overrides] + (["--wait"] if wait else [])
        _fail([f"error: {', '.join(given)}: cluster options apply to --executor submitit only"])
    # every recipe, and every point of a sweep, is checked before any work starts
    loaded = [_variants(recipe, profile, sets, sweeps) for recipe in recipes]
    if steps and len(loaded) > 1:
        _fail(["error: --steps names steps of one recipe; give one recipe with it"])
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's or kill's TERM stops as Ctrl-C does
    for variants in loaded:
        for r, name in variants:
            _run_one(r, name, measure_only, steps, seeds, data_root, force, results,
                     overrides if executor == "submitit" else None, wait, wait_locks, throughput=not no_throughput,
                     task=task)
        from .dist import is_main

        if sweeps and is_main():
            _sweep_table(Store(results), variants)


def _sweep_table(store: Store, variants: list[tuple[Recipe, str]]) -> None:
    """Print and write the sweep's table: every point's steps side by side (`report.sweep`)."""
    from .report.sweep import write_sweeps
    from .report.table import to_markdown

    summaries = [store.summary(r.name, name) for r, name in variants]
    for table, paths in write_sweeps([s for s in summaries if s.is_file()]):
        typer.echo(to_markdown(table))
        typer.echo(f"wrote {', '.join(str(p) for p in paths)}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_one(r: Recipe, profile: Optional[str], measure_only: bool, steps: Optional[str], seeds: Optional[str],
             data_root: Optional[str], force: bool, results: Path, overrides: Optional[dict[str, Any]],
             wait: bool, wait_locks: bool, throughput: bool = True, task: str = "classification") -> None:
    """`ablab run` for one loaded recipe: in this process, or as submitit jobs when `overrides` (the command line's
    cluster options over the recipe's cluster: block) is given."""
    import dataclasses
    import sys

    from .dist import is_main, world_size
    from .runs.estimate import plan_dense, plan_runs
    from .runs.preflight import PreflightError, preflight
    from .runs.progress import RunProgress, banner
    from .runs.runner import run_recipe

    profile = _profile(r, profile)
    chosen = _steps(r, steps)
    try:
        seed_list = tuple(int(s) for s in seeds.split(",")) if seeds else r.profiles[profile].seeds or (0,)
        if not all(0 <= s < 2**31 for s in seed_list) or len(set(seed_list)) != len(seed_list):
            raise ValueError
    except ValueError:
        _fail([f"error: --seeds: expected distinct comma-separated integers in [0, 2**31), got '{seeds}'"])
    ids = chosen or [s.id for s in r.steps]
    cluster = dataclasses.replace(r.cluster, **overrides) if overrides is not None else None
    if cluster is not None and cluster.problems():
        _fail([f"error: cluster {name}: {message}" for name, message in cluster.problems()])
    world = cluster.nodes * cluster.tasks_per_node if cluster is not None else world_size()  # processes per run
    try:  # jobs measure on their own nodes, so only a local run checks this machine's measurement
        preflight(r, profile, ids, data_root, world, train=not measure_only,
                  measure_here=cluster is None and throughput, task=task)
    except PreflightError as e:
        _fail([f"error: {e}"])
    store = Store(results)
    train_root = None if task != "classification" else data_root  # with a dense task, the root is its dataset's
    plan = None if measure_only or not is_main() else plan_runs(r, profile, store, ids, seed_list, train_root, force,
                                                                 quick=cluster is None)
    dense = (plan_dense(r, profile, store, ids, seed_list, task, data_root)
             if task != "classification" and plan is not None else None)
    if is_main():
        for line in banner(r, profile, store, ids, seed_list, plan, train_root, local=cluster is None, dense=dense):
            typer.echo(line)
    if cluster is not None:
        if not _submit(r, profile, chosen, seed_list, measure_only, data_root, force, store, cluster, wait):
            return  # jobs are out; the analysis below needs their runs
    else:
        progress = RunProgress(enabled=sys.stdout.isatty(), log=typer.echo, plan=plan, dense=dense)
        try:
            summary = run_recipe(r, profile, store, chosen, force, log=progress.print, train_steps=not measure_only,
                                 seeds=seed_list, data_root=data_root, progress=progress, wait_locks=wait_locks,
                                 throughput=throughput, task=task)
        except KeyboardInterrupt:
            _fail(["interrupted: finished work and the last epoch checkpoints are kept; run the same command to "
                   "resume"], code=130)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            _fail([f"error: the disk is full ({e.filename or results}): nothing was half-written; finished work and "
                   "the last epoch checkpoints are kept: free some space and run the same command to resume"])
        if not is_main():  # the other processes of a torchrun run have trained; rank 0 reports and analyses
            return
        if measure_only:  # ours beside the paper's, and each step over its chain's root measured alike
            from .report.tables import build_table, to_markdown

            typer.echo(to_markdown(build_table(summary)))
        else:
            _closing(r, profile, store, summary)
        typer.echo(f"wrote {summary}")
    if r.attention_variance is not None and not measure_only:  # the study reads the seed runs just trained
        from .analysis.attention_variance import StudyError, run_attention_variance

        try:
            run_attention_variance(r, profile, store, force, data_root, log=typer.echo)
        except StudyError as e:
            typer.echo(f"attention variance: not computed: {e}")


def _closing(r: Recipe, profile: str, store: Store, summary: Path) -> None:
    """What a run ends with: every step's top-1 and change against its parent, and steps at chance named."""
    from .runs.status import chance_warnings, step_table

    typer.echo("")
    for line in step_table(summary) + chance_warnings(r, profile, store):
        typer.echo(line)


def _submit(r: Recipe, profile: str, chosen: Optional[list[str]], seeds: tuple[int, ...], measure_only: bool,
            data_root: Optional[str], force: bool, store: Store, cfg: ClusterConfig, wait: bool) -> bool:
    """Submit the runs still to do as submitit jobs asking for `cfg`; returns whether every run has ended
    (nothing was submitted, or --wait waited for the jobs)."""
    from .runs.executors import plan, submit
    from .runs.executors import wait as wait_for
    from .runs.status import status_table
    from .store.summary import write_summary

    work = plan(r, profile, store, chosen, seeds, measure_only, force, data_root, typer.echo)
    if work:
        submission = submit(r, profile, store, work, cfg, force, typer.echo)
        typer.echo(f"submitted {len(work)} job(s) to {cfg.cluster}; their logs: {submission.folder}")
        if not wait:
            typer.echo(f"`ablab status {r.path} --profile {profile}` shows where each run stands")
            return False
        wait_for(submission, typer.echo)
    else:
        typer.echo("nothing to submit")
    for line in status_table(r, profile, store, seeds):
        typer.echo(line)
    summary = write_summary(r, profile, store)
    if not measure_only:
        _closing(r, profile, store, summary)
    typer.echo(f"wrote {summary}")
    return True


@app.command()
def status(
    recipe: Path,
    profile: Optional[str] = typer.Option(None, help="Profile (default: paper on CUDA, else the CPU one)."),
    sets: list[str] = SET,
    sweeps: list[str] = SWEEP,
    results: Path = RESULTS,
) -> None:
    """Each (step, seed) run's state, read from the results directory alone: not started, pending (job id),
    running (epoch e/E), incomplete (stopped), done (top-1), failed (reason) or stale (trained under settings the
    recipe no longer has: `ablab run` redoes it); rewrites summary.csv, keeping
    the committed rows of steps that have no run data here. With --set / --sweep: the runs of those variants."""
    from .runs.status import chance_warnings, status_table, step_table
    from .store.summary import write_summary

    store = Store(results)
    variants = _variants(recipe, profile, sets, sweeps)
    for r, name in variants:
        if len(variants) > 1:
            typer.echo(f"[{name}]")
        for line in status_table(r, name, store, r.profiles[name].seeds or (0,)):
            typer.echo(line)
        if store.profile_dir(r.name, name).is_dir():
            summary = write_summary(r, name, store)
            typer.echo("")
            for line in step_table(summary) + chance_warnings(r, name, store):
                typer.echo(line)
            typer.echo(f"wrote {summary}")
    if sweeps:
        _sweep_table(store, variants)


@app.command()
def export(
    recipe: Path,
    step: str = typer.Option(..., "--step", help="The trained step to export."),
    to: str = typer.Option("timm", "--to", help="timm (a state dict in timm's key names, where timm has the "
                           "architecture, shrunk or not), torchscript or onnx (either takes any batch size)."),
    profile: Optional[str] = typer.Option(None, help="Profile it was trained under (default: as `ablab run`)."),
    seed: int = typer.Option(0, help="Which seed's run."),
    sets: list[str] = SET,
    results: Path = RESULTS,
) -> None:
    """Export a trained step's model to <results>/<recipe>/<profile>/<step>/export/ and print how to load it."""
    from .runs.trained import NotTrained, export as export_model, load_step
    from .store.paths import Store

    if to not in ("timm", "torchscript", "onnx"):
        _fail([f"error: --to: '{to}' is not one of timm, torchscript, onnx"])
    (r, profile), = _variants(recipe, profile, sets, [])
    _steps(r, step)
    where = Store(results).step_dir(r.name, profile, step)
    try:
        model = load_step(where.parent, step, seed)
        out = where / "export" / f"seed{seed}.{dict(timm='pth', torchscript='pt', onnx='onnx')[to]}"
        out.parent.mkdir(parents=True, exist_ok=True)
        how = export_model(model, to, out)
    except (NotTrained, ValueError) as e:
        _fail([f"error: {e}"])
    typer.echo(f"wrote {out}\nload it with: {how}")


@app.command()
def report(
    path: Path = typer.Argument(RUNS, help="Results directory, one recipe/profile in it, or a recipe file."),
    results: Path = RESULTS,
    columns: Optional[str] = typer.Option(
        None, "--columns", help="Table columns, comma-separated names or aliases in the order wanted (e.g. "
        "step,model,gflops,top1,delta); default: every informative column in md/csv, a compact set in tex."),
    reference: Optional[Path] = typer.Option(
        REFERENCE, "--reference", help="The lab's committed results: their top-1 goes beside yours in a column of "
        "its own (never into your rows, ratios or figures); ignored where it is the directory reported."),
) -> None:
    """Regenerate tables (md, csv, tex) and figures (png, pdf) from what runs wrote under PATH; the results root
    also gets the cross-recipe overview."""
    from .report.columns import ColumnError, resolve
    from .report.regenerate import ReportError, regenerate

    try:
        chosen = None if columns is None else resolve(columns)
    except ColumnError as e:
        _fail([f"error: {e}"])
    if path.suffix in (".yaml", ".yml"):  # the recipe is known: rebuild its summaries from the run directories first
        from .store.summary import write_summary

        r, store = _load(path), Store(results)
        path = results / r.name
        for profile in [p for p in r.profiles if store.profile_dir(r.name, p).is_dir()]:
            write_summary(r, profile, store)
    try:
        for line in regenerate(path, chosen, reference):
            typer.echo(line)
    except ReportError as e:
        _fail([f"error: {e}"])


@app.command()
def paper(
    name: str = typer.Argument(..., help="A paper (hivit, hiera, greenmim, hvt), or 'list' for what of every paper "
                               "the recipes regenerate."),
    which: Optional[str] = typer.Argument(None, help="With 'list': one paper only."),
    table: Optional[str] = typer.Option(None, "--table", help="Only these tables, comma-separated (e.g. 3,9)."),
    figure: Optional[str] = typer.Option(None, "--figure", help="Only these figures, comma-separated (e.g. 1)."),
    profile: str = typer.Option("cpu", help="Profile of each recipe to run (paper: the papers' scale)."),
    train: Optional[bool] = typer.Option(None, "--train/--measure-only", help="Train the steps, or only measure "
                                         "them (default: train a shrunk profile, only measure at paper scale, where "
                                         "training takes GPU-days)."),
    no_throughput: bool = typer.Option(False, "--no-throughput", help="Params and FLOPs only: seconds, not minutes."),
    no_run: bool = typer.Option(False, "--no-run", help="Run nothing: build the tables from what --results holds "
                                "(summary rows where run directories are absent, as in the committed results/)."),
    seeds: Optional[str] = typer.Option(None, help="Comma-separated training seeds (default: each profile's)."),
    data_root: Optional[str] = typer.Option(None, help="Dataset directory (e.g. CIFAR-100 for a cifar100 profile)."),
    force: bool = typer.Option(False, "--force", help="Redo measurements and runs that are up to date."),
    recipes: Path = typer.Option(Path("recipes"), "--recipes", help="Where the recipes are (searched recursively)."),
    results: Path = RESULTS,
) -> None:
    """Regenerate a paper's tables and figures from the recipes that declare them (`regenerates:`), each in the
    paper's own layout with our numbers beside the paper's, into <results>/papers/<paper>/<profile>/."""
    from .paper.catalogue import papers
    from .paper.run import listing, load_all, regenerate, select, write_outputs
    from .report.table import to_markdown
    from .runs.preflight import PreflightError

    known = sorted(papers())
    if name != "list" and name not in known:
        _fail([f"error: no paper '{name}'; choose from {', '.join(known)} or 'list'"])
    if which is not None and (name != "list" or which not in known):
        _fail([f"error: '{which}': only 'ablab paper list PAPER' takes a second argument, a paper of "
               f"{', '.join(known)}"])
    if not recipes.is_dir():
        _fail([f"error: --recipes {recipes}: no such directory"])
    try:
        loaded = load_all(recipes)
    except RecipeError as e:
        _fail(["error: invalid recipe", *e.errors])
    if name == "list":
        typer.echo(to_markdown(listing(loaded, which)))
        return
    only = [f"table{t.strip()}" for t in table.split(",")] if table else []
    only += [f"figure{f.strip()}" for f in figure.split(",")] if figure else []
    known_items = {item.id for item in papers()[name].items}
    unknown = [i for i in only if i not in known_items]
    if unknown:
        _fail([f"error: {name} has no {', '.join(unknown)}; it has {', '.join(sorted(known_items))}"])
    chosen = select(loaded, name, only or None)
    if not chosen:
        _fail([f"error: no recipe under {recipes} regenerates {', '.join(only) or name}; `ablab paper list {name}` "
               "says what is missing"])
    try:
        seed_list = tuple(int(x) for x in seeds.split(",")) if seeds else None
        if seed_list is not None and (not all(0 <= x < 2**31 for x in seed_list) or len(set(seed_list)) < len(seed_list)):
            raise ValueError
    except ValueError:
        _fail([f"error: --seeds: expected distinct comma-separated integers in [0, 2**31), got '{seeds}'"])
    try:
        tables = regenerate(chosen, profile, results, train, not no_throughput, data_root, force, typer.echo,
                            seeds=seed_list, run=not no_run)
    except PreflightError as e:
        _fail([f"error: {e}"])
    except KeyboardInterrupt:
        _fail(["interrupted: finished work is kept; run the same command to resume"], code=130)
    if not tables:
        _fail([f"error: none of the recipes regenerating {name} has a profile '{profile}'"])
    for o in tables:
        typer.echo(to_markdown(o.table))
    for path in write_outputs(tables, results / "papers" / name / profile, name):
        typer.echo(f"wrote {path}")


@app.command()
def bench(
    presets: list[str] = typer.Argument(None, help="Presets to compare with timm (default: vit_b16 swin_b)."),
    batch_size: int = typer.Option(8, help="Images per forward pass."),
    rounds: int = typer.Option(10, help="Timed forward passes per model (alternating ours / timm)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    amp: bool = typer.Option(False, help="Both models under fp16 autocast (CUDA only), as the papers time on a GPU."),
) -> None:
    """Throughput of our presets against timm's models of the same architecture, side by side, as a ratio."""
    from .arch.presets import timm_twins
    from .cost.versus_timm import bench_against_timm

    twins = timm_twins()
    for name in presets or ["vit_b16", "swin_b"]:
        if name not in twins:
            _fail([f"error: preset '{name}' has no timm twin; choose from {', '.join(sorted(twins))}"])
        try:
            r = bench_against_timm(name, batch_size, rounds, device, amp)
        except ValueError as e:
            _fail([f"error: {e}"])
        typer.echo(f"{name:10s} ours {r.ours:8.2f} im/s   timm {r.timm_model} {r.timm:8.2f} im/s   "
                   f"ratio {r.ratio:.3f}   params equal: {r.params_equal}   "
                   f"(batch {batch_size}, {device}{', fp16' if amp else ''})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
