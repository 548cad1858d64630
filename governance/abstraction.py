"""A user's own config checked in seconds: an abstract explorer, sound for every invariant.

The concrete explorer (explore.py) visits every GovernanceState, and a shipped config
has too many: the clock runs to the last emergency deadline, a COOLING group counts
lows up to `patience`, and the groups' states multiply (configs/quickstart.yaml: 6
groups, 300 clock values; it does not finish). This explorer checks the same
invariants in three parts, each an over-approximation (every concrete step maps onto
one of its steps), so where it finds no violation there is none concretely. A
violation it reports may be one the concrete rules cannot reach in the steps they
have; `govtrain explore --concrete` settles it on a small copy of the config.

1. **Governor.** One group's governor exactly: every GroupState reachable from
   activation under every input its phase reads, each checked against the
   invariants that read a group's own counters (`invariants.LOCAL`). No rule reads
   another group's counters, so this is every group's governor in any composition.
   Where the config sets them, the level-order guards' waits are checked here too
   (ConvergeAfterLower, ConvergeAfterUpper): a low they hold back must not converge
   the group, and under a dormant level must not move its counters at all.
2. **Composition.** Each group seen by its phase only (its seen_high, lows and
   awakenings dropped), moving as some state of part 1 with that phase can; the
   groups of one level counted, not named (the rules read a level's groups as a
   set); the clock and the quiet count as the interval between the thresholds the
   rules compare them with. Both only grow by one or reset, so a step taken from
   each end of an interval shows every outcome of a step from inside it. The step
   ends in `step.conclude` (advance, then the next step's decision), the concrete
   code, and every invariant is checked on it.
3. **Decisions.** The budget and router invariants (`invariants.DECISION`) for
   every vector of phases (reachable or not), every need vector, in and after warmup.

The over-approximation rests on what the rules read, which holds of the rules as
written and is what a change to them must keep: across groups only phases (never
another group's seen_high, lows or awakenings), the clock and the quiet count only
compared with the thresholds above, a level's groups only as a set, and of a phase
in a decision only whether it is frozen and its multiplier. A rule that reads more
is outside what this explorer can see: an off-by-one against a deadline, a run end
that reads a COOLING group's lows, a decision that tells AWAKENED from ACTIVE at an
equal multiplier all pass here and fail `--concrete` (an independent review found
exactly these). tests/integration/test_abstraction.py checks the over-approximation
at small bounds (every concrete state and step of the concrete explorer maps onto
this one's), tests/unit/test_explore.py that the broken rule it keeps for each
invariant is caught by both explorers, and tests/integration/test_abstraction_soundness.py
that no core bug of the seeded-bugs catalogue is seen by the concrete explorer alone.
An abstract path shows the phases and the wake probes of each step, not the governor
actions or signals that led there.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import networkx as nx

from govtrain.governance import convergence, hierarchy
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.explore import Exploration, PathStep, Violation, inputs, path_to
from govtrain.governance.invariants import DECISION, LOCAL, Checked, violations
from govtrain.governance.state import GovernanceState, GroupObservation, GroupState, Phase
from govtrain.governance.step import Decision, conclude, decide, initial_state


def representative(phase: Phase) -> GroupState:
    """A GroupState of `phase` that breaks no local invariant: parts 2 and 3 read only
    its phase (part 1 checks the counters)."""
    return GroupState(phase, seen_high=phase is not Phase.DORMANT)


@dataclass(frozen=True)
class Intervals:
    """A counter seen as the interval between consecutive `points` it lies in; the last
    point is where the counter saturates."""

    points: tuple[int, ...]  # ascending, from 0

    def rep(self, value: int) -> int:
        return self.points[bisect.bisect_right(self.points, value) - 1]

    def ends(self, rep: int) -> tuple[int, ...]:
        """The values a step from `rep`'s interval is taken from: the interval's ends."""
        i = self.points.index(rep)
        last = self.points[i + 1] - 1 if i + 1 < len(self.points) else rep
        return (rep,) if last == rep else (rep, last)


def clock_intervals(cfg: GovernanceConfig) -> Intervals:
    """The clock is compared with the warmup and each level's emergency deadline only."""
    deadlines = (cfg.deadline(k) for k in range(cfg.hierarchy.levels))
    return Intervals(tuple(sorted({0, cfg.router.warmup_steps, cfg.horizon, *deadlines})))


def quiet_intervals(cfg: GovernanceConfig) -> Intervals:
    """The quiet count is compared with 0 and `finish_window` only."""
    return Intervals(tuple(sorted({0, min(1, cfg.finish_window), cfg.finish_window})))


@dataclass
class AbstractExploration(Exploration):
    governor_states: int = 0  # part 1: one group's reachable GroupStates
    decisions: int = 0  # part 3: (phases, needs, warmup) vectors checked
    clock: Intervals = field(default_factory=lambda: Intervals((0,)))


