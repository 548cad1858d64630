"""The hierarchy activator: coarse-to-fine activation (spec: `specs/HierarchyActivator.tla`).

Level 0 starts active. Level k+1 activates (ActivateLevel) when every group at
levels <= k is CONVERGED at that moment, or when the clock reaches its emergency
deadline. At most one level per step, never backwards: NoSkippedLevels and
LevelsMonotone hold by construction and are checked anyway.
"""

from __future__ import annotations

from govtrain.governance import convergence
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, Phase, Transition


def gate_open(state: GovernanceState, cfg: GovernanceConfig) -> bool:
    """ActivationGated: every group at or below the active level has converged."""
    return all(
        g.phase is Phase.CONVERGED
        for i, g in enumerate(state.groups)
        if cfg.level_of(i) <= state.active_level
    )


def converge_after_lower(state: GovernanceState, group: int, cfg: GovernanceConfig) -> bool:
    """ConvergeAfterLower (with `hierarchy.converge_after_lower`): a group may converge
    only once every group at a lower level has. A group frozen while the groups it was
    activated after still train keeps adapting to features that no longer exist (AutoFreeze
    and PipeTransformer freeze bottom-up for the same reason); the groups below settle
    first, and the levels' own order says which those are."""
    if not cfg.hierarchy.converge_after_lower:
        return True
    level = cfg.level_of(group)
    return all(
        g.phase is Phase.CONVERGED for i, g in enumerate(state.groups) if cfg.level_of(i) < level
    )


def converge_after_upper(state: GovernanceState, group: int, cfg: GovernanceConfig) -> bool:
    """ConvergeAfterUpper (with `hierarchy.converge_after_upper`): a group's lows count
    towards its patience, and so it may converge, only while no level above it is
    DORMANT. A level activated (grown) above a group changes what that group's features
    are for, so quiet observed in the shallower model is no evidence for the deeper one:
    measured, a level-0 group that converged mid-growth stayed frozen while the loss
    still fell (BENCHMARKS.md, "Growth"). With it the gate cannot open below the top
    level, so levels activate at their deadlines."""
    if not cfg.hierarchy.converge_after_upper:
        return True
    return all(
        g.phase is not Phase.DORMANT
        for i, g in enumerate(state.groups)
        if cfg.level_of(i) > cfg.level_of(group)
    )


def emergency(state: GovernanceState, level: int, cfg: GovernanceConfig) -> bool:
    """The run is far enough along that `level` must start learning regardless."""
    return state.clock >= cfg.deadline(level)


def next_level(state: GovernanceState, cfg: GovernanceConfig) -> int:
    """The active level after this step: one more when the gate or the deadline allows."""
    nxt = state.active_level + 1
    if nxt < cfg.hierarchy.levels and (gate_open(state, cfg) or emergency(state, nxt, cfg)):
        return nxt
    return state.active_level


def activate_levels(
    state: GovernanceState, cfg: GovernanceConfig
) -> tuple[GovernanceState, tuple[Transition, ...]]:
    """Apply ActivateLevel (and Activate for each of the new level's groups) if due."""
    level = next_level(state, cfg)
    if level == state.active_level:
        return state, ()
    transitions = [Transition("ActivateLevel", None, str(state.active_level), str(level))]
    groups = list(state.groups)
    for i, g in enumerate(groups):
        if g.phase is Phase.DORMANT and cfg.level_of(i) <= level:
            groups[i] = convergence.activate(g)
            transitions.append(
                Transition("Activate", cfg.groups[i].name, g.phase.value, groups[i].phase.value)
            )
    return GovernanceState(state.clock, level, tuple(groups), state.quiet), tuple(transitions)
