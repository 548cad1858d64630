"""Verify a run's audit.jsonl against its signed checkpoints, from a path or from bytes.

One pass over the records checks: each complete line is a well-formed record in
RFC 8785 canonical form; ``seq`` equals its position; ``prev`` is the SHA-256 of the
previous line (`GENESIS_PREV` first); record 0 is the only run_start and commits the
run key (which must equal ``pubkey`` when given); every note in checkpoints.note is
signed by that key, names this log, grows, and its root equals the Merkle root of the
first ``size`` records; the ``checkpoint`` file, when there, is one of those notes
(normally the newest; an older one after a crash between the two writes). Then:
bytes after the last newline are a torn tail (reported only once everything before
them verified, as `TornTailError`), and a signed checkpoint covering more records
than the log holds is truncation.

What this guarantees against someone who can edit the files but lacks the key:

* records up to the last signed checkpoint cannot be changed, removed, reordered or
  added to, even with every later hash recomputed: a signed root stops matching;
* records after it are protected by the hash chain only, so they could be dropped
  or appended to; the report says how many (``unsealed``). A log closed by
  `AuditLog.close` ends in a run_end record covered by the final checkpoint
  (``closed``); the CLI exits 0 only for a closed log;
* a whole log rewritten and re-signed with another key is caught only by ``pubkey``:
  the trust anchor has to come from outside the log;
* rolling a resumed log back to an earlier closed state is caught only by an
  ``anchor`` (a checkpoint note kept outside the run directory);
* an unclosed log is reported as a crash (``closed`` False) only when a crash could
  have left it: the writer signs run_start before anything else, signs whenever the
  log's size reaches a multiple of the ``checkpoint_every`` that run_start commits to,
  and continues a closed log only with run_resume. More unsigned records than that,
  records but no signed checkpoint, or any other record after run_end is
  `Reason.NOT_A_CRASH`: someone removed notes or appended, and a resume must not
  sign over it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from govtrain.audit.errors import (
    NonCanonicalError,
    NoteError,
    Reason,
    RecordError,
    SignatureError,
    TornTailError,
    VerificationError,
)
from govtrain.audit.files import read_regular
from govtrain.audit.keys import KeyFileError, VerifierKey
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, open_checkpoint, split_notes
from govtrain.audit.records import GENESIS_PREV, log_origin, parse_line

LOG_FILE = "audit.jsonl"
NOTES_FILE = "checkpoints.note"
LATEST_FILE = "checkpoint"  # the newest note alone, for parsers that read one note a file


@dataclass(frozen=True)
class VerifyReport:
    """The state of an intact log; `frontier` lets a writer resume without re-hashing."""

    records: int
    root: bytes
    checkpoint_size: int
    checkpoints: int
    closed: bool
    key: VerifierKey
    origin: str
    last_hash: str
    last_note: str | None
    frontier: CompactRange = field(repr=False, compare=False)
    checkpoint_every: int | None = None  # the signing cadence run_start commits to
    anchored: int | None = None  # the largest size a trusted checkpoint signs, if any
    latest: int | None = None  # the size the `checkpoint` file signs, when one was read

    @property
    def unsealed(self) -> int:
        """Records after the last signed checkpoint (protected by the hash chain only)."""
        return self.records - self.checkpoint_size

    def summary(self) -> str:
        if self.closed:
            state = "ok: closed"
        elif self.unsealed:
            state = (
                f"intact but not closed: {self.unsealed} records after the last signed checkpoint"
            )
        else:
            state = "intact but not closed: no run_end record"
        anchor = "" if self.anchored is None else f", trust anchor {self.anchored}"
        behind = (
            f", {LATEST_FILE} file behind at {self.latest}"
            if self.latest is not None and self.latest != self.checkpoint_size
            else ""
        )
        return (
            f"{state}; records {self.records}, tree size {self.records}, "
            f"last signed checkpoint {self.checkpoint_size} ({self.checkpoints} notes){anchor}"
            f"{behind}, root {self.root.hex()}"
        )


def run_files(path: Path) -> tuple[Path, Path]:
    """(audit.jsonl, checkpoints.note) for a run directory or a path to its audit.jsonl."""
    path = Path(path)
    log = path / LOG_FILE if path.is_dir() else path
    return log, log.with_name(NOTES_FILE)


def _read(path: Path, *, follow: bool = False, missing: bytes | None = None) -> bytes:
    """A run file's bytes, never through a link inside the run (unless `follow`: the user
    named it) nor from a FIFO or device; `missing` stands for an absent file."""
    try:
        return read_regular(path, follow=follow)
    except FileNotFoundError:
        if missing is None:
            raise
        return missing


def read_run(path: Path) -> tuple[bytes, bytes]:
    """The bytes of a run's log and notes; a missing notes file reads as empty."""
    log_path = run_files(path)[0]
    try:
        log = _read(log_path, follow=not Path(path).is_dir())
    except OSError as exc:
        raise VerificationError(
            Reason.MALFORMED, f"cannot read {exc.filename}: {exc.strerror}"
        ) from exc
    return log, read_notes(path)


