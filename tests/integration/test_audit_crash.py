"""Kill a writer with SIGKILL at random moments: the log must then verify (closed or not)
or report a torn tail, which repair cuts; the next writer resumes from there.

Each round forks a child that creates or resumes the run and appends records forever,
some of them 256 KiB so that a kill can land inside a write, and checkpoints every 7
records so that kills also land between a record and its note or inside an fsync.
Bounded by default (20 kills); GOVTRAIN_SLOW=1 runs 100.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from govtrain.audit.errors import TornTailError
from govtrain.audit.keys import Signer, generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.repair import repair_torn_tail
from govtrain.audit.verify import LOG_FILE, verify_run

KILLS = 100 if os.environ.get("GOVTRAIN_SLOW") else 20


def write_forever(run_dir: Path, signer: Signer, ready: int, seed: int) -> None:
    """The child: never returns."""
    try:
        rng = random.Random(seed)
        if (run_dir / LOG_FILE).exists():
            log = AuditLog.open(
                run_dir, signer=signer, checkpoint_every=7, fsync=FsyncPolicy.CHECKPOINT
            )
        else:
            log = AuditLog.create(
                run_dir, signer=signer, run_start={"seed": seed}, checkpoint_every=7
            )
        os.write(ready, b"r")
        step = 0
        while True:
            big = "x" * (256 * 1024) if rng.random() < 0.2 else ""
            log.append("step", {"step": step, "loss": rng.random(), "pad": big})
            step += 1
    finally:
        os._exit(1)


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_verifiable_log(tmp_path: Path) -> None:
    signer, rng = generate_signer(), random.Random(1234)
    outcomes = {"verified": 0, "torn": 0}
    for round_ in range(KILLS):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            write_forever(tmp_path, signer, ready_w, round_)
        os.close(ready_w)
        if rng.random() < 0.8:  # most kills while appending, some while creating or resuming
            os.read(ready_r, 1)
            time.sleep(rng.uniform(0, 0.03))
        else:
            time.sleep(rng.uniform(0, 0.01))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        if not (tmp_path / LOG_FILE).exists():
            continue  # killed before create published the log: nothing was written
        try:
            report = verify_run(tmp_path, pubkey=signer.verifier)
            outcomes["verified"] += 1
        except TornTailError:
            outcomes["torn"] += 1
            report, cuts = repair_torn_tail(tmp_path)
            assert cuts
            for cut in cuts:
                cut.backup.unlink()
        assert not report.closed and report.records >= 1
    final = AuditLog.open(tmp_path, signer=signer)
    final.close()
    report = verify_run(tmp_path, pubkey=signer.verifier)
    assert report.closed and sum(outcomes.values()) >= KILLS // 2, outcomes
