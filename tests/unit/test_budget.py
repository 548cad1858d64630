"""The federated budget: proportional, integer, conserving, zero for frozen groups."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from govtrain.governance.budget import NEED_BITS, allocate, need_grid
from govtrain.governance.config import BudgetConfig


def cfg(master: int, floor: int, ceiling: int) -> BudgetConfig:
    return BudgetConfig(master=master, floor=floor, ceiling=ceiling)


def test_frozen_groups_get_nothing() -> None:
    alloc = allocate([1.0, None, 1.0], cfg(10, 1, 10))
    assert alloc.units == (5, 0, 5) and alloc.action == "Allocate"


def test_no_eligible_group_allocates_nothing() -> None:
    assert allocate([None, None], cfg(10, 1, 10)).units == (0, 0)


def test_proportional_to_weight() -> None:
    assert allocate([3.0, 1.0], cfg(8, 0, 8)).units == (6, 2)


def test_floors_first_then_dhondt() -> None:
    # floors 2 each; the 6 left go 5:1 by D'Hondt at weights 3:1 (the sixth unit ties 1 vs 1
    # and goes to the group with fewer units)
    assert allocate([3.0, 1.0], cfg(10, 2, 10)).units == (7, 3)


def test_ceiling_caps_and_the_rest_flows_on() -> None:
    assert allocate([100.0, 1.0, 1.0], cfg(12, 0, 5)).units == (5, 4, 3)


def test_surplus_over_all_ceilings_stays_unallocated() -> None:
    alloc = allocate([1.0, 2.0], cfg(100, 1, 7))
    assert alloc.units == (7, 7)


def test_ties_go_to_fewer_units_then_lower_index() -> None:
    assert allocate([1.0, 1.0, 1.0], cfg(4, 0, 4)).units == (2, 1, 1)
    assert allocate([0.0, 0.0, 0.0], cfg(5, 0, 5)).units == (2, 2, 1)


def test_exact_arithmetic_decides_ties() -> None:
    # Weights 27/100 and 9/100: the third unit is an exact tie (27/100 / 3 == 9/100) and
    # goes to the group with fewer units. In floats 0.27 / 3 > 0.09, so an allocator that
    # divided floats would give all three units to the first group.
    assert 0.27 / 3 > 0.09
    assert allocate([Fraction("0.27"), Fraction("0.09")], cfg(3, 0, 3)).units == (2, 1)


def test_infeasible_floors_ration_equally() -> None:
    alloc = allocate([1.0, 5.0, 2.0], cfg(7, 3, 5))
    assert alloc.action == "Ration"
    assert alloc.units == (2, 3, 2)  # 7 // 3 = 2 each, remainder to the heaviest


weights = st.lists(
    st.one_of(st.none(), st.floats(0, 100, allow_nan=False, allow_infinity=False)),
    min_size=1,
    max_size=8,
)


@given(weights, st.integers(1, 60), st.integers(0, 10), st.integers(1, 20))
def test_allocation_invariants(ws: list, master: int, floor: int, ceiling: int) -> None:
    floor = min(floor, ceiling)
    b = cfg(master, floor, ceiling)
    alloc = allocate(ws, b)
    eligible = [i for i, w in enumerate(ws) if w is not None]
    assert sum(alloc.units) <= master  # BudgetConserved
    assert all(alloc.units[i] == 0 for i, w in enumerate(ws) if w is None)  # NoBudgetForFrozen
    assert all(u <= ceiling for u in alloc.units)
    if sum(alloc.units) < master:  # BudgetWorkConserving
        assert all(alloc.units[i] == ceiling for i in eligible)
    if alloc.action == "Allocate":
        assert all(alloc.units[i] >= floor for i in eligible)
    else:
        assert len(eligible) * floor > master
        shares = [alloc.units[i] for i in eligible]
        assert max(shares) - min(shares) <= 1


@given(st.lists(st.floats(0.01, 50), min_size=2, max_size=6), st.integers(1, 40))
def test_more_weight_never_means_fewer_units(ws: list[float], master: int) -> None:
    units = allocate(ws, cfg(master, 0, 40)).units
    for i in range(len(ws)):
        for j in range(len(ws)):
            if Fraction(ws[i]) > Fraction(ws[j]):
                assert units[i] >= units[j]


def test_equal_weights_tie_exactly_through_decide(small_cfg) -> None:
    """need 3 x multiplier 0.1 and need 1 x multiplier 0.3 are the same weight, 3/10."""
    from govtrain.governance.state import GovernanceState, GroupState, Phase
    from govtrain.governance.step import decide

    gov = small_cfg.governor.model_copy(
        update={"multipliers": {Phase.ACTIVE: 0.3, Phase.COOLING: 0.1, Phase.AWAKENED: 1.0}}
    )
    budget = small_cfg.budget.model_copy(update={"master": 5})
    cfg = small_cfg.model_copy(update={"governor": gov, "budget": budget})
    s = GovernanceState(
        3, 0, (GroupState(Phase.COOLING, True), GroupState(Phase.ACTIVE), GroupState(Phase.DORMANT))
    )
    # an exact tie: the odd unit goes to the lower index (in floats 3 * 0.1 > 0.3)
    assert decide(s, [3.0, 1.0, 1.0], cfg).allocations == (3, 2, 0)
    # the needs on one grid of 2**16 steps per binade of the largest (3: steps of 2**-14)
    assert decide(s, [3.0, 1.0 + 2**-14, 1.0], cfg).allocations == (2, 3, 0)
    assert decide(s, [3.0, 1.0 + 2**-16, 1.0], cfg).allocations == (3, 2, 0)


@given(st.lists(st.one_of(st.none(), st.floats(0, 1e6)), min_size=1, max_size=6))
def test_the_need_grid_keeps_order_and_bounds(needs: list[float | None]) -> None:
    grid = need_grid(needs)
    assert [g is None for g in grid] == [n is None for n in needs]
    known = [(n, g) for n, g in zip(needs, grid, strict=True) if n is not None]
    assert all(0 <= g <= 2**NEED_BITS for _, g in known)
    for a, ga in known:
        for b, gb in known:
            if a <= b:
                assert ga <= gb  # rounding may tie, never reorder
    top = max((n for n, _ in known), default=0)
    if top > 0:
        assert max(g for _, g in known) >= 2 ** (NEED_BITS - 1)  # full precision at the top


@given(st.lists(st.integers(0, 200), min_size=1, max_size=6))
def test_small_integer_needs_keep_exact_ratios(needs: list[int]) -> None:
    grid = need_grid([float(n) for n in needs])
    for a, ga in zip(needs, grid, strict=True):
        for b, gb in zip(needs, grid, strict=True):
            assert a * gb == b * ga


@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=5),
    st.integers(1, 30),
    st.integers(0, 3),
    st.integers(3, 12),
)
def test_allocate_is_dhondt_optimal(ws: list[int], master: int, floor: int, ceiling: int) -> None:
    """FederatedBudget's HandoutIsOptimal on the code, written without its heap: no group
    that could take one more unit has a better claim (w / (won + 1)) than any group had
    to the last unit it won (w / won)."""
    c = cfg(master, floor, ceiling)
    alloc = allocate(ws, c)
    if alloc.action != "Allocate":
        return
    u = alloc.units
    for g in range(len(ws)):
        for h in range(len(ws)):
            if u[g] < ceiling and u[h] > floor:
                assert ws[g] * (u[h] - floor) <= ws[h] * (u[g] - floor + 1), (u, g, h)


def test_the_need_grid_rounds_to_nearest_not_down() -> None:
    """0.7 on the grid of a top need of 1.0 (2**15 per unit) is 22937.6: 22938, never the
    truncated 22937; an exact half goes to the even neighbour."""
    assert need_grid([1.0, 0.7]) == (2**15, 22938)
    assert need_grid([1.0, 0.7, None]) == (2**15, 22938, None)
    half = 2.5 / 2**15  # exactly 2.5 grid units: to even, 2
    assert need_grid([1.0, half]) == (2**15, 2)
    assert need_grid([1.0, 3.5 / 2**15]) == (2**15, 4)
