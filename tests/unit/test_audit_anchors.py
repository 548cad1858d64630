"""Trust anchors outside the run directory: what a writer of the run directory can still
forge once notes are signed (a rewritten unsealed tail, a rollback, a swapped run), and
how the anchor store makes resume and verify refuse each (issue: resume laundered a
forged log)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from govtrain.audit.anchors import ENV, AnchorStore
from govtrain.audit.errors import LogStateError, Reason, VerificationError
from govtrain.audit.keys import run_key
from govtrain.audit.log import AuditLog
from govtrain.audit.notes import split_notes
from govtrain.audit.records import Record
from govtrain.audit.verify import LATEST_FILE, LOG_FILE, NOTES_FILE, read_run, verify_run
from govtrain.cli import main
from tests.audit_support import join, make_run, rechain

EVERY = 8


@pytest.fixture
def store(tmp_path: Path) -> AnchorStore:
    return AnchorStore(tmp_path / "anchors")


def forge_tail(run: Path) -> None:
    """Drop the newest note and rewrite the records after the one before it (loss 0.42),
    re-chained: no more unsigned records than a crash leaves, so without an anchor it
    verifies as a crash and a resume would sign it."""
    log, notes = read_run(run)
    texts, _ = split_notes(notes)
    kept = "".join(texts[:-1])
    sealed = int(texts[-2].split("\n")[1])
    lines = log.split(b"\n")[:-1]
    tail = [Record.from_line(x) for x in lines[sealed:]]
    forged = [
        Record.build(r.seq, r.kind, r.prev, {**r.body, "loss": 0.42}).line
        if r.kind == "step"
        else r.line
        for r in tail
    ]
    (run / LOG_FILE).write_bytes(join(rechain(lines[:sealed] + forged, sealed)))
    (run / NOTES_FILE).write_text(kept)
    (run / LATEST_FILE).write_text(texts[-2])  # a forger who knows the layout


def test_a_forged_tail_that_forgets_the_latest_checkpoint_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    signer = make_run(run, 40, checkpoint_every=EVERY)
    latest = (run / LATEST_FILE).read_bytes()
    forge_tail(run)
    (run / LATEST_FILE).write_bytes(latest)  # still the dropped note
    with pytest.raises(VerificationError) as err:
        verify_run(run, pubkey=signer.verifier)
    assert err.value.reason is Reason.NOT_A_CRASH
    assert "checkpoint file signs 40 records" in str(err.value)


def unchanged(run: Path):
    before = read_run(run)
    return lambda: read_run(run) == before


def test_the_anchor_is_the_newest_note_under_both_names(tmp_path: Path, store) -> None:
    run = tmp_path / "run"
    make_run(run, 40, checkpoint_every=EVERY, anchors=store)
    newest = split_notes(read_run(run)[1])[0][-1]
    assert store.notes(run) == [newest, newest]
    assert sorted(p.stat().st_mode & 0o777 for p in [store.directory]) == [0o700]


def test_a_forged_tail_that_passes_for_a_crash_is_refused(tmp_path: Path, store) -> None:
    run = tmp_path / "run"
    signer = make_run(run, 40, checkpoint_every=EVERY, anchors=store)
    forge_tail(run)
    report = verify_run(run, pubkey=signer.verifier)  # alone, it looks like a crash
    assert not report.closed and 0 < report.unsealed <= EVERY
    same = unchanged(run)
    with pytest.raises(VerificationError) as err:
        AuditLog.open(run, signer=signer, anchors=store)
    assert err.value.reason is Reason.CHECKPOINT_MISMATCH
    assert "trusted checkpoint" in str(err.value)
    assert same(), "a refused resume writes nothing"


def test_a_rolled_back_run_is_refused(tmp_path: Path, store) -> None:
    run, copy = tmp_path / "run", tmp_path / "copy"
    signer = make_run(run, 20, checkpoint_every=EVERY, anchors=store)
    shutil.copytree(run, copy)
    log = AuditLog.open(run, signer=signer, anchors=store)
    for i in range(10):
        log.append("step", {"step": i})
    log.close()
    shutil.rmtree(run)
    shutil.copytree(copy, run)  # closed and signed, but older than what was signed since
    assert verify_run(run, pubkey=signer.verifier).closed
    with pytest.raises(VerificationError) as err:
        AuditLog.open(run, signer=signer, anchors=store)
    assert err.value.reason is Reason.TRUNCATED


def test_a_run_replaced_and_signed_anew_is_refused(tmp_path: Path, store) -> None:
    """The key lives in the run: whoever writes the directory can sign a whole new run."""
    run = tmp_path / "run"
    make_run(run, 20, checkpoint_every=EVERY, keep_key=True, anchors=store)
    shutil.rmtree(run)
    make_run(run, 30, checkpoint_every=EVERY, keep_key=True)  # not through the store
    assert verify_run(run).closed
    with pytest.raises(VerificationError) as err:
        AuditLog.open(run, signer=run_key(run), anchors=store)
    assert err.value.reason is Reason.ANCHOR_MISMATCH
    assert "replaced or re-keyed" in str(err.value)


def test_a_moved_run_resumes_and_a_new_run_claims_its_path(tmp_path: Path, store) -> None:
    run, moved = tmp_path / "run", tmp_path / "moved"
    signer = make_run(run, 20, checkpoint_every=EVERY, close=False, anchors=store)
    run.rename(moved)
    log = AuditLog.open(moved, signer=signer, anchors=store)
    log.close()
    resumed = [r for r in map(Record.from_line, read_run(moved)[0].split(b"\n")[:-1])]
    assert resumed[20].kind == "run_resume" and resumed[20].body["anchored"] == 16
    newest = split_notes(read_run(moved)[1])[0][-1]
    assert store.notes(moved) == [newest, newest]
    again = make_run(run, 5, checkpoint_every=EVERY, close=False, anchors=store)
    AuditLog.open(run, signer=again, anchors=store).close()  # the old path's anchor is gone


def test_verify_consults_the_users_store(tmp_path: Path, store, monkeypatch) -> None:
    run = tmp_path / "run"
    make_run(run, 40, checkpoint_every=EVERY, anchors=store)
    monkeypatch.setenv(ENV, str(store.directory))
    result = CliRunner().invoke(main, ["audit", "verify", str(run)])
    assert result.exit_code == 0 and "trust anchor 40" in result.output
    forge_tail(run)
    result = CliRunner().invoke(main, ["audit", "verify", str(run)])
    assert result.exit_code == 1, result.output
    assert "checkpoint not consistent with the log" in result.output
    monkeypatch.setenv(ENV, "off")
    assert AnchorStore.default() is None
    assert CliRunner().invoke(main, ["audit", "verify", str(run)]).exit_code == 4


def test_an_unwritable_store_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LogStateError, match=f"cannot keep the trust anchor.*{ENV}"):
        make_run(tmp_path / "run", 3, anchors=AnchorStore(blocker / "anchors"))
    # the run itself exists and resumes (unanchored: run_resume says so)
    assert verify_run(tmp_path / "run").records == 1
