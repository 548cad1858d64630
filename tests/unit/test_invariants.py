"""Each invariant branch rejects a hand-built bad step (found missing by mutation testing)."""

from __future__ import annotations

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.invariants import BudgetWithinBounds, Checked, TypeOK
from govtrain.governance.state import GovernanceState, GroupState, Phase
from govtrain.governance.step import Decision, decide

OK = Decision((2, 2, 0), (2, 2, 0), "Allocate", False)


def state(level: int = 0) -> GovernanceState:
    return GovernanceState(
        1, level, (GroupState(Phase.ACTIVE), GroupState(Phase.ACTIVE), GroupState(Phase.DORMANT))
    )


def test_typeok_holds_for_a_good_step(small_cfg: GovernanceConfig) -> None:
    assert TypeOK(Checked(None, state(), OK, small_cfg)) is None


def test_typeok_rejects_each_bad_shape(small_cfg: GovernanceConfig) -> None:
    assert "active level" in TypeOK(Checked(None, state(level=2), OK, small_cfg))
    short = Decision((2, 2, 0), (2, 2), "Allocate", False)
    assert "every group" in TypeOK(Checked(None, state(), short, small_cfg))
    negative = Decision((2, -1, 0), (2, 0, 0), "Allocate", False)
    assert "naturals" in TypeOK(Checked(None, state(), negative, small_cfg))


def test_allocation_below_the_floor_is_caught(small_cfg: GovernanceConfig) -> None:
    low = Decision((0, 4, 0), (0, 4, 0), "Allocate", False)  # floor is 1
    assert "floor" in BudgetWithinBounds(Checked(None, state(), low, small_cfg))
    rationed = Decision((0, 4, 0), (0, 4, 0), "Ration", False)  # floors waived when rationing
    assert BudgetWithinBounds(Checked(None, state(), rationed, small_cfg)) is None


def test_decide_names_the_budget_action(small_cfg: GovernanceConfig) -> None:
    assert decide(state(), [1.0, 1.0, 1.0], small_cfg).budget_action == "Allocate"
    tight = small_cfg.model_copy(
        update={"budget": small_cfg.budget.model_copy(update={"master": 1})}
    )
    assert decide(state(), [1.0, 1.0, 1.0], tight).budget_action == "Ration"
