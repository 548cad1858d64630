"""The run's end (governance/completion.py, Finish in GovernedTraining.tla): counted in the
pure core and taken once (real runs, resume and replay: tests/integration/test_completion.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from govtrain.governance import completion
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import govern

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
