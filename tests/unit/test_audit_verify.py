"""The verifier names the first bad record and why; torn tails are told apart from tampering;
repair cuts torn tails and nothing else."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from govtrain.audit.errors import LogStateError, Reason, TornTailError, VerificationError
from govtrain.audit.keys import Signer, generate_signer
from govtrain.audit.log import AuditLog, key_commitment
from govtrain.audit.notes import Checkpoint, sign_checkpoint, split_notes, unverified_text
from govtrain.audit.records import Record
from govtrain.audit.repair import repair_torn_tail
from govtrain.audit.verify import (
    LATEST_FILE,
    LOG_FILE,
    NOTES_FILE,
    read_run,
    verify_bytes,
    verify_run,
)
from tests.audit_support import join, make_run, rechain, sign_sizes


@pytest.fixture(scope="module")
def closed_run(tmp_path_factory) -> tuple[Path, Signer, bytes, bytes]:
    run = tmp_path_factory.mktemp("closed")
    signer = make_run(run, 40, checkpoint_every=16)
    return (run, signer, *read_run(run))


def lines_of(log: bytes) -> list[bytes]:
    return log.split(b"\n")[:-1]


def failure(log: bytes, notes: bytes, key=None) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        verify_bytes(log, notes, pubkey=key)
    return info.value


def test_an_intact_log_summarises_itself(closed_run) -> None:
    run, signer, log, notes = closed_run
    report = verify_run(run / LOG_FILE, pubkey=signer.verifier)
    assert report == verify_bytes(log, notes, latest=(run / LATEST_FILE).read_bytes())
    assert report.latest == 40 and verify_bytes(log, notes).latest is None
    assert report.summary().startswith(
        "ok: closed; records 40, tree size 40, last signed checkpoint 40"
    )
    assert report.root.hex() in report.summary()


def test_a_changed_byte_breaks_the_next_link(closed_run) -> None:
    _, signer, log, notes = closed_run
    lines = lines_of(log)
    lines[7] = lines[7].replace(b'"step":6', b'"step":9')
    error = failure(join(lines), notes, signer.verifier)
    assert (error.reason, error.seq, error.line) == (Reason.BAD_LINK, 8, 9)
    assert "record seq 8 (line 9): bad hash link" in str(error)


def test_the_last_record_is_protected_by_the_final_checkpoint(closed_run) -> None:
    _, signer, log, notes = closed_run
    lines = lines_of(log)
    lines[-1] = lines[-1].replace(b'"ok"', b'"OK"')
    error = failure(join(lines), notes, signer.verifier)
    assert error.reason is Reason.CHECKPOINT_MISMATCH and error.seq == 32


def test_non_canonical_bytes_are_named(closed_run) -> None:
    _, _, log, notes = closed_run
    lines = lines_of(log)
    lines[5] = lines[5].replace(b'"kind":', b'"kind": ')
    error = failure(join(lines), notes)
    assert (error.reason, error.seq) == (Reason.NON_CANONICAL, 5)


def test_malformed_records_are_named(closed_run) -> None:
    _, _, log, notes = closed_run
    lines = lines_of(log)
    lines[3] = b"{not json"
    error = failure(join(lines), notes)
    assert (error.reason, error.seq) == (Reason.MALFORMED, 3)


def test_swapped_and_duplicated_records_have_a_bad_seq(closed_run) -> None:
    _, _, log, notes = closed_run
    lines = lines_of(log)
    swapped = failure(join([*lines[:4], lines[5], lines[4], *lines[6:]]), notes)
    assert (swapped.reason, swapped.seq) == (Reason.BAD_SEQ, 4)
    duplicated = [*lines[:9], lines[8], *lines[9:]]
    assert failure(join(duplicated), notes).reason is Reason.BAD_SEQ


def test_a_forged_record_with_every_later_hash_recomputed_breaks_a_signed_root(closed_run) -> None:
    _, signer, log, notes = closed_run
    lines = lines_of(log)
    forged = Record.build(20, "step", "00" * 32, {"step": 999, "loss": 0.0}).line
    tampered = rechain([*lines[:20], forged, *lines[20:]], 20)
    error = failure(join(tampered), notes, signer.verifier)
    assert error.reason is Reason.CHECKPOINT_MISMATCH
    assert error.seq == 16 and "one of records 16..31 was altered" in str(error)


def test_records_missing_after_the_last_signed_checkpoint_are_truncation(closed_run) -> None:
    _, _, log, notes = closed_run
    error = failure(join(lines_of(log)[:37]), notes)
    assert (error.reason, error.seq) == (Reason.TRUNCATED, 37)
    assert "checkpoint note 4 signs 40 records, the log holds 37" in str(error)


def test_checkpoint_notes_must_be_signed_by_the_run_key(closed_run) -> None:
    _, _, log, notes = closed_run
    altered = notes.replace(b"\n32\n", b"\n33\n")
    assert failure(log, altered).reason is Reason.BAD_SIGNATURE
    resigned = sign_sizes(lines_of(log), [1, 16, 32, 40], generate_signer())
    error = failure(log, resigned)
    assert (error.reason, error.note) == (Reason.BAD_SIGNATURE, 1)


def test_checkpoints_of_another_log_or_out_of_order_are_refused(closed_run, tmp_path: Path) -> None:
    _, signer, log, _ = closed_run
    AuditLog.create(tmp_path, signer=signer, run_start={"run_id": "another"}).close()
    other_notes = (tmp_path / NOTES_FILE).read_bytes()
    error = failure(log, other_notes)
    assert error.reason is Reason.BAD_CHECKPOINT and "is not this log's" in str(error)
    reordered = sign_sizes(lines_of(log), [16], signer) + sign_sizes(lines_of(log), [1], signer)
    assert failure(log, reordered).reason is Reason.BAD_CHECKPOINT


def test_a_log_rewritten_with_another_key_is_caught_only_by_a_trusted_key(closed_run) -> None:
    _, signer, log, _ = closed_run
    attacker = generate_signer(signer.name)
    lines = lines_of(log)
    start = Record.from_line(lines[0])
    body = {**start.body, "key": key_commitment(attacker.verifier)}
    lines = rechain([Record.build(0, "run_start", start.prev, body).line, *lines[1:]])
    forged_notes = sign_sizes(lines, [1, 16, 32, 40], attacker)
    assert verify_bytes(join(lines), forged_notes).closed  # the documented limit
    error = failure(join(lines), forged_notes, signer.verifier)
    assert (error.reason, error.seq) == (Reason.KEY_MISMATCH, 0)


def test_records_appended_after_the_close_are_not_a_crash(closed_run) -> None:
    _, signer, log, notes = closed_run
    lines = lines_of(log)
    extra = Record.build(40, "run_end", Record.from_line(lines[-1]).hash, {"status": "ok"}).line
    with pytest.raises(VerificationError, match="follows run_end") as err:
        verify_bytes(join([*lines, extra]), notes, pubkey=signer.verifier)
    assert err.value.reason is Reason.NOT_A_CRASH and err.value.seq == 40


def test_a_trusted_checkpoint_catches_a_rollback(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 20, checkpoint_every=8)
    log = AuditLog.open(tmp_path, signer=signer)
    log.close()
    log_bytes, notes = read_run(tmp_path)
    texts, _ = split_notes(notes)
    sizes = [Checkpoint.parse(unverified_text(t)).size for t in texts]
    assert sizes == [1, 8, 16, 20, 21, 22]
    saved = texts[-1]  # kept outside the run directory by a careful auditor
    # Roll back to the first close: every record and note after it is dropped.
    rolled_log, rolled_notes = join(lines_of(log_bytes)[:20]), "".join(texts[:4]).encode()
    assert verify_bytes(rolled_log, rolled_notes).closed  # indistinguishable from the inside
    with pytest.raises(VerificationError) as info:
        verify_bytes(rolled_log, rolled_notes, anchors=[saved])
    assert info.value.reason is Reason.TRUNCATED and "trusted checkpoint 1 signs 22" in str(
        info.value
    )
    assert verify_bytes(log_bytes, notes, anchors=[saved]).closed
    other = sign_checkpoint(Checkpoint(verify_bytes(log_bytes, notes).origin, 8, bytes(32)), signer)
    with pytest.raises(VerificationError) as info:
        verify_bytes(log_bytes, notes, anchors=[other])
    assert info.value.reason is Reason.CHECKPOINT_MISMATCH


def assert_torn(log: bytes, notes: bytes, covered: bool) -> TornTailError:
    try:
        report = verify_bytes(log, notes)
    except TornTailError as torn:
        assert torn.covered is covered and torn.reason is Reason.TORN_TAIL
        return torn
    raise AssertionError(f"a torn tail verified as {report}")


def test_cutting_the_last_record_at_every_byte_is_a_torn_tail(closed_run, tmp_path: Path) -> None:
    _, _, log, notes = closed_run
    start = log.rindex(b"\n", 0, len(log) - 1) + 1
    for cut in range(start + 1, len(log)):
        torn = assert_torn(log[:cut], notes, covered=True)
        assert (torn.seq, torn.offset) == (39, start)
    assert failure(log[:start], notes).reason is Reason.TRUNCATED  # a whole record gone


def test_a_crash_torn_tail_is_never_reported_as_tampering(tmp_path: Path) -> None:
    make_run(tmp_path, 30, checkpoint_every=8, close=False)
    log, notes = read_run(tmp_path)
    start = log.rindex(b"\n", 0, len(log) - 1) + 1
    for cut in range(start + 1, len(log)):
        assert_torn(log[:cut], notes, covered=False)
    assert verify_bytes(log[:start], notes).records == 29
    note_start = notes.rindex(b"govtrain.audit/")
    for cut in range(note_start + 1, len(notes)):
        torn = assert_torn(log, notes[:cut], covered=False)
        assert (torn.file, torn.offset) == (NOTES_FILE, note_start)


def test_repair_cuts_a_torn_tail_and_keeps_the_original(tmp_path: Path) -> None:
    make_run(tmp_path, 30, checkpoint_every=8, close=False)
    log, notes = read_run(tmp_path)
    (tmp_path / LOG_FILE).write_bytes(log + b'{"body":{"st')
    (tmp_path / NOTES_FILE).write_bytes(notes + b"govtrain.audit/x\n3")
    report, cuts = repair_torn_tail(tmp_path)
    assert report.records == 30 and not report.closed
    assert [(c.file.name, c.removed) for c in cuts] == [(LOG_FILE, 12), (NOTES_FILE, 18)]
    assert read_run(tmp_path) == (log, notes)
    assert (tmp_path / "audit.jsonl.broken").read_bytes() == log + b'{"body":{"st'
    # the same torn bytes again (a repair interrupted after its backup): repair reuses it
    (tmp_path / LOG_FILE).write_bytes(log + b'{"body":{"st')
    (tmp_path / NOTES_FILE).unlink()
    (tmp_path / NOTES_FILE).write_bytes(notes)
    _, cuts = repair_torn_tail(tmp_path)
    assert [c.backup.name for c in cuts] == ["audit.jsonl.broken"]
    assert read_run(tmp_path) == (log, notes)


def test_repair_recovers_each_of_several_crashes(tmp_path: Path) -> None:
    """Crash, repair, resume, crash again: every torn tail is cut and kept, no manual step."""
    signer = make_run(tmp_path, 12, checkpoint_every=8, close=False)
    for n, tail in enumerate([b'{"body":{"st', b'{"bo', b"{"], start=1):
        log, _ = read_run(tmp_path)
        (tmp_path / LOG_FILE).write_bytes(log + tail)
        _, cuts = repair_torn_tail(tmp_path, pubkey=signer.verifier)
        assert [c.removed for c in cuts] == [len(tail)]
        assert cuts[0].backup.read_bytes() == log + tail
        assert read_run(tmp_path)[0] == log
        resumed = AuditLog.open(tmp_path, signer=signer, checkpoint_every=8)
        resumed.append("step", {"n": n})
        resumed._release()  # killed again
    names = sorted(p.name for p in tmp_path.iterdir() if ".broken" in p.name)
    assert names == ["audit.jsonl.broken", "audit.jsonl.broken.2", "audit.jsonl.broken.3"]


def test_repair_never_writes_through_a_planted_backup_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    run = tmp_path / "run"
    make_run(run, 30, checkpoint_every=8, close=False)
    log, _ = read_run(run)
    (run / LOG_FILE).write_bytes(log + b'{"bo')
    (run / "audit.jsonl.broken").symlink_to(victim)
    _, cuts = repair_torn_tail(run)
    assert victim.read_bytes() == b"precious"
    assert cuts[0].backup.name == "audit.jsonl.broken.2"
    assert read_run(run)[0] == log


def test_repair_on_a_full_disk_leaves_no_partial_backup(tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    make_run(tmp_path, 30, checkpoint_every=8, close=False)
    log, notes = read_run(tmp_path)
    (tmp_path / LOG_FILE).write_bytes(log + b'{"body":{"st')

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LogStateError, match="No space left on device"):
        repair_torn_tail(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir() if "broken" in p.name) == []
    assert (tmp_path / LOG_FILE).read_bytes() == log + b'{"body":{"st'
    repair_torn_tail(tmp_path)  # once there is space, repair works
    assert read_run(tmp_path) == (log, notes)


def test_repair_refuses_tampering_and_touches_nothing(closed_run, tmp_path: Path) -> None:
    _, _, log, notes = closed_run
    lines = lines_of(log)
    lines[4] = lines[4].replace(b'"step":3', b'"step":5')
    (tmp_path / LOG_FILE).write_bytes(join(lines) + b'{"bo')
    (tmp_path / NOTES_FILE).write_bytes(notes)
    with pytest.raises(VerificationError) as info:
        repair_torn_tail(tmp_path)
    assert info.value.reason is Reason.BAD_LINK
    assert (tmp_path / LOG_FILE).read_bytes() == join(lines) + b'{"bo'
    assert not (tmp_path / "audit.jsonl.broken").exists()


def test_repair_refuses_a_torn_record_that_a_checkpoint_covered(closed_run, tmp_path: Path) -> None:
    _, _, log, notes = closed_run
    (tmp_path / LOG_FILE).write_bytes(log[:-5])
    (tmp_path / NOTES_FILE).write_bytes(notes)
    with pytest.raises(VerificationError, match="not a crash"):
        repair_torn_tail(tmp_path)
    assert (tmp_path / LOG_FILE).read_bytes() == log[:-5]


def test_an_empty_or_missing_log_is_an_error(tmp_path: Path) -> None:
    assert failure(b"", b"").reason is Reason.BAD_RUN_START
    with pytest.raises(VerificationError, match="cannot read"):
        verify_run(tmp_path / LOG_FILE)


def test_the_checkpoint_file_is_the_newest_note_alone(closed_run) -> None:
    """What a one-note parser reads (sigstore's, as Rekor's note.Open does): the newest
    signed checkpoint, under the run key, where checkpoints.note is several notes."""
    checkpoint = pytest.importorskip("sigstore._internal.rekor.checkpoint")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    run, signer, _, notes = closed_run
    latest = (run / LATEST_FILE).read_text()
    assert latest == split_notes(notes)[0][-1]
    note = checkpoint.SignedNote.from_text(latest)
    assert checkpoint.LogCheckpoint.from_text(note.note).log_size == 40
    (signature,) = note.signatures
    assert signature.sig_hash == signer.verifier.key_id
    public = Ed25519PublicKey.from_public_bytes(signer.verifier.public)
    public.verify(base64.b64decode(signature.signature), note.note.encode())
    with pytest.raises(checkpoint.VerificationError, match="one blank line"):
        checkpoint.SignedNote.from_text(notes.decode())  # the history is not one note


def test_the_checkpoint_file_may_lag_after_a_crash_but_never_lie(closed_run) -> None:
    _, signer, log, notes = closed_run
    texts = split_notes(notes)[0]
    older = verify_bytes(log, notes, latest=texts[-2].encode())  # crashed between the writes
    assert older.latest == 32 and "checkpoint file behind at 32" in older.summary()
    other = generate_signer()
    cases = {
        sign_checkpoint(Checkpoint(older.origin, 16, older.root), signer): Reason.BAD_CHECKPOINT,
        sign_checkpoint(Checkpoint(older.origin, 48, older.root), signer): Reason.NOT_A_CRASH,
        sign_checkpoint(Checkpoint(older.origin, 40, older.root), other): Reason.BAD_SIGNATURE,
        sign_checkpoint(Checkpoint("elsewhere", 40, older.root), signer): Reason.BAD_CHECKPOINT,
        "not a note\n": Reason.BAD_CHECKPOINT,
        b"\xff": Reason.BAD_CHECKPOINT,
    }
    for latest, reason in cases.items():
        raw = latest if isinstance(latest, bytes) else latest.encode()
        with pytest.raises(VerificationError) as info:
            verify_bytes(log, notes, latest=raw)
        assert info.value.reason is reason and "checkpoint file" in str(info.value), latest


def test_a_run_without_a_checkpoint_file_still_verifies(closed_run, tmp_path: Path) -> None:
    """Runs from before the file existed: checkpoints.note alone is the record."""
    _, signer, log, notes = closed_run
    (tmp_path / LOG_FILE).write_bytes(log)
    (tmp_path / NOTES_FILE).write_bytes(notes)
    report = verify_run(tmp_path, pubkey=signer.verifier)
    assert report.closed and report.latest is None


def test_the_checkpoint_file_follows_a_run_moved_while_its_log_is_open(tmp_path: Path) -> None:
    """Written through the run directory's own descriptor, like the log and the notes: a
    run moved mid-run keeps its checkpoint file up to date where it is now, and a new run
    made at the old path is left alone."""
    signer = generate_signer()
    log = AuditLog.create(tmp_path / "a", signer=signer, run_start={}, checkpoint_every=4)
    (tmp_path / "a").rename(tmp_path / "moved")
    other = make_run(tmp_path / "a", 10, checkpoint_every=4)
    for i in range(10):
        log.append("step", {"step": i})
    log.close()
    moved = verify_run(tmp_path / "moved", pubkey=signer.verifier)
    assert moved.closed and moved.latest == moved.records == 12
    assert verify_run(tmp_path / "a", pubkey=other.verifier).latest == 10


def test_a_refused_resume_releases_the_log(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 20, checkpoint_every=8)
    (tmp_path / (LATEST_FILE + ".tmp")).mkdir()  # the checkpoint file cannot be staged
    with pytest.raises(LogStateError, match="cannot replace the latest checkpoint") as info:
        AuditLog.open(tmp_path, signer=signer, checkpoint_every=8)
    assert str(info.value).startswith(f"{tmp_path / LATEST_FILE}.tmp: ")  # the path, whole
    (tmp_path / (LATEST_FILE + ".tmp")).rmdir()
    log = AuditLog.open(tmp_path, signer=signer, checkpoint_every=8)  # the lock was let go
    log.close()
    assert verify_run(tmp_path, pubkey=signer.verifier).closed


def test_repair_refuses_a_checkpoint_file_that_is_not_a_note_of_the_history(
    closed_run, tmp_path: Path
) -> None:
    _, _, log, notes = closed_run
    (tmp_path / LOG_FILE).write_bytes(log + b'{"bo')
    (tmp_path / NOTES_FILE).write_bytes(notes)
    (tmp_path / LATEST_FILE).write_text("not a note\n")
    with pytest.raises(VerificationError, match="checkpoint file"):
        repair_torn_tail(tmp_path)
    assert (tmp_path / LOG_FILE).read_bytes() == log + b'{"bo'  # nothing cut
