"""Helpers shared by the audit tests (tests/unit/test_audit_*.py and some of
tests/integration/): building runs and forging records."""

from __future__ import annotations

import copy
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.keys import Signer, generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, sign_checkpoint, split_notes
from govtrain.audit.provenance import read_records
from govtrain.audit.records import GENESIS_PREV, Record, log_origin
from govtrain.audit.verify import LATEST_FILE, NOTES_FILE
from govtrain.formal.conform import conform_records
from govtrain.formal.trace import trace_lines, validate_trace
from govtrain.governance.config import parse_governance
from govtrain.governance.record import decision_to_dict
from govtrain.governance.state import state_from_dict
from govtrain.governance.step import decide


def step_body(i: int) -> dict:
    return {"step": i, "loss": 2.5 / (i + 1), "lr": 3e-4, "action": "Allocate"}


def make_run(
    run_dir: Path,
    records: int,
    *,
    checkpoint_every: int = 16,
    close: bool = True,
    signer: Signer | None = None,
    keep_key: bool = False,
    anchors: AnchorStore | None = None,
) -> Signer:
    """A run of exactly `records` records (run_start, steps, run_end when closed)."""
    signer = signer or generate_signer()
    log = AuditLog.create(
        run_dir,
        signer=signer,
        keep_key=keep_key,
        anchors=anchors,
        run_start={"config": {"name": "test"}, "seed": 0},
        checkpoint_every=checkpoint_every,
        fsync=FsyncPolicy.CHECKPOINT,
    )
    for i in range(records - (2 if close else 1)):
        log.append("step", step_body(i))
    if close:
        log.close({"status": "ok"})
    else:
        log._release()  # leave it as a crash would: no run_end, no final checkpoint
    return signer


def rechain(lines: list[bytes], start: int = 0) -> list[bytes]:
    """Re-encode lines[start:] with correct seq and prev: what a forger without the key can do."""
    out = list(lines[:start])
    prev = hashlib.sha256(out[-1]).hexdigest() if out else GENESIS_PREV
    for seq, line in enumerate(lines[start:], start):
        old = Record.from_line(line)
        record = Record.build(seq, old.kind, prev, old.body)
        out.append(record.line)
        prev = record.hash
    return out


def forge_step(run_dir: Path, copy_dir: Path, seq: int, edit: Callable[[dict], None]) -> Path:
    """Copy `run_dir` to `copy_dir`, apply `edit` to the state and transitions of the step
    record at `seq`, give it the decision the core makes from that state, and rechain:
    a consistent forgery of one governance step. Returns the copy's audit.jsonl."""
    shutil.copytree(run_dir, copy_dir)
    log = copy_dir / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    start, target = Record.from_line(lines[0]), Record.from_line(lines[seq])
    cfg = parse_governance(start.body["config"]["governance"])
    names = [g.name for g in cfg.groups]
    body = copy.deepcopy(target.body)
    edit(body)
    post = state_from_dict(body["state"], names)
    needs = [body["observations"][n]["need"] for n in names]
    body["decision"] = decision_to_dict(decide(post, needs, cfg), names)
    lines[seq] = Record.build(seq, target.kind, target.prev, body).line
    log.write_bytes(b"\n".join(rechain(lines, seq)) + b"\n")
    return log


def rejected_only_with(log: Path, seq: int, needle: str, flag: str, toolchain) -> None:
    """A forged governance step that only the flag `flag` (a constant of the trace's Init
    line) forbids: TLC's trace validation alone rejects the log at record `seq`, naming
    `needle`; the lines up to it are accepted with the flag FALSE; the Python replay
    diverges at the same record."""
    altered = read_records(log)
    trace = list(trace_lines(altered))
    validation = validate_trace(trace, toolchain=toolchain)
    assert not validation.ok and validation.problem is None, validation.summary()
    bad = validation.mismatch
    assert bad is not None and bad.seq == seq and bad.check == "TraceMatched", str(bad)
    assert any(needle in d for d in bad.differences), bad.differences

    upto = [line for line in trace if line.get("seq", -1) <= seq]
    upto[0] = copy.deepcopy(upto[0])
    upto[0]["constants"][flag] = False
    without = validate_trace(upto, toolchain=toolchain)
    assert without.ok, without.summary()

    report = conform_records(altered, toolchain=None)
    assert report.replay.divergence is not None
    assert report.replay.divergence.seq == seq, report.replay_summary()


def sign_sizes(lines: list[bytes], sizes: list[int], signer: Signer) -> bytes:
    """Checkpoint notes for the given sizes of `lines`, signed by `signer`."""
    origin = log_origin(lines[0])
    frontier, notes = CompactRange(), []
    for line in lines:
        frontier.append(leaf_hash(line))
        if frontier.size in sizes:
            notes.append(
                sign_checkpoint(Checkpoint(origin, frontier.size, frontier.root()), signer)
            )
    return "".join(notes).encode()


def write_notes(run: Path, notes: bytes) -> None:
    """What a forger who knows the layout writes: the history and its newest note alone."""
    (run / NOTES_FILE).write_bytes(notes)
    (run / LATEST_FILE).write_text(split_notes(notes)[0][-1])


def join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)
