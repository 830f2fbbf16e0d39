"""`python -m ablab ARGS` as torchrun starts it, recording what this process writes: test_distributed's worker.

Usage: ddp_launch.py WATCH RECORDS [--stop-after-epoch-0] ARGS... Every file or directory that the process
creates, opens for writing, renames or removes under WATCH is listed in RECORDS/rank<RANK>.txt at exit.
--stop-after-epoch-0 raises KeyboardInterrupt on every rank once the first epoch has ended (as Ctrl-C would).
"""

import atexit
import os
import runpy
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

watch, records = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
stop = sys.argv[3:4] == ["--stop-after-epoch-0"]
sys.argv = ["ablab"] + sys.argv[3 + stop:]
written: set[str] = set()


def record(event: str, args: tuple) -> None:
    """Audit hook: note the paths under `watch` that this process changes."""
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and (args[2] or 0) & WRITE_FLAGS:
        paths = [args[0]]
    elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir"):
        paths = [args[0], args[1]] if event == "os.rename" else [args[0]]
    else:
        return
    for path in paths:
        resolved = Path(os.fsdecode(path)).resolve()
        if resolved.is_relative_to(watch):
            written.add(str(resolved.relative_to(watch)))


def save_records() -> None:
    records.mkdir(parents=True, exist_ok=True)
    (records / f"rank{os.environ['RANK']}.txt").write_text("".join(f"{p}\n" for p in sorted(written)))


if stop:
    from ablab.runs.progress import RunProgress
    from ablab.engine.loop import Progress

    def stop_after_first_epoch(row: dict) -> None:
        if row["epoch"] == 0:
            raise KeyboardInterrupt

    RunProgress.engine_callbacks = lambda self: Progress(on_epoch=stop_after_first_epoch)

atexit.register(save_records)
sys.addaudithook(record)
runpy.run_module("ablab", run_name="__main__", alter_sys=True)
