"""What the Governor's core sees each step: every group's observation, measured.

The Governor asks an `Observer` for a step's observations (one `GroupObservation`
per group) and tells it the transitions the core then took; how they are measured
lives here, so the Governor reads as route -> commit -> apply -> record, and a test
can hand it scripted observations instead. `SignalObserver` builds the run's signal
(`train.signal`) and every measure it records from the registry (pipeline/signals.py)
and gives them what they need from a step:

* gradient hooks, for the signals that read gradients: each gradient as the backward
  accumulates it (before any clipping rescales it, so a signal tracks the group and
  not the clip factor), or, across ranks, the averaged ones (`record_gradients`);
* on a probe step (`probe_every`), one forward of the probe batch without gradients
  for the signals that read hidden states, then every measured signal's value per
  group: the step record's `measurements`, which `Readings` reads
  (governance/readings.py) as replay will;
* the gradient probe, for the signals that wake from gradients: each CONVERGED
  group's gradient norm on the probe batch, against the one it converged with.

Probes run with `observing` False, so the gradient hooks and the HF and Lightning
callbacks' routing ignore their forwards and backwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from govtrain.governance.config import GovernorConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.readings import Guard, Readings
from govtrain.governance.state import GroupObservation, Phase, Transition
from govtrain.pipeline import geometry
from govtrain.pipeline.config import GovernOptions
from govtrain.pipeline.distributed import World, broadcast_floats, group_norms
from govtrain.pipeline.routed import RoutingPlan
from govtrain.pipeline.signals import SIGNALS, Context, Signal, build

Measurements = dict[str, dict[str, float]]  # group -> measure -> value
ProbeLoss = Callable[[nn.Module], Tensor]  # the probe batch's loss (a mean) on the model


class Observer:
    """What a Governor asks of whatever observes its groups (the injection point: a test
    passes one that returns scripted observations). Only `observe` must be written; the
    rest keep nothing."""

    # False while a probe or a FLOP count (pipeline/flops.py) runs its own forward and
    # backward, which gradient hooks and the callbacks' routing must ignore
    observing: bool = True
    measured: Measurements | None = None  # this step's probe measurements, if it probed

    def observe(self, step: int, phases: Mapping[str, Phase]) -> list[GroupObservation]:
        """After step `step`'s update: each group's observation, in the groups' order;
        `phases` are their phases before the step."""
        raise NotImplementedError

    def transition(self, transitions: Sequence[Transition]) -> None:
        """The transitions the core took from this step's observations."""

    def skip(self) -> None:
        """The step's update was skipped (not finite): nothing of it is observed."""

    def record_gradients(self) -> None:
        """The gradients were just averaged across ranks: read them, not the backward's."""

    def close(self) -> None:
        """Governance ends: leave nothing attached to the model."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""


class SignalObserver(Observer):
    """Observes with the registered signals a run's options name (pipeline/signals.py).

    `params`: each group's parameters; `all_params`: the model's, as built; `plan`:
    its routing (a probe routes every sample); `tops`: each group's outermost modules
    (geometry.top_modules), whose outputs are its hidden states.
    """

    def __init__(
        self,
        model: nn.Module,
        params: dict[str, list[nn.Parameter]],
        all_params: list[nn.Parameter],
        plan: RoutingPlan,
        tops: dict[str, list[str]],
        cfg: GovernorConfig,
        options: GovernOptions,
        *,
        probe: ProbeLoss | None,
        world: World | None,
        synced: bool,
    ) -> None:
        self.model, self.params, self.all_params = model, params, all_params
        self.plan, self.tops, self.names = plan, tops, list(params)
        self.sharded = any(isinstance(p, DTensor) for p in all_params)  # FSDP2 shards
        self.probe, self.probe_every, self.world = probe, options.probe_every, world
        guard = options.geometry_guard
        self.readings = Readings(
            self.names,
            options.signal,
            None if guard is None else Guard(guard.collapse, guard.wake),
            cfg.signal_threshold,
            cfg.wake_threshold,
            options.measure,
            options.probe_every,
        )
        if self.readings.measures and (probe is None or self.sharded):
            raise GovtrainError(
                f"measuring {', '.join(self.readings.measures)} needs a probe batch and an "
                "unsharded model"
            )
        device = all_params[0].device
        ctx = Context(params, cfg.window, options.enforce, options.power_iterations, device)
        self.signals = build([options.signal, *self.readings.measures], ctx)
        self.signal = self.signals[options.signal]
        self.baseline: dict[str, float] = {}  # each converged group's gradient-probe norm
        self.measured: Measurements | None = None
        self.observing = True
        readers = [s for s in self.signals.values() if s.gradients]
        self._hooks = (
            []
            if synced or not readers  # synced: the averaged gradients, at record_gradients
            else [
                p.register_post_accumulate_grad_hook(self._hook(group, readers))
                for group, ps in params.items()
                for p in ps
            ]
        )

    def _hook(self, group: str, readers: list[Signal]) -> Callable[[Tensor], None]:
        def hook(p: Tensor) -> None:
            if self.observing and p.grad is not None:
                for signal in readers:
                    signal.gradient(group, p.grad)

        return hook

    def observe(self, step: int, phases: Mapping[str, Phase]) -> list[GroupObservation]:
        probe_due = self.probe is not None and step % self.probe_every == 0
        self.measured = self._measure(phases) if probe_due and self.readings.measures else None
        if self.measured is not None:
            self.readings.read(self.measured, phases)
        converged = [n for n, p in phases.items() if p is Phase.CONVERGED]
        gradient_probe = probe_due and converged and self.readings.rule.gradient_wake
        wakes = self._wakes(converged) if gradient_probe else {}
        for each in self.signals.values():
            each.step(phases)
        out = []
        for name, phase in phases.items():
            value, wake = self.readings.observe(
                name,
                phase,
                0.0 if phase.frozen else self.signal.value(name),
                wakes.get(name, 0.0),
                probed=self.measured is not None,
            )
            out.append(GroupObservation(signal=value, wake=wake, need=value))
        return out if self.world is None else self._agreed(out)

    def _agreed(self, out: list[GroupObservation]) -> list[GroupObservation]:
        """Rank 0's observations on every rank, so every rank decides alike."""
        flat = broadcast_floats(
            [v for o in out for v in (o.signal, o.wake, o.need)], self.all_params[0].device
        )
        return [GroupObservation(*flat[i : i + 3]) for i in range(0, len(flat), 3)]

    def _measure(self, phases: Mapping[str, Phase]) -> Measurements:
        """This probe's measurements: every measured signal's value per group, those that
        read hidden states from one forward of the probe batch."""
        measuring = [self.signals[m] for m in self.readings.measures]
        hidden = self._hidden_states([s.name for s in measuring if s.hidden])
        out: Measurements = {}
        for group, phase in phases.items():
            for signal in measuring:
                value = signal.measure(group, phase, hidden[group] if signal.hidden else None)
                if value is not None:
                    out.setdefault(group, {})[signal.name] = value
        return out

    def _hidden_states(self, measures: list[str]) -> dict[str, Tensor]:
        """Every group's hidden states on the probe batch (no gradients), if any of
        `measures` reads them."""
        if not measures:
            return {}
        assert self.probe is not None
        was_training = self.model.training
        self.observing = False
        try:
            self.plan.route_all()
            self.model.eval()
            with torch.no_grad(), geometry.hidden_states(self.model, self.tops) as seen:
                self.probe(self.model)
        finally:
            self.observing = True
            self.model.train(was_training)
        instead = [n for n, cls in SIGNALS.items() if not cls.hidden]
        geometry.require_outputs(seen, self.names, measures, instead)
        return seen

    def _wakes(self, groups: list[str]) -> dict[str, float]:
        """Each converged group's gradient norm on the probe batch, relative to the one it
        converged with."""
        out = {}
        for group, norm in self._probe(groups).items():
            base = self.baseline.get(group)
            out[group] = abs(norm - base) / base if base is not None and base > 0 else 0.0
        return out

    def _probe(self, groups: list[str]) -> dict[str, float]:
        """Gradient norms of (frozen) `groups` on the probe batch; nothing is updated.

        `torch.autograd.grad`, not `backward()`: no `.grad` is written and no
        gradient-accumulation hook fires (DDP's reducer keeps its own there, and a
        probe seen by it breaks the next training backward), so the probe is
        invisible to the training step.
        """
        assert self.probe is not None
        saved = {id(p): p.requires_grad for p in self.all_params}
        wanted = [p for g in groups for p in self.params[g]]
        ids = {id(p) for p in wanted}
        was_training = self.model.training
        self.observing = False
        try:
            for p in self.all_params:
                p.requires_grad_(id(p) in ids)
            self.plan.route_all()
            self.model.eval()
            if self.sharded:
                return self._sharded_probe(groups, wanted)
            grads = iter(torch.autograd.grad(self.probe(self.model), wanted, allow_unused=True))
            return {g: _grad_norm([next(grads) for _ in self.params[g]]) for g in groups}
        finally:
            self.observing = True
            self.model.train(was_training)
            for p in self.all_params:
                p.requires_grad_(saved[id(p)])

    def _sharded_probe(self, groups: list[str], wanted: list[nn.Parameter]) -> dict[str, float]:
        """The probe under FSDP2, whose forward runs on unsharded copies that autograd
        does not connect to the shards: a backward (FSDP2 reduce-scatters it into the
        shards' `.grad`, on every rank alike), then the training gradients put back."""
        assert self.probe is not None
        saved = {id(p): p.grad for p in wanted}
        for p in wanted:
            p.grad = None
        try:
            self.probe(self.model).backward()
            grads = [[p.grad for p in self.params[g] if p.grad is not None] for g in groups]
            norms = group_norms(grads, self.all_params[0].device)
            return {g: float(n) for g, n in zip(groups, norms, strict=True)}
        finally:
            for p in wanted:
                p.grad = saved[id(p)]

    def transition(self, transitions: Sequence[Transition]) -> None:
        """(Re)activation makes every signal forget the group; convergence keeps the
        readings it converged on and, for a gradient wake, its probe's gradient norm."""
        converged = []
        for t in transitions:
            if t.group is None:
                continue
            self.readings.transition(t.action, t.group)
            if t.action in ("Activate", "Awaken"):
                self.baseline.pop(t.group, None)
                for signal in self.signals.values():
                    signal.reset(t.group)
            elif t.action == "Converge":
                converged.append(t.group)
        if converged and self.probe is not None and self.readings.rule.gradient_wake:
            self.baseline.update(self._probe(converged))

    def skip(self) -> None:
        for signal in self.signals.values():
            signal.skip()

    def record_gradients(self) -> None:
        readers = [s for s in self.signals.values() if s.gradients]
        if not readers:
            return
        grads = {g: [p.grad for p in ps if p.grad is not None] for g, ps in self.params.items()}
        for signal in readers:
            signal.averaged(grads, self.sharded)

    def close(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()

    def state_dict(self) -> dict[str, Any]:
        return {
            "readings": self.readings.state_dict(),
            "baseline": dict(self.baseline),
            "signals": {name: s.state_dict() for name, s in self.signals.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["readings"] is not None:  # None: format 1, from before probe measurements
            self.readings.load_state_dict(state["readings"])
        self.baseline = dict(state["baseline"])
        for name, signal in self.signals.items():
            signal.load_state_dict(state["signals"][name])


def from_format_1(sd: Mapping[str, Any]) -> dict[str, Any]:
    """A Governor state of format 1 (before signals were classes) as `SignalObserver`
    reads it: one "meter" held the gradient norms, the drift readings and the wake
    baselines, drift's and spectral's other state sat beside it, and no other signal
    kept any. "readings", "at_probe" and "vectors" are absent from those written before
    probe measurements."""
    meter = sd["meter"]
    kept = {
        "grad_norm": {"norms": meter["norms"]},
        "drift": {
            "own_steps": sd["own_steps"],
            "snapshots": sd["snapshots"],
            "drift": meter["drift"],
        },
        "spectral": {"at_probe": sd.get("at_probe", {}), "vectors": sd.get("vectors", {})},
    }
    return {
        "readings": sd.get("readings"),
        "baseline": meter["baseline"],
        "signals": {name: kept.get(name, {}) for name in SIGNALS},
    }


def _grad_norm(grads: list[Tensor | None]) -> float:
    present = [g for g in grads if g is not None]
    if not present:
        return 0.0
    return float(
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    )
