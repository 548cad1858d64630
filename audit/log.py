"""The audit log writer: append-only records, periodic signed checkpoints, crash safety.

Typical use from the pipeline::

    signer = load_signing_key(path)            # or generate_signer() with keep_key=True
    log = AuditLog.create(run_dir, signer=signer, run_start=build_run_start(...),
                          checkpoint_every=1000, fsync=FsyncPolicy.CHECKPOINT,
                          anchors=AnchorStore.default())
    log.append("step", {...})
    log.append("checkpoint", {"path": "ckpt/step_100.pt", "sha256": "..."})
    log.close()                                # run_end record + final checkpoint
    log = AuditLog.open(run_dir, signer=signer, anchors=...)  # resume: verifies first
    held = AuditLog.hold(run_dir, signer=signer, anchors=...)  # verify, write nothing yet
    held.resume({...}) or held.close()                  # continue it, or let it go untouched

A run directory holds ``audit.jsonl`` (one record per line), ``checkpoints.note``
(one signed C2SP checkpoint note per checkpoint, back to back: the history) and
``checkpoint`` (the newest of them alone, replaced atomically after each is appended,
so a standard note parser can read it as one file). Each record is written with a
single ``os.write`` on an ``O_APPEND`` descriptor, so a crash leaves at worst one
incomplete final line (a torn tail). The directory is created whole (see `create`),
so a crash during creation leaves no run at all.

Durability (`FsyncPolicy`, default ``CHECKPOINT``): ``ALWAYS`` fsyncs every record,
``EVERY_N`` every ``fsync_every`` records, ``CHECKPOINT`` only when a checkpoint is
written. Whatever the policy, a checkpoint first fsyncs audit.jsonl and only then
appends and fsyncs its note, so a signed checkpoint never covers records that are
not on disk. The default trades at most ``checkpoint_every`` records lost to a power
failure (never to a process crash: the page cache survives those) for appends that
do not wait on the disk; those records are reported as unsealed, not as tampering.

A checkpoint is written right after run_start, every ``checkpoint_every`` records,
after a resume, and at close; each new note is also copied to the `AnchorStore`, when
one is given. `AuditLog.open` locks the log, verifies it with the signer's public
key and the store's anchors, refuses a torn tail (run ``govtrain audit repair``
first), appends a run_resume record and checkpoints it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.errors import LogStateError
from govtrain.audit.files import NO_LINK, fsync_path, open_regular, read_fd, replace_synced
from govtrain.audit.keys import RUN_KEY_DIR, Signer, VerifierKey, write_key_pair
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, sign_checkpoint
from govtrain.audit.records import GENESIS_PREV, Record, log_origin
from govtrain.audit.verify import (
    LATEST_FILE,
    LOG_FILE,
    NOTES_FILE,
    VerifyReport,
    read_latest,
    read_notes,
    verify_bytes,
)

DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_FSYNC_EVERY = 100


class FsyncPolicy(StrEnum):
    """When appended records are forced to disk (checkpoints always force them)."""

    ALWAYS = "always"
    EVERY_N = "every_n"
    CHECKPOINT = "checkpoint"


DEFAULT_FSYNC = FsyncPolicy.CHECKPOINT


def key_commitment(key: VerifierKey) -> dict[str, str]:
    """What run_start records about the run key (verify reads `vkey` and checks `fingerprint`)."""
    return {"name": key.name, "vkey": key.vkey, "fingerprint": key.fingerprint}


def _open_append(path: Path, *, create: bool) -> int:
    """An O_APPEND descriptor that also reads: create=True must create, False must exist
    (and is never reached through a link, nor a FIFO or device)."""
    if not create:
        fd = open_regular(path, path)
        os.close(fd)
    flags = os.O_RDWR | os.O_APPEND | NO_LINK | (os.O_CREAT | os.O_EXCL if create else 0)
    return os.open(path, flags, 0o644)


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _rename_into_place(stage: Path, run_dir: Path) -> None:
    """Rename the staged run to `run_dir` (replacing it only when it is an empty directory)."""
    try:
        os.rename(stage, run_dir)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise LogStateError(
                f"{run_dir} is not empty (another run started there?); pass --resume to continue it"
            ) from exc
        raise LogStateError(f"{run_dir}: cannot create the run ({exc.strerror})") from exc


def _exclusive(fd: int, path: Path) -> None:
    """Take the writer's lock on the log (released when the process dies)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        raise LogStateError(f"another writer has {path} open") from exc


