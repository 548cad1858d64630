"""Bounded exhaustive exploration of the composed core.

Breadth-first over every reachable GovernanceState, feeding each state every
*abstract* observation: per group, signal low/high and wake no/yes where the
phase reads them, and each learning need in `needs`. Inputs a phase ignores are
not enumerated (they cannot change the outcome), which keeps the graph small
without losing behaviours. Every state and every labelled transition is
checked against every invariant; the first violation comes back with a
shortest path from the initial state, because BFS discovers states in order
of distance.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.invariants import INVARIANTS, Checked, violations
from govtrain.governance.state import GovernanceState, GroupObservation, Phase
from govtrain.governance.step import decide, govern, initial_state


@dataclass(frozen=True)
class PathStep:
    observation: tuple[GroupObservation, ...]
    actions: tuple[str, ...]
    state: GovernanceState


@dataclass(frozen=True)
class Violation:
    """The first bad step found: every invariant it breaks, and how to get there."""

    broken: tuple[tuple[str, str], ...]  # (invariant, reason), in INVARIANTS order
    path: tuple[PathStep, ...]
    model: str = ""  # where an abstract explorer found it (governance/abstraction.py)

    @property
    def invariant(self) -> str:
        return self.broken[0][0]

    @property
    def invariants(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.broken)

    def describe(self) -> str:
        lines = [f"invariant {name} violated: {reason}" for name, reason in self.broken]
        if self.model:
            lines.append(f"found in the abstract model's part: {self.model}")
        if not self.path:
            lines.append("shortest path: the initial state itself")
        else:
            lines.append(f"shortest path ({len(self.path)} steps):")
        for n, step in enumerate(self.path, 1):
            obs = " ".join(f"[s={o.signal:g} w={o.wake:g} n={o.need:g}]" for o in step.observation)
            acts = ", ".join(step.actions) or "-"
            lines.append(f"  {n}. obs {obs} -> {acts} -> {render(step.state)}")
        return "\n".join(lines)


@dataclass
class Exploration:
    graph: nx.MultiDiGraph
    initial: GovernanceState
    violation: Violation | None = None
    checked: tuple[str, ...] = field(default_factory=lambda: tuple(INVARIANTS))


def render(state: GovernanceState) -> str:
    groups = ",".join(
        f"{g.phase.value[:4]}{'+' if g.seen_high else ''}{g.lows or ''}"
        + (f"^{g.awakenings}" if g.awakenings else "")
        for g in state.groups
    )
    quiet = f" quiet={state.quiet}" if state.quiet else ""
    return f"<clock={state.clock} level={state.active_level}{quiet} {groups}>"


def label(actions: Sequence[str]) -> str:
    return "|".join(actions) or "Stutter"


def inputs(phase: Phase) -> tuple[tuple[bool, bool], ...]:
    """The (signal high?, wake fired?) inputs a phase reads; the others change nothing
    (ConvergenceGovernor's ReadsOnlyItsInputs)."""
    if phase is Phase.CONVERGED:
        return ((False, False), (False, True))
    if phase is Phase.DORMANT:
        return ((False, False),)
    return ((False, False), (True, False))


def observations(
    state: GovernanceState, cfg: GovernanceConfig
) -> list[tuple[GroupObservation, ...]]:
    """All abstract signal/wake observations that can move the state (need fixed at 1)."""
    level = {False: 0.0, True: cfg.governor.signal_threshold}
    probe = {False: 0.0, True: cfg.governor.wake_threshold}
    per_group = [
        [GroupObservation(level[high], probe[wake]) for high, wake in inputs(g.phase)]
        for g in state.groups
    ]
    return list(itertools.product(*per_group))


def explore(
    cfg: GovernanceConfig,
    needs: Sequence[float] = (1.0, 3.0),
    max_states: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> Exploration:
    """Visit every reachable state (up to `max_states`), checking every invariant.

    Needs only weight the budget, never move a state, so each state's decisions
    are checked once per need vector when it is discovered, not once per edge.
    `progress(states found, states waiting)` is called after each state is expanded.
    """
    init = initial_state(cfg)
    graph = nx.MultiDiGraph()
    graph.add_node(init)
    parent: dict[GovernanceState, tuple[GovernanceState, PathStep] | None] = {init: None}
    result = Exploration(graph, init)
    need_vectors = list(itertools.product(needs, repeat=len(cfg.groups)))
    bad, _ = _check_decisions(None, init, cfg, need_vectors)
    if bad:
        result.violation = Violation(bad, ())
        return result
    queue = deque([init])
    while queue:
        state = queue.popleft()
        for obs in observations(state, cfg):
            step = govern(state, obs, cfg)
            actions = tuple(t.label for t in step.transitions)
            graph.add_edge(state, step.state, key=label(actions))
            path_step = PathStep(tuple(obs), actions, step.state)
            bad = tuple(violations(Checked(state, step.state, step.decision, cfg)))
            if not bad and step.state not in parent:
                bad, needs_used = _check_decisions(state, step.state, cfg, need_vectors)
                obs_used = tuple(replace(o, need=n) for o, n in zip(obs, needs_used, strict=True))
                path_step = replace(path_step, observation=obs_used)
            if bad:
                result.violation = Violation(bad, (*path_to(parent, state), path_step))
                return result
            if step.state not in parent:
                if len(parent) >= max_states:
                    raise GovtrainError(
                        f"more than {max_states} reachable states; shrink the config"
                    )
                parent[step.state] = (state, path_step)
                queue.append(step.state)
        if progress is not None:
            progress(len(parent), len(queue))
    return result


def _check_decisions(
    pre: GovernanceState | None,
    post: GovernanceState,
    cfg: GovernanceConfig,
    need_vectors: Sequence[Sequence[float]],
) -> tuple[tuple[tuple[str, str], ...], Sequence[float]]:
    """The first need vector whose decision breaks an invariant, with what it breaks."""
    for needs in need_vectors:
        bad = violations(Checked(pre, post, decide(post, needs, cfg), cfg))
        if bad:
            return tuple(bad), needs
    return (), need_vectors[0]


def path_to(parent: dict, state: Hashable) -> tuple[PathStep, ...]:
    """The steps from the initial state to `state` in a BFS `parent` map."""
    path: list[PathStep] = []
    while (entry := parent[state]) is not None:
        state, step = entry
        path.append(step)
    return tuple(path[::-1])
