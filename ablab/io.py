"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """An open temporary file beside `path` that replaces `path` (fsynced, mode 0644) when the block ends
    without an error, and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` so that a reader sees the old file or the new one, never half of one."""
    with atomic_file(path) as f:
        f.write(text)


def write_figure_atomic(fig: "Figure", path: str | Path, dpi: int = 150) -> None:
    """Save `fig` atomically in the format its suffix names (png, pdf, ...)."""
    fmt = Path(path).suffix.lstrip(".")
    metadata = {"CreationDate": None} if fmt == "pdf" else None  # no timestamp: regenerating changes nothing
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, metadata=metadata)


def write_csv_atomic(path: str | Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """A CSV with a header of `columns` and one line per row dict, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def save_torch_atomic(path: str | Path, state: Any) -> None:
    """`torch.save` of `state`, atomically: an interrupted save leaves the previous checkpoint whole."""
    import torch

    with atomic_file(path, "wb") as f:
        torch.save(state, f)


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
