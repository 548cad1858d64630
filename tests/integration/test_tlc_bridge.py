"""The TLC bridge running TLC: a failing model and a timeout (finding TLC, exit codes and
reading TLC's output from fixtures: tests/unit/test_tlc_bridge.py)."""

from __future__ import annotations

from govtrain.formal.output import Outcome
from govtrain.formal.toolchain import run_tlc
from tests.conftest import ROOT, needs_tlc


@needs_tlc
def test_run_tlc_on_a_failing_model():
    r = run_tlc(
        ROOT / "specs" / "MCConvergenceGovernor.tla",
        ROOT / "specs" / "MCConvergenceGovernor_NoColdGuard.cfg",
        workers=1,
        timeout=120,
    )
    assert r.outcome is Outcome.INVARIANT_VIOLATED and r.violated == "NoCoolingFromCold"
    assert r.exit_code == 12 and r.distinct_states == 4
    assert "-workers" in r.command and "-metadir" in r.command and "-config" in r.command


@needs_tlc
def test_run_tlc_timeout():
    r = run_tlc(
        ROOT / "specs" / "AuditChain.tla",
        ROOT / "specs" / "MCAuditChain_Large.cfg",
        workers=1,
        timeout=3,
    )
    assert r.outcome is Outcome.TIMEOUT
    assert r.wall_s is not None and r.wall_s < 30
