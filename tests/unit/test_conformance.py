"""Spec and code agree: the graph comparison, the TLA+ constants, and (with TLC) the real thing."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from govtrain.formal import compare as conf
from govtrain.formal import vocabulary as voc
from govtrain.formal.manifest import load_manifest, run_comparison
from govtrain.formal.output import StateGraph, parse_dot
from govtrain.formal.toolchain import find_toolchain
from govtrain.governance.state import GroupState, Phase
from tests.conftest import needs_tlc

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tlc"
MANIFEST = load_manifest(ROOT / "specs" / "manifest.yaml")


def target(name: str, variant: str | None = None) -> conf.Target:
    """What the manifest's comparison `name` runs TLC on (with a model's variant)."""
    entry = MANIFEST.comparison(name)
    if variant is None:
        return MANIFEST.target(entry)
    ((_, swapped),) = [(c, t) for c, t in MANIFEST.variant_targets(variant) if c == entry]
    return swapped


def bounds(name: str) -> dict:
    return dict(MANIFEST.comparison(name).bounds)


def copy(graph: nx.MultiDiGraph) -> nx.MultiDiGraph:
    return nx.MultiDiGraph(graph)


# --------------------------------------------------------------------------- the comparison


def test_python_governor_graph(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    assert init == GroupState(Phase.DORMANT)
    labels = {k for _, _, k in graph.edges(keys=True)}
    assert labels == {"Activate", "Learn", "BeginCooling", "Cool", "Converge", "Reheat", "Awaken"}
    assert all(u != v for u, v in graph.edges())  # no action leaves a group as it was


def test_identical_graphs_have_no_difference(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    result = conf.compare("g", graph, init, copy(graph), init)
    assert result.ok and result.left_states == result.right_states == graph.number_of_nodes()


def test_a_missing_transition_is_the_first_difference(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    altered = copy(graph)
    converging = [(u, v) for u, v, k in graph.edges(keys=True) if k == "Converge"]
    u, v = converging[0]
    altered.remove_edge(u, v, key="Converge")
    diff = conf.first_difference(graph, init, altered, init, show=conf.show_group)
    assert diff is not None
    assert diff.kind == "transition only in Python"
    assert diff.detail == f"--Converge--> {conf.show_group(v)}"
    assert diff.state == conf.show_group(u)
    assert diff.path == ("Activate", "Learn", "BeginCooling", "Cool")


def test_a_relabelled_transition_shows_on_both_sides(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    altered = copy(graph)
    (u, v), *_ = [(a, b) for a, b, k in graph.edges(keys=True) if k == "Learn"]
    altered.remove_edge(u, v, key="Learn")
    altered.add_edge(u, v, key="Learnt")
    diff = conf.first_difference(graph, init, altered, init)
    assert diff is not None and diff.kind == "transition only in Python"
    assert diff.detail.startswith("--Learn-->")
    # the other way round the same edge is the one the other side lacks
    altered.remove_edge(u, v, key="Learnt")
    altered.add_edge(u, v, key="Learn")
    altered.add_edge(u, v, key="Learnt")
    diff = conf.first_difference(graph, init, altered, init)
    assert diff is not None and diff.kind == "transition only in TLA+"
    assert diff.detail.startswith("--Learnt-->")


def test_an_extra_state_is_reported(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    altered = copy(graph)
    stray = GroupState(Phase.COOLING, True, 1, 2)  # two awakenings: beyond the bound
    assert stray not in graph
    altered.add_node(stray)
    diff = conf.first_difference(graph, init, altered, init)
    assert diff is not None and diff.kind == "state only in TLA+"
    assert diff.state == str(stray)


def test_a_state_missing_behind_a_transition(small_cfg):
    graph, init = conf.governor_graph(small_cfg.governor)
    altered = copy(graph)
    awakened = [v for _, v, k in graph.edges(keys=True) if k == "Awaken"]
    altered.remove_node(awakened[0])
    diff = conf.first_difference(graph, init, altered, init)
    assert diff is not None and diff.kind == "transition only in Python"
    assert "--Awaken-->" in diff.detail


def test_different_initial_states():
    a, b = nx.MultiDiGraph(), nx.MultiDiGraph()
    a.add_node(1)
    b.add_node(2)
    diff = conf.first_difference(a, 1, b, 2)
    assert diff is not None and diff.kind == "initial state"


def test_tlc_governor_graph_from_the_fixture_matches_python(small_cfg):
    """The fixture is TLC's own state graph of ConvergenceGovernor at patience 2, one
    awakening: it must equal what convergence.py spans at those bounds."""
    gov = small_cfg.governor.model_copy(update={"patience": 2, "max_awakenings": 1})
    dump = parse_dot((FIXTURES / "holds.dot").read_text())
    theirs, their_init = conf.graph_from_tlc(dump, voc.group_state, lambda _s, _d, a: a)
    mine, my_init = conf.governor_graph(gov)
    result = conf.compare("ConvergenceGovernor", mine, my_init, theirs, their_init)
    assert result.ok, result.difference and result.difference.describe()
    assert result.left_transitions == result.right_transitions == 15
    # ... and one governor with a different patience is a different graph
    other, other_init = conf.governor_graph(gov.model_copy(update={"patience": 3}))
    diff = conf.first_difference(other, other_init, theirs, their_init)
    assert diff is not None


def test_labels_of_the_composed_step():
    assert conf.step_label({}, {"actions": ()}, "LabelledNext") == "Stutter"
    two = {"actions": ("Learn(embed)", "ActivateLevel(1)", "Activate(head)")}
    label = conf.step_label({}, two, "LabelledNext")
    assert label == "Learn(embed)|ActivateLevel(1)|Activate(head)"


def test_tla_values_map_to_python_states():
    values = {
        "clock": 2,
        "activeLevel": 1,
        "quiet": 0,
        "phase": ("CONVERGED", "COOLING", "ACTIVE"),
        "seenHigh": (True, True, False),
        "lows": (0, 1, 0),
        "awakenings": (1, 0, 0),
        "actions": ("Cool(body)",),
    }
    state = voc.governance_state(values)
    assert state.clock == 2 and state.active_level == 1 and state.quiet == 0
    assert state.groups[1] == GroupState(Phase.COOLING, True, 1, 0)
    assert state.groups[0].awakenings == 1


def test_budget_decisions_compared_request_by_request():
    case = conf.BudgetCase(groups=2, master=3, floor=2, ceiling=3, weights=(1, 2))

    def node(eligible, weight, units, stage):
        return {"eligible": eligible, "weight": weight, "units": units, "stage": stage}

    from govtrain.governance import budget

    states, edges = {}, set()
    for sid, (eligible, w) in enumerate(
        [((), (0, 0))]
        + [((1,), (a, 0)) for a in (1, 2)]
        + [((2,), (0, b)) for b in (1, 2)]
        + [((1, 2), (a, b)) for a in (1, 2) for b in (1, 2)]
    ):
        request = [w[g - 1] if g in eligible else None for g in (1, 2)]
        alloc = budget.allocate(request, case.config)
        stage = "rationed" if alloc.action == "Ration" else "handout"
        states[str(sid)] = node(eligible, w, alloc.units, stage)
    dump = StateGraph(states, {"0"}, edges)
    assert conf.compare_decisions(dump, case).ok
    wrong = dict(states)
    wrong["5"] = {**states["5"], "units": (3, 0)}
    diff = conf.compare_decisions(StateGraph(wrong, {"0"}, edges), case).difference
    assert diff is not None and diff.kind == "different decision"
    missing = {k: v for k, v in states.items() if k != "2"}
    diff = conf.compare_decisions(StateGraph(missing, {"0"}, edges), case).difference
    assert diff is not None and diff.kind == "request only in Python"


# --------------------------------------------------------------------------- TLA+ constants


def test_checked_in_model_is_generated_from_small_yaml(small_cfg):
    rendered = conf.render_training_module(
        small_cfg, "MCGovernedTraining", source="configs/small.yaml"
    )
    checked_in = (ROOT / "specs" / "MCGovernedTraining.tla").read_text()
    assert rendered == checked_in, "run: govtrain specs gen-model configs/small.yaml " + (
        "--out specs/MCGovernedTraining.tla"
    )


def test_constant_names_cover_the_spec(small_cfg):
    assert tuple(voc.training_constants(small_cfg)) == voc.CONSTANT_NAMES
    spec = (ROOT / "specs" / "GovernedTraining.tla").read_text()
    declared = spec[spec.index("CONSTANTS") : spec.index("ASSUME")]
    for name in voc.CONSTANT_NAMES:
        assert f"    {name}," in declared or f"    {name} " in declared


def test_tla_rendering_and_exact_numbers():
    assert voc.tla(("a", 1, True)) == '<<"a", 1, TRUE>>'
    assert voc.tla({3, 1}) == "{1, 3}"
    assert voc.tla({"ACTIVE": 2}) == "[ACTIVE |-> 2]"
    assert voc.tla('say "hi"') == '"say \\"hi\\""'
    assert voc.exact(0.3) == voc.exact(0.1) * 3
    assert voc.integer_scale([0.5, 1.0, 1.25]) == ([2, 4, 5], 4)
    assert voc.integer_scale([2.0, 1.0]) == ([2, 1], 1)


def test_other_models_use_small_yaml_bounds(small_cfg):
    """The hand-written models that claim configs/small.yaml's bounds really use them."""
    governor = (ROOT / "specs" / "MCConvergenceGovernor.cfg").read_text()
    assert f"Patience = {small_cfg.governor.patience}" in governor
    assert f"MaxAwakenings = {small_cfg.governor.max_awakenings}" in governor
    hierarchy = (ROOT / "specs" / "MCHierarchyActivator.tla").read_text()
    consts = voc.training_constants(small_cfg)
    assert f"SmallLevel == {voc.tla(consts['Level'])}" in hierarchy
    assert f"SmallSteps == {consts['TotalSteps']}" in hierarchy
    assert f"SmallEmergency == {voc.tla(consts['EmergencyFraction'])}" in hierarchy
    assert f"SmallWarmup == {consts['Warmup']}" in hierarchy
    router = (ROOT / "specs" / "MCGradientRouter.cfg").read_text()
    assert f"Batch = {small_cfg.router.batch_size}" in router
    assert f"Warmup = {small_cfg.router.warmup_steps}" in router


