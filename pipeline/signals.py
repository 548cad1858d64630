"""Convergence and wake signals, measured from gradients and weights: the core's observations.

* signal, `train.signal: drift` (per trainable group): every `window` of the
  group's own steps, with d1 = ||theta_t - theta_{t-W}|| and d2 = ||theta_t -
  theta_{t-2W}||, the reading max(0, d2^2 / (2 d1^2) - 1), held until the
  next one. A steady drift gives d2^2 = 4 d1^2 (reads 1), a random walk
  2 d1^2 (reads 0), an oscillation across a valley about d1^2 (reads 0): it
  is high while the group's weights still move coherently and low once they
  only wander. Gradient statistics cannot see this: measured on the benchmark
  (issue 16), a group's gradient norm settles and its successive gradients
  anti-correlate long before it stops learning along flat directions.
* signal, `train.signal: grad_norm` (per trainable group): the relative change of the group's
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
* signals read at probes, `train.signal`: effective_rank, participation_ratio,
  isotropy, distance_cv (the probe batch's hidden states, pipeline/geometry.py)
  and spectral (each group's update): governance/readings.py turns those
  measurements into (signal, wake), so replay can check them.

In a distributed run every rank reads these from all-reduced gradients and
the same probe batch, so every rank feeds the core the same observations.
"""

from __future__ import annotations

from collections import deque

from govtrain.governance.readings import GEOMETRY, SPECTRAL

# every `train.signal`: the two read here, and those read at probes (governance/readings.py)
SIGNALS = ("grad_norm", "drift", *GEOMETRY, SPECTRAL)
MEASURES = (*GEOMETRY, SPECTRAL)  # what a probe can measure (`train.measure`)


def drift_reading(d1_sq: float, d2_sq: float) -> float:
    """The coherent share of a group's motion from its squared displacements over the
    last window (d1_sq) and the last two (d2_sq): 1 for a steady drift, 0 for noise."""
    return max(0.0, d2_sq / (2 * d1_sq) - 1) if d1_sq > 0 else 0.0


class SignalMeter:
    """Per-group windows of gradient norms, the last drift readings, and probe baselines."""

    def __init__(self, groups: list[str], window: int, kind: str = "grad_norm") -> None:
        if kind not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}, got {kind!r}")
        self.window, self.kind = window, kind
        self.norms: dict[str, deque[float]] = {g: deque(maxlen=2 * window) for g in groups}
        self.drift: dict[str, float] = {}
        self.baseline: dict[str, float] = {}

    def record(self, group: str, norm: float) -> None:
        self.norms[group].append(norm)

    def record_drift(self, group: str, reading: float) -> None:
        self.drift[group] = reading

    def signal(self, group: str) -> float:
        if self.kind == "drift":
            return self.drift.get(group, 0.0)
        hist = list(self.norms[group])
        if len(hist) < 2 * self.window:
            return 0.0
        old, new = sum(hist[: self.window]), sum(hist[self.window :])
        return abs(new - old) / old if old > 0 else 0.0

    def reset(self, group: str) -> None:
        """Forget a group's history when it (re)activates: old norms say nothing now."""
        self.norms[group].clear()
        self.drift.pop(group, None)
        self.baseline.pop(group, None)

    def wake(self, group: str, probe_norm: float) -> float:
        base = self.baseline.get(group)
        if base is None or base <= 0:
            return 0.0
        return abs(probe_norm - base) / base

    def state_dict(self) -> dict:
        return {
            "norms": {g: list(h) for g, h in self.norms.items()},
            "drift": dict(self.drift),
            "baseline": dict(self.baseline),
        }

    def load_state_dict(self, state: dict) -> None:
        for g, hist in state["norms"].items():
            self.norms[g] = deque(hist, maxlen=2 * self.window)
        self.drift = dict(state["drift"])
        self.baseline = dict(state["baseline"])
