"""The abstract explorer's intervals (governance/abstraction.py); the over-approximation
of the concrete core and the shipped configs explored whole take many seconds:
tests/integration/test_abstraction.py."""

from __future__ import annotations

from govtrain.governance.abstraction import Intervals


def test_intervals_step_from_both_ends() -> None:
    clock = Intervals((0, 20, 300))
    assert [clock.rep(v) for v in (0, 19, 20, 299, 300)] == [0, 0, 20, 20, 300]
    assert clock.ends(0) == (0, 19) and clock.ends(20) == (20, 299) and clock.ends(300) == (300,)
    assert Intervals((0, 1, 2)).ends(1) == (1,)
