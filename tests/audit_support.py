"""Helpers shared by the audit tests (tests/unit/test_audit_*.py and some of
tests/integration/): building runs and forging records."""

from __future__ import annotations

import hashlib
from pathlib import Path

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.keys import Signer, generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.notes import Checkpoint, sign_checkpoint, split_notes
from govtrain.audit.records import GENESIS_PREV, Record, log_origin
from govtrain.audit.verify import LATEST_FILE, NOTES_FILE


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
