"""The run's end (governance/completion.py, Finish in GovernedTraining.tla): counted in the
pure core, taken once, refused on resume, checked by replay."""

from __future__ import annotations

from dataclasses import replace

import pytest

from govtrain.governance import completion
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import govern
from tests.conftest import needs_tlc

C = Phase.CONVERGED


def at_top(cfg: GovernanceConfig, *phases: Phase, quiet: int = 0) -> GovernanceState:
    groups = tuple(GroupState(p, seen_high=True) for p in phases)
    return GovernanceState(cfg.horizon, cfg.hierarchy.levels - 1, groups, quiet)


def quiet_steps(cfg: GovernanceConfig, state: GovernanceState, wakes: list[float]):
    """Step a state through observations with low signals and these wake readings."""
    out = []
    for w in wakes:
        obs = [GroupObservation(0.0, wake=w)] * len(state.groups)
        result = govern(state, obs, cfg)
        out.append(result)
        state = result.state
    return out


@pytest.fixture
def windowed(small_cfg: GovernanceConfig) -> GovernanceConfig:
    return small_cfg.model_copy(update={"finish_window": 3})


def test_finish_is_taken_once_when_the_window_completes(windowed) -> None:
    # max_awakenings 1 and no wake: every group stays CONVERGED
    results = quiet_steps(windowed, at_top(windowed, C, C, C), [0.0] * 5)
    assert [r.state.quiet for r in results] == [1, 2, 3, 3, 3]
    finishes = [
        i for i, r in enumerate(results) if any(t.action == "Finish" for t in r.transitions)
    ]
    assert finishes == [2]
    assert [t.label for t in results[2].transitions] == ["Finish"]
    assert completion.finished(results[2].state, windowed)


def test_a_firing_wake_probe_restarts_the_count(windowed) -> None:
    spent = [GroupState(C, seen_high=True, awakenings=1)] * 3  # cannot awaken any more
    state = replace(at_top(windowed, C, C, C), groups=tuple(spent))
    wake = windowed.governor.wake_threshold
    results = quiet_steps(windowed, state, [0.0, 0.0, wake, 0.0])
    assert [r.state.quiet for r in results] == [1, 2, 0, 1]
    assert all(r.state.groups == state.groups for r in results)  # nobody woke, yet no Finish


def test_a_trainable_group_or_an_inactive_level_counts_nothing(windowed) -> None:
    cooling = at_top(windowed, C, C, Phase.COOLING)
    assert quiet_steps(windowed, cooling, [0.0])[0].state.quiet == 0
    below = replace(at_top(windowed, C, C, C), active_level=0)
    assert not completion.nothing_to_train(below, windowed)


def test_an_awakening_resets_the_count(windowed) -> None:
    state = at_top(windowed, C, C, C, quiet=2)
    obs = [GroupObservation(0.0, wake=windowed.governor.wake_threshold)] + [
        GroupObservation(0.0)
    ] * 2
    result = govern(state, obs, windowed)
    assert result.state.groups[0].phase is Phase.AWAKENED and result.state.quiet == 0
    assert all(t.action != "Finish" for t in result.transitions)


def test_window_zero_never_finishes(small_cfg) -> None:
    no_end = small_cfg.model_copy(update={"finish_window": 0})
    results = quiet_steps(no_end, at_top(no_end, C, C, C), [0.0] * 4)
    assert {r.state.quiet for r in results} == {0}
    assert not any(t.action == "Finish" for r in results for t in r.transitions)


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