class AuditLog:
    """An open audit log; make one with `create` or `open`, finish it with `close`."""

    def __init__(
        self,
        run_dir: Path,
        signer: Signer,
        fds: tuple[int, int, int],
        *,
        origin: str,
        prev: str,
        frontier: CompactRange,
        checkpoint_size: int,
        checkpoint_every: int,
        fsync: FsyncPolicy,
        fsync_every: int,
    ) -> None:
        if checkpoint_every < 1 or fsync_every < 1:
            raise LogStateError("checkpoint_every and fsync_every must be at least 1")
        self.run_dir = run_dir
        self._signer = signer
        # the run directory's own descriptor: the `checkpoint` file is replaced through
        # it, so it follows the directory out of its staging place, or wherever it moves
        self._log_fd, self._notes_fd, self._dir_fd = fds
        self._origin = origin
        self._prev = prev
        self._tree = frontier
        self._checkpoint_size = checkpoint_size
        self._checkpoint_every = checkpoint_every
        self._fsync = FsyncPolicy(fsync)
        self._fsync_every = fsync_every
        self._unsynced = 0
        self._state = "open"
        self._anchors: AnchorStore | None = None
        self._last_note = ""
        self.verified: VerifyReport | None = None  # what `hold` verified
        self.log_bytes = b""

    @classmethod
    def create(
        cls,
        run_dir: Path,
        *,
        signer: Signer,
        run_start: Mapping[str, Any],
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        fsync: FsyncPolicy = DEFAULT_FSYNC,
        fsync_every: int = DEFAULT_FSYNC_EVERY,
        keep_key: bool = False,
        anchors: AnchorStore | None = None,
    ) -> AuditLog:
        """Start a new log in `run_dir` with `run_start` as record 0, and sign it.

        The run_start body gets the signer's `key_commitment` under "key" (an
        existing "key" entry must match the signer) and the signing cadence under
        "audit_log", so a verifier can tell a crash from removed notes.

        The directory appears whole or not at all: the run key (`keep_key`: the
        signer's pair in ``keys/``), audit.jsonl and the first signed checkpoint are
        written in a temporary sibling that is then renamed to `run_dir`, which must
        be absent or empty. A crash leaves no run (and a hidden ``.NAME.*.creating``
        sibling), never one that can neither resume nor restart.
        """
        run_dir = Path(run_dir)
        body = dict(run_start)
        body["audit_log"] = {"checkpoint_every": checkpoint_every}
        commitment = key_commitment(signer.verifier)
        if body.setdefault("key", commitment) != commitment:
            raise LogStateError("run_start commits a different key than the signer's")
        first = Record.build(0, "run_start", GENESIS_PREV, body)
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise LogStateError(
                f"{run_dir} is not empty (another run started there?); pass --resume to continue it"
            )
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:  # a path through a regular file
            raise NotADirectoryError(
                errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(run_dir)
            ) from exc
        stage = Path(
            tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".creating", dir=run_dir.parent)
        )
        fds: list[int] = []
        try:
            if keep_key:
                write_key_pair(stage / RUN_KEY_DIR, signer)
            fds = [_open_append(stage / LOG_FILE, create=True)]
            fds.append(_open_append(stage / NOTES_FILE, create=True))
            fds.append(_open_dir(stage))
            frontier = CompactRange()
            frontier.append(leaf_hash(first.line))
            log = cls(
                run_dir,
                signer,
                (fds[0], fds[1], fds[2]),
                origin=log_origin(first.line),
                prev=first.hash,
                frontier=frontier,
                checkpoint_size=0,
                checkpoint_every=checkpoint_every,
                fsync=fsync,
                fsync_every=fsync_every,
            )
            _exclusive(fds[0], run_dir / LOG_FILE)
            log._write(fds[0], first.line + b"\n")
            log.checkpoint()
            fsync_path(stage)
            _rename_into_place(stage, run_dir)
        except BaseException:
            for fd in fds:
                os.close(fd)
            shutil.rmtree(stage, ignore_errors=True)
            raise
        fsync_path(run_dir.parent)
        log._anchors = anchors
        try:
            log._save_anchor()
        except LogStateError:
            log._release()
            raise
        return log

    @classmethod
    def hold(
        cls,
        run_dir: Path,
        *,
        signer: Signer,
        anchors: AnchorStore | None = None,
    ) -> AuditLog:
        """Lock the log in `run_dir` and verify it against the signer's key and the
        `anchors` the store holds for it, writing nothing: `verified` and `log_bytes`
        are then what a resuming caller may trust. `resume` continues the log;
        `close` lets it go untouched (a refused resume leaves the run as it was).

        The bytes verified are read through the locked descriptor that later appends,
        so what is verified is the file that is continued, and no other writer can
        change it meanwhile; nothing in the run is reached through a link."""
        run_dir = Path(run_dir)
        fds: list[int] = []
        try:
            fds.append(_open_append(run_dir / LOG_FILE, create=False))
            _exclusive(fds[0], run_dir / LOG_FILE)
            log_bytes = read_fd(os.dup(fds[0]))
            trusted = anchors.notes(run_dir) if anchors is not None else []
            report = verify_bytes(
                log_bytes,
                read_notes(run_dir),
                pubkey=signer.verifier,
                anchors=trusted,
                latest=read_latest(run_dir),
            )
            fds.append(_open_append(run_dir / NOTES_FILE, create=False))
            fds.append(_open_dir(run_dir))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        log = cls(
            run_dir,
            signer,
            (fds[0], fds[1], fds[2]),
            origin=report.origin,
            prev=report.last_hash,
            frontier=report.frontier,
            checkpoint_size=report.checkpoint_size,
            checkpoint_every=report.checkpoint_every or DEFAULT_CHECKPOINT_EVERY,
            fsync=DEFAULT_FSYNC,
            fsync_every=DEFAULT_FSYNC_EVERY,
        )
        log._anchors = anchors
        log._state = "held"
        log.verified, log.log_bytes = report, log_bytes
        return log

    def resume(
        self,
        facts: Mapping[str, Any] | None = None,
        *,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        fsync: FsyncPolicy = DEFAULT_FSYNC,
        fsync_every: int = DEFAULT_FSYNC_EVERY,
    ) -> AuditLog:
        """Continue a held log: append one `run_resume` record (what the log held, the
        anchor it reproduced, plus the caller's `facts`: the trainer's step and
        checkpoint) and sign a checkpoint over it. The signing cadence stays the one
        the log committed to, whatever `checkpoint_every` says today."""
        if self._state != "held":
            raise LogStateError(f"the audit log in {self.run_dir} is {self._state}, not held")
        report = self.verified
        assert report is not None, "hold() sets `verified` whenever it leaves a log held"
        if checkpoint_every < 1 or fsync_every < 1:
            raise LogStateError("checkpoint_every and fsync_every must be at least 1")
        self._checkpoint_every = report.checkpoint_every or checkpoint_every
        self._fsync, self._fsync_every = FsyncPolicy(fsync), fsync_every
        self._state = "open"
        try:
            fsync_path(self.run_dir)
            self.append(
                "run_resume",
                {
                    "records": report.records,
                    "previous": "closed" if report.closed else "interrupted",
                    "unsealed": report.unsealed,  # signed now, by this resume, not before
                    "anchored": report.anchored,
                    **(facts or {}),
                },
            )
            self.checkpoint()
        except BaseException:
            self._release()  # and with it the lock: a retry in this process can take it
            self._state = "closed"
            raise
        return self

    @classmethod
    def open(
        cls,
        run_dir: Path,
        *,
        signer: Signer,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        fsync: FsyncPolicy = DEFAULT_FSYNC,
        fsync_every: int = DEFAULT_FSYNC_EVERY,
        resume: Mapping[str, Any] | None = None,
        anchors: AnchorStore | None = None,
    ) -> AuditLog:
        """`hold` then `resume`: verify the log in `run_dir` and continue it at once."""
        held = cls.hold(run_dir, signer=signer, anchors=anchors)
        return held.resume(
            resume, checkpoint_every=checkpoint_every, fsync=fsync, fsync_every=fsync_every
        )

    @property
    def size(self) -> int:
        """Number of records written."""
        return self._tree.size

    @property
    def root(self) -> bytes:
        """Merkle root over all records written."""
        return self._tree.root()

    def _write(self, fd: int, data: bytes) -> None:
        """One os.write; anything short of all of it leaves the log broken (a torn tail)."""
        path = self.run_dir / (LOG_FILE if fd == self._log_fd else NOTES_FILE)
        try:
            written = os.write(fd, data)
        except OSError as exc:
            self._state = "broken"
            raise LogStateError(
                f"{path}: write failed ({exc.strerror}); the log may end in a torn tail: fix "
                "the cause, then `govtrain audit repair` if verify says so, and resume"
            ) from exc
        if written != len(data):
            self._state = "broken"
            raise LogStateError(
                f"{path}: short write ({written} of {len(data)} bytes): the log ends in a torn "
                "tail; fix the cause, then `govtrain audit repair` and resume"
            )

    def _write_record(self, record: Record) -> None:
        self._write(self._log_fd, record.line + b"\n")
        self._prev = record.hash
        self._tree.append(leaf_hash(record.line))
        self._unsynced += 1
        if self._fsync is FsyncPolicy.ALWAYS or (
            self._fsync is FsyncPolicy.EVERY_N and self._unsynced >= self._fsync_every
        ):
            self._sync(self._log_fd)
            self._unsynced = 0

    def _sync(self, fd: int) -> None:
        """fsync; a failure (EIO) leaves the log broken: what is on disk is unknown."""
        try:
            os.fsync(fd)
        except OSError as exc:
            self._state = "broken"
            path = self.run_dir / (LOG_FILE if fd == self._log_fd else NOTES_FILE)
            raise LogStateError(
                f"{path}: fsync failed ({exc.strerror}); fix the cause, then verify and resume"
            ) from exc

    def _check_open(self) -> None:
        if self._state != "open":
            raise LogStateError(f"the audit log in {self.run_dir} is {self._state}")

    def append(self, kind: str, body: Mapping[str, Any]) -> Record:
        """Write one record (RecordError before anything is written if it cannot be encoded)."""
        self._check_open()
        record = Record.build(self.size, kind, self._prev, body)
        self._write_record(record)
        if self.size % self._checkpoint_every == 0:
            self.checkpoint()
        return record

    def checkpoint(self) -> Checkpoint:
        """Sign (size, root) now: fsync the log, then append and fsync the note."""
        self._check_open()
        checkpoint = Checkpoint(self._origin, self.size, self._tree.root())
        if self.size == self._checkpoint_size:
            return checkpoint
        self._sync(self._log_fd)
        self._unsynced = 0
        self._last_note = sign_checkpoint(checkpoint, self._signer)
        self._write(self._notes_fd, self._last_note.encode())
        self._sync(self._notes_fd)
        self._checkpoint_size = self.size
        self._replace_latest()
        self._save_anchor()
        return checkpoint

    def _replace_latest(self) -> None:
        """Make the `checkpoint` file the note just appended (after it is on disk in the
        history, so that file never signs more than checkpoints.note holds)."""
        try:
            replace_synced(Path(LATEST_FILE), self._last_note.encode(), dir_fd=self._dir_fd)
        except OSError as exc:
            self._state = "broken"
            path = self.run_dir / (exc.filename or LATEST_FILE)  # names relative to the run
            raise LogStateError(
                f"{path}: cannot replace the latest checkpoint "
                f"({exc.strerror}); {NOTES_FILE} holds it: fix the cause and resume"
            ) from exc

    def _save_anchor(self) -> None:
        """Copy the newest note to the trust anchor store (after it is on disk here)."""
        if self._anchors is not None and self._last_note:
            try:
                self._anchors.save(self.run_dir, self._origin, self._last_note)
            except LogStateError:
                self._state = "broken"
                raise

    def close(self, body: Mapping[str, Any] | None = None) -> Checkpoint | None:
        """Append run_end (with `body`) and the final checkpoint; a no-op once closed.

        A held log (never resumed) or one left broken by a failed write is let go
        without either; returns the final checkpoint, or None when nothing was signed.
        """
        if self._state == "closed":
            return None
        try:
            if self._state == "open":
                self.append("run_end", body or {})
                return self.checkpoint()
            return None
        finally:
            self._release()
            self._state = "closed"

    def _release(self) -> None:
        for fd in (self._log_fd, self._notes_fd, self._dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = (
            {"status": "ok"}
            if exc_type is None
            else {"status": "failed", "error": exc_type.__name__}
        )
        self.close(status)
