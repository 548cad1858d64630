"""The named invariants, spelled as in the TLA+ specs.

Each is a function of one checked step: the state before (None for the initial
state), the state after, and the decision taken from the state after. Each
returns None when it holds, else a sentence saying what is wrong. They are
checked by the exhaustive explorer, the property tests and trace replay.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from govtrain.governance import growth
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, Phase
from govtrain.governance.step import Decision


@dataclass(frozen=True, slots=True)
class Checked:
    pre: GovernanceState | None
    post: GovernanceState
    decision: Decision
    cfg: GovernanceConfig

    def names(self) -> list[str]:
        return [g.name for g in self.cfg.groups]


Invariant = Callable[[Checked], str | None]


def _first(c: Checked, bad: Callable[[int], bool], what: str) -> str | None:
    for i in range(len(c.cfg.groups)):  # names only for the message: explorers call this a lot
        if bad(i):
            return f"group {c.cfg.groups[i].name}: {what}"
    return None


def TypeOK(c: Checked) -> str | None:
    cfg, s = c.cfg, c.post
    if not 0 <= s.clock <= cfg.horizon:
        return f"clock {s.clock} outside 0..{cfg.horizon}"
    if not 0 <= s.active_level < cfg.hierarchy.levels:
        return f"active level {s.active_level} outside 0..{cfg.hierarchy.levels - 1}"
    if len(s.groups) != len(cfg.groups):
        return f"{len(s.groups)} group states for {len(cfg.groups)} groups"
    if not 0 <= s.quiet <= cfg.finish_window:
        return f"quiet count {s.quiet} outside 0..{cfg.finish_window}"

    def bad(i: int) -> bool:
        g = s.groups[i]
        lows_ok = 0 <= g.lows < cfg.governor.patience and (g.lows == 0 or g.phase is Phase.COOLING)
        return not (isinstance(g.phase, Phase) and lows_ok and g.awakenings >= 0)

    n = len(cfg.groups)
    d = c.decision
    if len(d.allocations) != n or len(d.quotas) != n:
        return "decision does not cover every group"
    if any(not isinstance(u, int) or u < 0 for u in (*d.allocations, *d.quotas)):
        return f"allocations {d.allocations} / quotas {d.quotas} must be naturals"
    return _first(c, bad, "phase, lows or awakenings out of range")


def NoCoolingFromCold(c: Checked) -> str | None:
    cold = (Phase.COOLING, Phase.CONVERGED)
    return _first(
        c,
        lambda i: c.post.groups[i].phase in cold and not c.post.groups[i].seen_high,
        "cooling or converged although its signal was never high since activation",
    )


def AwakeningsBounded(c: Checked) -> str | None:
    limit = c.cfg.governor.max_awakenings
    return _first(
        c, lambda i: c.post.groups[i].awakenings > limit, f"awakened more than {limit} times"
    )


def LevelsMonotone(c: Checked) -> str | None:
    if c.pre is not None and c.post.active_level < c.pre.active_level:
        return f"active level fell from {c.pre.active_level} to {c.post.active_level}"
    return None


def NoSkippedLevels(c: Checked) -> str | None:
    if c.pre is not None and c.post.active_level > c.pre.active_level + 1:
        return f"active level jumped from {c.pre.active_level} to {c.post.active_level}"
    return None


def DormantAboveLevel(c: Checked) -> str | None:
    s = c.post
    return _first(
        c,
        lambda i: (c.cfg.level_of(i) > s.active_level) != (s.groups[i].phase is Phase.DORMANT),
        f"DORMANT must mean 'above the active level {s.active_level}' and nothing else",
    )


def ActivationGated(c: Checked) -> str | None:
    if c.pre is None or c.post.active_level <= c.pre.active_level:
        return None
    level = c.post.active_level
    below_converged = all(
        g.phase is Phase.CONVERGED for i, g in enumerate(c.post.groups) if c.cfg.level_of(i) < level
    )
    if below_converged or c.post.clock >= c.cfg.deadline(level):
        return None
    return (
        f"level {level} activated at clock {c.post.clock} before its deadline "
        f"{c.cfg.deadline(level)} while a lower group had not converged"
    )


def FinishOnlyWhenAllConverged(c: Checked) -> str | None:
    """Steps count towards the run's end only while the top level is active and every
    group is CONVERGED (written out here, not through governance.completion)."""
    s, top = c.post, c.cfg.hierarchy.levels - 1
    if s.quiet == 0:
        return None
    if s.active_level != top:
        return f"quiet count {s.quiet} while level {top} is not active"
    return _first(
        c,
        lambda i: s.groups[i].phase is not Phase.CONVERGED,
        f"not CONVERGED although the quiet count is {s.quiet}",
    )


def BudgetConserved(c: Checked) -> str | None:
    total = sum(c.decision.allocations)
    if total > c.cfg.budget.master:
        return f"allocated {total} units of a master budget of {c.cfg.budget.master}"
    return None


def BudgetWithinBounds(c: Checked) -> str | None:
    b, d = c.cfg.budget, c.decision

    def bad(i: int) -> bool:
        u = d.allocations[i]
        if c.post.frozen(i):
            return False
        return u > b.ceiling or (d.budget_action == "Allocate" and u < b.floor)

    return _first(c, bad, f"allocation outside floor {b.floor} / ceiling {b.ceiling}")


def BudgetWorkConserving(c: Checked) -> str | None:
    b, d = c.cfg.budget, c.decision
    if sum(d.allocations) >= b.master:
        return None
    return _first(
        c,
        lambda i: not c.post.frozen(i) and d.allocations[i] < b.ceiling,
        f"below the ceiling while {b.master - sum(d.allocations)} units stay unallocated",
    )


def NoBudgetForFrozen(c: Checked) -> str | None:
    return _first(
        c,
        lambda i: c.post.frozen(i) and c.decision.allocations[i] != 0,
        "frozen but allocated budget",
    )


def QuotaWithinBatch(c: Checked) -> str | None:
    batch = c.cfg.router.batch_size
    return _first(c, lambda i: not 0 <= c.decision.quotas[i] <= batch, f"quota outside 0..{batch}")


def FrozenGetsNoGradient(c: Checked) -> str | None:
    return _first(
        c,
        lambda i: c.post.frozen(i) and c.decision.quotas[i] != 0,
        "frozen but routed samples",
    )


def ComputedIsNotDormant(c: Checked) -> str | None:
    """The groups whose blocks run (growth.computed) are those the levels grown so far
    hold: under `hierarchy.dormant: bypass` the groups at or below the active level,
    under `frozen` every group."""
    runs = growth.computed(c.post, c.cfg)
    bypass = c.cfg.hierarchy.dormant == "bypass"
    level = c.post.active_level
    return _first(
        c,
        lambda i: runs[i] != (not bypass or c.cfg.level_of(i) <= level),
        f"computed is not 'at or below the active level {level}'"
        if bypass
        else "not computed under hierarchy.dormant 'frozen'",
    )


def ComputedNeverShrinks(c: Checked) -> str | None:
    """No group's blocks stop running: computed before a step, computed after it."""
    if c.pre is None:
        return None
    before, after = growth.computed(c.pre, c.cfg), growth.computed(c.post, c.cfg)
    return _first(c, lambda i: before[i] and not after[i], "computed before the step, not after")


