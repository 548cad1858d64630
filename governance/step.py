"""One governance step, composing every component (spec: `specs/GovernedTraining.tla`).

The order of a step: step t's observations move each governor, the
hierarchy then activates the next level if due, the run's end is counted
(Finish when nothing has been left to train for `finish_window` steps), and
the budget and router decide from the *new* state what step t+1 may use.
Step t's own update has already completed unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from govtrain.governance import budget, completion, convergence, hierarchy, routing
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import ObservationError
from govtrain.governance.state import (
    GovernanceState,
    GroupObservation,
    GroupState,
    Phase,
    Transition,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the next step may use: budget units and routed-sample quota per group."""

    allocations: tuple[int, ...]
    quotas: tuple[int, ...]
    budget_action: str  # "Allocate" or "Ration"
    warmup: bool


@dataclass(frozen=True, slots=True)
class StepResult:
    state: GovernanceState
    transitions: tuple[Transition, ...]
    decision: Decision


def initial_state(cfg: GovernanceConfig) -> GovernanceState:
    """Level 0 active, every other group DORMANT (frozen from the start)."""
    groups = tuple(GroupState(Phase.ACTIVE if g.level == 0 else Phase.DORMANT) for g in cfg.groups)
    return GovernanceState(clock=0, active_level=0, groups=groups)


def decide(state: GovernanceState, needs: Sequence[float], cfg: GovernanceConfig) -> Decision:
    """Allocate the budget by need x phase multiplier, then turn units into quotas.

    The product is exact (the need on `budget.need_grid` times the multiplier's
    decimal), so equal weights tie as they do in the spec, not by float rounding.
    """
    mult = {p: Fraction(repr(m)) for p, m in cfg.governor.multipliers.items()}
    grid = budget.need_grid(
        [None if g.phase.frozen else need for g, need in zip(state.groups, needs, strict=True)]
    )
    weights = [
        None if n is None else n * mult[g.phase] for g, n in zip(state.groups, grid, strict=True)
    ]
    alloc = budget.allocate(weights, cfg.budget)
    quotas = tuple(routing.quota(state, i, u, cfg) for i, u in enumerate(alloc.units))
    return Decision(alloc.units, quotas, alloc.action, routing.in_warmup(state, cfg))


def abstract(obs: GroupObservation, cfg: GovernanceConfig) -> tuple[bool, bool]:
    """What the governor reads of an observation: (signal high?, wake fired?)."""
    return obs.signal >= cfg.governor.signal_threshold, obs.wake >= cfg.governor.wake_threshold


def govern(
    state: GovernanceState, observations: Sequence[GroupObservation], cfg: GovernanceConfig
) -> StepResult:
    """The pure step: (state, observations, config) -> (new state, transitions, decision)."""
    _validate(observations, cfg)
    groups: list[GroupState] = []
    transitions: list[Transition] = []
    woke: list[bool] = []
    for i, (spec, g, obs) in enumerate(zip(cfg.groups, state.groups, observations, strict=True)):
        high, wake = abstract(obs, cfg)
        settled = hierarchy.converge_after_lower(state, i, cfg)
        upper = hierarchy.converge_after_upper(state, i, cfg)
        new, action = convergence.observe(g, high, wake, cfg.governor, settled, upper)
        groups.append(new)
        woke.append(wake)
        if action is not None:
            transitions.append(Transition(action, spec.name, g.phase.value, new.phase.value))
    needs = [o.need for o in observations]
    new_state, composed, decision = conclude(
        state, tuple(groups), woke, cfg, lambda s: decide(s, needs, cfg)
    )
    return StepResult(new_state, (*transitions, *composed), decision)


def conclude(
    state: GovernanceState,
    groups: tuple[GroupState, ...],
    woke: Sequence[bool],
    cfg: GovernanceConfig,
    decider: Callable[[GovernanceState], Decision],
) -> tuple[GovernanceState, tuple[Transition, ...], Decision]:
    """The rest of a step once every governor has moved to `groups`: `advance`, then the
    next step's decision (`decider`: decide at the step's needs) from the state after it.
    The abstract explorer ends its steps here too, so the order of the two is the code's,
    not a copy of it."""
    new_state, composed = advance(state, groups, woke, cfg)
    decision = decider(new_state)
    return new_state, composed, decision


def advance(
    state: GovernanceState,
    groups: tuple[GroupState, ...],
    woke: Sequence[bool],
    cfg: GovernanceConfig,
) -> tuple[GovernanceState, tuple[Transition, ...]]:
    """A step once every governor has moved to `groups` (`woke[g]`: g's wake probe
    fired): the clock ticks, the hierarchy activates, the quiet count."""
    moved = GovernanceState(min(state.clock + 1, cfg.horizon), state.active_level, groups)
    activated, activations = hierarchy.activate_levels(moved, cfg)
    new_state, finish = completion.count_quiet(state.quiet, activated, woke, cfg)
    return new_state, (*activations, *finish)


def _validate(observations: Sequence[GroupObservation], cfg: GovernanceConfig) -> None:
    if len(observations) != len(cfg.groups):
        raise ObservationError(
            f"expected {len(cfg.groups)} group observations, got {len(observations)}"
        )
    for spec, obs in zip(cfg.groups, observations, strict=True):
        for field in ("signal", "wake", "need"):
            value = getattr(obs, field)
            if not math.isfinite(value) or value < 0:
                raise ObservationError(
                    f"group {spec.name}: {field} must be finite and >= 0, got {value!r}"
                )
