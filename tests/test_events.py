"""TensorBoard event files beside every run's log.csv (scalars per epoch, the spec as text; rewritten whole, so a
resumed run holds each epoch once), and the report's training-curve figure with seeds as bands."""

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from ablab.cli import app
from ablab.engine.events import EVENTS, write_events

from .conftest import TINY_BASE

RECIPE = "name: curved\n" + TINY_BASE + """
profiles:
  cpu:
    seeds: [0, 1]
    measure: {batch_sizes: [2], min_time: 0.01}
    train: {epochs: 2, batch_size: 32, data: {name: shapetex, train_size: 64, val_size: 32}}
steps:
  - {id: o, label: tiny}
  - {id: a, label: deeper, transform: deepen_narrow, params: {depth: 3, dim: 16, heads: 2}}
"""


def read(directory: Path) -> EventAccumulator:
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_runs_write_event_files_and_the_report_draws_their_curves(write_recipe, tmp_path):
    recipe, results = write_recipe(RECIPE), tmp_path / "results"
    result = CliRunner().invoke(app, ["run", str(recipe), "--results", str(results)])
    assert result.exit_code == 0, result.output
    run = results / "curved" / "cpu" / "a" / "seed1"
    events = read(run / "tensorboard")
    assert {"loss", "lr", "val_top1", "images_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val_top1")] == [1, 2]
    logged = (run / "log.csv").read_text().splitlines()[-1].split(",")
    assert abs(events.Scalars("val_top1")[-1].value - float(logged[3])) < 1e-4
    assert "spec/text_summary" in events.Tags()["tensors"]
    report = CliRunner().invoke(app, ["report", str(results / "curved" / "cpu")])
    assert report.exit_code == 0, report.output
    assert (results / "curved" / "cpu" / "curves.png").is_file() and (results / "curved" / "cpu" / "curves.pdf").is_file()


def test_rewritten_events_hold_each_epoch_once(tmp_path):
    rows = [{"epoch": 0, "loss": 2.0, "lr": 0.1}, {"epoch": 1, "loss": 1.5, "lr": 0.05}]
    write_events(tmp_path, rows[:1], {"spec": "x"})
    write_events(tmp_path, rows, {"spec": "x"})  # as after a resume: the whole log again
    assert [p.name for p in tmp_path.iterdir()] == [EVENTS]
    assert [(e.step, e.value) for e in read(tmp_path).Scalars("loss")] == [(1, 2.0), (2, 1.5)]
