"""Durable file writes: what every writer of a run's files (log, notes, keys, anchors,
repair backups) does so that a crash leaves the old bytes or the new ones, never a mix."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file or directory by path (a directory's entries become durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(fd: int, data: bytes) -> None:
    """Write all of `data` to the descriptor `fd`, fsync it, and close it."""
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