def read_notes(path: Path) -> bytes:
    """The bytes of a run's checkpoints.note; a missing file reads as empty."""
    try:
        return _read(run_files(path)[1], missing=b"")
    except OSError as exc:
        raise VerificationError(
            Reason.BAD_CHECKPOINT, f"cannot read {exc.filename}: {exc.strerror}"
        ) from exc


def read_latest(path: Path) -> bytes | None:
    """The bytes of a run's `checkpoint` file, None where there is none: it is optional,
    a copy of checkpoints.note's newest note for readers that take one note a file."""
    latest = run_files(path)[0].with_name(LATEST_FILE)
    try:
        return _read(latest)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise VerificationError(
            Reason.BAD_CHECKPOINT, f"cannot read {exc.filename}: {exc.strerror}"
        ) from exc


def verify_run(
    path: Path, *, pubkey: VerifierKey | None = None, anchors: Sequence[str] = ()
) -> VerifyReport:
    """Verify the run at `path` (directory or audit.jsonl), its `checkpoint` file too."""
    log, notes = read_run(path)
    return verify_bytes(log, notes, pubkey=pubkey, anchors=anchors, latest=read_latest(path))


class _Claim(NamedTuple):
    """A root some signature vouches for at one size, and who signs it (for the message)."""

    root: bytes
    signer: str


@dataclass(frozen=True)
class _Chain:
    """What the pass over the records leaves: the Merkle frontier, the last hash and kind."""

    frontier: CompactRange
    last_hash: str
    last_kind: str


def verify_bytes(
    log: bytes,
    notes: bytes,
    *,
    pubkey: VerifierKey | None = None,
    anchors: Sequence[str] = (),
    latest: bytes | None = None,
) -> VerifyReport:
    """Verify a log and its notes held in memory; raises VerificationError or TornTailError.

    `anchors` are checkpoint notes kept outside the run (signed by the same key):
    the log must contain their size and reproduce their root. `latest`, the bytes of a
    `checkpoint` file, must be one of the notes. The checks run in this order and the
    first that fails is reported, so a torn tail is named only once all before it verified.
    """
    lines, tail = _split_log(log)
    first = _run_start(lines)
    key = _committed_key(first)
    _check_trusted_key(key, pubkey)
    origin = log_origin(lines[0])
    texts, torn_at = _split_notes(notes)
    checkpoints = _signed_checkpoints(texts, key, origin)
    signed, anchored = _signed_roots(checkpoints, anchors, key, origin)
    chain = _walk_chain(lines, first, signed)
    count, size = len(lines), checkpoints[-1].size if checkpoints else 0
    _check_log_tail(log, tail, count, signed)
    _check_not_truncated(signed, count)
    _check_notes_tail(notes, torn_at)
    _check_run_start_signed(checkpoints, count)
    every = _committed_cadence(first["body"])
    _check_cadence_kept(every, count, size)
    latest_size = None if latest is None else _latest_size(latest, texts, key, origin, size)
    return VerifyReport(
        latest=latest_size,
        records=count,
        root=chain.frontier.root(),
        checkpoint_size=size,
        checkpoints=len(checkpoints),
        closed=size == count and chain.last_kind == "run_end",
        key=key,
        origin=origin,
        last_hash=chain.last_hash,
        last_note=texts[-1] if texts else None,
        frontier=chain.frontier,
        checkpoint_every=every,
        anchored=anchored,
    )


# --------------------------------------------------------------------------- run_start


