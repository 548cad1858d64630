"""Every convergence signal's measuring side: one class per signal, registered by name.

A signal is one class: its pure side (governance/readings.py: its name, whether a
probe measures it, its reading rule, what replay re-runs) extended here by what it
needs from a step and how it measures, the state it keeps across a checkpoint and
what it forgets when a group (re)activates (`Signal`). `register` adds it to
`SIGNALS`, from which the Governor's observer (pipeline/observe.py) builds it; the
pure side must be registered under the same name, so config validation and replay
know it too. docs/signals.md walks through adding one.

* `grad_norm` (per trainable group): the relative change of the group's
  accumulated gradient norm between the last `window` steps and the `window`
  steps before (AutoFreeze-style): |S_new - S_old| / S_old, where S sums the
  group's per-step gradient L2 norms (read before clipping). High while the
  gradient is still changing scale, i.e. the group is still moving through
  its loss landscape; low once it has settled. It reads 0 (low) until
  2 x window steps have been seen since (re)activation, which is safe:
  NoCoolingFromCold stops a group that never read high from cooling.
* `drift` (per trainable group): every `window` of the group's own steps, with
  d1 = ||theta_t - theta_{t-W}|| and d2 = ||theta_t - theta_{t-2W}||, the reading
  max(0, d2^2 / (2 d1^2) - 1), held until the next one. A steady drift gives
  d2^2 = 4 d1^2 (reads 1), a random walk 2 d1^2 (reads 0), an oscillation across a
  valley about d1^2 (reads 0): it is high while the group's weights still move
  coherently and low once they only wander. Gradient statistics cannot see this:
  measured on the benchmark (issue 16), a group's gradient norm settles and its
  successive gradients anti-correlate long before it stops learning along flat
  directions.
* `spectral` (at probes, per trainable group): max over the group's matrices (its
  vectors, if it has none) of sigma_max(W_now - W_last_probe) / sigma_max(W_now),
  by power iteration warm-started from the last probe's vectors.
* geometry (at probes, every group): effective_rank, participation_ratio,
  isotropy, distance_cv of the group's hidden states on the probe batch
  (pipeline/geometry.py).
* wake (per CONVERGED group, for the signals whose pure side says so): every
  `probe_every` steps a cheap probe (a forward and backward on a small fixed batch,
  gradients for the converged groups only) gives the group's gradient norm; wake
  is its relative change against the same probe taken when the group converged
  (pipeline/observe.py). Geometry signals wake from their own measurements.
* need (per group): the signal itself, so groups still changing faster weigh more
  in the budget.

In a distributed run every rank reads these from all-reduced gradients and
the same probe batch, so every rank feeds the core the same observations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from govtrain.governance import readings
from govtrain.governance.errors import GovtrainError
from govtrain.governance.state import Phase
from govtrain.pipeline import geometry
from govtrain.pipeline.distributed import group_norms


@dataclass(frozen=True)
class Context:
    """What a signal knows of the run it measures."""

    params: dict[str, list[nn.Parameter]]  # each group's, in model order
    window: int  # governor.window
    enforce: bool  # decisions are applied (False: shadow mode, frozen groups still train)
    power_iterations: int
    device: torch.device


class Signal(readings.Reading):
    """A signal's measuring side; every method's default does nothing.

    What it needs from the step: `gradients` (each gradient as the backward makes
    it, `gradient`; averaged across ranks, `averaged`), `hidden` (every group's
    hidden states on the probe batch, one forward shared by every signal that asks),
    and the groups' weights (`Context.params`), which it may always read.
    """

    gradients: ClassVar[bool] = False
    hidden: ClassVar[bool] = False

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def gradient(self, group: str, grad: Tensor) -> None:
        """One of the group's gradients, as the training backward accumulates it."""

    def averaged(self, grads: dict[str, list[Tensor]], sharded: bool) -> None:
        """This step's gradients averaged across ranks, instead of the backward's local
        ones (`sharded`: FSDP2 shards, whose norms take a collective)."""

    def step(self, phases: Mapping[str, Phase]) -> None:
        """After every committed update, before the groups are read."""

    def value(self, group: str) -> float:
        """Its own reading of a trainable group this step: the pure rule's `own`."""
        return 0.0

    def measure(self, group: str, phase: Phase, hidden: Tensor | None) -> float | None:
        """At a probe (a `measured` signal): the group's measurement, or None for none."""
        return None

    def skip(self) -> None:
        """The step's update was skipped: forget what its backward left."""

    def reset(self, group: str) -> None:
        """The group (re)activates: what it read before says nothing now."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`'s output (tensors onto the groups' devices)."""


