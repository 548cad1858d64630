"""Each check of `verify_bytes` raises its one reason, at its location, with its message.

One case per check, in the order `verify_bytes` runs them, each damaging a closed
40-record log (notes at sizes 1, 16, 32, 40) just enough to fail that check first.
Messages quoted from another module (a key or note parser, json) are taken from that
module, so only the verifier's own wording is pinned here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from govtrain.audit.errors import (
    KeyFileError,
    NoteError,
    Reason,
    RecordError,
    TornTailError,
    VerificationError,
)
from govtrain.audit.keys import Signer, VerifierKey, generate_signer
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, open_checkpoint, sign_checkpoint, split_notes
from govtrain.audit.records import GENESIS_PREV, Record, log_origin, parse_line
from govtrain.audit.verify import LATEST_FILE, LOG_FILE, NOTES_FILE, read_run, verify_bytes
from tests.audit_support import join, make_run, rechain

EVERY, RECORDS, SIZES = 16, 40, [1, 16, 32, 40]


@dataclass(frozen=True)
class Run:
    lines: list[bytes]
    texts: list[str]
    signer: Signer
    other: Signer = field(default_factory=generate_signer)

    @property
    def key(self) -> VerifierKey:
        return self.signer.verifier

    @property
    def log(self) -> bytes:
        return join(self.lines)

    @property
    def notes(self) -> bytes:
        return "".join(self.texts).encode()

    @property
    def origin(self) -> str:
        return log_origin(self.lines[0])

    def root(self, size: int, lines: list[bytes] | None = None) -> bytes:
        frontier = CompactRange()
        for line in (lines or self.lines)[:size]:
            frontier.append(leaf_hash(line))
        return frontier.root()

    def note(self, size: int, root: bytes = bytes(32), *, origin: str = "", by=None) -> str:
        checkpoint = Checkpoint(origin or self.origin, size, root)
        return sign_checkpoint(checkpoint, by or self.signer)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    path = tmp_path_factory.mktemp("run")
    signer = make_run(path, RECORDS, checkpoint_every=EVERY)
    log, notes = read_run(path)
    run = Run(log.split(b"\n")[:-1], split_notes(notes)[0], signer)
    assert len(run.lines) == RECORDS and len(run.texts) == len(SIZES)
    assert verify_bytes(run.log, run.notes, pubkey=run.key, latest=run.texts[-1].encode()).closed
    return run


@dataclass(frozen=True)
class Expect:
    """What to verify (`verify_bytes` arguments) and the failure it must give."""

    inputs: dict[str, Any]
    reason: Reason
    detail: str
    seq: int | None = None
    note: int | None = None
    torn: tuple[str, int, bool] | None = None  # a TornTailError's file, offset, covered


def error_of(call: Callable[[], Any], kind: type[Exception]) -> str:
    with pytest.raises(kind) as info:
        call()
    return str(info.value)


def replaced(run: Run, seq: int, kind: str, body: dict) -> list[bytes]:
    """The log with record `seq` replaced and every later record re-chained (no key needed)."""
    lines = list(run.lines)
    lines[seq] = Record.build(seq, kind, Record.from_line(lines[seq]).prev, body).line
    return rechain(lines, seq)


def body(run: Run, seq: int) -> dict:
    return Record.from_line(run.lines[seq]).body


def torn_run_start(run: Run) -> Expect:
    return Expect(
        {"log": b'{"body"', "notes": b""},
        Reason.TORN_TAIL,
        "7 bytes and no complete record",
        seq=0,
        torn=(LOG_FILE, 0, False),
    )


def empty_log(run: Run) -> Expect:
    return Expect({"log": b"", "notes": b""}, Reason.BAD_RUN_START, "the log is empty", seq=0)


def malformed_run_start(run: Run) -> Expect:
    detail = error_of(lambda: parse_line(b"[]"), RecordError)
    return Expect({"log": b"[]\n", "notes": b""}, Reason.MALFORMED, detail, seq=0)


def run_start_not_first(run: Run) -> Expect:
    lines = [Record.build(0, "step", GENESIS_PREV, body(run, 0)).line, *run.lines[1:]]
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.BAD_RUN_START,
        "the first record must be run_start with seq 0 and the genesis prev",
        seq=0,
    )


def unusable_key(run: Run) -> Expect:
    lines = replaced(run, 0, "run_start", {**body(run, 0), "key": {"vkey": "nope"}})
    why = error_of(lambda: VerifierKey.parse("nope"), KeyFileError)
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.BAD_RUN_START,
        f"committed key is unusable: {why}",
        seq=0,
    )


def untrusted_key(run: Run) -> Expect:
    other = run.other.verifier
    return Expect(
        {"log": run.log, "notes": run.notes, "pubkey": other},
        Reason.KEY_MISMATCH,
        f"run_start commits key {run.key.vkey}, the trusted key is {other.vkey}",
        seq=0,
    )


def unsigned_note(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": b"a\n\nb\n"},
        Reason.BAD_CHECKPOINT,
        "note 1 has no signature lines",
    )


def note_by_another_key(run: Run) -> Expect:
    note = run.note(1, run.root(1), by=run.other)
    why = error_of(lambda: open_checkpoint(note, run.key), NoteError)
    return Expect({"log": run.log, "notes": note.encode()}, Reason.BAD_SIGNATURE, why, note=1)


def note_of_another_log(run: Run) -> Expect:
    notes = run.texts[0] + run.note(16, run.root(16), origin="elsewhere")
    return Expect(
        {"log": run.log, "notes": notes.encode()},
        Reason.BAD_CHECKPOINT,
        f"origin 'elsewhere' is not this log's {run.origin!r}",
        note=2,
    )


def notes_that_do_not_grow(run: Run) -> Expect:
    notes = run.texts[1] + run.texts[0]
    return Expect(
        {"log": run.log, "notes": notes.encode()},
        Reason.BAD_CHECKPOINT,
        "size 1 does not grow past the previous 16",
        note=2,
    )


def anchor_of_another_run(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.notes, "anchors": [run.texts[0], "garbage"]},
        Reason.ANCHOR_MISMATCH,
        "trusted checkpoint 2 is not a checkpoint of this log under its key "
        "(a note is text, a blank line and signature lines): the run was replaced or re-keyed",
    )


def anchor_disagrees(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.notes, "anchors": [run.note(16)]},
        Reason.CHECKPOINT_MISMATCH,
        "trusted checkpoint 1 and checkpoint note 2 sign different roots for size 16",
    )


def malformed_record(run: Run) -> Expect:
    lines = [*run.lines[:3], b'{"seq":3}', *run.lines[4:]]
    detail = error_of(lambda: parse_line(b'{"seq":3}'), RecordError)
    return Expect({"log": join(lines), "notes": run.notes}, Reason.MALFORMED, detail, seq=3)


def non_canonical_record(run: Run) -> Expect:
    lines = [*run.lines[:5], run.lines[5].replace(b'"kind"', b' "kind"'), *run.lines[6:]]
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.NON_CANONICAL,
        "bytes are not the RFC 8785 canonical form of the record",
        seq=5,
    )


def swapped_records(run: Run) -> Expect:
    lines = [*run.lines[:4], run.lines[5], run.lines[4], *run.lines[6:]]
    return Expect(
        {"log": join(lines), "notes": run.notes}, Reason.BAD_SEQ, "seq is 5, expected 4", seq=4
    )


def changed_record(run: Run) -> Expect:
    changed = Record.build(8, "step", Record.from_line(run.lines[8]).prev, {"forged": 1}).line
    lines = [*run.lines[:8], changed, *run.lines[9:]]
    prev = Record.from_line(run.lines[9]).prev
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.BAD_LINK,
        f"prev is {prev}, SHA-256 of record 8 is {hashlib.sha256(changed).hexdigest()}",
        seq=9,
    )


def appended_after_run_end(run: Run) -> Expect:
    lines = rechain([*run.lines, Record.build(40, "step", GENESIS_PREV, {}).line], 40)
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.NOT_A_CRASH,
        "a step record follows run_end: a closed log is continued only by run_resume",
        seq=40,
    )


def second_run_start(run: Run) -> Expect:
    lines = replaced(run, 3, "run_start", body(run, 0))
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.BAD_RUN_START,
        "run_start may only be the first record",
        seq=3,
    )


def rewritten_and_rechained(run: Run) -> Expect:
    lines = replaced(run, 20, "step", {"forged": 1})
    return Expect(
        {"log": join(lines), "notes": run.notes},
        Reason.CHECKPOINT_MISMATCH,
        f"checkpoint note 3 signs root {run.root(32).hex()} for size 32, records 0..31 give "
        f"{run.root(32, lines).hex()}: one of records 16..31 was altered",
        seq=16,
    )


def crash_torn_tail(run: Run) -> Expect:
    log = join(run.lines[:35])
    return Expect(
        {"log": log + run.lines[35][:10], "notes": "".join(run.texts[:3]).encode()},
        Reason.TORN_TAIL,
        "10 bytes after the last newline are an incomplete record",
        seq=35,
        torn=(LOG_FILE, len(log), False),
    )


def signed_torn_tail(run: Run) -> Expect:
    log = join(run.lines[:39])
    return Expect(
        {"log": log + run.lines[39][:10], "notes": run.notes},
        Reason.TORN_TAIL,
        "10 bytes after the last newline are an incomplete record; a signed checkpoint "
        "already covers it, so this was not a crash",
        seq=39,
        torn=(LOG_FILE, len(log), True),
    )


def truncated(run: Run) -> Expect:
    return Expect(
        {"log": join(run.lines[:37]), "notes": run.notes},
        Reason.TRUNCATED,
        "checkpoint note 4 signs 40 records, the log holds 37",
        seq=37,
    )


def truncated_below_an_anchor(run: Run) -> Expect:
    kept = "".join(run.texts[:3])
    return Expect(
        {"log": join(run.lines[:32]), "notes": kept.encode(), "anchors": [run.texts[3]]},
        Reason.TRUNCATED,
        "trusted checkpoint 1 signs 40 records, the log holds 32",
        seq=32,
    )


def torn_note(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.notes + run.texts[0][:5].encode()},
        Reason.TORN_TAIL,
        f"5 bytes at the end of {NOTES_FILE} are an incomplete note",
        torn=(NOTES_FILE, len(run.notes), False),
    )


def notes_removed(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": b""},
        Reason.NOT_A_CRASH,
        "40 records and no signed checkpoint: the writer signs run_start before writing "
        "anything else",
        seq=1,
    )


def too_many_unsigned(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.texts[0].encode()},
        Reason.NOT_A_CRASH,
        "39 records after the last signed checkpoint, more than the checkpoint_every (16) "
        "run_start commits to: the writer would have signed them",
        seq=1,
    )


def latest_not_utf8(run: Run) -> Expect:
    why = error_of(lambda: b"\xff".decode(), UnicodeDecodeError)
    return Expect(
        {"log": run.log, "notes": run.notes, "latest": b"\xff"},
        Reason.BAD_CHECKPOINT,
        f"{LATEST_FILE} file: {why}",
    )


def latest_by_another_key(run: Run) -> Expect:
    note = run.note(40, run.root(40), by=run.other)
    why = error_of(lambda: open_checkpoint(note, run.key), NoteError)
    return Expect(
        {"log": run.log, "notes": run.notes, "latest": note.encode()},
        Reason.BAD_SIGNATURE,
        f"{LATEST_FILE} file: {why}",
    )


def latest_ahead_of_the_notes(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.notes, "latest": run.note(48).encode()},
        Reason.NOT_A_CRASH,
        f"the {LATEST_FILE} file signs 48 records, the newest note in {NOTES_FILE} 40: "
        "notes were removed",
    )


def latest_not_a_note(run: Run) -> Expect:
    return Expect(
        {"log": run.log, "notes": run.notes, "latest": run.note(16).encode()},
        Reason.BAD_CHECKPOINT,
        f"the {LATEST_FILE} file is not one of the notes in {NOTES_FILE}",
    )


CASES = [
    torn_run_start,
    empty_log,
    malformed_run_start,
    run_start_not_first,
    unusable_key,
    untrusted_key,
    unsigned_note,
    note_by_another_key,
    note_of_another_log,
    notes_that_do_not_grow,
    anchor_of_another_run,
    anchor_disagrees,
    malformed_record,
    non_canonical_record,
    swapped_records,
    changed_record,
    appended_after_run_end,
    second_run_start,
    rewritten_and_rechained,
    crash_torn_tail,
    signed_torn_tail,
    truncated,
    truncated_below_an_anchor,
    torn_note,
    notes_removed,
    too_many_unsigned,
    latest_not_utf8,
    latest_by_another_key,
    latest_ahead_of_the_notes,
    latest_not_a_note,
]


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_each_check_names_its_reason_and_location(run: Run, case: Callable[[Run], Expect]) -> None:
    expect = case(run)
    with pytest.raises(VerificationError) as info:
        verify_bytes(**expect.inputs)
    error = info.value
    assert (error.reason, error.detail) == (expect.reason, expect.detail)
    assert (error.seq, error.note) == (expect.seq, expect.note)
    if expect.torn is None:
        assert not isinstance(error, TornTailError)
    else:
        assert isinstance(error, TornTailError)
        assert (error.file, error.offset, error.covered) == expect.torn
