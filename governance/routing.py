"""The gradient router (spec: `specs/GradientRouter.tla`).

A group's allocation becomes its per-step sample quota (one unit = one sample);
during the observation-only warmup every eligible group sees the whole batch.
Route picks the quota's highest-scoring samples, ties to the lower index, so
every rank that sees the same scores routes the same samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import ObservationError
from govtrain.governance.state import GovernanceState


def in_warmup(state: GovernanceState, cfg: GovernanceConfig) -> bool:
    """The step about to run (index = clock) is still observation-only."""
    return state.clock < cfg.router.warmup_steps


def quota(state: GovernanceState, group: int, units: int, cfg: GovernanceConfig) -> int:
    """Samples whose gradient reaches `group` next step; FrozenGetsNoGradient."""
    if state.frozen(group):
        return 0
    if in_warmup(state, cfg):
        return cfg.router.batch_size
    return min(units, cfg.router.batch_size)


def route(scores: Sequence[float], k: int) -> tuple[int, ...]:
    """Indices of the `k` highest scores (ties: lower index first), in ascending order."""
    if any(not math.isfinite(s) for s in scores):
        raise ObservationError("routing scores must be finite")
    k = max(0, min(k, len(scores)))
    chosen = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
    return tuple(sorted(chosen))


def applied_quota(
    state: GovernanceState, group: int, decided: int, batch: int, enforced: bool
) -> int:
    """Samples a step really routes to `group`: none while it is frozen, at most the
    batch, and the whole batch in shadow mode (`train.mode: observe` applies nothing)."""
    if not enforced:
        return batch
    return 0 if state.frozen(group) else min(decided, batch)
