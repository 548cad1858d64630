"""Durable file writes: what every writer of a run's files (log, notes, latest checkpoint,
keys, anchors, repair backups, signatures) does so that a crash leaves the old bytes or
the new ones, never a mix."""

from __future__ import annotations

import contextlib
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


def replace_synced(
    path: Path, data: bytes, mode: int = 0o644, *, dir_fd: int | None = None
) -> None:
    """Make `path` (relative to the directory `dir_fd`, when given) hold `data`,
    atomically: a crash leaves the old file or the new one.

    For one writer at a time (it holds the log's lock). The staging file PATH.tmp is
    made afresh (removed first, then created exclusively and without following
    links), so a link someone planted there is never written through; its fixed name
    lets fault injection (`tools/fault_sweep.py`) name it. Through `dir_fd` the write
    follows its directory when the directory is moved.
    """
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        write_synced(os.open(tmp, flags, mode, dir_fd=dir_fd), data)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
