"""Probe measurements to observations: geometry signals, guards, and replay reading them."""

from __future__ import annotations

import json

import pytest

from govtrain.governance.readings import (
    Guard,
    Readings,
    collapsing,
    relative_change,
)
from govtrain.governance.state import GroupObservation, Phase
from govtrain.governance.step import govern, initial_state

A, C = Phase.ACTIVE, Phase.CONVERGED
RANK = "effective_rank"


def _readings(signal: str = "grad_norm", guard: Guard | None = None) -> Readings:
    return Readings(["g"], signal, guard, signal_threshold=0.05, wake_threshold=0.5)


def test_relative_change_and_collapse() -> None:
    assert relative_change(10.0, 12.0) == pytest.approx(0.2)
    assert relative_change(0.0, 3.0) == 0.0  # nothing to compare with
    assert collapsing(10.0, 7.0, 0.2) and not collapsing(10.0, 9.0, 0.2)
    assert not collapsing(10.0, 20.0, 0.2)  # a rising rank is not a collapse


def test_a_geometry_signal_is_the_change_between_the_last_two_readings_since_activation() -> None:
    r = _readings(RANK)
    assert r.observe("g", A, 0.9, 0.0, probed=False) == (0.0, 0.0)  # no reading yet
    r.read({"g": {RANK: 10.0}}, {"g": A})
    assert r.observe("g", A, 0.9, 0.0, probed=True)[0] == 0.0  # one reading: no change yet
    r.read({"g": {RANK: 12.0}}, {"g": A})
    assert r.observe("g", A, 0.9, 0.0, probed=True)[0] == pytest.approx(0.2)
    assert r.observe("g", A, 0.9, 0.0, probed=False)[0] == pytest.approx(0.2)  # held
    r.transition("Awaken", "g")
    assert r.observe("g", A, 0.9, 0.0, probed=False)[0] == 0.0  # history starts afresh


def test_a_geometry_wake_compares_with_the_reading_the_group_converged_on() -> None:
    r = _readings(RANK)
    for v in (10.0, 10.1):
        r.read({"g": {RANK: v}}, {"g": A})
    r.transition("Converge", "g")
    r.read({"g": {RANK: 15.15}}, {"g": C})
    assert r.observe("g", C, 0.0, 0.0, probed=True) == (0.0, pytest.approx(0.5))
    assert r.observe("g", C, 0.0, 0.0, probed=False) == (0.0, 0.0)  # only on the probe


def test_the_collapse_guard_lifts_a_low_signal_to_the_threshold() -> None:
    r = _readings("grad_norm", Guard(collapse=0.2, wake=0.3))
    for v in (10.0, 7.0):  # a 30% fall in rank
        r.read({"g": {RANK: v}}, {"g": A})
    assert r.observe("g", A, 0.01, 0.0, probed=True) == (0.05, 0.0)
    assert r.observe("g", A, 0.01, 0.0, probed=False) == (0.05, 0.0)  # until the next probe
    assert r.observe("g", A, 0.3, 0.0, probed=False) == (0.3, 0.0)  # never lowered
    r.read({"g": {RANK: 6.9}}, {"g": A})  # stable again
    assert r.observe("g", A, 0.01, 0.0, probed=True) == (0.01, 0.0)


def test_the_wake_guard_wakes_a_converged_group_whose_rank_moved() -> None:
    r = _readings("grad_norm", Guard(collapse=0.2, wake=0.3))
    r.read({"g": {RANK: 10.0}}, {"g": A})
    r.transition("Converge", "g")
    r.read({"g": {RANK: 12.0}}, {"g": C})  # 20%: within the tolerance
    assert r.observe("g", C, 0.0, 0.1, probed=True) == (0.0, 0.1)
    r.read({"g": {RANK: 6.0}}, {"g": C})  # 40%
    assert r.observe("g", C, 0.0, 0.1, probed=True) == (0.0, 0.5)


def test_a_collapsing_group_is_never_declared_converged(small_cfg) -> None:
    """Through the pure core: low gradient signals converge a group, unless its rank falls."""

    names = ["embed", "body", "head"]

    def run(guarded: bool) -> set[Phase]:
        r = Readings(
            names,
            "grad_norm",
            Guard(0.1, 1.0) if guarded else None,
            small_cfg.governor.signal_threshold,
            small_cfg.governor.wake_threshold,
        )
        state, seen = initial_state(small_cfg), set()
        for step in range(small_cfg.total_steps):
            phases = {n: g.phase for n, g in zip(names, state.groups, strict=True)}
            r.read({"body": {RANK: 20.0 * 0.8**step}}, phases)  # falls 20% per probe
            base = 1.0 if step < 1 else 0.0  # high once, then low: would converge
            obs = []
            for n, p in phases.items():
                signal, wake = r.observe(n, p, base, 0.0, probed=True)
                obs.append(GroupObservation(signal, wake, signal))
            result = govern(state, obs, small_cfg)
            for t in result.transitions:
                if t.group is not None:
                    r.transition(t.action, t.group)
            state = result.state
            seen.add(state.groups[1].phase)
        return seen

    assert C in run(guarded=False)
    assert C not in run(guarded=True)


def test_readings_survive_a_round_trip() -> None:
    r = _readings(RANK, Guard(0.2, 0.3))
    r.read({"g": {RANK: 10.0}}, {"g": A})
    r.transition("Converge", "g")
    s = _readings(RANK, Guard(0.2, 0.3))
    s.load_state_dict(json.loads(json.dumps(r.state_dict())))
    assert s.state_dict() == r.state_dict()
