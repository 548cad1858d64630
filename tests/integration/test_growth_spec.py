"""Which blocks run, in the specs: `computed` (specs/HierarchyActivator.tla, composed in
specs/GovernedTraining.tla) and its trace validation (specs/TraceGovernedTraining.tla).

With `hierarchy.dormant: bypass` a DORMANT group's blocks are not computed
(governance/growth.py). The specs keep the computed groups in the variable `computed`,
grown by ActivateLevel and changed by nothing else; `ComputedIsNotDormant` and
`ComputedNeverShrinks` hold, and the broken variants `GrowLate` and `SkipConverged`
are refuted. A grown run's trace carries step 0's blocks and every step's bypassed
blocks, which TLC checks against `computed`: a grown run is accepted, and a log whose
`bypassed` list gains or loses a block (chain recomputed) is rejected by TLC alone.

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
from govtrain.formal.conform import conform_records
from govtrain.formal.manifest import check_model, load_manifest
from govtrain.formal.trace import export_trace, trace_lines, validate_trace
from govtrain.formal.vocabulary import training_constants
from tests.audit_support import rechain
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
