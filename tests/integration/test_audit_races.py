"""Two writers racing for one run directory: exactly one wins, the log always verifies.

(Before: both starters shared `audit.jsonl.tmp`, and `open` verified before locking,
so a racing writer could leave a log that failed verification for good.)
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from govtrain.audit.errors import LogStateError
from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.verify import verify_run
from tests.audit_support import make_run

ROUNDS = 25
CTX = mp.get_context("fork")


def _write(what: str, run: str, barrier, results, signer) -> None:
    """Start (or resume) the run in `run` when both racers are ready, then append and close."""
    barrier.wait()
    try:
        if what == "start":
            log = AuditLog.create(
                Path(run), signer=signer, run_start={"config": {}}, fsync=FsyncPolicy.CHECKPOINT
            )
        else:
            log = AuditLog.open(Path(run), signer=signer, checkpoint_every=8)
    except LogStateError:
        results.put("lost")
        return
    for i in range(30):
        log.append("step", {"step": i})
    log.close()
    results.put("won")


def race(what: str, run: Path, signer) -> list[str]:
    barrier, results = CTX.Barrier(2), CTX.Queue()
    args = (what, str(run), barrier, results, signer)
    procs = [CTX.Process(target=_write, args=args) for _ in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return sorted(results.get(timeout=5) for _ in procs)


@pytest.mark.parametrize("what", ["start", "open"])
def test_two_writers_one_wins_and_the_log_verifies(tmp_path: Path, what: str) -> None:
    signer = generate_signer()
    for i in range(ROUNDS):
        run = tmp_path / str(i)
        if what == "open":
            make_run(run, 20, checkpoint_every=8, close=False, signer=signer)
        outcome = race(what, run, signer)
        # a second opener may also win, once the first has closed: it then resumes
        # the closed log after verifying it under the lock
        allowed = [["lost", "won"]] if what == "start" else [["lost", "won"], ["won", "won"]]
        assert outcome in allowed, (i, outcome)
        report = verify_run(run, pubkey=signer.verifier)
        assert report.closed, i
        assert sorted(p.name for p in run.iterdir()) == [
            "audit.jsonl",
            "checkpoint",
            "checkpoints.note",
        ]
