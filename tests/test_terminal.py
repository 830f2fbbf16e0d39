"""What `ablab run` shows: a banner with the runs and an estimated time, epoch and result lines that stay on screen
above the bars, ETAs from measured paces, a closing table with steps at chance named, labels that say the shrink;
and the command line that starts without torch."""

import csv
import io
import re
import subprocess
import sys

from rich.console import Console
from typer.testing import CliRunner

from ablab.cli import app
from ablab.io import save_checkpoint, write_json_atomic
from ablab.recipe import load_recipe
from ablab.runs.estimate import DensePlan, Pace, Plan, PlannedRun, plan_runs
from ablab.runs.progress import RunProgress
from ablab.store.keys import train_key
from ablab.store.paths import Store

from .conftest import TINY_BASE

TINY = """
name: tiny
""" + TINY_BASE + """profiles:
  paper: {}
  cpu:
    scale: {img_size: 32, width: 0.5}
    seeds: [0]
    measure: {batch_sizes: [2], min_time: 0.01}
    # labels shuffled: nothing to learn, so every step ends at chance (and is said to)
    train: {epochs: 2, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 32, shuffle_labels: true}}
steps:
  - {id: o, label: tiny ViT}
  - {id: a, label: deeper, transform: deepen_narrow, params: {depth: 4, dim: 16, heads: 2}}
"""
ROW = {"epoch": 0, "loss": 2.3, "val_top1": 10.0, "images_per_s": 100.0}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_quick_estimate_timed_beside_another_process_says_so(write_recipe, tmp_path, monkeypatch):
    """The banner's quick estimate times a few training steps: with other tasks runnable on the cores meanwhile
    it is too long, and says so."""
    import ablab.cost.load

    monkeypatch.setattr(ablab.cost.load, "runnable_others", lambda: 8)
    recipe = write_recipe(TINY)
    out = invoke("run", recipe, "--profile", "cpu", "--no-throughput", "--results", tmp_path / "results")
    assert out.exit_code == 0, out.output
    banner = out.output.splitlines()[4]
    assert "from a quick estimate" in banner and "(timed on a busy machine, 8.0 other tasks runnable" in banner


def test_a_run_opens_with_a_banner_and_closes_with_a_table(write_recipe, tmp_path):
    recipe, results = write_recipe(TINY), tmp_path / "results"
    first = invoke("run", recipe, "--profile", "cpu", "--results", results)
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[:4] == [f"ablab run {recipe}: tiny",
                         "profile cpu: every step shrunk (32 px, patches x1, widths x0.5, depths x1); data shapetex "
                         "(generated)",
                         f"results: {results}/tiny/cpu",
                         "2 runs (2 steps x 1 seed): 0 done, 2 to train"]
    assert re.fullmatch(r"estimated time: about [\d. hmins]+ of training, from a quick estimate: 3 timed training "
                        r"batches of step o, other steps scaled by multiply-adds( \(timed on a busy machine, .*\))?",
                        lines[4])
    for step in "oa":  # every epoch line says whose epoch it is; each run ends with its result and time
        assert re.search(rf"^\[{step}\] seed 0: epoch 2/2: loss [\d.]+, val top-1 [\d.]+%, [\d.]+ im/s, [\d.]+ s; "
                         r"all runs done in \d:\d\d:\d\d$", first.output, re.M)
        assert re.search(rf"^\[{step}\] seed 0: top-1 [\d.]+%, top-5 [\d.]+% in [\d. hmins]+ \(", first.output, re.M)
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["step", "model", "top-1", "n", "Δ", "vs", "parent", "[95%", "CI]", "verdict",
                                "seeds", "for", "80%", "power", "status"]
    rows = {row["step"]: row for row in csv.DictReader((results / "tiny/cpu/summary.csv").open())}
    assert table[1].split() == ["o", "tiny", "ViT", "(cpu", "shrink)", f"{float(rows['o']['top1']):.2f}", "1", "done"]
    assert table[2].startswith("a     deeper (cpu shrink)") and " vs o " in table[2] and "n = 1" in table[2]
    assert table[2].endswith("done")
    for step, label in (("o", "tiny ViT"), ("a", "deeper")):  # 32 validation images: 2 standard errors, 10.6 points
        assert rows[step]["label"] == f"{label} (cpu shrink)" and abs(float(rows[step]["top1"]) - 10.0) <= 10.6
        assert (f"warning: step {step} ({label} (cpu shrink)): top-1 {float(rows[step]['top1']):.2f} (n = 1) is within "
                "noise of chance, 10.0% for 10 classes: it learned nothing measurable") in lines
    assert "warning: every trained step is at chance: check the learning rate, the epochs and the data" in lines
    assert lines[-1] == f"wrote {results}/tiny/cpu/summary.csv"

    second = invoke("run", recipe, "--profile", "cpu", "--results", results, "--steps", "o", "--seeds", "0,1")
    assert second.exit_code == 0, second.output
    lines = second.output.splitlines()
    assert lines[3] == "2 runs (1 step x 2 seeds): 1 done, 1 to train"
    assert re.fullmatch(r"estimated time: about [\d. hmins]+ of training, from the measured epochs of 1 finished run",
                        lines[4])
    assert f"[o] seed 0: done earlier (top-1 {float(rows['o']['top1']):.2f}%), skipped" in second.output


