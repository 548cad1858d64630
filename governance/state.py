"""Immutable governance state values, shared by every component.

The fields are exactly the TLA+ variables of `specs/GovernedTraining.tla`
(`phase`, `seenHigh`, `lows`, `awakenings`, `activeLevel`, `clock`, `quiet`), so a state
here and a state there can be compared one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """The convergence governor's states; DORMANT and CONVERGED groups are frozen."""

    DORMANT = "DORMANT"
    ACTIVE = "ACTIVE"
    COOLING = "COOLING"
    CONVERGED = "CONVERGED"
    AWAKENED = "AWAKENED"

    @property
    def frozen(self) -> bool:
        return self in (Phase.DORMANT, Phase.CONVERGED)


# Every action a governance step can take, as the specs and audit records spell them:
# the governor's moves, the hierarchy's, then the run's end (budget decisions are
# Allocate / Ration).
GOVERNOR_ACTIONS = ("Activate", "Learn", "BeginCooling", "Cool", "Converge", "Reheat", "Awaken")
ACTIONS = (*GOVERNOR_ACTIONS, "ActivateLevel", "Finish")


@dataclass(frozen=True, slots=True)
class GroupState:
    """One group's governor state.

    `seen_high`: the signal was high at least once since (re)activation; the
    guard of NoCoolingFromCold. `lows`: consecutive low signals while COOLING.
    """

    phase: Phase
    seen_high: bool = False
    lows: int = 0
    awakenings: int = 0

    def with_(self, **changes: object) -> GroupState:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class GovernanceState:
    """The whole core's state: the clock, the active level and every group's governor.

    `quiet`: consecutive steps that ended with nothing left to train (every
    group CONVERGED at the top level), saturating at `finish_window`; the run
    ends when it gets there (governance/completion.py).
    """

    clock: int
    active_level: int
    groups: tuple[GroupState, ...]
    quiet: int = 0

    def frozen(self, group: int) -> bool:
        return self.groups[group].phase.frozen


@dataclass(frozen=True, slots=True)
class GroupObservation:
    """What the pipeline measured for one group during one step.

    `signal` is the convergence signal (high = still learning), `wake` the drift
    probe for converged groups, `need` the learning need that weights its budget.
    """

    signal: float
    wake: float = 0.0
    need: float = 1.0


@dataclass(frozen=True, slots=True)
class Transition:
    """One named action taken during a step: a governor move or a level activation."""

    action: str
    group: str | None
    before: str
    after: str

    @property
    def label(self) -> str:
        """The action as the specs label it: `Learn(embed)`, `ActivateLevel(1)`, `Finish`."""
        target = self.group if self.group is not None else self.after
        return f"{self.action}({target})" if target else self.action

    def as_dict(self) -> dict[str, str | None]:
        return {
            "action": self.action,
            "group": self.group,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transition:
        return cls(d["action"], d["group"], d["before"], d["after"])


def state_to_dict(state: GovernanceState, names: list[str]) -> dict[str, Any]:
    """The state as audit records carry it: groups keyed by name."""
    return {
        "clock": state.clock,
        "active_level": state.active_level,
        "quiet": state.quiet,
        "groups": {
            n: {
                "phase": g.phase.value,
                "seen_high": g.seen_high,
                "lows": g.lows,
                "awakenings": g.awakenings,
            }
            for n, g in zip(names, state.groups, strict=True)
        },
    }


def state_from_dict(d: dict[str, Any], names: list[str]) -> GovernanceState:
    groups = tuple(
        GroupState(
            Phase(d["groups"][n]["phase"]),
            d["groups"][n]["seen_high"],
            d["groups"][n]["lows"],
            d["groups"][n]["awakenings"],
        )
        for n in names
    )
    return GovernanceState(d["clock"], d["active_level"], groups, d["quiet"])
