"""Durable, link-safe file access inside run directories: what every reader and writer of
a run's files (log, notes, latest checkpoint, model checkpoints, keys, anchors, repair
backups, report, signatures) goes through.

Writes are atomic (a crash leaves the old bytes or the new ones, never a mix). Inside a
run nothing is reached through a link: whoever can write a run directory could plant
one to make govtrain read a device or FIFO, or write a file of their choosing. The run
directory itself and any path the user names are taken as given.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from govtrain.audit.errors import UnsafePathError

NO_LINK = os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_path(path: Path) -> None:
    """fsync a file or directory by path (a directory's entries become durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(fd: int, data: bytes | Callable[[BinaryIO], object]) -> None:
    """Write `data` (bytes, or a function writing to the file) to the descriptor `fd`,
    fsync it, and close it."""
    with os.fdopen(fd, "wb") as handle:
        if callable(data):
            data(handle)
        else:
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def replace_synced(
    path: Path,
    data: bytes | Callable[[BinaryIO], object],
    mode: int = 0o644,
    *,
    dir_fd: int | None = None,
) -> None:
    """Make `path` (relative to the directory `dir_fd`, when given) hold `data`,
    atomically: a crash leaves the old file or the new one.

    For one writer at a time (it holds the log's lock). The staging file PATH.tmp is
    made afresh (removed first, then created exclusively and without following
    links), so a link someone planted there is never written through, and a link at
    PATH is replaced, not followed; its fixed name lets fault injection
    (`tools/fault_sweep.py`) name it. Through `dir_fd` the write follows its
    directory when the directory is moved.
    """
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_LINK
    try:
        write_synced(os.open(tmp, flags, mode, dir_fd=dir_fd), data)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def describe(path: Path | str, dir_fd: int | None = None) -> str:
    """What is at `path`, in words: 'a symbolic link', 'a FIFO', 'a directory', ..."""
    try:
        mode = os.lstat(path, dir_fd=dir_fd).st_mode
    except OSError:
        return "missing"
    kinds = (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((word for test, word in kinds if test(mode)), "a regular file")


def _refuse(where: Path, dir_fd: int | None, name: str, wanted: str) -> UnsafePathError:
    return UnsafePathError(
        f"{where}: {describe(name, dir_fd)}, not {wanted}; govtrain never follows, reads or "
        "writes through it inside a run (remove it)"
    )


def open_subdir(dir_fd: int, name: str, where: Path, *, create: bool = False) -> int:
    """A descriptor on the directory `name` in `dir_fd` (created when `create`), never
    reached through a link; `where` is its path, for the message."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o755, dir_fd=dir_fd)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | NO_LINK, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(where, dir_fd, name, "a directory") from None
        raise


@contextlib.contextmanager
def run_subdir(run_dir: Path, name: str | None = None, *, create: bool = False) -> Iterator[int]:
    """A descriptor on `run_dir` (as named), or on its subdirectory `name` reached without
    following a link; closed on exit."""
    top = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if name is None:
        fd = top
    else:
        try:
            fd = open_subdir(top, name, Path(run_dir) / name, create=create)
        finally:
            os.close(top)
    try:
        yield fd
    finally:
        os.close(fd)


def inside(rel: str, what: str = "path") -> PurePosixPath:
    """`rel` as a plain relative path that cannot leave its directory (no '..', not
    absolute, not empty), or UnsafePathError."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or any(p in ("..", ".") for p in path.parts):
        raise UnsafePathError(f"{what} {rel} leads out of the run directory; not read")
    return path


def open_regular(name: str | Path, where: Path, *, dir_fd: int | None = None) -> int:
    """A read descriptor on the regular file `name`, not opened through a link (ELOOP) and
    never blocking on a FIFO or device (checked before any read)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | NO_LINK
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(where, dir_fd, str(name), "a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refuse(where, dir_fd, str(name), "a regular file")
    os.set_blocking(fd, True)
    return fd


def open_in_run(run_dir: Path, rel: str, what: str = "file") -> int:
    """A read descriptor on the regular file `rel` inside `run_dir`, every component of
    `rel` reached without following a link."""
    parts = inside(rel, what).parts
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    where = Path(run_dir)
    try:
        for part in parts[:-1]:
            where = where / part
            sub = open_subdir(fd, part, where)
            os.close(fd)
            fd = sub
        return open_regular(parts[-1], where / parts[-1], dir_fd=fd)
    finally:
        os.close(fd)


def read_fd(fd: int) -> bytes:
    """Everything from the descriptor `fd` (from its start), which it closes."""
    with os.fdopen(fd, "rb") as handle:
        handle.seek(0)
        return handle.read()


def read_regular(path: Path, *, follow: bool = False) -> bytes:
    """The bytes of the regular file at `path`: a link is refused unless `follow` (the
    user named the path), and a FIFO or device is refused unread."""
    if follow:
        path = Path(os.path.realpath(path))
    return read_fd(open_regular(path, path))
