"""The composed step: property tests drive random observation sequences through it (the same
decisions in separate interpreters: tests/integration/test_step.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from govtrain.governance.config import GovernanceConfig, parse_governance
from govtrain.governance.errors import ObservationError
from govtrain.governance.invariants import INVARIANTS, Checked, violations
from govtrain.governance.state import ACTIONS, GroupObservation, Phase
from govtrain.governance.step import decide, govern, initial_state
from tests.conftest import examples


@st.composite
def configs(draw: st.DrawFn) -> GovernanceConfig:
    levels = draw(st.integers(1, 3))
    n = draw(st.integers(levels, 5))
    group_levels = list(range(levels)) + [
        draw(st.integers(0, levels - 1)) for _ in range(n - levels)
    ]
    batch = draw(st.integers(1, 16))
    floor = draw(st.integers(0, 4))
    total = draw(st.integers(2, 40))
    return parse_governance(
        {
            "total_steps": total,
            "groups": [
                {"name": f"g{i}", "patterns": [f"g{i}.*"], "level": lvl}
                for i, lvl in enumerate(sorted(group_levels))
            ],
            "governor": {
                "signal_threshold": 0.1,
                "window": 2,
                "patience": draw(st.integers(1, 4)),
                "wake_threshold": 0.5,
                "max_awakenings": draw(st.integers(0, 2)),
                "multipliers": {
                    "ACTIVE": draw(st.sampled_from([0.0, 1.0, 2.5])),
                    "COOLING": draw(st.sampled_from([0.0, 0.5, 1.0])),
                    "AWAKENED": draw(st.sampled_from([1.0, 3.0])),
                },
            },
            "hierarchy": {"levels": levels, "emergency_fraction": draw(st.floats(0.05, 1.0))},
            "budget": {
                "master": draw(st.integers(1, 50)),
                "floor": min(floor, batch),
                "ceiling": draw(st.integers(max(1, min(floor, batch)), batch)),
            },
            "router": {"batch_size": batch, "warmup_steps": draw(st.integers(0, total - 1))},
        }
    )


def observations(n: int) -> st.SearchStrategy:
    value = st.floats(0, 1, allow_nan=False)
    return st.lists(
        st.builds(GroupObservation, signal=value, wake=value, need=st.floats(0, 10)),
        min_size=n,
        max_size=n,
    )


class GovernedSteps(RuleBasedStateMachine):
    """Random configs, random observation streams; every invariant after every step."""

    @initialize(cfg=configs())
    def start(self, cfg: GovernanceConfig) -> None:
        self.cfg = cfg
        self.state = initial_state(cfg)
        self.checked = Checked(
            None, self.state, decide(self.state, [1.0] * len(cfg.groups), cfg), cfg
        )

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        obs = data.draw(observations(len(self.cfg.groups)))
        result = govern(self.state, obs, self.cfg)
        self.checked = Checked(self.state, result.state, result.decision, self.cfg)
        for t in result.transitions:
            assert t.action in ACTIONS
        self.state = result.state

    @invariant()
    def all_invariants_hold(self) -> None:
        if hasattr(self, "checked"):
            assert violations(self.checked) == []


TestGovernedSteps = GovernedSteps.TestCase
TestGovernedSteps.settings = settings(
    max_examples=examples(150),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_initial_state_has_level_zero_active(small_cfg: GovernanceConfig) -> None:
    s = initial_state(small_cfg)
    assert (s.clock, s.active_level) == (0, 0)
    assert [g.phase for g in s.groups] == [Phase.ACTIVE, Phase.ACTIVE, Phase.DORMANT]


def test_a_scripted_run(small_cfg: GovernanceConfig) -> None:
    """Both level-0 groups learn then go quiet; the head activates once they converge."""
    s = initial_state(small_cfg)
    hi, lo = GroupObservation(1.0), GroupObservation(0.0)
    script = [(hi, hi, lo), (lo, lo, lo), (lo, lo, lo), (lo, lo, lo)]
    seen = []
    for obs in script:
        r = govern(s, obs, small_cfg)
        seen.append([(t.action, t.group) for t in r.transitions])
        s = r.state
    assert seen == [
        [("Learn", "embed"), ("Learn", "body")],
        [("BeginCooling", "embed"), ("BeginCooling", "body")],
        [("Cool", "embed"), ("Cool", "body")],
        [
            ("Converge", "embed"),
            ("Converge", "body"),
            ("ActivateLevel", None),
            ("Activate", "head"),
        ],
    ]
    assert [g.phase for g in s.groups] == [Phase.CONVERGED, Phase.CONVERGED, Phase.ACTIVE]
    r = govern(s, (lo, lo, GroupObservation(0.0, need=2.0)), small_cfg)
    # only the head is eligible: it takes up to its ceiling, frozen groups get nothing
    assert r.decision.allocations == (0, 0, small_cfg.budget.ceiling)
    assert r.decision.quotas == (0, 0, small_cfg.budget.ceiling)


def test_decisions_take_effect_next_step(small_cfg: GovernanceConfig) -> None:
    """The decision returned with step t's state is the one step t+1 uses (warmup ends on time)."""
    s = initial_state(small_cfg)
    first = decide(s, [1.0, 1.0, 1.0], small_cfg)
    assert first.warmup and first.quotas[:2] == (4, 4)
    r = govern(s, [GroupObservation(1.0)] * 3, small_cfg)
    assert not r.decision.warmup and r.decision.allocations[:2] == (3, 3)


@pytest.mark.parametrize(
    "bad",
    [
        [GroupObservation(math.nan)] * 3,
        [GroupObservation(0.1, wake=math.inf)] * 3,
        [GroupObservation(0.1, need=-1.0)] * 3,
        [GroupObservation(0.1)] * 2,
    ],
)
def test_bad_observations_are_rejected(small_cfg: GovernanceConfig, bad: list) -> None:
    with pytest.raises(ObservationError):
        govern(initial_state(small_cfg), bad, small_cfg)


def test_every_named_invariant_is_registered() -> None:
    assert set(INVARIANTS) == {
        "TypeOK",
        "NoCoolingFromCold",
        "AwakeningsBounded",
        "LevelsMonotone",
        "NoSkippedLevels",
        "DormantAboveLevel",
        "ActivationGated",
        "FinishOnlyWhenAllConverged",
        "BudgetConserved",
        "BudgetWithinBounds",
        "BudgetWorkConserving",
        "NoBudgetForFrozen",
        "QuotaWithinBatch",
        "FrozenGetsNoGradient",
        "ComputedIsNotDormant",
        "ComputedNeverShrinks",
        "ConvergeAfterLower",
        "ConvergeAfterUpper",
    }
