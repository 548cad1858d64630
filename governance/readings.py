"""Every convergence signal's pure side, and how its readings become the (signal, wake)
the core sees.

A signal is a class registered in `SIGNALS` (name -> class): what `train.signal` and
`train.measure` accept (pipeline/config.py), what replay reads a run's measurements
with, and what the pipeline's measuring side (pipeline/signals.py) extends. The class
says whether a probe measures it and how its readings are read; it imports no torch,
so an auditor's replay runs the same rule the run did.

Every `probe_every` steps the pipeline measures the groups on the probe batch
(pipeline/geometry.py) and the step record carries the numbers (`measurements`);
`Readings` turns them into observations, and replay runs the same code on the
recorded numbers, so an observation that does not follow from its measurements is a
divergence.

* `grad_norm`, `drift` (`Reading`'s defaults): nothing is measured at probes; the
  pipeline's own per-step value is the signal and a CONVERGED group's wake comes from
  the gradient probe. Replay cannot recompute them: the core's replay checks what
  they decided.
* Geometry signals (`RelativeChange`: effective_rank, participation_ratio, isotropy,
  distance_cv): a trainable group's signal is the relative change of its measure
  between its last two readings since it (re)activated (0 until it has two), held
  until the next reading: high while its representation still reshapes, low once it
  holds still. A CONVERGED group's wake, on a probe step, is the relative change of
  its measure since the reading it converged on: the groups below it moved its
  inputs. No gradient probe is needed.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from govtrain.governance.config import GovernorConfig
from govtrain.governance.errors import ConfigError
from govtrain.governance.state import Phase


def relative_change(old: float, new: float) -> float:
    return abs(new - old) / abs(old) if old else 0.0


def collapsing(previous: float, now: float, tolerance: float) -> bool:
    """The representation's rank fell by more than `tolerance` of what it was."""
    return previous > 0 and (previous - now) / previous > tolerance


class Reading:
    """A signal's pure side: its name, whether a probe measures it, and its reading rule.

    The defaults are a signal the pipeline reads every step (from gradients or
    weights): that value is the signal, and a CONVERGED group's wake is the gradient
    probe's relative change since it converged.
    """

    name: ClassVar[str]
    # a probe measures it: the value goes into the step record's `measurements` under
    # `name` (replay reads it there) and `train.measure` may record it without deciding
    measured: ClassVar[bool] = False
    # a CONVERGED group's wake comes from a gradient probe (else from its measurements)
    gradient_wake: ClassVar[bool] = True

    @staticmethod
    def read(readings: Sequence[float], own: float) -> float:
        """A trainable group's signal from its last two readings since (re)activation
        (fewer until it has them) and the pipeline's own value this step."""
        return own

    @staticmethod
    def wake(own: float, converged_on: float | None, now: float | None) -> float:
        """A frozen group's wake from the gradient probe's (`own`, 0 without one) and,
        on a probe step of a CONVERGED group, the reading it converged on and the
        latest (None otherwise, or where there is none)."""
        return own


R = TypeVar("R", bound=type[Reading])

SIGNALS: dict[str, type[Reading]] = {}


def register(cls: R) -> R:
    """Make a signal known under its name: to config validation, replay and the
    pipeline, which registers its measuring side (pipeline/signals.py) against it."""
    if cls.name in SIGNALS:
        raise ValueError(f"signal {cls.name!r} is registered already")
    SIGNALS[cls.name] = cls
    return cls


def signal_class(name: str) -> type[Reading]:
    """The registered signal `name`; ConfigError naming the known ones otherwise."""
    if name not in SIGNALS:
        raise ConfigError(f"signal must be one of {', '.join(SIGNALS)}, got {name!r}")
    return SIGNALS[name]


def measures() -> tuple[str, ...]:
    """What a probe can measure (`train.measure`): the registered measured signals."""
    return tuple(name for name, cls in SIGNALS.items() if cls.measured)


@register
class GradNorm(Reading):
    """Read every step from the groups' gradients (pipeline/signals.py)."""

    name = "grad_norm"


@register
class Drift(Reading):
    """Read every `window` of a group's own steps from its weights (pipeline/signals.py)."""

    name = "drift"


class RelativeChange(Reading):
    """A measure that holds still once a group has learned: the signal is its relative
    change between the last two readings, the wake its change since the reading the
    group converged on, on probe steps only."""

    measured = True
    gradient_wake = False

    @staticmethod
    def read(readings: Sequence[float], own: float) -> float:
        return relative_change(*readings) if len(readings) == 2 else 0.0

    @staticmethod
    def wake(own: float, converged_on: float | None, now: float | None) -> float:
        if converged_on is None or now is None:
            return 0.0
        return relative_change(converged_on, now)


@register
class EffectiveRank(RelativeChange):
    name = "effective_rank"


@register
class ParticipationRatio(RelativeChange):
    name = "participation_ratio"


@register
class Isotropy(RelativeChange):
    name = "isotropy"


@register
class DistanceCV(RelativeChange):
    name = "distance_cv"


SPECTRAL = "spectral"


@register
class Spectral(Reading):
    """Its reading is already a change: the latest one is the signal (0 before any)."""

    name = SPECTRAL
    measured = True

    @staticmethod
    def read(readings: Sequence[float], own: float) -> float:
        return readings[-1] if readings else 0.0


GUARD_MEASURE = EffectiveRank.name


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
        self.signal, self.rule, self.guard = signal, signal_class(signal), guard
        self.probe_every = probe_every
        self.signal_threshold, self.wake_threshold = signal_threshold, wake_threshold
        wanted = [signal] if self.rule.measured else []
        wanted += [GUARD_MEASURE] if guard is not None else []
        self.measures: tuple[str, ...] = tuple(dict.fromkeys([*wanted, *extra]))
        self.history: dict[str, dict[str, list[float]]] = {g: {} for g in groups}
        self.converged_on: dict[str, dict[str, float]] = {}
        self.latest: dict[str, dict[str, float]] = {}

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
            return 0.0, self._wake(group, wake, phase is Phase.CONVERGED and probed)
        hist = self.history[group]
        signal = self.rule.read(hist.get(self.signal, []), signal)
        ranks = hist.get(GUARD_MEASURE, [])
        guard = self.guard
        if guard is not None and len(ranks) == 2 and collapsing(ranks[0], ranks[1], guard.collapse):
            signal = max(signal, self.signal_threshold)
        return signal, wake

    def _wake(self, group: str, wake: float, at_probe: bool) -> float:
        if not at_probe:
            return self.rule.wake(wake, None, None)
        base, now = self.converged_on.get(group, {}), self.latest.get(group, {})
        wake = self.rule.wake(wake, base.get(self.signal), now.get(self.signal))
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
