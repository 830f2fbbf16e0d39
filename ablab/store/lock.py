"""One writer per run directory: an flock on `<dir>/.lock`, held while a process measures or trains into the
directory. The kernel drops it when the holder exits, however it exits, so a dead process's lock is never stale; the
file records the holder (host, pid, since) for the message a second process prints."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Optional

LOCK_FILE = ".lock"


class Locked(RuntimeError):
    """Another process holds the directory; the message names it."""


class RunLock:
    """`with RunLock(dir):` holds the directory's lock (Locked at once if another process holds it, or after
    waiting for it with `wait`)."""

    def __init__(self, directory: Path, wait: bool = False) -> None:
        self.path, self.wait = directory / LOCK_FILE, wait
        self.fd: Optional[int] = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise Locked(f"{self.path.parent} is being written by {holder(self.path)}") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the file stays, empty of meaning until the next holder
            self.fd = None


def holder(path: Path) -> str:
    """'process 1234 on host-a since 2026-12-02T10:00:00', as the lock file records its holder."""
    try:
        info = json.loads(path.read_text())
        return f"process {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "another process"
