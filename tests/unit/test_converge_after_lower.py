"""ConvergeAfterLower (`hierarchy.converge_after_lower`): a group converges only once every
group at a lower level has; until then a patient group waits, still cooling and training."""

from __future__ import annotations

import copy

import pytest

from govtrain.governance import hierarchy
from govtrain.governance.config import parse_governance
from govtrain.governance.invariants import Checked, ConvergeAfterLower
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import decide, govern
from tools.tiny import tiny_run

LOW, HIGH = GroupObservation(0.0, 0.0), GroupObservation(1.0, 0.0)


def config(in_order: bool):
    raw = copy.deepcopy(tiny_run()["governance"])
    raw["hierarchy"]["converge_after_lower"] = in_order
    return parse_governance(raw)  # embed, block0 at level 0; top at level 1


def state(*phases: Phase, lows: int = 0) -> GovernanceState:
    groups = tuple(GroupState(p, seen_high=True, lows=lows if p is Phase.COOLING else 0)
                   for p in phases)  # fmt: skip
    return GovernanceState(clock=25, active_level=1, groups=groups)


def test_a_patient_group_waits_for_the_groups_below_and_keeps_training() -> None:
    cfg = config(in_order=True)
    patient = cfg.governor.patience - 1  # the next low would converge it
    s = state(Phase.CONVERGED, Phase.ACTIVE, Phase.COOLING, lows=patient)
    result = govern(s, [LOW, HIGH, LOW], cfg)
    top = result.state.groups[2]
    assert top.phase is Phase.COOLING and top.lows == patient
    assert not [t for t in result.transitions if t.group == "top"]
    assert result.decision.allocations[2] > 0  # still trained
    # once every group below has converged, the next low converges it
    s = state(Phase.CONVERGED, Phase.CONVERGED, Phase.COOLING, lows=patient)
    result = govern(s, [LOW, LOW, LOW], cfg)
    assert result.state.groups[2].phase is Phase.CONVERGED


def test_groups_of_one_level_converge_in_any_order() -> None:
    cfg = config(in_order=True)
    s = state(Phase.ACTIVE, Phase.COOLING, Phase.ACTIVE, lows=cfg.governor.patience - 1)
    assert hierarchy.converge_after_lower(s, 1, cfg)
    assert govern(s, [HIGH, LOW, HIGH], cfg).state.groups[1].phase is Phase.CONVERGED


def test_off_by_default_today_s_rule() -> None:
    cfg = config(in_order=False)
    s = state(Phase.ACTIVE, Phase.ACTIVE, Phase.COOLING, lows=cfg.governor.patience - 1)
    assert govern(s, [HIGH, HIGH, LOW], cfg).state.groups[2].phase is Phase.CONVERGED


@pytest.mark.parametrize("in_order", [True, False])
def test_the_invariant_names_an_early_convergence(in_order: bool) -> None:
    cfg = config(in_order)
    pre = state(Phase.ACTIVE, Phase.ACTIVE, Phase.COOLING, lows=1)
    post = state(Phase.ACTIVE, Phase.ACTIVE, Phase.CONVERGED)
    found = ConvergeAfterLower(Checked(pre, post, decide(post, [1.0] * 3, cfg), cfg))
    assert (found is not None) == in_order
    if in_order:
        assert found is not None and "group top" in found
