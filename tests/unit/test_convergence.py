"""The convergence governor: every transition and every guard."""

from __future__ import annotations

import pytest

from govtrain.governance.config import GovernanceConfig, GovernorConfig
from govtrain.governance.convergence import activate, observe
from govtrain.governance.state import GroupState, Phase

LOW, HIGH = False, True


@pytest.fixture
def gov(small_cfg: GovernanceConfig) -> GovernorConfig:
    return small_cfg.governor  # patience 2, max_awakenings 1


def run(gov: GovernorConfig, group: GroupState, signals: list[bool], wake: bool = False):
    actions = []
    for high in signals:
        group, action = observe(group, high, wake, gov)
        actions.append(action)
    return group, actions


def test_dormant_ignores_everything(gov: GovernorConfig) -> None:
    g = GroupState(Phase.DORMANT)
    assert observe(g, HIGH, True, gov) == (g, None)
    assert observe(g, LOW, False, gov) == (g, None)


def test_activate_starts_cold_and_keeps_awakening_count() -> None:
    assert activate(GroupState(Phase.DORMANT, awakenings=1)) == GroupState(
        Phase.ACTIVE, seen_high=False, lows=0, awakenings=1
    )


def test_learn_marks_first_high_only(gov: GovernorConfig) -> None:
    g, actions = run(gov, GroupState(Phase.ACTIVE), [HIGH, HIGH])
    assert g == GroupState(Phase.ACTIVE, seen_high=True)
    assert actions == ["Learn", None]


def test_no_cooling_from_cold(gov: GovernorConfig) -> None:
    g, actions = run(gov, GroupState(Phase.ACTIVE), [LOW] * 10)
    assert g.phase is Phase.ACTIVE and actions == [None] * 10


def test_full_path_to_converged(gov: GovernorConfig) -> None:
    g, actions = run(gov, GroupState(Phase.ACTIVE), [HIGH, LOW, LOW, LOW])
    assert actions == ["Learn", "BeginCooling", "Cool", "Converge"]
    assert g == GroupState(Phase.CONVERGED, seen_high=True)


def test_patience_counts_lows_while_cooling(small_cfg: GovernanceConfig) -> None:
    gov = small_cfg.governor.model_copy(update={"patience": 3})
    g, actions = run(gov, GroupState(Phase.COOLING, seen_high=True), [LOW, LOW])
    assert g == GroupState(Phase.COOLING, seen_high=True, lows=2)
    assert actions == ["Cool", "Cool"]
    g, actions = run(gov, g, [LOW])
    assert g.phase is Phase.CONVERGED and actions == ["Converge"]


def test_patience_one_converges_on_first_low(small_cfg: GovernanceConfig) -> None:
    gov = small_cfg.governor.model_copy(update={"patience": 1})
    g, actions = run(gov, GroupState(Phase.COOLING, seen_high=True), [LOW])
    assert g.phase is Phase.CONVERGED and actions == ["Converge"]


def test_reheat_resets_lows(gov: GovernorConfig) -> None:
    g, actions = run(gov, GroupState(Phase.COOLING, seen_high=True, lows=1), [HIGH])
    assert g == GroupState(Phase.ACTIVE, seen_high=True, lows=0)
    assert actions == ["Reheat"]


def test_converged_stays_without_wake(gov: GovernorConfig) -> None:
    g = GroupState(Phase.CONVERGED, seen_high=True)
    assert observe(g, HIGH, False, gov) == (g, None)


def test_awaken_is_bounded(gov: GovernorConfig) -> None:
    g = GroupState(Phase.CONVERGED, seen_high=True)
    g, action = observe(g, LOW, True, gov)
    assert action == "Awaken"
    assert g == GroupState(Phase.AWAKENED, seen_high=False, lows=0, awakenings=1)
    g, actions = run(gov, g, [HIGH, LOW, LOW, LOW])
    assert actions == ["Learn", "BeginCooling", "Cool", "Converge"]
    assert observe(g, LOW, True, gov) == (g, None)  # max_awakenings = 1 reached


def test_awakened_must_learn_again_before_cooling(gov: GovernorConfig) -> None:
    g, actions = run(gov, GroupState(Phase.AWAKENED, awakenings=1), [LOW] * 5)
    assert g.phase is Phase.AWAKENED and actions == [None] * 5