def _split_log(log: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines and the bytes after the last newline; bytes without any newline
    are a run_start torn by a crash."""
    lines = log.split(b"\n")
    tail = lines.pop()
    if tail and not lines:
        raise TornTailError(
            f"{len(tail)} bytes and no complete record",
            file=LOG_FILE,
            offset=0,
            seq=0,
            covered=False,
        )
    return lines, tail


def _parse(line: bytes, seq: int) -> dict:
    """Record `seq`: a well-formed record in RFC 8785 canonical form."""
    try:
        return parse_line(line)
    except RecordError as exc:
        reason = Reason.NON_CANONICAL if isinstance(exc, NonCanonicalError) else Reason.MALFORMED
        raise VerificationError(reason, str(exc), seq=seq) from exc


def _run_start(lines: list[bytes]) -> dict:
    """Record 0, which must be run_start with seq 0 and the genesis prev."""
    if not lines:
        raise VerificationError(Reason.BAD_RUN_START, "the log is empty", seq=0)
    first = _parse(lines[0], 0)
    if first["kind"] != "run_start" or first["seq"] != 0 or first["prev"] != GENESIS_PREV:
        raise VerificationError(
            Reason.BAD_RUN_START,
            "the first record must be run_start with seq 0 and the genesis prev",
            seq=0,
        )
    return first


def _committed_key(run_start: dict) -> VerifierKey:
    """The run key run_start commits to: a parseable key and its matching fingerprint."""
    committed = run_start["body"].get("key")
    try:
        key = VerifierKey.parse(committed["vkey"])
        if committed.get("fingerprint") != key.fingerprint:
            raise KeyFileError("its fingerprint does not match the key")
    except (KeyFileError, TypeError, KeyError, AttributeError) as exc:
        raise VerificationError(
            Reason.BAD_RUN_START, f"committed key is unusable: {exc}", seq=0
        ) from exc
    return key


def _check_trusted_key(key: VerifierKey, pubkey: VerifierKey | None) -> None:
    """The committed key is the one trusted from outside the run, when one is given: a log
    rewritten and re-signed under another key is consistent in itself."""
    if pubkey is not None and pubkey != key:
        raise VerificationError(
            Reason.KEY_MISMATCH,
            f"run_start commits key {key.vkey}, the trusted key is {pubkey.vkey}",
            seq=0,
        )


def _committed_cadence(run_start: dict) -> int | None:
    """The checkpoint_every run_start commits to; None where it names none (a log written
    without one), and then no cadence is checked."""
    section = run_start.get("audit_log")
    every = section.get("checkpoint_every") if isinstance(section, dict) else None
    return every if type(every) is int and every >= 1 else None


# --------------------------------------------------------------------------- signed notes


def _open(note: str, key: VerifierKey, origin: str, index: int | None) -> Checkpoint:
    """The checkpoint in `note`: signed by `key` (else BAD_SIGNATURE) for this log's origin."""
    try:
        checkpoint = open_checkpoint(note, key)
    except SignatureError as exc:
        raise VerificationError(Reason.BAD_SIGNATURE, str(exc), note=index) from exc
    except NoteError as exc:
        raise VerificationError(Reason.BAD_CHECKPOINT, str(exc), note=index) from exc
    if checkpoint.origin != origin:
        raise VerificationError(
            Reason.BAD_CHECKPOINT,
            f"origin {checkpoint.origin!r} is not this log's {origin!r}",
            note=index,
        )
    return checkpoint


def _split_notes(notes: bytes) -> tuple[list[str], int]:
    """checkpoints.note cut into notes, and the offset where a torn final note starts."""
    try:
        return split_notes(notes)
    except NoteError as exc:
        raise VerificationError(Reason.BAD_CHECKPOINT, str(exc)) from exc


def _signed_checkpoints(texts: list[str], key: VerifierKey, origin: str) -> list[Checkpoint]:
    """Every note opened (`_open`), each signing a larger size than the one before."""
    checkpoints: list[Checkpoint] = []
    for index, text in enumerate(texts, 1):
        checkpoint = _open(text, key, origin, index)
        if checkpoints and checkpoint.size <= checkpoints[-1].size:
            raise VerificationError(
                Reason.BAD_CHECKPOINT,
                f"size {checkpoint.size} does not grow past the previous {checkpoints[-1].size}",
                note=index,
            )
        checkpoints.append(checkpoint)
    return checkpoints


def _trusted(note: str, key: VerifierKey, origin: str, index: int) -> Checkpoint:
    """A trusted checkpoint from outside the run: it must be this log's, under its key."""
    try:
        return _open(note, key, origin, index)
    except VerificationError as exc:
        raise VerificationError(
            Reason.ANCHOR_MISMATCH,
            f"trusted checkpoint {index} is not a checkpoint of this log under its key "
            f"({exc.detail}): the run was replaced or re-keyed",
        ) from exc


def _check_anchor_agrees(known: _Claim | None, anchor: Checkpoint, index: int) -> None:
    """A trusted checkpoint and a note (or another trusted one) for the same size sign the
    same root."""
    if known is not None and known.root != anchor.root:
        raise VerificationError(
            Reason.CHECKPOINT_MISMATCH,
            f"trusted checkpoint {index} and {known.signer} sign different roots "
            f"for size {anchor.size}",
        )


def _signed_roots(
    checkpoints: list[Checkpoint], anchors: Sequence[str], key: VerifierKey, origin: str
) -> tuple[dict[int, _Claim], int | None]:
    """Every size a signature vouches for, with its root (the notes', then the trust
    anchors', which must agree with them); and the largest size an anchor signs."""
    signed = {c.size: _Claim(c.root, f"checkpoint note {i}") for i, c in enumerate(checkpoints, 1)}
    sizes = []
    for index, note in enumerate(anchors, 1):
        anchor = _trusted(note, key, origin, index)
        _check_anchor_agrees(signed.get(anchor.size), anchor, index)
        signed[anchor.size] = _Claim(anchor.root, f"trusted checkpoint {index}")
        sizes.append(anchor.size)
    return signed, max(sizes, default=None)


# --------------------------------------------------------------------------- the records


def _walk_chain(lines: list[bytes], first: dict, signed: dict[int, _Claim]) -> _Chain:
    """One pass over the records: each well formed, at its seq, linked to the one before,
    in an order the writer produces, and at each signed size the root reproduced."""
    frontier, prev, kind, matched = CompactRange(), GENESIS_PREV, "run_start", 0
    sha256 = hashlib.sha256  # bound once: this loop is where verification spends its time
    for seq, line in enumerate(lines):
        record = first if seq == 0 else _parse(line, seq)
        _check_seq(record, seq)
        _check_linked(record, seq, prev)
        _check_resumed_after_run_end(kind, record, seq)
        kind = record["kind"]
        _check_single_run_start(kind, seq)
        prev = sha256(line).hexdigest()
        frontier.append(leaf_hash(line))
        claim = signed.get(seq + 1)
        if claim is not None:
            _check_signed_root(claim, frontier.root(), matched, seq)
            matched = seq + 1
    return _Chain(frontier, prev, kind)


def _check_seq(record: dict, seq: int) -> None:
    """A record's seq is its position: a dropped, repeated or moved record shows here."""
    if record["seq"] != seq:
        raise VerificationError(Reason.BAD_SEQ, f"seq is {record['seq']}, expected {seq}", seq=seq)


def _check_linked(record: dict, seq: int, prev: str) -> None:
    """`prev` is the SHA-256 of the line before (with `_check_seq`, AuditChain.tla's
    `Linked`): a changed byte shows in the next record."""
    if record["prev"] != prev:
        raise VerificationError(
            Reason.BAD_LINK,
            f"prev is {record['prev']}, SHA-256 of record {seq - 1} is {prev}",
            seq=seq,
        )


def _check_resumed_after_run_end(kind_before: str, record: dict, seq: int) -> None:
    """The writer continues a closed log only with run_resume: anything else after run_end
    was appended by someone else."""
    if kind_before == "run_end" and record["kind"] != "run_resume":
        raise VerificationError(
            Reason.NOT_A_CRASH,
            f"a {record['kind']} record follows run_end: a closed log is continued only "
            "by run_resume",
            seq=seq,
        )


def _check_single_run_start(kind: str, seq: int) -> None:
    """run_start commits the run (config, key, origin): a second one would rewrite it."""
    if kind == "run_start" and seq:
        raise VerificationError(
            Reason.BAD_RUN_START, "run_start may only be the first record", seq=seq
        )


def _check_signed_root(claim: _Claim, root: bytes, matched: int, seq: int) -> None:
    """The Merkle root of records 0..seq is the root signed for that size (AuditChain.tla's
    `CheckpointMatches`); records before `matched` matched an earlier signed root."""
    if root != claim.root:
        raise VerificationError(
            Reason.CHECKPOINT_MISMATCH,
            f"{claim.signer} signs root {claim.root.hex()} for size {seq + 1}, records "
            f"0..{seq} give {root.hex()}: one of records {matched}..{seq} was altered",
            seq=matched,
        )


# --------------------------------------------------------------------------- after the records


def _check_log_tail(log: bytes, tail: bytes, count: int, signed: dict[int, _Claim]) -> None:
    """Bytes after the last newline are a record a crash tore, which `audit repair` may cut;
    not when a signed checkpoint already covers that record."""
    if tail:
        covered = max(signed, default=0) > count
        raise TornTailError(
            f"{len(tail)} bytes after the last newline are an incomplete record"
            + (
                "; a signed checkpoint already covers it, so this was not a crash"
                if covered
                else ""
            ),
            file=LOG_FILE,
            offset=len(log) - len(tail),
            seq=count,
            covered=covered,
        )


def _check_not_truncated(signed: dict[int, _Claim], count: int) -> None:
    """The log holds every record a signature vouches for (`CheckpointMatches`' size bound)."""
    beyond = max(signed, default=0)
    if beyond > count:
        raise VerificationError(
            Reason.TRUNCATED,
            f"{signed[beyond].signer} signs {beyond} records, the log holds {count}",
            seq=count,
        )


def _check_notes_tail(notes: bytes, torn_at: int) -> None:
    """Bytes after the last complete note are a note a crash tore."""
    if torn_at < len(notes):
        raise TornTailError(
            f"{len(notes) - torn_at} bytes at the end of {NOTES_FILE} are an incomplete note",
            file=NOTES_FILE,
            offset=torn_at,
            seq=None,
            covered=False,
        )


def _check_run_start_signed(checkpoints: list[Checkpoint], count: int) -> None:
    """The writer signs run_start before writing anything else: records past it and no
    note means the notes were removed."""
    if not checkpoints and count > 1:
        raise VerificationError(
            Reason.NOT_A_CRASH,
            f"{count} records and no signed checkpoint: the writer signs run_start before "
            "writing anything else",
            seq=1,
        )


def _check_cadence_kept(every: int | None, count: int, size: int) -> None:
    """The writer signs whenever the size reaches a multiple of `every`, so a crash leaves
    at most `every` unsigned records; more means notes were removed or records appended."""
    if every is not None and count - size > every:
        raise VerificationError(
            Reason.NOT_A_CRASH,
            f"{count - size} records after the last signed checkpoint, more than the "
            f"checkpoint_every ({every}) run_start commits to: the writer would have signed them",
            seq=size,
        )


# --------------------------------------------------------------------------- the checkpoint file


def _latest_size(
    latest: bytes, texts: list[str], key: VerifierKey, origin: str, newest: int
) -> int:
    """The size the `checkpoint` file signs; it must be a note of the history.

    The writer appends each note to checkpoints.note and only then replaces the
    `checkpoint` file, so a crash leaves that file at the newest note or the one
    before, never past the history.
    """
    checkpoint = _open_latest(latest, key, origin)
    _check_latest_not_ahead(checkpoint.size, newest)
    _check_latest_is_a_note(latest, texts)
    return checkpoint.size


def _open_latest(latest: bytes, key: VerifierKey, origin: str) -> Checkpoint:
    """The checkpoint in the `checkpoint` file, opened like any note (`_open`)."""
    try:
        return _open(latest.decode(), key, origin, None)
    except UnicodeDecodeError as exc:
        raise VerificationError(Reason.BAD_CHECKPOINT, f"{LATEST_FILE} file: {exc}") from exc
    except VerificationError as exc:
        raise VerificationError(exc.reason, f"{LATEST_FILE} file: {exc.detail}") from exc


def _check_latest_not_ahead(size: int, newest: int) -> None:
    """The `checkpoint` file never signs past the newest note: if it does, notes were removed."""
    if size > newest:
        raise VerificationError(
            Reason.NOT_A_CRASH,
            f"the {LATEST_FILE} file signs {size} records, the newest note in "
            f"{NOTES_FILE} {newest}: notes were removed",
        )


def _check_latest_is_a_note(latest: bytes, texts: list[str]) -> None:
    """The `checkpoint` file is a copy of one note of the history, byte for byte."""
    if latest.decode() not in texts:
        raise VerificationError(
            Reason.BAD_CHECKPOINT, f"the {LATEST_FILE} file is not one of the notes in {NOTES_FILE}"
        )
