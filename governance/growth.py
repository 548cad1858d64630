"""Which groups are computed, and how an activated level grows (spec: `Computed`,
`Grows` and `NextComputed` in `specs/HierarchyActivator.tla`; the block pairing of a
growth is checked by replay, govtrain/formal/replay.py).

With `hierarchy.dormant: bypass` a DORMANT group's blocks are not run at all: the
model is as deep as its active levels, so a level that is "not yet active" costs
nothing instead of two thirds of its dense step. When ActivateLevel activates a
level its blocks start computing, initialised by `hierarchy.grow`:

* `stack`: the new blocks copy the trained blocks below them, bottom up and
  repeating (progressive stacking, Gong et al. 2019; G_stack, Du et al. 2024);
* `identity`: their residual branches' output projections are zeroed, so the
  model computes the same function right after the switch;
* `none`: they keep their initial weights.

Nothing ever stops computing again: a level only activates (LevelsMonotone), so
the computed set only grows. This module is the rule; pipeline/growth.py applies
it to a model's blocks and replay checks the record it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, Phase


def computed(state: GovernanceState, cfg: GovernanceConfig) -> tuple[bool, ...]:
    """Computed: whether each group's blocks run in the forward. Only a DORMANT group
    under `dormant: bypass` is skipped; a CONVERGED one still runs (frozen), because the
    levels above it were trained on its output."""
    bypass = cfg.hierarchy.dormant == "bypass"
    return tuple(not (bypass and g.phase is Phase.DORMANT) for g in state.groups)


def grows(before: GovernanceState, after: GovernanceState, cfg: GovernanceConfig) -> bool:
    """Whether this step grows the model: a level activated while dormant levels were
    bypassed (its blocks were not computed before and are now)."""
    return cfg.hierarchy.dormant == "bypass" and after.active_level > before.active_level


@dataclass(frozen=True)
class GrowthPlan:
    """What one activation grows: the level, its groups, the groups it grows from, and
    per target block the block it copies (None: no source, for `identity` and `none`)."""

    operator: str
    level: int
    target_groups: tuple[str, ...]
    source_groups: tuple[str, ...]
    pairs: tuple[tuple[str, str | None], ...]

    def as_dict(self) -> dict:
        return {
            "operator": self.operator,
            "level": self.level,
            "target_groups": list(self.target_groups),
            "source_groups": list(self.source_groups),
            "pairs": [list(p) for p in self.pairs],
        }


def plan(level: int, blocks: Sequence[tuple[str, int]], cfg: GovernanceConfig) -> GrowthPlan:
    """The growth of `level`: `blocks` are the model's blocks in forward order, each as
    (name, index of the group that owns it). Under `stack` target block j copies the j-th
    trained block below, counting from the bottom and starting over when they run out, so
    the grown stack repeats the trained one as progressive stacking does."""
    names = [g.name for g in cfg.groups]
    targets = [b for b, g in blocks if cfg.level_of(g) == level]
    sources = [b for b, g in blocks if cfg.level_of(g) < level]
    operator = cfg.hierarchy.grow
    if operator == "stack" and sources:
        pairs = tuple((t, sources[j % len(sources)]) for j, t in enumerate(targets))
    else:
        pairs = tuple((t, None) for t in targets)
    return GrowthPlan(
        operator=operator,
        level=level,
        target_groups=tuple(n for i, n in enumerate(names) if cfg.level_of(i) == level),
        source_groups=tuple(n for i, n in enumerate(names) if cfg.level_of(i) < level),
        pairs=pairs,
    )
