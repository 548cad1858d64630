"""The hierarchy activator: gated, emergency, one level at a time, never backwards."""

from __future__ import annotations

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.hierarchy import activate_levels, gate_open
from govtrain.governance.state import GovernanceState, GroupState, Phase

C, A, D = Phase.CONVERGED, Phase.ACTIVE, Phase.DORMANT


def state(clock: int, level: int, *phases: Phase) -> GovernanceState:
    return GovernanceState(clock, level, tuple(GroupState(p, seen_high=p is C) for p in phases))


def test_gate_needs_every_lower_group_converged(small_cfg: GovernanceConfig) -> None:
    assert not gate_open(state(1, 0, C, A, D), small_cfg)
    assert gate_open(state(1, 0, C, C, D), small_cfg)


def test_gated_activation(small_cfg: GovernanceConfig) -> None:
    new, transitions = activate_levels(state(1, 0, C, C, D), small_cfg)
    assert new.active_level == 1
    assert new.groups[2] == GroupState(Phase.ACTIVE)
    assert [(t.action, t.group, t.before, t.after) for t in transitions] == [
        ("ActivateLevel", None, "0", "1"),
        ("Activate", "head", "DORMANT", "ACTIVE"),
    ]


def test_no_activation_before_gate_or_deadline(small_cfg: GovernanceConfig) -> None:
    s = state(small_cfg.deadline(1) - 1, 0, C, A, D)
    assert activate_levels(s, small_cfg) == (s, ())


def test_emergency_activation_at_deadline(small_cfg: GovernanceConfig) -> None:
    new, transitions = activate_levels(state(small_cfg.deadline(1), 0, A, A, D), small_cfg)
    assert new.active_level == 1 and transitions[0].action == "ActivateLevel"


def test_top_level_stays(small_cfg: GovernanceConfig) -> None:
    s = state(4, 1, C, C, C)
    assert activate_levels(s, small_cfg) == (s, ())


def test_one_level_per_step_even_when_two_are_due(small_cfg: GovernanceConfig) -> None:
    cfg = small_cfg.model_copy(
        update={
            "hierarchy": small_cfg.hierarchy.model_copy(update={"levels": 3}),
            "groups": (
                small_cfg.groups[0],
                small_cfg.groups[1].model_copy(update={"level": 1}),
                small_cfg.groups[2].model_copy(update={"level": 2}),
            ),
        }
    )
    s = state(cfg.horizon, 0, A, D, D)  # both deadlines have passed
    s1, _ = activate_levels(s, cfg)
    assert s1.active_level == 1 and s1.groups[2].phase is D
    s2, _ = activate_levels(s1, cfg)
    assert s2.active_level == 2


def test_reawakened_lower_group_closes_the_gate(small_cfg: GovernanceConfig) -> None:
    s = GovernanceState(
        1, 0, (GroupState(C, True), GroupState(Phase.AWAKENED, awakenings=1), GroupState(D))
    )
    assert activate_levels(s, small_cfg) == (s, ())


def test_a_fractional_deadline_rounds_up(small_cfg: GovernanceConfig) -> None:
    """Every shipped config has whole deadlines, where rounding cannot show: at 10 steps
    the emergency point is 0.75 x 10 = 7.5, so level 1 is forced on at step 8, not 7
    (the spec's Deadline is the same integer ceiling)."""
    cfg = small_cfg.model_copy(update={"total_steps": 10})
    assert cfg.deadline(1) == 8 and cfg.horizon == 8
    before, _ = activate_levels(state(7, 0, A, A, D), cfg)
    at, _ = activate_levels(state(8, 0, A, A, D), cfg)
    assert (before.active_level, at.active_level) == (0, 1)
    three = cfg.model_copy(update={"hierarchy": cfg.hierarchy.model_copy(update={"levels": 3})})
    assert [three.deadline(k) for k in (1, 2)] == [4, 8]  # 3.75 -> 4, 7.5 -> 8