# --------------------------------------------------------------------------- with TLC


@needs_tlc
def test_spec_and_code_agree():
    """Every comparison of the manifest (TLC's graphs of ConvergenceGovernor and
    GovernedTraining at configs/small.yaml, the budget's decisions, the router's routes)
    finds spec and code equal; a broken spec variant does not."""
    toolchain = find_toolchain()
    results = {
        c.name: run_comparison(c, MANIFEST.target(c), toolchain=toolchain, timeout=300)
        for c in MANIFEST.comparisons
    }
    for comparison in results.values():
        assert comparison.ok, comparison.difference and comparison.difference.describe()
        assert comparison.variant is None
    router = results["GradientRouter"]
    assert router.left_states == router.right_states == 2 * 2 * 6 * 3**4
    entry = MANIFEST.comparison("ConvergenceGovernor")
    ((_, swapped),) = MANIFEST.variant_targets("ConvergenceGovernor_NoColdGuard")
    broken = run_comparison(entry, swapped, toolchain=toolchain, timeout=120)
    assert broken.variant == "NoColdGuard" and broken.as_dict()["variant"] == "NoColdGuard"
    assert broken.difference is not None
    assert broken.difference.kind == "transition only in TLA+"
    assert "--BeginCooling-->" in broken.difference.detail
    assert broken.difference.path == ("Activate",)


