"""Convergence and wake signals, measured from gradients: the core's observations.

* signal (per trainable group): the relative change of the group's
  accumulated gradient norm between the last `window` steps and the `window`
  steps before (AutoFreeze-style): |S_new - S_old| / S_old, where S sums the
  group's per-step gradient L2 norms (read before clipping). High while the
  gradient is still changing scale, i.e. the group is still moving through
  its loss landscape; low once it has settled. It reads 0 (low) until
  2 x window steps have been seen since (re)activation, which is safe:
  NoCoolingFromCold stops a group that never read high from cooling.
* wake (per CONVERGED group): every `probe_every` steps a cheap probe (a
  forward and backward on a small fixed batch, gradients for the converged
  groups only) gives the group's gradient norm; wake is its relative change
  against the same probe taken when the group converged.
* need (per group): the signal itself, so groups still changing faster
  weigh more in the budget.

In a distributed run every rank reads these from all-reduced gradients and
the same probe batch, so every rank feeds the core the same observations.
"""

from __future__ import annotations

from collections import deque


class SignalMeter:
    """Per-group windows of gradient norms, plus probe baselines."""

    def __init__(self, groups: list[str], window: int) -> None:
        self.window = window
        self.norms: dict[str, deque[float]] = {g: deque(maxlen=2 * window) for g in groups}
        self.baseline: dict[str, float] = {}

    def record(self, group: str, norm: float) -> None:
        self.norms[group].append(norm)

    def signal(self, group: str) -> float:
        hist = list(self.norms[group])
        if len(hist) < 2 * self.window:
            return 0.0
        old, new = sum(hist[: self.window]), sum(hist[self.window :])
        return abs(new - old) / old if old > 0 else 0.0

    def reset(self, group: str) -> None:
        """Forget a group's history when it (re)activates: old norms say nothing now."""
        self.norms[group].clear()
        self.baseline.pop(group, None)

    def wake(self, group: str, probe_norm: float) -> float:
        base = self.baseline.get(group)
        if base is None or base <= 0:
            return 0.0
        return abs(probe_norm - base) / base

    def state_dict(self) -> dict:
        return {
            "norms": {g: list(h) for g, h in self.norms.items()},
            "baseline": dict(self.baseline),
        }

    def load_state_dict(self, state: dict) -> None:
        for g, hist in state["norms"].items():
            self.norms[g] = deque(hist, maxlen=2 * self.window)
        self.baseline = dict(state["baseline"])
