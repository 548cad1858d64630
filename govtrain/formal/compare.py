"""Spec and code agree: TLC's reachable state graph against the Python core's, at the same bounds.

The comparisons `specs/manifest.yaml` declares (its `comparisons:`), each a
function of this module with the signature of `govtrain.formal.manifest.Comparator`:
a run config (default `configs/small.yaml`), the MC module TLC runs (with a broken
variant's definition overrides, to see what a difference looks like) and the
entry's bounds.

* **ConvergenceGovernor** (`conform_governor`): TLC's state graph of
  `specs/ConvergenceGovernor.tla` (Patience and MaxAwakenings from the config)
  against the graph the Python functions `convergence.observe` and
  `convergence.activate` span from a DORMANT group. Nodes map field by field
  (`phase`, `seenHigh`->`seen_high`, `lows`, `awakenings`); edges are labelled
  with TLC's action names, which are the names `observe` returns (a Python step
  that returns no action changes nothing and is TLA+ stuttering, so it is not
  an edge).
* **GovernedTraining** (`conform_training`): TLC's state graph of
  `specs/GovernedTrainingLabelled.tla` with constants rendered from the config
  (`render_training_module`) against `governance.explore.explore(cfg)`. Nodes
  map to `GovernanceState` (`clock`, `activeLevel`->`active_level`, group i's
  fields from position i+1 of the TLA+ tuples); the history variable `actions`
  is dropped from the node and becomes the edge's label: its elements joined by
  `|`, or `Stutter` when empty, exactly the explorer's edge keys
  (`Learn(embed)|ActivateLevel(1)`). Then `step.decide` in every explored state
  against the spec's DecisionFor (`compare_plans`).
* **FederatedBudget** (`conform_budget`): every decided request of
  `specs/FederatedBudget.tla` (the final states of its state graph) against
  `budget.allocate` on the same weights, over the requests of each `BudgetCase`
  the manifest lists (MCFederatedBudget's bounds, where both Allocate and Ration
  happen, and MCFederatedBudget_Divisors', where divisor sequences differ).
* **GradientRouter** (`conform_router`): every routed batch of
  `specs/GradientRouter.tla` at the config's batch and warmup (allocations up
  to one past the batch, the manifest's score levels, so samples tie) against
  `routing.quota` and `routing.route` on the same clock, frozen flag, units and
  scores: the same quota and the same samples. TLC runs MCGradientRouter's
  `RouteOnceSpec`, which reaches exactly Spec's routed states, each by one Route.

Each comparison reports the first difference in breadth-first order from the
initial state, with the path that reaches it, or none.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from govtrain.formal.manifest import Target
from govtrain.formal.output import Outcome, StateGraph, TLCOutputError, TLCResult, parse_dot
from govtrain.formal.toolchain import Toolchain, run_tlc
from govtrain.formal.vocabulary import (
    CONSTANT_NAMES,
    NEEDS,
    governance_state,
    group_state,
    tla,
    training_constants,
)
from govtrain.governance import budget, convergence, routing, tiers
from govtrain.governance.config import BudgetConfig, GovernanceConfig, GovernorConfig, TiersConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.explore import explore, render
from govtrain.governance.state import GovernanceState, GroupState, Phase
from govtrain.governance.step import decide
from govtrain.resources import specs_dir

# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Difference:
    kind: str  # "initial state", "state only in ...", "transition only in ..."
    state: str
    detail: str
    path: tuple[str, ...] = ()  # the labels that lead from the initial state to `state`

    def describe(self) -> str:
        route = " -> ".join(self.path) if self.path else "(the initial state)"
        return f"{self.kind}: {self.detail}\n  at {self.state}\n  reached by {route}"


@dataclass
class Comparison:
    name: str
    left: str
    right: str
    left_states: int
    left_transitions: int
    right_states: int
    right_transitions: int
    difference: Difference | None
    seconds: float = 0.0
    tlc: TLCResult | None = field(default=None, repr=False)
    variant: str | None = None  # the broken spec variant compared, None for the real spec

    @property
    def ok(self) -> bool:
        return self.difference is None

    def as_dict(self) -> dict[str, Any]:
        diff = self.difference
        return {
            "name": self.name,
            "ok": self.ok,
            "variant": self.variant,
            "states": {self.left: self.left_states, self.right: self.right_states},
            "transitions": {self.left: self.left_transitions, self.right: self.right_transitions},
            "difference": None
            if diff is None
            else {
                "kind": diff.kind,
                "state": diff.state,
                "detail": diff.detail,
                "path": list(diff.path),
            },
            "seconds": round(self.seconds, 2),
        }


def edge_set(graph: nx.MultiDiGraph) -> set[tuple[Hashable, Hashable, str]]:
    return {(u, v, k) for u, v, k in graph.edges(keys=True)}


def first_difference(
    left: nx.MultiDiGraph,
    left_init: Hashable,
    right: nx.MultiDiGraph,
    right_init: Hashable,
    *,
    names: tuple[str, str] = ("Python", "TLA+"),
    show: Callable[[Hashable], str] = str,
) -> Difference | None:
    """The first place where two labelled state graphs differ, breadth-first from `left_init`
    (successors visited in order of label, then rendered state), or None if they are equal."""
    a, b = names
    if left_init != right_init:
        return Difference(
            "initial state", show(left_init), f"{a} starts at {show(left_init)}, {b} elsewhere"
        )
    parent: dict[Hashable, tuple[Hashable, str] | None] = {left_init: None}
    queue = deque([left_init])

    def path(node: Hashable) -> tuple[str, ...]:
        labels = []
        while (step := parent[node]) is not None:
            node, label = step
            labels.append(label)
        return tuple(reversed(labels))

    while queue:
        u = queue.popleft()
        if u not in right:
            return Difference(f"state only in {a}", show(u), "no such state in " + b, path(u))
        mine = {(k, v) for _, v, k in left.out_edges(u, keys=True)}
        theirs = {(k, v) for _, v, k in right.out_edges(u, keys=True)}
        order = sorted(mine | theirs, key=lambda kv: (kv[0], show(kv[1])))
        for k, v in order:
            if (k, v) not in theirs:
                return Difference(
                    f"transition only in {a}", show(u), f"--{k}--> {show(v)}", path(u)
                )
            if (k, v) not in mine:
                return Difference(
                    f"transition only in {b}", show(u), f"--{k}--> {show(v)}", path(u)
                )
        for k, v in order:
            if v not in parent:
                parent[v] = (u, k)
                queue.append(v)
    extra = sorted((n for n in right.nodes if n not in parent), key=show)
    if extra:
        return Difference(f"state only in {b}", show(extra[0]), f"not reachable in {a}", ())
    return None


def compare(
    name: str,
    left: nx.MultiDiGraph,
    left_init: Hashable,
    right: nx.MultiDiGraph,
    right_init: Hashable,
    *,
    names: tuple[str, str] = ("Python", "TLA+"),
    show: Callable[[Hashable], str] = str,
) -> Comparison:
    return Comparison(
        name=name,
        left=names[0],
        right=names[1],
        left_states=left.number_of_nodes(),
        left_transitions=len(edge_set(left)),
        right_states=right.number_of_nodes(),
        right_transitions=len(edge_set(right)),
        difference=first_difference(left, left_init, right, right_init, names=names, show=show),
    )


def graph_from_tlc(
    dump: StateGraph,
    node: Callable[[dict[str, Any]], Hashable],
    label: Callable[[dict[str, Any], dict[str, Any], str], str],
) -> tuple[nx.MultiDiGraph, Hashable]:
    """Map TLC's state graph through `node` (values -> Python state) and `label`
    (source values, target values, TLC's action label -> edge key)."""
    graph = nx.MultiDiGraph()
    mapped = {sid: node(values) for sid, values in dump.states.items()}
    graph.add_nodes_from(mapped.values())
    for src, dst, action in dump.edges:
        graph.add_edge(
            mapped[src], mapped[dst], key=label(dump.states[src], dump.states[dst], action)
        )
    initial = {mapped[i] for i in dump.initial}
    if len(initial) != 1:
        raise TLCOutputError(f"expected one initial state, TLC has {len(initial)}")
    return graph, initial.pop()


def render_training_module(
    cfg: GovernanceConfig,
    module: str,
    *,
    extends: str = "GovernedTraining",
    source: str = "",
    needs: Sequence[float] = NEEDS,
    prefix: str = "MC_",
) -> str:
    """An MC module defining <prefix><Constant> (MC_GroupNames, ...) for every constant of
    GovernedTraining; `extends` is the EXTENDS list."""
    consts = training_constants(cfg, needs)
    bar = "-" * max(4, (75 - len(module) - 12) // 2)
    lines = [f"{bar} MODULE {module} {bar}"]
    lines.append(f"(* Generated from {source or 'a governance config'} by govtrain.formal.compare;")
    lines.append("   do not edit: `govtrain specs gen-model` rewrites it. *)")
    lines.append(f"EXTENDS {extends}")
    lines += [f"{prefix}{name} == {tla(value)}" for name, value in consts.items()]
    lines.append("=" * 77)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the graphs


def governor_graph(gov: GovernorConfig) -> tuple[nx.MultiDiGraph, GroupState]:
    """The Python governor's reachable graph from a DORMANT group.

    A state past the spec's bounds (more awakenings than allowed, lows at patience)
    is kept but not expanded: it already differs from the spec, and a governor that
    never stops awakening would otherwise span an infinite graph.
    """
    init = GroupState(Phase.DORMANT)
    graph = nx.MultiDiGraph()
    graph.add_node(init)
    queue, seen = deque([init]), {init}
    while queue:
        g = queue.popleft()
        if g.awakenings > gov.max_awakenings or g.lows >= gov.patience:
            continue
        moves = []
        if g.phase is Phase.DORMANT:
            moves.append((convergence.activate(g), "Activate"))
        for high in (False, True):
            for wake in (False, True):
                new, action = convergence.observe(g, high, wake, gov)
                if action is not None:
                    moves.append((new, action))
        for new, action in moves:
            graph.add_edge(g, new, key=action)
            if new not in seen:
                seen.add(new)
                queue.append(new)
    return graph, init


def step_label(_src: dict[str, Any], dst: dict[str, Any], _action: str) -> str:
    return "|".join(dst["actions"]) or "Stutter"


def show_group(g: Hashable) -> str:
    assert isinstance(g, GroupState)
    return f"<{g.phase.value} seenHigh={g.seen_high} lows={g.lows} awakenings={g.awakenings}>"


def show_state(s: Hashable) -> str:
    assert isinstance(s, GovernanceState)
    return render(s)


@dataclass(frozen=True)
class BudgetCase:
    """The requests the budget comparison covers: every eligible subset of `groups`
    groups with every weight in `weights` (the manifest's `cases`)."""

    groups: int
    master: int
    floor: int
    ceiling: int
    weights: tuple[int, ...]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> BudgetCase:
        try:
            return cls(**{**raw, "weights": tuple(raw["weights"])})
        except (TypeError, KeyError) as exc:
            raise GovtrainError(f"budget case {dict(raw)}: {exc}") from None

    @property
    def config(self) -> BudgetConfig:
        return BudgetConfig(master=self.master, floor=self.floor, ceiling=self.ceiling)


class _Workdir:
    """A scratch directory holding copies of every spec module, so generated MC
    modules can EXTEND them without writing into specs/."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="govtrain-conform-"))
        for module in specs_dir().glob("*.tla"):
            shutil.copy2(module, self.path / module.name)

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.write_text(text, encoding="utf-8")
        return target

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _cfg(spec: str, constants: Iterable[str], deadlock: bool = False) -> str:
    lines = ["CONSTANTS", *constants, f"SPECIFICATION {spec}"]
    if not deadlock:
        lines.append("CHECK_DEADLOCK FALSE")
    return "\n".join(lines) + "\n"


def _swapped(target: Target) -> list[str]:
    """The target's definition overrides, as lines of a CONSTANTS section."""
    return [f"    {line}" for line in target.overrides]


def _run_dump(
    work: _Workdir, module: Path, cfg: Path, toolchain: Toolchain, timeout: float
) -> tuple[StateGraph, TLCResult]:
    dot = work.path / (module.stem + ".dot")
    result = run_tlc(module, cfg, workers=2, timeout=timeout, toolchain=toolchain, dump_dot=dot)
    if result.outcome.value != "holds" or not dot.is_file():
        first = result.errors[0].splitlines()[0] if result.errors else "no state graph written"
        raise TLCOutputError(f"TLC did not explore {module.name}: {result.outcome.value}: {first}")
    return parse_dot(dot.read_text(encoding="utf-8")), result


def _dump_spec(
    target: Target,
    constants: dict[str, Any],
    toolchain: Toolchain,
    timeout: float,
    spec: str = "Spec",
) -> tuple[StateGraph, TLCResult]:
    """TLC's state graph of the target module's `spec` at `constants` (values as TLA+)."""
    work = _Workdir()
    try:
        lines = [f"    {name} = {tla(value)}" for name, value in constants.items()]
        conf = work.write(f"Conform{target.module.stem}.cfg", _cfg(spec, lines + _swapped(target)))
        return _run_dump(work, work.path / target.module.name, conf, toolchain, timeout)
    finally:
        work.close()


def _finish(out: Comparison, start: float, result: TLCResult, target: Target) -> Comparison:
    out.seconds, out.tlc, out.variant = time.monotonic() - start, result, target.variant
    return out


def conform_governor(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    target: Target,
    *,
    timeout: float = 600,
    source: str = "",
) -> Comparison:
    """TLC's graph of one governor against the graph convergence.observe and activate span."""
    start = time.monotonic()
    gov = cfg.governor
    constants = {"Patience": gov.patience, "MaxAwakenings": gov.max_awakenings}
    dump, result = _dump_spec(target, constants, toolchain, timeout)
    theirs, their_init = graph_from_tlc(dump, group_state, lambda _s, _d, action: action)
    mine, my_init = governor_graph(gov)
    out = compare("ConvergenceGovernor", mine, my_init, theirs, their_init, show=show_group)
    return _finish(out, start, result, target)


# Constants of a generated module that EXTENDS the target module too: MCGovernedTraining's
# MC_ names are taken there.
_PREFIX = "Conform_"


def _model_module(
    work: _Workdir, name: str, cfg: GovernanceConfig, extends: str, target: Target, source: str
) -> Path:
    """A generated module EXTENDing `extends` and the target's module, with cfg's constants."""
    text = render_training_module(
        cfg, name, extends=f"{extends}, {target.module.stem}", source=source, prefix=_PREFIX
    )
    return work.write(f"{name}.tla", text)


def _constants(target: Target) -> list[str]:
    return [f"    {n} <- {_PREFIX}{n}" for n in CONSTANT_NAMES] + _swapped(target)


def conform_training(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    target: Target,
    *,
    timeout: float = 600,
    source: str = "",
    max_states: int = 200_000,
    total_steps: int | None = None,
) -> Comparison:
    """TLC's graph of GovernedTrainingLabelled against governance.explore, then every
    decision of every explored state against the spec's DecisionFor. `total_steps`
    replaces the config's: a run length whose level deadlines do not divide exactly
    (7 x 0.75 = 5.25 rounds up to 6) tells ceiling from floor on both sides."""
    start = time.monotonic()
    if total_steps is not None:
        cfg = type(cfg).model_validate({**cfg.model_dump(), "total_steps": total_steps})
        source = f"{source} with total_steps {total_steps}"
    work = _Workdir()
    try:
        name = "ConformGovernedTraining"
        module = _model_module(work, name, cfg, "GovernedTrainingLabelled", target, source)
        conf = work.write(f"{name}.cfg", _cfg("LabelledSpec", _constants(target), deadlock=True))
        dump, result = _run_dump(work, module, conf, toolchain, timeout)
    finally:
        work.close()
    theirs, their_init = graph_from_tlc(dump, governance_state, step_label)
    exploration = explore(cfg, needs=tuple(float(n) for n in NEEDS), max_states=max_states)
    out = compare(
        "GovernedTraining",
        exploration.graph,
        exploration.initial,
        theirs,
        their_init,
        show=show_state,
    )
    if out.difference is None and exploration.violation is None:
        out.difference = compare_plans(exploration.graph.nodes, cfg, toolchain, timeout, target)
    if exploration.violation is not None:
        # the explorer stopped at a broken invariant: its graph is partial, and the
        # violation, not the missing rest of the graph, is what to report
        v = exploration.violation
        out.difference = Difference(
            "invariant violated in Python",
            render(v.path[-1].state) if v.path else render(exploration.initial),
            "; ".join(f"{name}: {reason}" for name, reason in v.broken),
            tuple("|".join(step.actions) or "Stutter" for step in v.path),
        )
    return _finish(out, start, result, target)


def compare_plans(
    states: Iterable[GovernanceState],
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    timeout: float,
    target: Target,
    needs: Sequence[int] = NEEDS,
) -> Difference | None:
    """decide() in every given state, for every vector of `needs`, against the spec's
    DecisionFor (specs/PlanConformance.tla, one TLC run over all the cases)."""
    cases = []
    for state in sorted(states, key=render):
        phases = [g.phase.value for g in state.groups]
        for vector in itertools.product(needs, repeat=len(state.groups)):
            d = decide(state, [float(n) for n in vector], cfg)
            decision = {
                "units": list(d.allocations),
                "budgetAction": d.budget_action,
                "quota": list(d.quotas),
                "warmup": d.warmup,
            }
            line = {"phase": phases, "clock": state.clock, "need": list(vector)}
            cases.append((state, {**line, "decision": decision}))
    work = _Workdir()
    try:
        data = work.write("cases.ndjson", "".join(json.dumps(c) + "\n" for _, c in cases))
        module = _model_module(work, "ConformPlans", cfg, "PlanConformance", target, "")
        lines = [*_constants(target), f"    PlanFile = {tla(str(data))}"]
        conf = work.write(
            "ConformPlans.cfg",
            _cfg("PlanSpec", lines) + "INVARIANT PlansAgree\nALIAS PlanAlias\n",
        )
        result = run_tlc(module, conf, workers=1, timeout=timeout, toolchain=toolchain)
    finally:
        work.close()
    if result.outcome is Outcome.HOLDS:
        return None
    values = result.trace[-1].values if result.trace else {}
    index = values.get("case")
    if result.outcome is not Outcome.INVARIANT_VIOLATED or not isinstance(index, int):
        first = result.errors[0].splitlines()[0] if result.errors else result.outcome.value
        raise TLCOutputError(f"TLC did not check the plans: {first}")
    state, case = cases[index - 1]
    python = case["decision"]
    return Difference(
        "different decision",
        render(state),
        f"needs {tuple(case['need'])}: Python {python}, TLA+ {values.get('spec')}",
    )


def conform_budget(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    target: Target,
    *,
    cases: Sequence[BudgetCase | Mapping[str, Any]],
    timeout: float = 600,
    source: str = "",
) -> Comparison:
    """Every decided request of FederatedBudget.tla against budget.allocate, case by
    case (the manifest's bounds, not the run config's); the first case that differs is
    the one reported."""
    start = time.monotonic()
    if not cases:
        raise ValueError("conform_budget needs at least one case")
    seen, out, result = 0, None, None
    for raw in cases:
        case = raw if isinstance(raw, BudgetCase) else BudgetCase.of(raw)
        constants = {
            "Groups": set(range(1, case.groups + 1)),
            "Master": case.master,
            "Floor": case.floor,
            "Ceiling": case.ceiling,
            "Weights": set(case.weights),
        }
        dump, result = _dump_spec(target, constants, toolchain, timeout)
        out = compare_decisions(dump, case)
        seen += out.left_states
        if not out.ok:
            break
    assert out is not None and result is not None  # there was a first case
    if out.ok:  # the requests of every case, on both sides
        out.left_states = out.right_states = seen
    return _finish(out, start, result, target)


def compare_decisions(dump: StateGraph, case: BudgetCase) -> Comparison:
    """TLA+ decisions (final states) against Python's, request by request."""
    groups = range(1, case.groups + 1)
    has_successor = {src for src, dst, _ in dump.edges if src != dst}
    decided: dict[tuple, tuple[tuple[int, ...], str]] = {}
    difference = None
    for sid, values in sorted(dump.states.items()):
        if sid in has_successor:
            continue
        eligible = set(values["eligible"])
        request = tuple(values["weight"][g - 1] if g in eligible else None for g in groups)
        action = "Ration" if values["stage"] == "rationed" else "Allocate"
        tla_decision = (tuple(values["units"]), action)
        if request in decided and decided[request] != tla_decision and difference is None:
            difference = Difference(
                "two TLA+ decisions", str(request), f"{decided[request]} and {tla_decision}"
            )
        decided[request] = tla_decision
    python: dict[tuple, tuple[tuple[int, ...], str]] = {}
    for size in range(1 << case.groups):
        eligible = [g for g in groups if size >> (g - 1) & 1]
        for ws in _weight_vectors(len(eligible), case.weights):
            it = iter(ws)
            request = tuple(next(it) if g in eligible else None for g in groups)
            alloc = budget.allocate(list(request), case.config)
            python[request] = (alloc.units, alloc.action)
    return compare_tables(
        "FederatedBudget", ("request", "decision", ""), python, decided, difference
    )


def compare_tables(
    name: str,
    words: tuple[str, str, str],
    python: dict[tuple, Any],
    tlaplus: dict[tuple, Any],
    difference: Difference | None = None,
) -> Comparison:
    """Python's outcome for each input against TLA+'s: the first input (in a fixed order)
    that only one side has or where they differ. `words`: what an input and an outcome
    are called, and how the outcome reads ("(quota, samples) ")."""
    item, outcome, reads = words
    for key in sorted(python, key=str):
        if difference is not None:
            break
        if key not in tlaplus:
            difference = Difference(f"{item} only in Python", str(key), "TLA+ never reaches it")
        elif tlaplus[key] != python[key]:
            difference = Difference(
                f"different {outcome}",
                str(key),
                f"Python {reads}{python[key]}, TLA+ {tlaplus[key]}",
            )
    if difference is None and set(tlaplus) - set(python):
        extra = sorted(set(tlaplus) - set(python), key=str)[0]
        difference = Difference(f"{item} only in TLA+", str(extra), "Python never sees it")
    return Comparison(
        name=name,
        left="Python",
        right="TLA+",
        left_states=len(python),
        left_transitions=0,
        right_states=len(tlaplus),
        right_transitions=0,
        difference=difference,
    )


def _weight_vectors(n: int, weights: Sequence[int]) -> Iterable[tuple[int, ...]]:
    if n == 0:
        yield ()
        return
    for w in weights:
        for rest in _weight_vectors(n - 1, weights):
            yield (w, *rest)


@dataclass(frozen=True)
class RouterCase:
    """The batches the router comparison covers: the config's batch and warmup, every
    allocation up to one past the batch (so the clamp matters) and every vector of
    `scores` (the manifest's bounds: three levels give ties and strict orders)."""

    batch: int
    warmup: int
    scores: tuple[int, ...]

    @property
    def max_units(self) -> int:
        return self.batch + 1


def conform_router(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    target: Target,
    *,
    scores: Sequence[int],
    timeout: float = 600,
    source: str = "",
) -> Comparison:
    """Every routed batch of GradientRouter.tla (MCGradientRouter's RouteOnceSpec: the
    routed states of Spec, each reached by one Route) against routing.quota and
    routing.route."""
    start = time.monotonic()
    case = RouterCase(cfg.router.batch_size, cfg.router.warmup_steps, tuple(scores))
    constants = {
        "Batch": case.batch,
        "Warmup": case.warmup,
        "MaxUnits": case.max_units,
        "Scores": set(case.scores),
    }
    dump, result = _dump_spec(target, constants, toolchain, timeout, spec="RouteOnceSpec")
    out = compare_routes(dump, cfg, case)
    return _finish(out, start, result, target)


def compare_routes(dump: StateGraph, cfg: GovernanceConfig, case: RouterCase) -> Comparison:
    """TLA+ routes (states at stage "routed") against Python's, batch by batch: the
    quota and the routed samples (TLA+ numbers samples from 1, Python from 0)."""
    routed: dict[tuple, tuple[int, tuple[int, ...]]] = {}
    for values in dump.states.values():
        if values["stage"] == "routed":
            batch = (values["clock"], values["frozen"], values["units"], tuple(values["scores"]))
            routed[batch] = (values["quota"], tuple(sorted(i - 1 for i in values["routed"])))
    python: dict[tuple, tuple[int, tuple[int, ...]]] = {}
    for clock in range(case.warmup + 1):
        for frozen in (False, True):
            phase = Phase.DORMANT if frozen else Phase.ACTIVE
            state = GovernanceState(clock, 0, (GroupState(phase),))
            for units in range(case.max_units + 1):
                quota = routing.quota(state, 0, units, cfg)
                for scores in _weight_vectors(case.batch, case.scores):
                    python[(clock, frozen, units, scores)] = (quota, routing.route(scores, quota))
    return compare_tables("GradientRouter", ("batch", "route", "(quota, samples) "), python, routed)


# --------------------------------------------------------------------------- data tiers


def conform_tiers(
    cfg: GovernanceConfig,
    toolchain: Toolchain,
    target: Target,
    *,
    samples: int,
    slots: int,
    max_wait: int,
    timeout: float = 600,
    source: str = "",
) -> Comparison:
    """DataTiers.tla's plans and re-scorings against governance/tiers.py at the manifest's
    bounds (one tier: a tier weighs the draw, never which plans are possible)."""
    start = time.monotonic()
    constants = {"N": samples, "Slots": slots, "MaxWait": max_wait, "Tiers": {"Learning"}}
    dump, result = _dump_spec(target, constants, toolchain, timeout)
    tiers_cfg = TiersConfig(rescore_every=slots, max_wait=max_wait)
    out = compare_tiers(dump, samples, tiers_cfg)
    return _finish(out, start, result, target)


def compare_tiers(dump: StateGraph, samples: int, cfg: TiersConfig) -> Comparison:
    """Per wait vector the spec reaches, the plans it may make from it against the
    Python reserve (`tiers.Reserve`) with every draw of the other slots; per re-scoring
    (a TLA+ edge that changes the waits), the waits after it against `tiers.Rescore`'s,
    whose own seeded plan must be one the spec may make. Python walks its own wait
    vectors from period 0 through every plan, so a vector only one side reaches is a
    difference too. Samples are numbered from 1 in TLA+, from 0 in Python."""
    waits: dict[str, tuple[int, ...]] = {}
    plans: dict[tuple[int, ...], set[frozenset[int]]] = {}
    for node, values in dump.states.items():
        wait = tuple(values["wait"])
        waits[node] = wait
        plans.setdefault(wait, set()).add(frozenset(s - 1 for s in values["plan"]))
    aged: dict[tuple, tuple[int, ...]] = {}
    for src, dst, _ in dump.edges:
        if waits[src] != waits[dst] or dump.states[src]["plan"] != dump.states[dst]["plan"]:
            key = (waits[src], tuple(sorted(s - 1 for s in dump.states[src]["plan"])))
            aged[key] = waits[dst]
    tla_plans = {w: frozenset(p) for w, p in plans.items()}

    size, reserve = tiers.slots(cfg, 1), tiers.reserve_size(samples, cfg)
    python_plans: dict[tuple[int, ...], frozenset[frozenset[int]]] = {}
    python_aged: dict[tuple, tuple[int, ...]] = {}
    bad_plan: Difference | None = None
    queue = deque([(0,) * samples])
    while queue:
        wait = queue.popleft()
        if wait in python_plans:
            continue
        kept = tiers.Reserve(wait, reserve)
        rest = [s for s in range(samples) if s not in kept]
        choices = frozenset(
            frozenset(kept) | frozenset(d) for d in itertools.combinations(rest, size - reserve)
        )
        python_plans[wait] = choices
        for plan in sorted(choices, key=sorted):
            state = tiers.TierState(
                [tiers.LEARNING] * samples, [[] for _ in range(samples)], set(), list(wait), 0
            )
            state.plan = sorted(plan)
            tiers.Rescore(state, cfg, 1, seed=0)
            after = tuple(min(w, cfg.max_wait) for w in state.wait)  # the spec saturates
            python_aged[(wait, tuple(sorted(plan)))] = after
            allowed = tla_plans.get(after, frozenset())
            if bad_plan is None and allowed and frozenset(state.plan) not in allowed:
                bad_plan = Difference(
                    "seeded plan outside the spec's plans",
                    str(after),
                    f"Python plans {sorted(state.plan)}, TLA+ allows "
                    f"{sorted(sorted(p) for p in allowed)}",
                )
            queue.append(after)
    out = compare_tables(
        "DataTiers", ("wait vector", "plans", ""), python_plans, tla_plans, bad_plan
    )
    if out.ok:
        out = compare_tables("DataTiers", ("re-scoring", "waits after", ""), python_aged, aged)
    out.left_states, out.right_states = len(python_plans), len(tla_plans)
    return out
