"""Histories no crash can leave are refused (exit 1, never "not closed"), so a resume
never signs over them: a forger who deletes the notes must not get a resume to re-sign
the forged records."""

from __future__ import annotations

from pathlib import Path

import pytest

from govtrain.audit.errors import Reason, VerificationError
from govtrain.audit.log import AuditLog
from govtrain.audit.notes import split_notes
from govtrain.audit.records import Record
from govtrain.audit.verify import LOG_FILE, NOTES_FILE, read_run, verify_bytes, verify_run
from tests.audit_support import join, make_run, rechain, sign_sizes

EVERY = 8


def lines_of(run: Path) -> list[bytes]:
    return read_run(run)[0].split(b"\n")[:-1]


def refused(log: bytes, notes: bytes, key, seq: int) -> str:
    with pytest.raises(VerificationError) as err:
        verify_bytes(log, notes, pubkey=key)
    assert err.value.reason is Reason.NOT_A_CRASH, err.value
    assert err.value.exit_code == 1 and err.value.seq == seq
    return str(err.value)


def test_a_crashed_log_is_still_a_crash(tmp_path: Path) -> None:
    """Up to checkpoint_every unsigned records, or run_start alone without a note, is a crash."""
    signer = make_run(tmp_path / "a", 2 * EVERY + EVERY - 1, checkpoint_every=EVERY, close=False)
    report = verify_run(tmp_path / "a", pubkey=signer.verifier)
    assert not report.closed and report.checkpoint_every == EVERY
    lines = lines_of(tmp_path / "a")
    # the writer signs when the size reaches a multiple of EVERY: a crash just before
    # that signature leaves EVERY unsigned records
    notes = sign_sizes(lines, [1, EVERY], signer)
    assert verify_bytes(join(lines[: 2 * EVERY]), notes, pubkey=signer.verifier).unsealed == EVERY
    assert verify_bytes(join(lines[:1]), b"", pubkey=signer.verifier).records == 1


def test_deleted_notes_are_not_a_crash(tmp_path: Path) -> None:
    signer = make_run(tmp_path / "a", 40, checkpoint_every=EVERY)
    log, _ = read_run(tmp_path / "a")
    assert "no signed checkpoint" in refused(log, b"", signer.verifier, 1)


def test_too_many_unsigned_records_are_not_a_crash(tmp_path: Path) -> None:
    """The forger keeps the first note, rewrites everything after it and drops the rest."""
    signer = make_run(tmp_path / "a", 40, checkpoint_every=EVERY)
    log, notes = read_run(tmp_path / "a")
    lines = log.split(b"\n")[:-1]
    forged = [Record.from_line(x) for x in lines]
    lines = rechain(
        [lines[0]]
        + [Record.build(r.seq, r.kind, r.prev, {**r.body, "loss": 0.42}).line for r in forged[1:]],
        1,
    )
    first_note = split_notes(notes)[0][0].encode()
    assert "more than the checkpoint_every (8)" in refused(
        join(lines), first_note, signer.verifier, 1
    )


def test_a_record_after_run_end_is_not_a_crash(tmp_path: Path) -> None:
    signer = make_run(tmp_path / "a", 20, checkpoint_every=EVERY)
    lines = lines_of(tmp_path / "a")
    extra = Record.build(len(lines), "step", "0" * 64, {"step": 99}).line
    lines = rechain([*lines, extra], len(lines))
    notes = read_run(tmp_path / "a")[1]
    assert "follows run_end" in refused(join(lines), notes, signer.verifier, 20)


def test_resume_refuses_and_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "a"
    signer = make_run(run, 40, checkpoint_every=EVERY, close=False)
    (run / NOTES_FILE).write_bytes(b"")
    before = (run / LOG_FILE).read_bytes()
    with pytest.raises(VerificationError, match="no signed checkpoint"):
        AuditLog.open(run, signer=signer)
    assert (run / LOG_FILE).read_bytes() == before and (run / NOTES_FILE).read_bytes() == b""


def test_a_closed_log_resumes_and_keeps_its_cadence(tmp_path: Path) -> None:
    run = tmp_path / "a"
    signer = make_run(run, 10, checkpoint_every=EVERY)
    log = AuditLog.open(run, signer=signer, checkpoint_every=1000)  # the log's 8 wins
    for i in range(20):
        log.append("step", {"step": i})
    log._release()  # a crash
    report = verify_run(run, pubkey=signer.verifier)
    assert not report.closed and report.unsealed <= EVERY
