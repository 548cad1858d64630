"""ConvergeAfterUpper (`hierarchy.converge_after_upper`): a group's lows count towards its
patience, and so it may converge, only while no level above it is DORMANT."""

from __future__ import annotations

import copy

import pytest

from govtrain.governance import hierarchy
from govtrain.governance.config import parse_governance
from govtrain.governance.explore import explore
from govtrain.governance.invariants import Checked, ConvergeAfterUpper
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import decide, govern, initial_state
from tools.tiny import tiny_run

LOW, HIGH = GroupObservation(0.0, 0.0), GroupObservation(1.0, 0.0)


def config(after_upper: bool, **hierarchy_cfg):
    raw = copy.deepcopy(tiny_run()["governance"])
    raw["hierarchy"] |= {"converge_after_upper": after_upper, **hierarchy_cfg}
    return parse_governance(raw)  # embed, block0 at level 0; top at level 1


def state(*phases: Phase, lows: int = 0, level: int = 0, clock: int = 5) -> GovernanceState:
    groups = tuple(GroupState(p, seen_high=True, lows=lows if p is Phase.COOLING else 0)
                   for p in phases)  # fmt: skip
    return GovernanceState(clock=clock, active_level=level, groups=groups)


def test_under_a_dormant_level_a_low_is_no_evidence() -> None:
    """block0 is COOLING, its signal low, patience one low away: with top DORMANT it
    neither counts the low nor converges; it stays COOLING and keeps its budget."""
    cfg = config(True)
    patient = cfg.governor.patience - 1
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=patient)
    result = govern(s, [HIGH, LOW, LOW], cfg)
    block0 = result.state.groups[1]
    assert block0.phase is Phase.COOLING and block0.lows == patient
    assert not [t for t in result.transitions if t.group == "block0"]
    assert result.decision.allocations[1] > 0
    fresh = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=0)
    assert govern(fresh, [HIGH, LOW, LOW], cfg).state.groups[1].lows == 0


def test_once_the_level_above_is_active_lows_count_again() -> None:
    cfg = config(True)
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.ACTIVE, lows=0, level=1)
    result = govern(s, [HIGH, LOW, HIGH], cfg)
    assert result.state.groups[1].lows == 1
    assert [t.action for t in result.transitions if t.group == "block0"] == ["Cool"]
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.ACTIVE, lows=cfg.governor.patience - 1, level=1)
    assert govern(s, [HIGH, LOW, HIGH], cfg).state.groups[1].phase is Phase.CONVERGED


def test_the_top_level_and_a_reheat_are_unaffected() -> None:
    cfg = config(True)
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.COOLING, lows=cfg.governor.patience - 1, level=1)
    assert hierarchy.converge_after_upper(s, 2, cfg)
    assert govern(s, [HIGH, HIGH, LOW], cfg).state.groups[2].phase is Phase.CONVERGED
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=0)
    reheated = govern(s, [HIGH, HIGH, LOW], cfg)
    assert reheated.state.groups[1].phase is Phase.ACTIVE
    assert [t.action for t in reheated.transitions if t.group == "block0"] == ["Reheat"]


def test_off_by_default_today_s_rule() -> None:
    cfg = config(False)
    assert not cfg.hierarchy.converge_after_upper
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=cfg.governor.patience - 1)
    assert govern(s, [HIGH, LOW, LOW], cfg).state.groups[1].phase is Phase.CONVERGED


def test_levels_then_activate_at_their_deadlines() -> None:
    """Nothing below the top converges while a level above is dormant, so the gate never
    opens: whatever the signals, top activates exactly at its deadline."""
    cfg = config(True)
    s = initial_state(cfg)
    for _ in range(cfg.deadline(1) - 1):
        s = govern(s, [LOW, LOW, LOW], cfg).state
        assert s.active_level == 0
        assert all(g.phase is not Phase.CONVERGED for g in s.groups)
    assert govern(s, [LOW, LOW, LOW], cfg).state.active_level == 1


@pytest.mark.parametrize("after_upper", [True, False])
def test_the_invariant_names_an_early_low_or_convergence(after_upper: bool) -> None:
    cfg = config(after_upper)
    pre = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=0)
    counted = state(Phase.ACTIVE, Phase.COOLING, Phase.DORMANT, lows=1)
    converged = state(Phase.ACTIVE, Phase.CONVERGED, Phase.DORMANT)
    for post in (counted, converged):
        found = ConvergeAfterUpper(Checked(pre, post, decide(post, [1.0] * 3, cfg), cfg))
        assert (found is not None) == after_upper
        if after_upper:
            assert found is not None and "group block0" in found


def test_the_explorer_holds_with_both_flags() -> None:
    """Every invariant, in every state the concrete explorer reaches, with the flag beside
    converge_after_lower (the benchmark's recipe)."""
    cfg = config(True, converge_after_lower=True, dormant="bypass", grow="stack")
    result = explore(cfg)
    assert result.violation is None
    assert all(g.lows == 0 or s.active_level == 1 for s in result.graph.nodes for g in s.groups)
