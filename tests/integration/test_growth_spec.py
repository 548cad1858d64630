"""Which blocks run, in the specs: `computed` (specs/HierarchyActivator.tla, composed in
specs/GovernedTraining.tla) and its trace validation (specs/TraceGovernedTraining.tla).

With `hierarchy.dormant: bypass` a DORMANT group's blocks are not computed
(governance/growth.py). The specs keep the computed groups in the variable `computed`,
grown by ActivateLevel and changed by nothing else; `ComputedIsNotDormant` and
`ComputedNeverShrinks` hold, and the broken variants `GrowLate` and `SkipConverged`
are refuted. A grown run's trace carries step 0's blocks and every step's bypassed
blocks, which TLC checks against `computed`: a grown run is accepted, and a log whose
`bypassed` list gains or loses a block (chain recomputed) is rejected by TLC alone.

ConvergeAfterLower (`hierarchy.converge_after_lower`, governance/hierarchy.py) is the
constant `InLevelOrder` of specs/GovernedTraining.tla and its guard `SettledBelow`: every
model sets the constant, the spec's graph with the flag is the explorer's, and a run with
the flag validates under TLC while a log edited so that a group converges before the
groups below it (chain recomputed) is rejected by TLC alone.

The TLC tests skip where no Java or no tla2tools.jar is found.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.formal.compare import conform_training
from govtrain.formal.conform import conform_records
from govtrain.formal.manifest import check_model, load_manifest
from govtrain.formal.output import Outcome
from govtrain.formal.trace import export_trace, trace_lines, validate_trace
from govtrain.formal.userconfig import check_config
from govtrain.formal.vocabulary import training_constants
from govtrain.governance.config import GovernanceConfig, parse_governance
from govtrain.governance.explore import explore
from tests.audit_support import forge_step, rechain, rejected_only_with
from tests.conftest import ROOT, needs_tlc, train_tiny
from tests.conftest import tlc_toolchain as toolchain

SPECS = ROOT / "specs"
MANIFEST = load_manifest(SPECS / "manifest.yaml")

# The tiny run (tools/tiny.py) has blocks transformer.h.0 (block0, level 0) and
# transformer.h.1 (top, level 1); embed owns no block, so its computed status is unseen.
LOW, HIGH = "transformer.h.0", "transformer.h.1"
BYPASS = {
    "governance__hierarchy": {
        "levels": 2,
        "emergency_fraction": 0.5,
        "dormant": "bypass",
        "grow": "stack",
    }
}


def definitions(module: str) -> set[str]:
    text = (SPECS / f"{module}.tla").read_text()
    return set(re.findall(r"(?m)^([A-Za-z_][A-Za-z0-9_]*)(?:\([^)]*\))?\s*==", text))


# --------------------------------------------------------------------------- the specs


def test_the_rule_has_its_python_names_in_the_hierarchy_spec() -> None:
    """growth.computed and growth.grows are Computed and Grows; the invariants are stated
    once in HierarchyActivator and used by name in GovernedTraining."""
    hierarchy = definitions("HierarchyActivator")
    assert {"Computed", "Grows", "NextComputed", "InitComputed"} <= hierarchy
    assert {"ComputedIsNotDormant", "KeepsComputing", "ComputedNeverShrinks"} <= hierarchy
    assert {"ComputedIsNotDormant", "ComputedNeverShrinks"} <= definitions("GovernedTraining")
    text = (SPECS / "GovernedTraining.tla").read_text()
    assert "ComputedIsNotDormant == Hier!ComputedIsNotDormant" in text
    assert "ComputedNeverShrinks == [][Hier!KeepsComputing]_vars" in text


def test_the_dormant_policy_is_a_constant_of_every_model(small_cfg) -> None:
    """hierarchy.dormant is the constant Dormant: generated models carry it from the
    config, and every model of the two specs sets it; each policy is checked."""
    assert training_constants(small_cfg)["Dormant"] == small_cfg.hierarchy.dormant == "frozen"
    policies: dict[str, set[str]] = {"HierarchyActivator": set(), "GovernedTraining": set()}
    for m in MANIFEST.models:
        spec = next((s for s in policies if s in m.module), None)
        if spec is None:
            continue
        cfg = (SPECS / m.config).read_text()
        set_to = re.search(r'(?m)^\s*Dormant (?:= "(\w+)"|<- (\w+))$', cfg)
        assert set_to, f"{m.config} does not set Dormant"
        value = set_to.group(1)
        if value is None:  # a definition of the model's module: MC_Dormant, Deep_Dormant
            module = (SPECS / m.module).read_text()
            if set_to.group(2) not in module:
                module = (SPECS / "MCGovernedTraining.tla").read_text()
            value = re.search(rf'(?m)^{set_to.group(2)} == "(\w+)"$', module).group(1)
        if m.expect.outcome.value == "holds":
            policies[spec].add(value)
        cfg_lists = " ".join(re.findall(r"(?m)^(?:INVARIANTS|PROPERTIES) (.*)$", cfg))
        if "DormantAboveLevel" in cfg_lists:  # a model of the hierarchy's safety
            assert "ComputedNeverShrinks" in cfg_lists, m.name
    assert policies == {s: {"frozen", "bypass"} for s in policies}


@needs_tlc
@pytest.mark.parametrize(
    "name",
    [
        "HierarchyActivator_Bypass",
        "HierarchyActivator_GrowLate",
        "HierarchyActivator_SkipConverged",
        "GovernedTraining_GrowLate",
        "GovernedTraining_SkipConverged",
    ],
)
def test_the_bypass_models_give_the_manifests_result(name) -> None:
    (entry,) = [m for m in MANIFEST.models if m.name == name]
    verdict = check_model(entry, MANIFEST, toolchain=toolchain(), timeout=300)
    assert verdict.ok, verdict.problems


# --------------------------------------------------------------------------- a grown run


@pytest.fixture(scope="module")
def grown_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "grown"
    train_tiny(run_dir, **BYPASS)
    return run_dir


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in export_trace(run).splitlines()]


@pytest.mark.torch
def test_a_grown_runs_trace_carries_its_blocks(grown_run) -> None:
    init, *steps = _lines(grown_run)
    assert init["constants"]["Dormant"] == "bypass"
    # step 0's [name, group index] pairs, with groups counted from 1 as in the spec
    assert init["blocks"] == [{"name": LOW, "group": 2}, {"name": HIGH, "group": 3}]
    grown = [s for s in steps if s["grows"]]
    assert len(grown) == 1 and "ActivateLevel(1)" in grown[0]["actions"]
    for s in steps:
        before = s["step"] < grown[0]["step"]
        assert s["bypassed"] == ([HIGH] if before else []), s["step"]


@pytest.mark.torch
def test_a_frozen_runs_trace_is_unchanged_but_for_the_policy(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    init, *steps = _lines(run_dir)
    assert init["constants"]["Dormant"] == "frozen" and init["blocks"] == []
    assert all("bypassed" not in s and s["grows"] is False for s in steps)


@needs_tlc
@pytest.mark.torch
def test_replay_and_tlc_accept_a_grown_run(grown_run) -> None:
    report = conform_records(read_records(grown_run / "audit.jsonl"), toolchain=toolchain())
    assert report.ok, (report.replay_summary(), report.tlc_summary())
    assert report.tlc.lines == report.tlc.matched == 41
    assert report.tlc.result.distinct_states == 42


def _growth_step(recs: list[Record]) -> int:
    return next(r.body["step"] for r in recs if r.kind == "step" and r.body.get("growth"))


def _add_to_a_full_model(recs):
    """After the growth nothing is bypassed: a block appears in the list."""
    due = _growth_step(recs) + 3
    return due, lambda body: body["bypassed"].append(HIGH), f"trace skips block '{HIGH}'"


def _drop_from_a_bypassed_level(recs):
    """Before the growth top's block is bypassed: it disappears from the list."""
    return 4, lambda body: body["bypassed"].remove(HIGH), f"spec skips block '{HIGH}'"


