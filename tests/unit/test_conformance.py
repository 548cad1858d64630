"""Spec and code agree: the graph comparison and the TLA+ constants (with TLC, the real
thing: tests/integration/test_conformance.py)."""

from __future__ import annotations

from types import SimpleNamespace

import networkx as nx
import pytest

from govtrain.formal import compare as conf
from govtrain.formal import vocabulary as voc
from govtrain.formal.manifest import load_manifest
from govtrain.formal.output import StateGraph, parse_dot
from govtrain.governance.state import GroupState, Phase
from tests.conftest import ROOT

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


def test_a_fraction_past_tlc_integers_is_no_verdict_rather_than_a_divergence(small_cfg):
    """1/3 written as a float is 3333333333333333/10**16 exactly: the deadlines' products
    overflow TLC's Java ints, so TLC is skipped with the reason, while a short decimal
    (the same run's constants otherwise) fits."""
    from govtrain.formal.conform import conform_records
    from govtrain.formal.toolchain import Toolchain

    third = small_cfg.hierarchy.model_copy(update={"emergency_fraction": 1 / 3})
    cfg = small_cfg.model_copy(update={"hierarchy": third})
    with pytest.raises(voc.OutOfTLCRange, match=r"emergency_fraction 0\.333.*total_steps"):
        voc.training_constants(cfg)
    short = small_cfg.hierarchy.model_copy(update={"emergency_fraction": 0.33})
    assert voc.training_constants(small_cfg.model_copy(update={"hierarchy": short}))
    start = SimpleNamespace(kind="run_start", body={"config": {"governance": cfg.model_dump()}})
    toolchain = Toolchain(java="java-never-run", jar=ROOT / "no-such.jar")
    report = conform_records([start], toolchain=toolchain)
    assert report.tlc_skipped and "overflows TLC" in (report.tlc_note or "")
