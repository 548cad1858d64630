"""The writer: one write per record, fsync policies, checkpoints, resume, failure modes."""

from __future__ import annotations

import errno
import fcntl
import math
import os
from pathlib import Path

import pytest

from govtrain.audit.errors import (
    LogStateError,
    Reason,
    RecordError,
    TornTailError,
    VerificationError,
)
from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy, key_commitment
from govtrain.audit.notes import Checkpoint, split_notes, unverified_text
from govtrain.audit.provenance import read_records
from govtrain.audit.repair import repair_torn_tail
from govtrain.audit.verify import LATEST_FILE, LOG_FILE, NOTES_FILE, verify_run
from tests.audit_support import make_run, step_body


def checkpoint_sizes(run_dir: Path) -> list[int]:
    texts, _ = split_notes((run_dir / NOTES_FILE).read_bytes())
    return [Checkpoint.parse(unverified_text(t)).size for t in texts]


def test_a_closed_run_verifies_and_commits_its_key(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 40, checkpoint_every=16)
    report = verify_run(tmp_path, pubkey=signer.verifier)
    assert (report.records, report.checkpoint_size, report.closed) == (40, 40, True)
    records = read_records(tmp_path)
    assert records[0].kind == "run_start" and records[0].body["key"] == key_commitment(
        signer.verifier
    )
    assert records[-1].kind == "run_end" and records[-1].body == {"status": "ok"}
    assert checkpoint_sizes(tmp_path) == [1, 16, 32, 40]


def test_records_keep_non_finite_values(tmp_path: Path) -> None:
    log = AuditLog.create(tmp_path, signer=generate_signer(), run_start={})
    log.append("nonfinite", {"loss": math.nan, "grad": -math.inf})
    log.close()
    assert verify_run(tmp_path).closed
    body = read_records(tmp_path)[1].body
    assert math.isnan(body["loss"]) and body["grad"] == -math.inf


def test_create_refuses_an_existing_log_and_a_foreign_key(tmp_path: Path) -> None:
    signer = make_run(tmp_path / "a", 3)
    with pytest.raises(LogStateError, match="is not empty"):
        AuditLog.create(tmp_path / "a", signer=signer, run_start={})
    foreign = {"key": key_commitment(generate_signer().verifier)}
    with pytest.raises(LogStateError, match="different key"):
        AuditLog.create(tmp_path / "b", signer=signer, run_start=foreign)
    assert not (tmp_path / "b" / LOG_FILE).exists()


def test_an_unencodable_body_writes_nothing(tmp_path: Path) -> None:
    log = AuditLog.create(tmp_path, signer=generate_signer(), run_start={})
    size = (tmp_path / LOG_FILE).stat().st_size
    with pytest.raises(RecordError):
        log.append("step", {"groups": {1: "int keys are not JSON"}})
    assert (tmp_path / LOG_FILE).stat().st_size == size
    log.append("step", step_body(0))
    log.close()
    assert verify_run(tmp_path).records == 3
    with pytest.raises(LogStateError, match="closed"):
        log.append("step", step_body(1))


def test_each_record_is_one_write_on_an_append_descriptor(tmp_path: Path, monkeypatch) -> None:
    log = AuditLog.create(tmp_path, signer=generate_signer(), run_start={}, checkpoint_every=1000)
    assert fcntl.fcntl(log._log_fd, fcntl.F_GETFL) & os.O_APPEND
    writes: list[tuple[int, bytes]] = []
    real_write = os.write

    def spy(fd: int, data: bytes) -> int:
        writes.append((fd, bytes(data)))
        return real_write(fd, data)

    monkeypatch.setattr("audit.log.os.write", spy)
    for i in range(50):
        log.append("step", step_body(i))
    assert len(writes) == 50
    assert all(
        fd == log._log_fd and data.count(b"\n") == 1 and data.endswith(b"\n") for fd, data in writes
    )
    monkeypatch.undo()
    log.close()


def traced_run(tmp_path: Path, monkeypatch, policy: FsyncPolicy) -> list[tuple[str, str]]:
    """Write 30 records under `policy` and return the (write|fsync, file) events in order."""
    events: list[tuple[str, str]] = []
    real_write, real_fsync = os.write, os.fsync

    def name(fd: int) -> str:
        return Path(os.readlink(f"/proc/self/fd/{fd}")).name

    def write(fd: int, data: bytes) -> int:
        events.append(("write", name(fd)))
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        events.append(("fsync", name(fd)))
        real_fsync(fd)

    monkeypatch.setattr("audit.log.os.write", write)
    monkeypatch.setattr("audit.log.os.fsync", fsync)
    log = AuditLog.create(
        tmp_path / "run",
        signer=generate_signer(),
        run_start={},
        checkpoint_every=10,
        fsync=policy,
        fsync_every=4,
    )
    for i in range(28):
        log.append("step", step_body(i))
    log.close()
    monkeypatch.undo()
    assert verify_run(tmp_path / "run").closed
    return events


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_fsync_policy_and_checkpoint_ordering(
    tmp_path: Path, monkeypatch, policy: FsyncPolicy
) -> None:
    events = traced_run(tmp_path, monkeypatch, policy)
    staged = LATEST_FILE + ".tmp"
    made = [e for e in events[:8] if e[0] == "fsync" and e[1] not in (LOG_FILE, NOTES_FILE, staged)]
    assert [e[1].endswith(".creating") for e in made] == [True, False], (
        "creating the log must fsync the staged run directory, then the one it was renamed into"
    )
    notes_then_latest = [e for e in events if e in (("fsync", NOTES_FILE), ("fsync", staged))]
    assert notes_then_latest == [("fsync", NOTES_FILE), ("fsync", staged)] * (
        len(notes_then_latest) // 2
    ), "the latest checkpoint is replaced only after its note is on disk in the history"
    log_events = [e for e in events if e[1] in (LOG_FILE, NOTES_FILE)]
    unsynced = 0
    for i, (op, file) in enumerate(log_events):
        if (op, file) == ("write", NOTES_FILE):
            assert log_events[i - 1] == ("fsync", LOG_FILE), "a checkpoint must follow a log fsync"
            assert log_events[i + 1] == ("fsync", NOTES_FILE), "a note must be fsynced at once"
        if file == LOG_FILE:
            unsynced = unsynced + 1 if op == "write" else 0
            limit = {FsyncPolicy.ALWAYS: 1, FsyncPolicy.EVERY_N: 4, FsyncPolicy.CHECKPOINT: 10}[
                policy
            ]
            assert unsynced <= limit
    log_fsyncs = sum(1 for e in log_events if e == ("fsync", LOG_FILE))
    notes = sum(1 for e in log_events if e == ("write", NOTES_FILE))
    assert log_fsyncs == {FsyncPolicy.ALWAYS: 29 + notes, FsyncPolicy.EVERY_N: 6 + notes}.get(
        policy, notes
    )