def _bypass_a_trained_block(recs):
    """Before the growth, level 0's block is listed as bypassed too."""
    return 6, lambda body: body["bypassed"].insert(0, LOW), f"trace skips block '{LOW}'"


def _growth_dropped(recs):
    """The growth record of the activating step is removed."""
    return _growth_step(recs), lambda body: body.pop("growth"), "grows: spec TRUE, trace FALSE"


@needs_tlc
@pytest.mark.torch
@pytest.mark.parametrize(
    "alter",
    [_add_to_a_full_model, _drop_from_a_bypassed_level, _bypass_a_trained_block, _growth_dropped],
    ids=lambda f: f.__name__.strip("_"),
)
def test_an_altered_bypassed_list_is_rejected_by_tlc_alone(grown_run, tmp_path, alter) -> None:
    """Each alteration, in a grown run's log with the chain recomputed: TLC's trace
    validation rejects it at the altered record (and so does the Python replay)."""
    copy_dir = tmp_path / "run"
    shutil.copytree(grown_run, copy_dir)
    log = copy_dir / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    recs = [Record.from_line(x) for x in lines]
    step, change, needle = alter(recs)
    target = next(r for r in recs if r.kind == "step" and r.body["step"] == step)
    body = copy.deepcopy(target.body)
    change(body)
    lines[target.seq] = Record.build(target.seq, target.kind, target.prev, body).line
    log.write_bytes(b"\n".join(rechain(lines, target.seq)) + b"\n")
    altered = read_records(log)

    # TLC alone: the trace of the altered records, validated without the replay
    validation = validate_trace(list(trace_lines(altered)), toolchain=toolchain())
    assert not validation.ok and validation.problem is None, validation.summary()
    bad = validation.mismatch
    assert bad.seq == target.seq and bad.check == "TraceMatched", str(bad)
    assert any(needle in d for d in bad.differences), bad.differences

    report = conform_records(altered, toolchain=None)
    assert report.replay.divergence is not None
    assert report.replay.divergence.seq == target.seq, report.replay_summary()


