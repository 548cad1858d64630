"""The names Python and TLA+ share, written once: spec variables, constants, values.

The core's state fields are snake_case (`GovernanceState.active_level`,
`GroupState.seen_high`), the specs' variables camelCase (`activeLevel`,
`seenHigh`); the tables here are the only map between them. Action labels
(`Learn(embed)`) belong to `Transition.label`, state and action names to
`governance.state`. Trace export, trace validation, the spec-vs-code graph
comparisons and generated models all read from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from math import lcm
from typing import Any

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.state import GovernanceState, GroupState, Phase

# spec variable -> field of GovernanceState (whole state) or GroupState (one per group).
STATE_VARIABLES = {"clock": "clock", "activeLevel": "active_level", "quiet": "quiet"}
GROUP_VARIABLES = {
    "phase": "phase",
    "seenHigh": "seen_high",
    "lows": "lows",
    "awakenings": "awakenings",
}
SPEC_VARIABLES = (*STATE_VARIABLES, *GROUP_VARIABLES)

# The constants of GovernedTraining.tla, in the order `training_constants` lists them;
# a trace's Init line carries all but Needs (each step line carries its own needs).
CONSTANT_NAMES = (
    "GroupNames",
    "Level",
    "Patience",
    "MaxAwakenings",
    "TotalSteps",
    "EmergencyFraction",
    "Dormant",
    "InLevelOrder",
    "AfterUpper",
    "Warmup",
    "Batch",
    "FinishWindow",
    "Master",
    "Floor",
    "Ceiling",
    "Multiplier",
    "Needs",
)
TRACE_CONSTANT_NAMES = CONSTANT_NAMES[:-1]
MULTIPLIED_PHASES = (Phase.ACTIVE, Phase.COOLING, Phase.AWAKENED)
# The explorer's default needs (1.0, 3.0), as integers: they only weigh the budget.
NEEDS = (1, 3)


def spec_state(recorded: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A recorded state (`state_to_dict`: groups keyed by name) as the spec's variables."""
    groups = [recorded["groups"][n] for n in names]
    out = {var: recorded[field] for var, field in STATE_VARIABLES.items()}
    out |= {var: [g[field] for g in groups] for var, field in GROUP_VARIABLES.items()}
    return out


def group_state(values: Mapping[str, Any], i: int | None = None) -> GroupState:
    """A spec state's group (its i-th tuple element, or the whole state when i is None)."""

    def pick(var: str) -> Any:
        return values[var] if i is None else values[var][i]

    fields = {field: pick(var) for var, field in GROUP_VARIABLES.items()}
    return GroupState(**{**fields, "phase": Phase(fields["phase"])})


def governance_state(values: Mapping[str, Any]) -> GovernanceState:
    groups = tuple(group_state(values, i) for i in range(len(values["phase"])))
    return GovernanceState(
        **{field: values[var] for var, field in STATE_VARIABLES.items()}, groups=groups
    )


def tla(value: Any) -> str:
    """A Python value as a TLA+ constant expression."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "<<" + ", ".join(tla(v) for v in value) + ">>"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(tla(v) for v in sorted(value)) + "}"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{k} |-> {tla(v)}" for k, v in value.items()) + "]"
    raise TypeError(f"no TLA+ form for {value!r}")


def exact(x: float) -> Fraction:
    """A config number as the decimal the user wrote (0.3 is 3/10, not the nearest double)."""
    return Fraction(str(x))


def integer_scale(values: Iterable[float]) -> tuple[list[int], int]:
    """Scale rationals to integers by the least common denominator: weights compare as
    ratios, so multiplying every multiplier (or every need) by one positive number
    changes no allocation."""
    fracs = [exact(v) for v in values]
    scale = lcm(*(f.denominator for f in fracs)) if fracs else 1
    return [int(f * scale) for f in fracs], scale


# TLC's integers are Java ints: a value past this is an evaluation error, not a verdict.
TLC_MAX_INT = 2**31 - 1


class OutOfTLCRange(GovtrainError):
    """A config TLC cannot evaluate: a product the spec computes overflows its integers."""


def training_constants(cfg: GovernanceConfig, needs: Sequence[float] = NEEDS) -> dict[str, Any]:
    """GovernedTraining's constants for a governance config, keyed as CONSTANT_NAMES.

    Raises OutOfTLCRange where the level deadlines' exact arithmetic (HierarchyActivator's
    `EmergencyFraction[1] * TotalSteps * k`) would overflow TLC's integers, e.g. a
    fraction written as 1/3's sixteen-digit decimal: TLC would stop with an evaluation
    error that reads as a divergence."""
    frac = cfg.hierarchy.emergency_ratio  # the decimal as written, exactly
    top = max(cfg.hierarchy.levels - 1, 1)
    if max(frac.numerator * cfg.total_steps * top, frac.denominator * top) > TLC_MAX_INT:
        raise OutOfTLCRange(
            f"hierarchy.emergency_fraction {cfg.hierarchy.emergency_fraction!r} (exactly "
            f"{frac}) at total_steps {cfg.total_steps} overflows TLC's 32-bit integers in "
            "the level deadlines; a decimal with fewer digits (e.g. 0.33) fits"
        )
    mults, _ = integer_scale(cfg.governor.multipliers[p] for p in MULTIPLIED_PHASES)
    need_ints, _ = integer_scale(needs)
    values = (
        tuple(g.name for g in cfg.groups),
        tuple(g.level for g in cfg.groups),
        cfg.governor.patience,
        cfg.governor.max_awakenings,
        cfg.total_steps,
        (frac.numerator, frac.denominator),
        cfg.hierarchy.dormant,
        cfg.hierarchy.converge_after_lower,
        cfg.hierarchy.converge_after_upper,
        cfg.router.warmup_steps,
        cfg.router.batch_size,
        cfg.finish_window,
        cfg.budget.master,
        cfg.budget.floor,
        cfg.budget.ceiling,
        {p.value: m for p, m in zip(MULTIPLIED_PHASES, mults, strict=True)},
        set(need_ints),
    )
    return dict(zip(CONSTANT_NAMES, values, strict=True))


def trace_constants(cfg: GovernanceConfig) -> dict[str, Any]:
    """The constants a trace's Init line carries, as JSON values (tuples become lists)."""
    consts = training_constants(cfg)
    return {
        n: list(v) if isinstance(v, tuple) else v
        for n, v in consts.items()
        if n in TRACE_CONSTANT_NAMES
    }
