r"""The per-group convergence governor (spec: `specs/ConvergenceGovernor.tla`).

    DORMANT --Activate--> ACTIVE --BeginCooling--> COOLING --Converge--> CONVERGED
                            ^  \--Learn (first high)    |  \--Cool (a low, not yet patient)
                            +------------Reheat---------+
    CONVERGED --Awaken--> AWAKENED (behaves like ACTIVE, with its own budget multiplier)

The guards are small module functions so each can be read, tested and, in the
tests, deliberately broken to show that its invariant catches the break.
"""

from __future__ import annotations

from govtrain.governance.config import GovernorConfig
from govtrain.governance.state import GroupState, Phase


def may_begin_cooling(group: GroupState) -> bool:
    """NoCoolingFromCold: a group that never learned since activation cannot cool."""
    return group.seen_high


def patience_reached(lows: int, patience: int) -> bool:
    """COOLING converges on the `patience`-th consecutive low observed while cooling."""
    return lows >= patience


def may_awaken(group: GroupState, max_awakenings: int) -> bool:
    """AwakeningsBounded: at most `max_awakenings` wakes, so nothing oscillates forever."""
    return group.awakenings < max_awakenings


def activate(group: GroupState) -> GroupState:
    """Activate: a DORMANT group whose level became active starts learning from cold."""
    return GroupState(Phase.ACTIVE, seen_high=False, lows=0, awakenings=group.awakenings)


def observe(
    group: GroupState,
    high: bool,
    wake: bool,
    cfg: GovernorConfig,
    settled_below: bool = True,
    upper_active: bool = True,
) -> tuple[GroupState, str | None]:
    """One step of one governor: the new state and the action taken (None: no change).
    `settled_below`: ConvergeAfterLower allows this group to converge now; `upper_active`:
    ConvergeAfterUpper lets its lows count (step.py)."""
    match group.phase:
        case Phase.ACTIVE | Phase.AWAKENED:
            if high:
                return (group, None) if group.seen_high else (group.with_(seen_high=True), "Learn")
            if may_begin_cooling(group):
                return group.with_(phase=Phase.COOLING, lows=0), "BeginCooling"
            return group, None
        case Phase.COOLING:
            if high:
                return group.with_(phase=Phase.ACTIVE, lows=0), "Reheat"
            if not upper_active:
                # a level above is still dormant: this low is no evidence, it keeps cooling
                return group, None
            lows = group.lows + 1
            if patience_reached(lows, cfg.patience):
                if settled_below:
                    return group.with_(phase=Phase.CONVERGED, lows=0), "Converge"
                # patient, but the groups below still train: it waits one low short of
                # converging, still cooling (and training)
                return group, None
            return group.with_(lows=lows), "Cool"
        case Phase.CONVERGED:
            if wake and may_awaken(group, cfg.max_awakenings):
                awakened = GroupState(Phase.AWAKENED, awakenings=group.awakenings + 1)
                return awakened, "Awaken"
            return group, None
        case _:  # DORMANT: no gradient, nothing observed; only the hierarchy activates it
            return group, None
