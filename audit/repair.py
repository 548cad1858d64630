"""Repair of a torn tail, and of nothing else.

A crash mid-write can leave an incomplete record at the end of audit.jsonl (or an
incomplete note at the end of checkpoints.note). Like etcd and SQLite, that tail
(and only that) may be cut off, keeping the original as ``<file>.broken``. Damage
anywhere else is tampering and is refused, as is a torn record that a signed
checkpoint already covered: a checkpoint is written only after its records are on
disk, so no crash can tear one. The cut is planned and re-verified in memory
before any file is touched. Each crash's tail is kept under a name of its own, so a
run that crashes again after a repair is repaired the same way.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from govtrain.audit.errors import (
    LogStateError,
    Reason,
    TornTailError,
    UnsafePathError,
    VerificationError,
)
from govtrain.audit.files import NO_LINK, fsync_path, read_regular, write_synced
from govtrain.audit.keys import VerifierKey
from govtrain.audit.verify import (
    LOG_FILE,
    NOTES_FILE,
    VerifyReport,
    read_latest,
    read_run,
    run_files,
    verify_bytes,
)


@dataclass(frozen=True)
class Cut:
    """One repaired file: where it was cut, how many bytes went, where the original is."""

    file: Path
    offset: int
    removed: int
    backup: Path


def _plan(
    log: bytes, notes: bytes, latest: bytes | None, **trust
) -> tuple[VerifyReport, dict[str, int]]:
    cuts: dict[str, int] = {}
    while True:
        try:
            return verify_bytes(log, notes, latest=latest, **trust), cuts
        except TornTailError as torn:
            if torn.covered:
                raise VerificationError(
                    Reason.TRUNCATED,
                    "the torn record is covered by a signed checkpoint, so this is tampering, "
                    "not a crash; refusing to repair",
                    seq=torn.seq,
                ) from torn
            cuts[torn.file] = torn.offset
            if torn.file == LOG_FILE:
                log = log[: torn.offset]
            else:
                notes = notes[: torn.offset]


MAX_BACKUPS = 1000


def _backup(path: Path, data: bytes) -> Path:
    """Keep `data` (the file before its cut) under the first free name of PATH.broken,
    PATH.broken.2, ...: each crash's torn tail gets its own, and one that already holds
    these bytes is reused (a repair interrupted after its backup). A backup is written
    to a temporary and linked into place only once complete, so a full disk leaves no
    partial backup, and a link planted under a backup's name is never written through."""
    for n in range(1, MAX_BACKUPS + 1):
        backup = path.with_name(f"{path.name}.broken" + ("" if n == 1 else f".{n}"))
        try:
            if read_regular(backup) == data:
                return backup
            continue
        except UnsafePathError:
            continue
        except FileNotFoundError:
            pass
        fd, name = tempfile.mkstemp(prefix=backup.name + ".", suffix=".tmp", dir=path.parent)
        try:
            write_synced(fd, data)
            os.link(name, backup)
            return backup
        except FileExistsError:
            continue  # taken meanwhile: the next name
        except OSError as exc:
            raise LogStateError(
                f"{backup}: cannot keep the original ({exc.strerror}); nothing was cut"
            ) from None
        finally:
            os.unlink(name)
    raise LogStateError(f"{path}: {MAX_BACKUPS} backups exist already; move old ones away")


def _cut(path: Path, data: bytes, offset: int) -> Cut:
    """Keep the original (`_backup`), then truncate the file, never through a link."""
    backup = _backup(path, data)
    fd = os.open(path, os.O_WRONLY | NO_LINK)
    try:
        os.ftruncate(fd, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return Cut(path, offset, len(data) - offset, backup)


def repair_torn_tail(
    path: Path, *, pubkey: VerifierKey | None = None, anchors: Sequence[str] = ()
) -> tuple[VerifyReport, list[Cut]]:
    """Cut torn tails off a run's files; returns the repaired run's report and the cuts made.

    Raises VerificationError (never touching a file) when anything but a torn tail is
    wrong, including (when given) a key other than `pubkey` or a log the trust
    `anchors` do not name. Any number of crashes, each repaired in turn, recover.
    """
    log, notes = read_run(path)
    report, plan = _plan(log, notes, read_latest(path), pubkey=pubkey, anchors=anchors)
    log_path, notes_path = run_files(path)
    if not Path(path).is_dir():  # the user named the log itself: it may be a link
        log_path = Path(os.path.realpath(log_path))
        notes_path = log_path.with_name(notes_path.name)
    files = {LOG_FILE: (log_path, log), NOTES_FILE: (notes_path, notes)}
    cuts = [_cut(*files[name], offset) for name, offset in plan.items()]
    if cuts:
        fsync_path(log_path.parent)
    return report, cuts
