"""How a group's probe measurements become the (signal, wake) the core sees.

Every `probe_every` steps the pipeline measures groups on the probe batch
(pipeline/geometry.py) and the step record carries the numbers
(`measurements`); this module turns them into observations, and replay runs the
same code on the recorded numbers, so an observation that does not follow
from its measurements is a divergence.

* Geometry signals (`train.signal`: one of GEOMETRY): a trainable group's signal
  is the relative change of its measure between its last two readings since it
  (re)activated (0 until it has two), held until the next reading: high while
  its representation still reshapes, low once it holds still. A CONVERGED
  group's wake, on a probe step, is the relative change of its measure since the
  reading it converged on: the groups below it moved its inputs. No gradient
  probe is needed.
* `spectral`: the reading is already a change (the spectral norm of the group's
  update since the last probe over its weights' own), so it is the signal; wake
  comes from the gradient probe.
* The guard (`train.geometry_guard`, with any signal) reads effective rank:
  a trainable group whose rank fell by more than `collapse` (relative) between
  its last two readings reads at least `signal_threshold`, so it cannot cool or
  converge while its representation collapses; a CONVERGED group whose rank
  moved more than `wake` since it converged reads at least `wake_threshold` on
  that probe, so it wakes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from govtrain.governance.config import GovernorConfig
from govtrain.governance.state import Phase

GEOMETRY = ("effective_rank", "participation_ratio", "isotropy", "distance_cv")
SPECTRAL = "spectral"
GUARD_MEASURE = "effective_rank"


def relative_change(old: float, new: float) -> float:
    return abs(new - old) / abs(old) if old else 0.0


def collapsing(previous: float, now: float, tolerance: float) -> bool:
    """The representation's rank fell by more than `tolerance` of what it was."""
    return previous > 0 and (previous - now) / previous > tolerance


@dataclass(frozen=True)
class Guard:
    collapse: float
    wake: float


class Readings:
    """Per group: its last two readings of each measure since (re)activation, the
    readings it converged on, and its readings on the latest probe."""

    def __init__(
        self,
        groups: list[str],
        signal: str,
        guard: Guard | None,
        signal_threshold: float,
        wake_threshold: float,
        extra: tuple[str, ...] = (),
        probe_every: int = 10,
    ) -> None:
        """`extra`: measures recorded at every probe that decide nothing (`train.measure`);
        measurements are taken on the steps `probe_every` divides."""
        self.signal, self.guard = signal, guard
        self.probe_every = probe_every
        self.signal_threshold, self.wake_threshold = signal_threshold, wake_threshold
        wanted = [signal] if signal in (*GEOMETRY, SPECTRAL) else []
        wanted += [GUARD_MEASURE] if guard is not None else []
        self.measures: tuple[str, ...] = tuple(dict.fromkeys([*wanted, *extra]))
        self.history: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
        self.converged_on: dict[str, dict[str, float]] = {}
        self.latest: dict[str, dict[str, float]] = {}

    @property
    def geometric(self) -> bool:
        """The signal is a representation measure (and wake comes from it, not gradients)."""
        return self.signal in GEOMETRY

    def read(
        self, measured: Mapping[str, Mapping[str, float]], phases: Mapping[str, Phase]
    ) -> None:
        """Take a probe's measurements; `phases` are the groups' phases before the step."""
        self.latest = {g: dict(m) for g, m in measured.items()}
        for group, values in measured.items():
            if phases[group].frozen:
                continue
            hist = self.history[group]
            for name, value in values.items():
                hist[name] = [*hist.get(name, [])[-1:], value]

    def observe(
        self, group: str, phase: Phase, signal: float, wake: float, probed: bool
    ) -> tuple[float, float]:
        """The (signal, wake) the core sees, from the pipeline's own `signal`, `wake`."""
        if phase.frozen:
            if self.geometric:  # no gradient probe: the measurements are the only wake
                wake = 0.0
            if phase is Phase.CONVERGED and probed:
                wake = self._wake(group, wake)
            return 0.0, wake
        hist = self.history[group]
        if self.geometric:
            values = hist.get(self.signal, [])
            signal = relative_change(*values) if len(values) == 2 else 0.0
        elif self.signal == SPECTRAL:
            signal = hist.get(SPECTRAL, [0.0])[-1]
        ranks = hist.get(GUARD_MEASURE, [])
        if self.guard is not None and len(ranks) == 2 and collapsing(*ranks, self.guard.collapse):
            signal = max(signal, self.signal_threshold)
        return signal, wake

    def _wake(self, group: str, wake: float) -> float:
        base, now = self.converged_on.get(group, {}), self.latest.get(group, {})
        if self.geometric and self.signal in base and self.signal in now:
            wake = relative_change(base[self.signal], now[self.signal])
        if (
            self.guard is not None
            and GUARD_MEASURE in base
            and GUARD_MEASURE in now
            and relative_change(base[GUARD_MEASURE], now[GUARD_MEASURE]) > self.guard.wake
        ):
            wake = max(wake, self.wake_threshold)
        return wake

    def transition(self, action: str, group: str) -> None:
        """(Re)activation starts a group's readings afresh; convergence keeps its last."""
        if action in ("Activate", "Awaken"):
            self.history[group] = {}
            self.converged_on.pop(group, None)
        elif action == "Converge":
            self.converged_on[group] = {n: v[-1] for n, v in self.history[group].items()}

    @classmethod
    def for_run(
        cls, groups: list[str], train: Mapping[str, Any], governor: GovernorConfig
    ) -> Readings:
        """The readings of a run from its committed `train` config (what replay reads)."""
        guard = train.get("geometry_guard")
        return cls(
            groups,
            train.get("signal", "grad_norm"),
            None if guard is None else Guard(guard["collapse"], guard["wake"]),
            governor.signal_threshold,
            governor.wake_threshold,
            tuple(train.get("measure", ())),
            train.get("probe_every", 10),
        )

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(
            {"history": self.history, "converged_on": self.converged_on, "latest": self.latest}
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))
        self.history = {g: state["history"].get(g, {}) for g in self.history}
        self.converged_on, self.latest = state["converged_on"], state["latest"]
