"""The gradient router: quotas from allocations, warmup, deterministic top-k."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import ObservationError
from govtrain.governance.routing import applied_quota, in_warmup, quota, route
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import govern, initial_state


def state(clock: int, *phases: Phase) -> GovernanceState:
    return GovernanceState(clock, 0, tuple(GroupState(p) for p in phases))


def test_warmup_routes_the_whole_batch(small_cfg: GovernanceConfig) -> None:
    s = state(0, Phase.ACTIVE, Phase.CONVERGED, Phase.DORMANT)
    assert in_warmup(s, small_cfg)
    assert [quota(s, i, 1, small_cfg) for i in range(3)] == [small_cfg.router.batch_size, 0, 0]


def test_after_warmup_quota_is_the_allocation(small_cfg: GovernanceConfig) -> None:
    s = state(small_cfg.router.warmup_steps, Phase.ACTIVE, Phase.COOLING, Phase.DORMANT)
    assert not in_warmup(s, small_cfg)
    assert [quota(s, i, 3, small_cfg) for i in range(3)] == [3, 3, 0]


def test_route_picks_highest_scores_ties_to_lower_index() -> None:
    assert route([0.1, 0.9, 0.5, 0.9], 2) == (1, 3)
    assert route([1.0, 1.0, 1.0], 2) == (0, 1)
    assert route([3.0, 1.0], 0) == ()
    assert route([3.0, 1.0], 5) == (0, 1)


def test_route_rejects_non_finite_scores() -> None:
    with pytest.raises(ObservationError):
        route([1.0, float("nan")], 1)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=64), st.integers(0, 70))
def test_route_is_top_k(scores: list[float], k: int) -> None:
    chosen = route(scores, k)
    assert len(chosen) == min(k, len(scores)) and list(chosen) == sorted(set(chosen))
    rest = [i for i in range(len(scores)) if i not in chosen]
    for i in chosen:
        for j in rest:
            assert scores[i] > scores[j] or (scores[i] == scores[j] and i < j)


@given(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(0, 9))
def test_route_is_the_counting_top_k(scores: list[int], k: int) -> None:
    """GradientRouter's RoutedAreTopScoring on the code, written without its sort: sample i
    is routed exactly when fewer than k samples score higher or tie with it at a lower
    index."""
    chosen = set(route(scores, k))
    for i, s in enumerate(scores):
        ahead = sum(x > s for x in scores) + sum(x == s for x in scores[:i])
        assert (i in chosen) == (ahead < k)


def test_shadow_mode_applies_the_whole_batch_whatever_was_decided() -> None:
    """`train.mode: observe` applies nothing: every group sees every sample, frozen or
    not, whatever quota the decision holds (0, part of the batch, or more)."""
    for phase in Phase:
        s = state(5, phase, Phase.ACTIVE)
        for decided in (0, 1, 3, 4, 9):
            assert applied_quota(s, 0, decided, 4, enforced=False) == 4
        governed = applied_quota(s, 0, 3, 4, enforced=True)
        assert governed == (0 if s.frozen(0) else 3)


def test_a_warmup_past_the_last_deadline_still_ends(small_cfg: GovernanceConfig) -> None:
    """The clock saturates at the horizon, the later of the warmup and the last deadline:
    with the warmup (7 steps) past level 1's deadline (6), the clock must still reach 7,
    or the router would stay in its warmup for ever."""
    router = small_cfg.router.model_copy(update={"warmup_steps": 7})
    cfg = small_cfg.model_copy(update={"router": router})
    assert cfg.deadline(cfg.hierarchy.levels - 1) == 6 and cfg.horizon == 7
    s = initial_state(cfg)
    for _ in range(cfg.total_steps + 3):
        s = govern(s, [GroupObservation(1.0)] * len(cfg.groups), cfg).state
    assert s.clock == 7 and not in_warmup(s, cfg)
