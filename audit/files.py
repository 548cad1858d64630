"""Durable file writes: what every writer of a run's files (log, notes, latest checkpoint,
keys, anchors, repair backups, signatures) does so that a crash leaves the old bytes or
the new ones, never a mix."""

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


def replace_synced(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Make `path` hold `data`, atomically: a crash leaves the old file or the new one.

    The staging file PATH.tmp is made afresh (removed first, then created exclusively
    and without following links), so a link someone planted there is never written
    through; its fixed name lets fault injection (`tools/fault_sweep.py`) name it.
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        write_synced(os.open(tmp, flags, mode), data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