@needs_tlc
def test_a_component_variant_reaches_the_composed_comparison(small_cfg):
    """A budget variant swapped into GovernedTraining's instances moves every state as
    before (the graphs agree) and decides differently: the plans' comparison, run on the
    same broken module, names a decision."""
    broken = conf.conform_training(
        small_cfg,
        find_toolchain(),
        target("GovernedTraining", "GovernedTraining_ProportionalFloor"),
        timeout=300,
    )
    assert broken.variant == "ProportionalFloor"
    assert broken.difference is not None and broken.difference.kind == "different decision"


@needs_tlc
def test_a_python_invariant_violation_is_reported_as_such(small_cfg, monkeypatch):
    """The explorer stops at the first broken invariant; the comparison says so instead of
    listing the states the truncated graph lacks."""
    from govtrain.governance import convergence

    monkeypatch.setattr(convergence, "may_begin_cooling", lambda g: True)
    out = conf.conform_training(
        small_cfg, find_toolchain(), target("GovernedTraining"), timeout=300
    )
    assert not out.ok
    assert out.difference.kind == "invariant violated in Python"
    assert "NoCoolingFromCold" in out.difference.detail
    assert out.difference.path and "BeginCooling" in out.difference.path[-1]


@needs_tlc
def test_the_composed_comparison_checks_every_decision(small_cfg, monkeypatch):
    """decide() is compared with the spec's DecisionFor in every state the explorer
    reaches: a core that forgets the phase multipliers moves the same states (the graphs
    agree) but not the same budget units, and the comparison names the case."""
    from govtrain.governance import budget, routing
    from govtrain.governance.step import Decision

    def without_multipliers(state, needs, cfg):
        grid = budget.need_grid(
            [None if g.phase.frozen else n for g, n in zip(state.groups, needs, strict=True)]
        )
        alloc = budget.allocate(grid, cfg.budget)
        quotas = tuple(routing.quota(state, i, u, cfg) for i, u in enumerate(alloc.units))
        return Decision(alloc.units, quotas, alloc.action, routing.in_warmup(state, cfg))

    monkeypatch.setattr(conf, "decide", without_multipliers)
    out = conf.conform_training(
        small_cfg, find_toolchain(), target("GovernedTraining"), timeout=300
    )
    assert not out.ok and out.difference.kind == "different decision"
    assert "needs (1, 1, 1): Python {'units': [3, 3, 0]" in out.difference.detail
    assert "TLA+ {'units': (4, 2, 0)" in out.difference.detail