def test_resume_verifies_then_continues_the_chain(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 20, checkpoint_every=8)
    log = AuditLog.open(tmp_path, signer=signer, checkpoint_every=8)
    for i in range(5):
        log.append("step", step_body(100 + i))
    log.close()
    report = verify_run(tmp_path, pubkey=signer.verifier)
    assert report.closed and report.records == 27
    kinds = [r.kind for r in read_records(tmp_path)]
    assert kinds[19:21] == ["run_end", "run_resume"] and kinds[-1] == "run_end"
    assert read_records(tmp_path)[20].body == {
        "records": 20,
        "previous": "closed",
        "unsealed": 0,
        "anchored": None,
    }
    assert 21 in checkpoint_sizes(tmp_path), "a resume is signed at once"


def test_resume_after_a_crash_says_so(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 11, checkpoint_every=4, close=False)
    report = verify_run(tmp_path)
    assert (report.records, report.checkpoint_size, report.closed) == (11, 8, False)
    log = AuditLog.open(tmp_path, signer=signer)
    log.close()
    assert read_records(tmp_path)[11].body == {
        "records": 11,
        "previous": "interrupted",
        "unsealed": 3,
        "anchored": None,
    }
    assert verify_run(tmp_path).closed


def test_resume_refuses_another_key_a_torn_tail_and_tampering(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 10)
    with pytest.raises(VerificationError) as info:
        AuditLog.open(tmp_path, signer=generate_signer())
    assert info.value.reason is Reason.KEY_MISMATCH
    with open(tmp_path / LOG_FILE, "ab") as handle:
        handle.write(b'{"body":{')
    with pytest.raises(TornTailError):
        AuditLog.open(tmp_path, signer=signer)
    data = (tmp_path / LOG_FILE).read_bytes()
    (tmp_path / LOG_FILE).write_bytes(
        data.replace(b'"step":3', b'"step":4', 1)[: data.rindex(b"\n") + 1]
    )
    with pytest.raises(VerificationError) as info:
        AuditLog.open(tmp_path, signer=signer)
    assert info.value.reason is Reason.BAD_LINK and info.value.seq == 5


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    signer = make_run(tmp_path, 4, close=False)
    first = AuditLog.open(tmp_path, signer=signer)
    with pytest.raises(LogStateError, match="another writer"):
        AuditLog.open(tmp_path, signer=signer)
    first.close()
    assert verify_run(tmp_path).closed


def test_the_context_manager_records_a_failure(tmp_path: Path) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        AuditLog.create(tmp_path, signer=generate_signer(), run_start={}) as log,
    ):
        log.append("step", step_body(0))
        _ = 1 / 0
    assert read_records(tmp_path)[-1].body == {"status": "failed", "error": "ZeroDivisionError"}
    assert verify_run(tmp_path).closed


def test_a_short_write_leaves_a_torn_tail_that_repair_cuts(tmp_path: Path, monkeypatch) -> None:
    log = AuditLog.create(tmp_path, signer=generate_signer(), run_start={}, checkpoint_every=100)
    log.append("step", step_body(0))
    real_write = os.write
    monkeypatch.setattr(
        "audit.log.os.write", lambda fd, data: real_write(fd, data[: len(data) // 2])
    )
    with pytest.raises(LogStateError, match="torn tail"):
        log.append("step", step_body(1))
    monkeypatch.undo()
    with pytest.raises(LogStateError, match="broken"):
        log.append("step", step_body(2))
    assert log.close() is None
    with pytest.raises(TornTailError):
        verify_run(tmp_path)
    report, cuts = repair_torn_tail(tmp_path)
    assert len(cuts) == 1 and report.records == 2 and not report.closed


def test_a_failed_create_leaves_no_run(tmp_path: Path, monkeypatch) -> None:
    """A crash anywhere in `create` leaves no run directory: it appears whole or not at all."""

    def crash(*_args) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("audit.log.os.rename", crash)
    with pytest.raises(LogStateError, match=r"cannot create the run \(No space left"):
        AuditLog.create(tmp_path / "run", signer=generate_signer(), run_start={}, keep_key=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    AuditLog.create(tmp_path / "run", signer=generate_signer(), run_start={}).close()
    assert verify_run(tmp_path / "run").closed