@needs_tlc
@pytest.mark.torch
def test_tlc_rejects_bypassed_blocks_in_a_frozen_run(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    lines = _lines(run_dir)
    lines[3]["bypassed"] = []
    validation = validate_trace(lines, toolchain=toolchain())
    assert not validation.ok and validation.mismatch.line == 4
    assert "bypassed: recorded, but the run does not bypass" in validation.mismatch.differences


# --------------------------------------------------------------------------- converge_after_lower

IN_ORDER = {
    "governance__hierarchy": {"levels": 2, "emergency_fraction": 0.5, "converge_after_lower": True},
    # top's signal goes low while embed never learns, so a patient top waits
    "governance__governor__signal_threshold": 0.2,
}


def in_level_order(cfg: GovernanceConfig) -> GovernanceConfig:
    hierarchy = cfg.hierarchy.model_copy(update={"converge_after_lower": True})
    return cfg.model_copy(update={"hierarchy": hierarchy})


def test_the_rule_has_its_names_in_the_composition() -> None:
    """hierarchy.converge_after_lower is SettledBelow, which the step reads through
    Governed; ConvergeAfterLower is written out, so no variant of the guard changes it."""
    defined = definitions("GovernedTraining")
    assert {"SettledBelow", "Governed", "ConvergeAfterLower"} <= defined
    text = (SPECS / "GovernedTraining.tla").read_text()
    prop = text[text.index("ConvergeAfterLower ==") :]
    assert "SettledBelow" not in prop.split("\n\n")[0]
    assert "AlwaysSettled_SettledBelow" in definitions("MCGovernedTrainingBroken")


def test_the_flag_is_a_constant_of_every_model(small_cfg) -> None:
    """hierarchy.converge_after_lower is the constant InLevelOrder: generated models carry
    it from the config, every model of GovernedTraining sets it, both values hold."""
    assert training_constants(small_cfg)["InLevelOrder"] is False
    assert training_constants(in_level_order(small_cfg))["InLevelOrder"] is True
    held: set[str] = set()
    for m in MANIFEST.models:
        if "GovernedTraining" not in m.module:
            continue
        cfg = (SPECS / m.config).read_text()
        set_to = re.search(r"(?m)^\s*InLevelOrder (?:= (TRUE|FALSE)|<- (\w+))$", cfg)
        assert set_to, f"{m.config} does not set InLevelOrder"
        value = set_to.group(1)
        if value is None:  # MC_InLevelOrder, Deep_InLevelOrder: FALSE, as every config
            module = (SPECS / m.module).read_text()
            if set_to.group(2) not in module:
                module = (SPECS / "MCGovernedTraining.tla").read_text()
            value = re.search(rf"(?m)^{set_to.group(2)} == (TRUE|FALSE)$", module).group(1)
        if m.expect.outcome is Outcome.HOLDS:
            held.add(value)
        cfg_lists = " ".join(re.findall(r"(?m)^(?:INVARIANTS|PROPERTIES) (.*)$", cfg))
        if "DormantAboveLevel" in cfg_lists:  # a model of the hierarchy's safety
            assert value == "FALSE" or "ConvergeAfterLower" in cfg_lists, m.name
    assert held == {"TRUE", "FALSE"}


def test_the_flag_reaches_no_new_decision_inputs(small_cfg) -> None:
    """What GovernedTraining_InLevelOrder leaves to MCGovernedTraining.cfg: the budget and
    router read only the phases and the clock, and the flag reaches no pair of them that
    small.yaml without it does not (it reaches fewer states: 939 against 1443)."""
    plain, ordered = explore(small_cfg), explore(in_level_order(small_cfg))
    assert plain.violation is None and ordered.violation is None
    assert (len(plain.graph), len(ordered.graph)) == (1443, 939)

    def inputs(graph) -> set:
        return {(tuple(g.phase for g in s.groups), s.clock) for s in graph.nodes}

    assert inputs(ordered.graph) <= inputs(plain.graph)


@needs_tlc
@pytest.mark.parametrize(
    "name",
    [
        "GovernedTraining_InLevelOrder",
        "GovernedTraining_AlwaysSettled",
        "GovernedTrainingAbstract_InLevelOrder",
        "GovernedTraining_AfterUpper",
        "GovernedTraining_UpperAlwaysActive",
        "GovernedTrainingAbstract_AfterUpper",
    ],
)
def test_the_level_order_models_give_the_manifests_result(name) -> None:
    (entry,) = [m for m in MANIFEST.models if m.name == name]
    verdict = check_model(entry, MANIFEST, toolchain=toolchain(), timeout=300)
    assert verdict.ok, verdict.problems


def after_upper(cfg: GovernanceConfig) -> GovernanceConfig:
    """Both level-order flags, the benchmark recipe's."""
    hierarchy = cfg.hierarchy.model_copy(
        update={"converge_after_lower": True, "converge_after_upper": True}
    )
    return cfg.model_copy(update={"hierarchy": hierarchy})


@needs_tlc
@pytest.mark.parametrize(
    ("shape", "variant", "states", "needles"),
    [
        (in_level_order, None, 939, ()),
        (in_level_order, "GovernedTraining_AlwaysSettled", 0, ("Converge(head)",)),
        (after_upper, None, 883, ()),
        (after_upper, "GovernedTraining_UpperAlwaysActive", 0, ("Cool(", "Converge(")),
    ],
)
def test_with_the_flag_the_specs_graph_is_the_explorers(
    small_cfg, shape, variant, states, needles
) -> None:
    """conform:GovernedTraining at small.yaml's bounds with the flag on: TLC's labelled
    graph is the explorer's edge by edge (and decide() agrees in every state); with the
    guard broken, the spec converges (or counts a low) where the code waits."""
    comparison = MANIFEST.comparison("GovernedTraining")
    model = None if variant is None else next(m for m in MANIFEST.models if m.name == variant)
    target = MANIFEST.target(comparison, model)
    out = conform_training(shape(small_cfg), toolchain(), target, timeout=300)
    if variant is None:
        assert out.ok, out.difference and out.difference.describe()
        assert out.left_states == out.right_states == states
    else:
        assert out.difference is not None
        described = out.difference.describe()
        assert any(n in described for n in needles), described


@needs_tlc
@pytest.mark.parametrize("shape", [in_level_order, after_upper])
def test_check_config_checks_the_flag(small_cfg, shape) -> None:
    """govtrain specs check-config on a config with the flag: the abstract composition
    checks ConvergeAfterLower and ConvergeAfterUpper (and the computed-blocks rules) and
    holds."""
    runs = check_config(shape(small_cfg), toolchain(), timeout=300)
    assert [(r.name, r.result.outcome) for r in runs] == [
        ("ConvergenceGovernor", Outcome.HOLDS),
        ("GovernedTrainingAbstract", Outcome.HOLDS),
    ]


@pytest.fixture(scope="module")
def in_order_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "in_order"
    train_tiny(run_dir, **IN_ORDER)
    return run_dir


def _waits(recs: list[Record]) -> list[Record]:
    """The step records where a patient group waited: COOLING with lows one short of
    patience before the step, a low signal, and still COOLING after it."""
    cfg = parse_governance(recs[0].body["config"]["governance"])
    names = [g.name for g in cfg.groups]
    out, before = [], None
    for rec in recs:
        if rec.kind != "step":
            continue
        after = rec.body["state"]["groups"]
        if before is not None:
            for n in names:
                obs = rec.body["observations"][n]
                if (
                    before[n]["phase"] == after[n]["phase"] == "COOLING"
                    and before[n]["lows"] == after[n]["lows"] == cfg.governor.patience - 1
                    and obs["signal"] < cfg.governor.signal_threshold
                ):
                    out.append(rec)
        before = after
    return out


@pytest.mark.torch
def test_a_run_with_the_flag_waits_and_its_trace_carries_it(in_order_run) -> None:
    init, *_ = _lines(in_order_run)
    assert init["constants"]["InLevelOrder"] is True
    waits = _waits(read_records(in_order_run / "audit.jsonl"))
    assert waits, "the tiny run with the flag never made a patient group wait"
    assert all(r.body["transitions"] == [] for r in waits)


@needs_tlc
@pytest.mark.torch
def test_replay_and_tlc_accept_a_run_with_the_flag(in_order_run) -> None:
    report = conform_records(read_records(in_order_run / "audit.jsonl"), toolchain=toolchain())
    assert report.ok, (report.replay_summary(), report.tlc_summary())
    assert report.tlc.lines == report.tlc.matched == 41


@needs_tlc
@pytest.mark.torch
def test_an_early_convergence_is_rejected_by_tlc_alone(in_order_run, tmp_path) -> None:
    """The first step where top waited is edited into the step without the flag: top
    Converges (state, transition and the decision after it as the core makes them), the
    chain recomputed. TLC's trace validation rejects it at that record, and only for the
    flag: the same lines up to it, with InLevelOrder FALSE in Init, are accepted."""
    target = _waits(read_records(in_order_run / "audit.jsonl"))[0]

    def converge(body: dict) -> None:
        (waiting,) = [n for n, g in body["state"]["groups"].items() if g["phase"] == "COOLING"]
        assert waiting == "top"
        body["state"]["groups"][waiting] |= {"phase": "CONVERGED", "lows": 0}
        body["transitions"].append(
            {"action": "Converge", "after": "CONVERGED", "before": "COOLING", "group": waiting}
        )

    log = forge_step(in_order_run, tmp_path / "run", target.seq, converge)
    rejected_only_with(log, target.seq, "Converge(top)", "InLevelOrder", toolchain())