@needs_tlc
def test_the_router_comparison_catches_a_tie_broken_the_other_way(small_cfg, monkeypatch):
    """A router that breaks score ties towards the higher index survives every router
    model (its invariants hold either way), not the comparison with the spec's TopK."""
    from govtrain.governance import routing

    def ties_to_higher(scores, k):
        k = max(0, min(k, len(scores)))
        return tuple(sorted(sorted(range(len(scores)), key=lambda i: (-scores[i], -i))[:k]))

    monkeypatch.setattr(routing, "route", ties_to_higher)
    router = target("GradientRouter")
    diff = conf.conform_router(
        small_cfg, find_toolchain(), router, timeout=120, **bounds("GradientRouter")
    ).difference
    assert diff is not None and diff.kind == "different route"
    assert "Python (quota, samples) (1, (3,)), TLA+ (1, (0,))" in diff.detail


@needs_tlc
def test_the_budget_comparison_catches_another_divisor_sequence(monkeypatch):
    """Sainte-Lague's divisors (1, 3, 5, ...) in budget.allocate decide like D'Hondt's
    wherever a group wins at most two units (the default model's bounds), not at the
    Divisors case's, where the comparison names a request."""
    import inspect
    import textwrap

    from govtrain.governance import budget

    # the mutant is budget.allocate's own source with one divisor changed
    source = textwrap.dedent(inspect.getsource(budget.allocate))
    assert source.count("/ (won + 2)") == 1
    mutant = source.replace("/ (won + 2)", "/ (2 * won + 3)").replace("def allocate", "def sl")
    scope = dict(vars(budget))
    exec(compile(mutant, "sainte_lague", "exec"), scope)  # the repository's own source
    sainte_lague = scope["sl"]
    monkeypatch.setattr(budget, "allocate", sainte_lague)
    toolchain, spec, cases = find_toolchain(), target("FederatedBudget"), bounds("FederatedBudget")
    assert len(cases["cases"]) == 2  # MCFederatedBudget's requests, then the Divisors model's
    first = conf.conform_budget(None, toolchain, spec, cases=cases["cases"][:1], timeout=120)
    assert first.ok
    diff = conf.conform_budget(None, toolchain, spec, timeout=120, **cases).difference
    assert diff is not None and diff.kind == "different decision"
