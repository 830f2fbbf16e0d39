"""TensorBoard event files beside a run's log CSV: every numeric column of every epoch's row as a scalar (step =
epochs done), and texts (the spec, the settings). Rewritten whole after every epoch from the log's rows and swapped
in atomically, so a resumed run's file holds each epoch once and a crash never leaves half a file."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

EVENTS = "events.out.tfevents.ablab"  # one file per run directory; TensorBoard reads any name with 'tfevents'


def write_events(directory: Path, rows: list[dict[str, Any]], texts: dict[str, str]) -> Path:
    """<directory>/events.out.tfevents.ablab from the log's `rows` (each numeric column but `epoch` under its own
    name) and `texts` (name -> Markdown, at step 0). `tensorboard --logdir` on any folder above shows it."""
    from torch.utils.tensorboard import SummaryWriter

    directory.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=directory, prefix=".events-"))
    try:
        writer = SummaryWriter(log_dir=str(scratch))
        for name, text in texts.items():
            writer.add_text(name, text, 0)
        for row in rows:
            for name, value in row.items():
                if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(name, value, row["epoch"] + 1)
        writer.close()
        (written,) = scratch.glob("events.out.tfevents.*")
        os.replace(written, directory / EVENTS)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory / EVENTS


def code_block(text: str) -> str:
    """`text` as a Markdown code block (TensorBoard renders texts as Markdown)."""
    return "\n".join("    " + line for line in text.splitlines())