def explore_abstract(
    cfg: GovernanceConfig,
    needs: Sequence[float] = (1.0, 3.0),
    max_states: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> AbstractExploration:
    """Check every invariant of `cfg` in the three parts above; stop at the first violation."""
    moves, local, violation = _governor(cfg)
    clock, quiet = clock_intervals(cfg), quiet_intervals(cfg)
    init = initial_state(cfg)
    start = _alpha(init, cfg, clock, quiet)
    result = AbstractExploration(nx.MultiDiGraph(), start, violation, clock=clock)
    result.governor_states = local
    result.graph.add_node(start)
    if violation is None:
        result.violation = _composition(cfg, moves, clock, quiet, result, max_states, progress)
    if result.violation is None:
        result.violation, result.decisions = _decisions(cfg, needs)
    return result


def _uniform(group: GroupState, cfg: GovernanceConfig) -> Checked:
    """Every group in `group`'s state: what part 1 checks LOCAL invariants on."""
    n = len(cfg.groups)
    state = GovernanceState(0, cfg.hierarchy.levels - 1, (group,) * n)
    return Checked(None, state, decide(state, [1.0] * n, cfg), cfg)


def _governor(
    cfg: GovernanceConfig,
) -> tuple[dict[Phase, frozenset[tuple[Phase, bool]]], int, Violation | None]:
    """Part 1: phase -> {(phase after, wake fired)}, how many GroupStates, a violation."""
    level = {False: 0.0, True: cfg.governor.signal_threshold}
    probe = {False: 0.0, True: cfg.governor.wake_threshold}
    starts = {*initial_state(cfg).groups, GroupState(Phase.DORMANT)}
    parent: dict[GroupState, tuple[GroupState, PathStep] | None] = dict.fromkeys(starts)
    moves: dict[Phase, set[tuple[Phase, bool]]] = {}
    queue = deque(starts)
    for g in starts:
        bad = violations(_uniform(g, cfg), LOCAL)
        if bad:
            return {}, len(parent), Violation(tuple(bad), (), "one group's governor")
    while queue:
        g = queue.popleft()
        held = _held(g, cfg)
        if held:
            return {}, len(parent), Violation(held, path_to(parent, g), "one group's governor")
        steps = [(*convergence.observe(g, h, w, cfg.governor), h, w) for h, w in inputs(g.phase)]
        for new, _, _, wake in steps:
            moves.setdefault(g.phase, set()).add((new.phase, wake))
        if g.phase is Phase.DORMANT:  # the hierarchy's move (part 2 takes it in `advance`)
            steps.append((convergence.activate(g), "Activate", False, False))
        for new, action, high, wake in steps:
            if new in parent:
                continue
            checked = _uniform(new, cfg)
            obs = (GroupObservation(level[high], probe[wake]),) * len(cfg.groups)
            step = PathStep(obs, (action,) if action else (), checked.post)
            parent[new] = (g, step)
            bad = violations(checked, LOCAL)
            if bad:
                path = path_to(parent, new)
                return {}, len(parent), Violation(tuple(bad), path, "one group's governor")
            queue.append(new)
    return {k: frozenset(v) for k, v in moves.items()}, len(parent), None


def _held(g: GroupState, cfg: GovernanceConfig) -> tuple[tuple[str, str], ...]:
    """A COOLING group's low under each level-order guard that the config sets and that
    forbids it: ConvergeAfterLower's must not converge the group, ConvergeAfterUpper's
    must leave its record as it was (the counters part 2 does not keep)."""
    if g.phase is not Phase.COOLING:
        return ()
    bad = []
    if cfg.hierarchy.converge_after_lower:
        after, _ = convergence.observe(g, False, False, cfg.governor, settled_below=False)
        if after.phase is Phase.CONVERGED:
            bad.append(("ConvergeAfterLower", "converged on a low the groups below held back"))
    if cfg.hierarchy.converge_after_upper:
        after, _ = convergence.observe(g, False, False, cfg.governor, upper_active=False)
        if after != g:
            bad.append(("ConvergeAfterUpper", "a low under a dormant level moved its record"))
    return tuple(bad)


def _alpha(
    state: GovernanceState, cfg: GovernanceConfig, clock: Intervals, quiet: Intervals
) -> GovernanceState:
    """The abstract state of a state: phases, counted per level, and intervals."""
    groups = [representative(g.phase) for g in state.groups]
    for members in _levels(cfg):
        for i, g in zip(members, sorted((groups[i] for i in members), key=_order), strict=True):
            groups[i] = g
    return GovernanceState(
        clock.rep(state.clock), state.active_level, tuple(groups), quiet.rep(state.quiet)
    )


def _order(g: GroupState) -> str:
    return g.phase.value


def _levels(cfg: GovernanceConfig) -> list[list[int]]:
    by_level: dict[int, list[int]] = {}
    for i, spec in enumerate(cfg.groups):
        by_level.setdefault(spec.level, []).append(i)
    return list(by_level.values())


def _choices(
    state: GovernanceState, cfg: GovernanceConfig, moves: dict[Phase, frozenset]
) -> Iterator[list[tuple[Phase, bool]]]:
    """Each group's (phase after, wake) for one step, once per multiset within a level's
    groups of one phase (they are interchangeable; `_alpha` sorts them anyway)."""
    runs = [
        [i for i in members if state.groups[i].phase is phase]
        for members in _levels(cfg)
        for phase in {state.groups[i].phase for i in members}
    ]
    per_run = []
    for run in runs:
        options = sorted(moves[state.groups[run[0]].phase])
        cooling = state.groups[run[0]].phase is Phase.COOLING
        held = not (
            hierarchy.converge_after_lower(state, run[0], cfg)
            and hierarchy.converge_after_upper(state, run[0], cfg)
        )
        if cooling and held:
            # ConvergeAfterLower and ConvergeAfterUpper read only phases, which the
            # abstraction keeps exactly: a converge they forbid stays COOLING (with
            # patience 1 no other move does)
            options = sorted(
                {(Phase.COOLING if p is Phase.CONVERGED else p, w) for p, w in options}
            )
        per_run.append(list(itertools.combinations_with_replacement(options, len(run))))
    n = len(state.groups)
    for picked in itertools.product(*per_run):
        chosen: list[tuple[Phase, bool]] = [(Phase.DORMANT, False)] * n
        for run, moved in zip(runs, picked, strict=True):
            for i, move in zip(run, moved, strict=True):
                chosen[i] = move
        yield chosen


def _composition(
    cfg: GovernanceConfig,
    moves: dict[Phase, frozenset[tuple[Phase, bool]]],
    clock: Intervals,
    quiet: Intervals,
    result: AbstractExploration,
    max_states: int,
    progress: Callable[[int, int], None] | None,
) -> Violation | None:
    """Part 2: breadth-first over abstract states, every invariant on every step."""
    init = initial_state(cfg)
    ones = [1.0] * len(cfg.groups)
    bad = violations(Checked(None, init, decide(init, ones, cfg), cfg))
    if bad:
        return Violation(tuple(bad), ())
    decisions: dict[tuple, Decision] = {}  # a decision reads only phases and clock

    def decided(s: GovernanceState) -> Decision:
        key = (tuple(g.phase for g in s.groups), s.clock)
        if key not in decisions:
            decisions[key] = decide(s, ones, cfg)
        return decisions[key]

    start = result.initial
    parent: dict[GovernanceState, tuple[GovernanceState, PathStep] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for chosen in _choices(state, cfg, moves):
            groups = tuple(representative(phase) for phase, _ in chosen)
            woke = [wake for _, wake in chosen]
            for c, q in itertools.product(clock.ends(state.clock), quiet.ends(state.quiet)):
                pre = replace(state, clock=c, quiet=q)
                moved, transitions, decision = conclude(pre, groups, woke, cfg, decided)
                post = _alpha(moved, cfg, clock, quiet)
                actions = tuple(t.label for t in transitions)
                result.graph.add_edge(state, post, key="|".join(actions) or "Stutter")
                obs = tuple(GroupObservation(0.0, float(w)) for w in woke)
                path_step = PathStep(obs, actions, moved)
                bad = violations(Checked(pre, moved, decision, cfg))
                if bad:
                    path = (*path_to(parent, state), path_step)
                    return Violation(tuple(bad), path, "composition")
                if post not in parent:
                    if len(parent) >= max_states:
                        raise GovtrainError(
                            f"more than {max_states} abstract states; shrink the config"
                        )
                    parent[post] = (state, replace(path_step, state=post))
                    queue.append(post)
        if progress is not None:
            progress(len(parent), len(queue))
    return None


def _decisions(cfg: GovernanceConfig, needs: Sequence[float]) -> tuple[Violation | None, int]:
    """Part 3: DECISION invariants for every phase vector, need vector and side of warmup.

    A decision reads of a phase only whether it is frozen and its multiplier, so one
    phase per such kind stands for the others; a frozen group's need is not read."""
    kinds: dict[object, Phase] = {}
    for phase in Phase:
        kinds.setdefault("frozen" if phase.frozen else cfg.governor.multipliers[phase], phase)
    options = [
        (phase, need) for phase in kinds.values() for need in (needs[:1] if phase.frozen else needs)
    ]
    top, n, count = cfg.hierarchy.levels - 1, len(cfg.groups), 0
    for clock in sorted({0, cfg.horizon}):
        for combo in itertools.product(options, repeat=n):
            state = GovernanceState(clock, top, tuple(representative(p) for p, _ in combo))
            vector = [need for _, need in combo]
            count += 1
            bad = violations(Checked(None, state, decide(state, vector, cfg), cfg), DECISION)
            if bad:
                obs = tuple(GroupObservation(0.0, 0.0, need) for need in vector)
                where = "decisions, for every vector of phases (reachable or not)"
                return Violation(tuple(bad), (PathStep(obs, (), state),), where), count
    return None, count