def ConvergeAfterLower(c: Checked) -> str | None:
    """With `hierarchy.converge_after_lower`, a group that converged this step did so
    while every group at a lower level was already CONVERGED."""
    if c.pre is None or not c.cfg.hierarchy.converge_after_lower:
        return None
    pre = c.pre

    def early(i: int) -> bool:
        converged = c.post.groups[i].phase is Phase.CONVERGED
        if not converged or pre.groups[i].phase is not Phase.COOLING:
            return False
        level = c.cfg.level_of(i)
        return any(
            g.phase is not Phase.CONVERGED
            for j, g in enumerate(pre.groups)
            if c.cfg.level_of(j) < level
        )

    return _first(c, early, "converged while a group at a lower level was still training")


def ConvergeAfterUpper(c: Checked) -> str | None:
    """With `hierarchy.converge_after_upper`, a COOLING group counted a low or converged
    this step only while no level above it was DORMANT (written out, not through the
    guard, so a broken guard is caught)."""
    if c.pre is None or not c.cfg.hierarchy.converge_after_upper:
        return None
    pre = c.pre

    def early(i: int) -> bool:
        before, after = pre.groups[i], c.post.groups[i]
        if before.phase is not Phase.COOLING:
            return False
        if after.phase is not Phase.CONVERGED and after.lows <= before.lows:
            return False
        level = c.cfg.level_of(i)
        return any(
            g.phase is Phase.DORMANT for j, g in enumerate(pre.groups) if c.cfg.level_of(j) > level
        )

    return _first(c, early, "counted a low or converged while a level above was DORMANT")


INVARIANTS: dict[str, Invariant] = {
    f.__name__: f
    for f in (
        TypeOK,
        NoCoolingFromCold,
        AwakeningsBounded,
        LevelsMonotone,
        NoSkippedLevels,
        DormantAboveLevel,
        ActivationGated,
        FinishOnlyWhenAllConverged,
        BudgetConserved,
        BudgetWithinBounds,
        BudgetWorkConserving,
        NoBudgetForFrozen,
        QuotaWithinBatch,
        FrozenGetsNoGradient,
        ComputedIsNotDormant,
        ComputedNeverShrinks,
        ConvergeAfterLower,
        ConvergeAfterUpper,
    )
}


# What each invariant reads beyond phases and levels: a group's own counters (LOCAL) or
# the decision (DECISION). The abstract explorer checks each where it sees those exactly.
LOCAL = ("TypeOK", "NoCoolingFromCold", "AwakeningsBounded")
DECISION = (
    "TypeOK",
    "BudgetConserved",
    "BudgetWithinBounds",
    "BudgetWorkConserving",
    "NoBudgetForFrozen",
    "QuotaWithinBatch",
    "FrozenGetsNoGradient",
)


def violations(checked: Checked, names: Sequence[str] = tuple(INVARIANTS)) -> list[tuple[str, str]]:
    """Every invariant (of `names`) that fails for this step, as (name, reason)."""
    out = []
    for name in names:
        reason = INVARIANTS[name](checked)
        if reason is not None:
            out.append((name, reason))
    return out