def screen(stream: str) -> list[str]:
    """The non-empty rows a terminal shows after `stream`: text, newlines, carriage returns, cursor up (ESC[nA)
    and erase line (ESC[2K) applied; other escapes (cursor visibility) ignored."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", stream):
        if token == "\n":
            row, col = row + 1, 0
            rows += [""] * (row + 1 - len(rows))
        elif token == "\r":
            col = 0
        elif token.endswith("A") and token.startswith("\x1b["):
            row = max(row - int(token[2:-1] or 1), 0)
        elif token == "\x1b[2K":
            rows[row] = ""
        elif not token.startswith("\x1b"):
            rows[row] = rows[row][:col].ljust(col) + token + rows[row][col + len(token):]
            col += len(token)
    return [r.rstrip() for r in rows if r.strip()]


def test_lines_stay_above_the_bars_and_redraws_never_erase_them():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    pace = Pace({"o": 1})
    pace.add("o", 5.0)
    progress = RunProgress(enabled=True, console=console,
                           plan=Plan([PlannedRun("o", seed, "train", 2) for seed in (0, 1)], pace, "test"))
    progress.start(2)
    progress.print("[o] tiny: 0.01M params")
    for seed in (0, 1):
        progress.begin("o", seed)
        progress.begin_epochs(f"[o] seed {seed}", 2)
        callbacks = progress.engine_callbacks()
        for epoch in range(2):
            for batch in range(1, 6):
                callbacks.on_batch(batch, 5)
                progress.bars.refresh()  # a redraw of the bars between lines
            callbacks.on_epoch(dict(ROW, epoch=epoch))
        progress.print(f"[o] seed {seed}: top-1 41.20%, top-5 90.00% in 3 s")
        progress.advance(1.5)
        progress.bars.refresh()
    progress.stop()
    shown = screen(console.file.getvalue())
    assert [re.sub(r", [\d.]+ s; all runs done in .*", "", line) for line in shown] == [
        "[o] tiny: 0.01M params",
        "[o] seed 0: epoch 1/2: loss 2.3000, val top-1 10.00%, 100.0 im/s",
        "[o] seed 0: epoch 2/2: loss 2.3000, val top-1 10.00%, 100.0 im/s",
        "[o] seed 0: top-1 41.20%, top-5 90.00% in 3 s",
        "[o] seed 1: epoch 1/2: loss 2.3000, val top-1 10.00%, 100.0 im/s",
        "[o] seed 1: epoch 2/2: loss 2.3000, val top-1 10.00%, 100.0 im/s",
        "[o] seed 1: top-1 41.20%, top-5 90.00% in 3 s",
    ]  # each on a row of its own, in order; the bars are gone once the run ends


def test_the_eta_comes_from_measured_seconds_per_epoch_and_batch(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("ablab.runs.progress.time.monotonic", lambda: now[0])
    pace = Pace({"o": 100, "a": 200})
    pace.add("o", 10.0)
    runs = [PlannedRun("o", 0, "train", 2), PlannedRun("a", 0, "train", 2), PlannedRun("a", 1, "resume", 2, 1)]
    progress = RunProgress(plan=Plan(runs, pace, "test"))
    assert pace.per_epoch("a") == 20.0  # scaled by multiply-adds from the measured step
    assert progress.eta() == 2 * 10 + 2 * 20 + 1 * 20
    progress.begin("o", 0)
    progress.begin_epochs("[o] seed 0", 2)
    callbacks = progress.engine_callbacks()
    now[0] = 4.0
    assert progress.eta() == 2 * 10 - 4 + 60  # no batch timed yet: the estimate, less the time it has run
    for batch, at in zip(range(1, 6), (5.0, 7.0, 9.0, 11.0, 13.0)):  # 2 s per batch after the first
        now[0] = at
        callbacks.on_batch(batch, 10)
    # the run's own pace: 2 s x 10 batches per epoch, 1.5 epochs left; step a keeps its pace scaled from o's
    assert progress.eta() == 1.5 * 20 + 3 * 20
    now[0] = 25.0
    callbacks.on_epoch(ROW)  # a 25 s epoch, evaluation included
    assert progress.eta() == 25 + 3 * 20
    progress.advance(30.0)  # the run's measured seconds per epoch, setup included, join the plan's pace
    assert pace.per_epoch("o") == 20.0 and progress.eta() == 3 * 40


def test_the_plan_finds_runs_done_to_resume_and_to_train(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe(TINY))
    store = Store(tmp_path)
    spec, cfg = recipe.spec("o", "cpu"), recipe.train_config("o", "cpu")
    done, resumed = store.seed_dir("tiny", "cpu", "o", 0), store.seed_dir("tiny", "cpu", "o", 1)
    write_json_atomic(done / "metrics.json", {"key": train_key(spec, cfg, 0), "status": "done", "top1": 50.0,
                                              "epoch_wall_seconds": 3.0})
    write_json_atomic(resumed / "run.json", {"key": train_key(spec, cfg, 1)})
    save_checkpoint(resumed / "checkpoint.pt", {}, epoch=0)
    write_json_atomic(store.seed_dir("tiny", "cpu", "o", 2) / "metrics.json", {"key": "other settings",
                                                                              "epoch_wall_seconds": 99.0})
    plan = plan_runs(recipe, "cpu", store, ["o", "a"], (0, 1, 2))
    assert [(r.step, r.seed, r.state, r.left) for r in plan.runs] == [
        ("o", 0, "done", 0), ("o", 1, "resume", 1), ("o", 2, "train", 2),
        ("a", 0, "train", 2), ("a", 1, "train", 2), ("a", 2, "train", 2)]
    assert plan.pace.measured == {"o": [3.0]}  # a run under other settings says nothing of today's pace
    assert plan.source == "the measured epochs of 1 finished run, other steps scaled by multiply-adds"
    forced = plan_runs(recipe, "cpu", store, ["o"], (0, 1), force=True)
    assert [r.state for r in forced.runs] == ["train", "train"]


def test_labels_say_the_shrink(write_recipe):
    path = write_recipe(TINY)
    recipe = load_recipe(path)
    assert recipe.label("o", "cpu") == "tiny ViT (cpu shrink)" and recipe.label("o", "paper") == "tiny ViT"
    shown = invoke("show", path, "--profile", "cpu").output
    assert "[o] tiny ViT (cpu shrink)  (base)" in shown and "dim 16" in shown  # the shrunk model, said to be
    assert "[o] tiny ViT  (base)" in invoke("show", path, "--profile", "paper").output


def test_the_command_line_imports_no_torch_until_a_command_needs_it(write_recipe):
    recipe = write_recipe(TINY)
    assert invoke("validate", recipe).exit_code == 0  # model costs are cached from here on
    code = ("import sys\n"
            "from ablab.cli import app\n"
            "assert 'torch' not in sys.modules, 'importing the command line imported torch'\n"
            "for args in (['--help'], ['validate', sys.argv[1]]):\n"
            "    try:\n"
            "        app(args)\n"
            "    except SystemExit as e:\n"
            "        assert not e.code, (args, e.code)\n"
            "    assert 'torch' not in sys.modules, f'ablab {args[0]} imported torch'\n")
    subprocess.run([sys.executable, "-c", code, str(recipe)], check=True, capture_output=True)


def test_the_eta_counts_the_dense_runs_after_each_classification_run(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("ablab.runs.progress.time.monotonic", lambda: now[0])
    pace = Pace({"o": 100})
    pace.add("o", 10.0)
    runs = [PlannedRun("o", 0, "train", 2), PlannedRun("o", 1, "train", 2)]
    progress = RunProgress(plan=Plan(runs, pace, "test"), dense=DensePlan("segmentation", 0, 2, 60.0))
    assert progress.eta() == 2 * 2 * 10 + 2 * 30  # two classification runs, then each one's 30 s dense run
    progress.begin("o", 0)
    progress.begin_epochs("[o] seed 0", 2)
    now[0] = 20.0
    progress.begin_epochs("[o] seed 0 segmentation", 1, dense=True)
    assert progress.eta() == 30 + 20 + 30  # this dense run at its estimate, then run 1 and its dense run
    now[0] = 30.0
    assert progress.eta() == 20 + 20 + 30
    now[0] = 60.0
    progress.advance(10.0)  # the dense run took 40 s: the next one is expected to as well
    assert progress.eta() == 20 + 40
