"""The run's end (governance/completion.py, Finish in GovernedTraining.tla) on real tiny
runs: sealed, replayable, not resumable, and checked by TLC (the pure counting is in
tests/unit/test_completion.py)."""

from __future__ import annotations

import pytest

from tests.conftest import needs_tlc


@pytest.mark.torch
def test_a_converged_run_ends_early_sealed_replayable_and_not_resumable(tmp_path) -> None:
    import copy

    from govtrain.audit.provenance import read_records
    from govtrain.audit.records import Record
    from govtrain.audit.verify import verify_run
    from govtrain.formal.replay import replay
    from govtrain.governance.errors import GovtrainError
    from govtrain.pipeline.trainer import GovernedTrainer
    from tests.conftest import train_tiny

    run = tmp_path / "run"
    trainer = train_tiny(
        run,
        governance__total_steps=200,
        governance__finish_window=5,
        governance__governor__signal_threshold=0.2,
    )
    summary = trainer.summary()
    assert summary.finished and summary.steps < 200
    assert set(summary.final_state.values()) == {"CONVERGED"}
    records = read_records(run / "audit.jsonl")
    steps = [r for r in records if r.kind == "step"]
    assert len(steps) == summary.steps
    assert [t["action"] for t in steps[-1].body["transitions"]][-1] == "Finish"
    assert sum(t["action"] == "Finish" for s in steps for t in s.body["transitions"]) == 1
    end = next(r for r in records if r.kind == "run_end")
    assert end.body == {
        "status": "ok",
        "steps": summary.steps,
        "finished_at": summary.steps,
        "steps_saved": 200 - summary.steps,
    }
    assert any(r.kind == "eval" and r.body["step"] == summary.steps for r in records)
    assert verify_run(run).closed
    assert replay(records).ok

    # a step recorded after the Finish is a divergence
    extra = copy.deepcopy(steps[-1].body)
    extra["step"] += 1
    forged = [*records[: records.index(steps[-1]) + 1], Record(0, "step", "", extra, b"")]
    report = replay(forged)
    assert not report.ok and "after the run finished" in report.divergence.what

    before = (run / "audit.jsonl").read_bytes()
    with pytest.raises(GovtrainError, match="nothing left to train"):
        GovernedTrainer.resume(run)
    assert (run / "audit.jsonl").read_bytes() == before


@pytest.mark.torch
@needs_tlc
def test_tlc_accepts_a_finished_run_and_rejects_a_moved_finish(tmp_path) -> None:
    import copy

    from govtrain.formal.trace import export_trace, read_trace, validate_trace
    from tests.conftest import tlc_toolchain, train_tiny

    run = tmp_path / "run"
    train_tiny(
        run,
        governance__total_steps=200,
        governance__finish_window=5,
        governance__governor__signal_threshold=0.2,
    )
    trace = read_trace(export_trace(run))
    assert trace[-1]["actions"][-1] == "Finish" and trace[-1]["state"]["quiet"] == 5
    assert validate_trace(trace, toolchain=tlc_toolchain()).ok

    early = copy.deepcopy(trace)
    at = len(early) - 2  # one step before the real Finish
    early[at]["actions"] = [*early[at]["actions"], "Finish"]
    bad = validate_trace(early, toolchain=tlc_toolchain())
    assert not bad.ok and bad.mismatch is not None and bad.mismatch.line == at + 1