S = TypeVar("S", bound=type[Signal])

SIGNALS: dict[str, type[Signal]] = {}


def register(cls: S) -> S:
    """Make a signal's measuring side known to the Governor. Its pure side must be
    registered under the same name (governance/readings.py) and be what it extends."""
    pure = readings.SIGNALS.get(cls.name)
    if pure is None or pure not in cls.__mro__:
        raise ValueError(
            f"signal {cls.name!r}: register its pure side first (governance/readings.py) "
            "and extend it"
        )
    if cls.name in SIGNALS:
        raise ValueError(f"signal {cls.name!r} is registered already")
    SIGNALS[cls.name] = cls
    return cls


def build(names: list[str], ctx: Context) -> dict[str, Signal]:
    """The measuring sides of `names` (each once), from the registry."""
    missing = [n for n in names if n not in SIGNALS]
    if missing:
        raise GovtrainError(
            f"signal {missing[0]!r} has no measuring side: register one (pipeline/signals.py)"
        )
    return {name: SIGNALS[name](ctx) for name in dict.fromkeys(names)}


@register
class GradNorm(readings.GradNorm, Signal):
    """Windows of each group's per-step gradient norm (a deque of 2 x window)."""

    gradients = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.pending: dict[str, list[Tensor]] = {g: [] for g in ctx.params}
        self.norms: dict[str, deque[float]] = {g: deque(maxlen=2 * ctx.window) for g in ctx.params}

    def gradient(self, group: str, grad: Tensor) -> None:
        self.pending[group].append(torch.linalg.vector_norm(grad.detach(), dtype=torch.float32))

    def averaged(self, grads: dict[str, list[Tensor]], sharded: bool) -> None:
        if sharded:  # each rank holds shards: one all-reduce gives the whole norms
            norms = group_norms(list(grads.values()), self.ctx.device)
            pairs = zip(grads.items(), norms, strict=True)
            self.pending = {g: [n] if gs else [] for (g, gs), n in pairs}
            return
        self.pending = {
            g: [torch.linalg.vector_norm(x.detach(), dtype=torch.float32) for x in gs]
            for g, gs in grads.items()
        }

    def step(self, phases: Mapping[str, Phase]) -> None:
        norms = self._take()
        for group, phase in phases.items():
            if not phase.frozen:
                self.norms[group].append(norms[group])

    def _take(self) -> dict[str, float]:
        """Each group's gradient L2 norm this step, read off the device in one sync."""
        sums = [torch.stack(v).square().sum() if v else None for v in self.pending.values()]
        present = [t for t in sums if t is not None]
        values = iter(torch.stack(present).sqrt().tolist() if present else [])
        norms = {
            g: (0.0 if t is None else next(values)) for g, t in zip(self.pending, sums, strict=True)
        }
        self.skip()
        return norms

    def value(self, group: str) -> float:
        w, hist = self.ctx.window, list(self.norms[group])
        if len(hist) < 2 * w:
            return 0.0
        old, new = sum(hist[:w]), sum(hist[w:])
        return abs(new - old) / old if old > 0 else 0.0

    def skip(self) -> None:
        self.pending = {g: [] for g in self.pending}

    def reset(self, group: str) -> None:
        self.norms[group].clear()

    def state_dict(self) -> dict[str, Any]:
        return {"norms": {g: list(h) for g, h in self.norms.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for g, hist in state["norms"].items():
            self.norms[g] = deque(hist, maxlen=2 * self.ctx.window)


def drift_reading(d1_sq: float, d2_sq: float) -> float:
    """The coherent share of a group's motion from its squared displacements over the
    last window (d1_sq) and the last two (d2_sq): 1 for a steady drift, 0 for noise."""
    return max(0.0, d2_sq / (2 * d1_sq) - 1) if d1_sq > 0 else 0.0


@register
class Drift(readings.Drift, Signal):
    """Each group's weights every `window` of its own steps (the last two snapshots)
    and the drift reading between them, held until the next."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.own_steps: dict[str, int] = {}  # steps trained since (re)activation
        self.snapshots: dict[str, list[list[Tensor]]] = {}  # its weights W and 2W steps ago
        self.drift: dict[str, float] = {}

    def step(self, phases: Mapping[str, Phase]) -> None:
        w = self.ctx.window
        for name, phase in phases.items():
            if phase.frozen and self.ctx.enforce:
                continue
            n = self.own_steps[name] = self.own_steps.get(name, 0) + 1
            if n % w:
                continue
            snaps = self.snapshots.setdefault(name, [])
            now = [p.detach().clone() for p in self.ctx.params[name]]
            if len(snaps) == 2:
                d1, d2 = (
                    torch.stack([(a - b).float().pow(2).sum() for a, b in zip(now, s, strict=True)])
                    .sum()
                    .item()
                    for s in (snaps[1], snaps[0])
                )
                self.drift[name] = drift_reading(d1, d2)
            snaps.append(now)
            del snaps[:-2]

    def value(self, group: str) -> float:
        return self.drift.get(group, 0.0)

    def reset(self, group: str) -> None:
        self.own_steps.pop(group, None)
        self.snapshots.pop(group, None)
        self.drift.pop(group, None)

    def state_dict(self) -> dict[str, Any]:
        return {
            "own_steps": dict(self.own_steps),
            "snapshots": {g: [list(s) for s in snaps] for g, snaps in self.snapshots.items()},
            "drift": dict(self.drift),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.own_steps = dict(state["own_steps"])
        self.snapshots = {
            g: [[t.to(_device(self.ctx, g)) for t in snap] for snap in snaps]
            for g, snaps in state["snapshots"].items()
        }
        self.drift = dict(state["drift"])


class Geometry(Signal):
    """A measure of every group's hidden states on the probe batch."""

    hidden = True

    @staticmethod
    def of(hidden: Tensor) -> float:
        """The measure of one group's hidden states (pipeline/geometry.py)."""
        raise NotImplementedError

    def measure(self, group: str, phase: Phase, hidden: Tensor | None) -> float | None:
        assert hidden is not None
        return self.of(hidden)


@register
class EffectiveRank(readings.EffectiveRank, Geometry):
    of = staticmethod(geometry.effective_rank)


@register
class ParticipationRatio(readings.ParticipationRatio, Geometry):
    of = staticmethod(geometry.participation_ratio)


@register
class Isotropy(readings.Isotropy, Geometry):
    of = staticmethod(geometry.isotropy)


@register
class DistanceCV(readings.DistanceCV, Geometry):
    of = staticmethod(geometry.distance_cv)


@register
class Spectral(readings.Spectral, Signal):
    """Each trainable group's weights at the last probe, and the power iteration's
    vectors per (group, parameter index, "update" | "weight")."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.at_probe: dict[str, list[Tensor]] = {}
        self.vectors: dict[str, Tensor] = {}

    def measure(self, group: str, phase: Phase, hidden: Tensor | None) -> float | None:
        return None if phase.frozen else self._spectral(group)

    def _spectral(self, group: str) -> float | None:
        """max over the group's matrices (its vectors, if it has none) of
        sigma_max(W_now - W_last_probe) / sigma_max(W_now); None at its first probe."""
        params = self.ctx.params[group]
        chosen = [i for i, p in enumerate(params) if p.dim() >= 2] or list(range(len(params)))
        now = [params[i].detach().clone() for i in chosen]
        before, self.at_probe[group] = self.at_probe.get(group), now
        if before is None:
            return None
        ratios = []
        for i, w, b in zip(chosen, now, before, strict=True):
            sig_w = self._power(f"{group}/{i}/weight", w)
            if sig_w > 0:
                ratios.append(self._power(f"{group}/{i}/update", w - b) / sig_w)
        return max(ratios, default=0.0)

    def _power(self, key: str, matrix: Tensor) -> float:
        sigma, v = geometry.top_singular_value(
            matrix, self.vectors.get(key), self.ctx.power_iterations
        )
        if v is not None:
            self.vectors[key] = v
        return sigma

    def reset(self, group: str) -> None:
        self.at_probe.pop(group, None)

    def state_dict(self) -> dict[str, Any]:
        return {
            "at_probe": {g: list(ts) for g, ts in self.at_probe.items()},
            "vectors": dict(self.vectors),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.at_probe = {
            g: [t.to(_device(self.ctx, g)) for t in ts] for g, ts in state["at_probe"].items()
        }
        self.vectors = {k: v.to(self.ctx.device) for k, v in state["vectors"].items()}


MEASURES = readings.measures()  # what a probe can measure, for the tools that list them


def _device(ctx: Context, group: str) -> torch.device:
    return ctx.params[group][0].device
