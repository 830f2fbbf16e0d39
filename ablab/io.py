"""Atomic file writes (a reader sees the old file or the new one, never half of one) and verified reads: JSON and
checkpoints that cannot be trusted raise CorruptFile naming the file, never a traceback or garbage.

A checkpoint is `MAGIC`, an 8-byte header length, a JSON header (the epoch it holds, the payload's size and
SHA-256) and the torch.save payload, so a truncated or garbled file is told apart from a good one before loading,
and `ablab status` reads the epoch from the header alone."""

from __future__ import annotations

import contextlib
import csv
import hashlib
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


MAGIC = b"ABLABCK1"


class CorruptFile(ValueError):
    """A run file that cannot be trusted (truncated, garbled, not ablab's): the message names it and says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def save_checkpoint(path: str | Path, state: Any, epoch: int = -1) -> None:
    """`torch.save` of `state` with a header holding `epoch` and the payload's SHA-256, atomically: an interrupted
    save leaves the previous checkpoint whole."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getbuffer()
    header = json.dumps({"epoch": epoch, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()})
    with atomic_file(path, "wb") as f:
        f.write(MAGIC + len(header).to_bytes(8, "little") + header.encode())
        f.write(payload)


def _parse_header(path: str | Path, head: bytes) -> tuple[dict[str, Any], int]:
    """(header, offset of the payload) from the first bytes of a checkpoint; CorruptFile if it has no header."""
    if len(head) < len(MAGIC) + 8 or not head.startswith(MAGIC):
        raise CorruptFile(path, "not an ablab checkpoint (empty, truncated, or written by another program)")
    start = len(MAGIC) + 8 + int.from_bytes(head[len(MAGIC):len(MAGIC) + 8], "little")
    try:
        header = json.loads(head[len(MAGIC) + 8:start])
        return {"epoch": int(header["epoch"]), "bytes": int(header["bytes"]), "sha256": str(header["sha256"])}, start
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CorruptFile(path, "its header is garbled") from None


def checkpoint_header(path: str | Path) -> dict[str, Any]:
    """The header of a checkpoint (epoch, bytes, sha256) without reading its payload; CorruptFile if it has none."""
    with open(path, "rb") as f:
        return _parse_header(path, f.read(4096))[0]


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """The header of a checkpoint whose payload has its promised size and SHA-256; CorruptFile otherwise."""
    return _verified(path)[0]


def _verified(path: str | Path) -> tuple[dict[str, Any], memoryview]:
    data = Path(path).read_bytes()
    header, start = _parse_header(path, data[:4096])
    payload = memoryview(data)[start:]
    if len(payload) != header["bytes"]:
        raise CorruptFile(path, f"truncated: {len(payload):,} of {header['bytes']:,} bytes")
    if hashlib.sha256(payload).hexdigest() != header["sha256"]:
        raise CorruptFile(path, "garbled: its content does not match its checksum")
    return header, payload


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> Any:
    """The state a checkpoint holds (tensors only: weights_only), after checking its size and SHA-256; CorruptFile
    naming the file when it is truncated, garbled or not a checkpoint."""
    import torch

    _, payload = _verified(path)
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # the checksum held, so this is a file from an incompatible writer
        raise CorruptFile(path, f"unreadable ({type(e).__name__}: {e})") from None


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """JSON from `path`; CorruptFile (naming it) when it is truncated or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptFile(path, f"not valid JSON ({e})") from None


def remove_leftovers(directory: Path, min_age: float = 0.0) -> list[Path]:
    """Remove the `.*.tmp` files an interrupted atomic write left in `directory` (only those older than `min_age`
    seconds, where another process may be writing); returns them."""
    import time

    now, gone = time.time(), []
    for tmp in directory.glob(".*.tmp") if directory.is_dir() else []:
        try:
            if now - tmp.stat().st_mtime >= min_age:
                tmp.unlink()
                gone.append(tmp)
        except FileNotFoundError:
            pass
    return gone
