"""Errors the audit package raises; each carries the exit code the CLI should use.

Verification failures name the first bad record (its 0-based `seq` and 1-based
`line` in audit.jsonl) and a `Reason`, so a reader can go straight to the
damage instead of re-running anything.
"""

from __future__ import annotations

from enum import StrEnum


class AuditError(Exception):
    """Base class: the CLI prints these as one line and exits with `exit_code`."""

    exit_code: int = 1


class RecordError(AuditError):
    """A body cannot be encoded as a record, or a line is not a well-formed record."""


class NonCanonicalError(RecordError):
    """A line parses as a record but is not the RFC 8785 canonical form of its value."""


class ProofError(AuditError):
    """A Merkle inclusion or consistency proof does not verify; the message says which check."""


class NoteError(AuditError):
    """A signed note is malformed, unsigned by the expected key, or its signature is bad."""


class SignatureError(NoteError):
    """A note carries no signature by the expected key, or that signature does not verify."""


class KeyFileError(AuditError):
    """A key file is missing, malformed, too widely readable, or would be overwritten."""


class LogStateError(AuditError):
    """The log cannot be used this way: it exists already, is closed, or a write failed."""


class UnsafePathError(AuditError):
    """A path inside a run is a link, or not the kind of file it must be: govtrain never
    follows, reads or writes through it (whoever can write a run could plant it)."""


class Reason(StrEnum):
    """Why verification failed; the values are what the CLI prints."""

    MALFORMED = "malformed record"
    NON_CANONICAL = "non-canonical bytes"
    BAD_SEQ = "bad seq"
    BAD_LINK = "bad hash link"
    BAD_RUN_START = "bad run_start"
    KEY_MISMATCH = "key mismatch"
    BAD_SIGNATURE = "bad signature"
    BAD_CHECKPOINT = "bad checkpoint"
    CHECKPOINT_MISMATCH = "checkpoint not consistent with the log"
    TRUNCATED = "records missing after the last signed checkpoint"
    TORN_TAIL = "torn tail"
    NOT_A_CRASH = "a history no crash can leave"
    ANCHOR_MISMATCH = "not the run the trust anchor names"


class VerificationError(AuditError):
    """The log or its checkpoints fail verification; `seq`/`line` locate the first bad record.

    `seq` and `line` are None when the failure is in checkpoints.note rather than in a
    record (then `note` is the 1-based index of the offending checkpoint note).
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        seq: int | None = None,
        note: int | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.seq = seq
        self.line = None if seq is None else seq + 1
        self.note = note
        where = []
        if seq is not None:
            where.append(f"record seq {seq} (line {seq + 1})")
        if note is not None:
            where.append(f"checkpoint note {note}")
        prefix = ", ".join(where) + ": " if where else ""
        super().__init__(f"{prefix}{reason.value}: {detail}")


class TornTailError(VerificationError):
    """The file ends in an incomplete record (a crash mid-write); `audit repair` can cut it.

    `file` is the file with the torn tail, `offset` the byte offset where the
    incomplete part starts (everything before it verified), `covered` says whether
    a signed checkpoint already covered the torn record, in which case the tail was
    not torn by a crash and repair refuses it.
    """

    exit_code = 3

    def __init__(
        self, detail: str, *, file: str, offset: int, seq: int | None, covered: bool
    ) -> None:
        super().__init__(Reason.TORN_TAIL, detail, seq=seq)
        self.file = file
        self.offset = offset
        self.covered = covered
