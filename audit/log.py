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
from govtrain.audit.files import fsync_path, replace_synced
from govtrain.audit.keys import RUN_KEY_DIR, Signer, VerifierKey, write_key_pair
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, sign_checkpoint
from govtrain.audit.records import GENESIS_PREV, Record, log_origin
from govtrain.audit.verify import LATEST_FILE, LOG_FILE, NOTES_FILE, verify_run

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


def _open_append(path: Path, *, create: bool | None = None) -> int:
    """An O_APPEND descriptor: create=True must create, False must exist, None either."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    if create is not False:
        flags |= os.O_CREAT | (os.O_EXCL if create else 0)
    return os.open(path, flags, 0o644)


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _rename_into_place(stage: Path, run_dir: Path) -> None:
    """Rename the staged run to `run_dir` (replacing it only when it is an empty directory)."""
    try:
        os.rename(stage, run_dir)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise LogStateError(f"{run_dir} is not empty; use AuditLog.open to resume") from exc
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
            raise LogStateError(f"{run_dir} is not empty; use AuditLog.open to resume")
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
        """Resume the log in `run_dir`: verify it against the signer's key and the
        `anchors` the store holds for it, then append one `run_resume` record (what the
        log held, the anchor it reproduced, plus the caller's `resume` facts: the
        trainer's step and checkpoint) and sign a checkpoint over it."""
        run_dir = Path(run_dir)
        # Lock, then verify, then append: no other writer can change what was verified.
        # A crash inside `create` can leave run_start without checkpoints.note.
        fds: list[int] = []
        try:
            fds.append(_open_append(run_dir / LOG_FILE, create=False))
            fds.append(_open_append(run_dir / NOTES_FILE))
            fds.append(_open_dir(run_dir))
            _exclusive(fds[0], run_dir / LOG_FILE)
            trusted = anchors.notes(run_dir) if anchors is not None else []
            report = verify_run(run_dir, pubkey=signer.verifier, anchors=trusted)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        # sign at the cadence the log committed to, whatever the caller passes today
        checkpoint_every = report.checkpoint_every or checkpoint_every
        fsync_path(run_dir)
        log = cls(
            run_dir,
            signer,
            (fds[0], fds[1], fds[2]),
            origin=report.origin,
            prev=report.last_hash,
            frontier=report.frontier,
            checkpoint_size=report.checkpoint_size,
            checkpoint_every=checkpoint_every,
            fsync=fsync,
            fsync_every=fsync_every,
        )
        log._anchors = anchors
        try:
            log.append(
                "run_resume",
                {
                    "records": report.records,
                    "previous": "closed" if report.closed else "interrupted",
                    "unsealed": report.unsealed,  # signed now, by this resume, not before
                    "anchored": report.anchored,
                    **(resume or {}),
                },
            )
            log.checkpoint()
        except BaseException:
            log._release()  # and with it the lock: a retry in this process can take it
            raise
        return log

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

        A log left broken by a failed write is closed without either; returns the
        final checkpoint, or None when nothing was signed.
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
