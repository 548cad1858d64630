"""Repair of a torn tail, and of nothing else.

A crash mid-write can leave an incomplete record at the end of audit.jsonl (or an
incomplete note at the end of checkpoints.note). Like etcd and SQLite, that tail
(and only that) may be cut off, keeping the original as ``<file>.broken``. Damage
anywhere else is tampering and is refused, as is a torn record that a signed
checkpoint already covered: a checkpoint is written only after its records are on
disk, so no crash can tear one. The cut is planned and re-verified in memory
before any file is touched.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from govtrain.audit.errors import LogStateError, Reason, TornTailError, VerificationError
from govtrain.audit.files import fsync_path, write_synced
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


def _plan(log: bytes, notes: bytes, latest: bytes | None) -> tuple[VerifyReport, dict[str, int]]:
    cuts: dict[str, int] = {}
    while True:
        try:
            return verify_bytes(log, notes, latest=latest), cuts
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


def _cut(path: Path, data: bytes, offset: int) -> Cut:
    """Keep the original as `<file>.broken`, then truncate. The backup is written to a
    temporary and linked into place only once complete (a full disk leaves no partial
    backup behind), and an existing backup of the same bytes is reused (repair is
    idempotent)."""
    backup = path.with_name(path.name + ".broken")
    if backup.exists():
        if backup.read_bytes() != data:
            raise LogStateError(
                f"{backup} already exists and holds other bytes; move it away before repairing"
            )
    else:
        fd, name = tempfile.mkstemp(prefix=backup.name + ".", suffix=".tmp", dir=path.parent)
        try:
            write_synced(fd, data)
            os.link(name, backup)
        except OSError as exc:
            raise LogStateError(
                f"{backup}: cannot keep the original ({exc.strerror}); nothing was cut"
            ) from None
        finally:
            os.unlink(name)
    os.truncate(path, offset)
    fsync_path(path)
    return Cut(path, offset, len(data) - offset, backup)


def repair_torn_tail(path: Path) -> tuple[VerifyReport, list[Cut]]:
    """Cut torn tails off a run's files; returns the repaired run's report and the cuts made.

    Raises VerificationError (never touching a file) when anything but a torn tail is wrong.
    """
    log, notes = read_run(path)
    report, plan = _plan(log, notes, read_latest(path))
    log_path, notes_path = run_files(path)
    files = {LOG_FILE: (log_path, log), NOTES_FILE: (notes_path, notes)}
    cuts = [_cut(*files[name], offset) for name, offset in plan.items()]
    if cuts:
        fsync_path(log_path.parent)
    return report, cuts
