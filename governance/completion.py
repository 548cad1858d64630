"""The run's end: nothing left to train (spec: `Finish` in `specs/GovernedTraining.tla`).

A run whose every group is CONVERGED at the top level trains nothing: each
further step is a forward pass and a wake probe. Once that has held, with no
wake probe firing, for `finish_window` consecutive steps, the step that
completes the window takes the action Finish and the trainer ends the run
(checkpoint, sealed log). Any step that leaves a group trainable, a level
inactive or a probe firing restarts the count. With `finish_window` 0 the
count never starts and a run always takes `total_steps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.state import GovernanceState, Phase, Transition


def nothing_to_train(state: GovernanceState, cfg: GovernanceConfig) -> bool:
    """FinishOnlyWhenAllConverged's condition: top level active, every group CONVERGED."""
    return state.active_level == cfg.hierarchy.levels - 1 and all(
        g.phase is Phase.CONVERGED for g in state.groups
    )


def finished(state: GovernanceState, cfg: GovernanceConfig) -> bool:
    return cfg.finish_window > 0 and state.quiet == cfg.finish_window


def count_quiet(
    quiet: int, state: GovernanceState, woke: Sequence[bool], cfg: GovernanceConfig
) -> tuple[GovernanceState, tuple[Transition, ...]]:
    """The state after a step with its quiet count, and Finish if this step completes it.

    `quiet` is the count before the step, `state` the step's outcome so far,
    `woke[g]` whether group g's wake probe fired this step.
    """
    calm = cfg.finish_window > 0 and nothing_to_train(state, cfg) and not any(woke)
    now = min(quiet + 1, cfg.finish_window) if calm else 0
    done = now == cfg.finish_window and quiet < now
    return replace(state, quiet=now), (Transition("Finish", None, "", ""),) if done else ()
