"""The specs, their models and the manifest agree with each other and with the Python core.

One name, three places: every invariant and action name of governance/ is a
definition of the matching spec, every model of specs/ is in the manifest with
an expectation that fits its config, and every invariant of the Python core is
refuted by at least one broken model. The last tests run a few models with TLC
when it is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from govtrain.formal.manifest import check_model, load_manifest
from govtrain.formal.output import Outcome
from govtrain.formal.toolchain import find_toolchain
from govtrain.governance.invariants import INVARIANTS
from govtrain.governance.state import GOVERNOR_ACTIONS
from tests.conftest import needs_tlc

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
MANIFEST = load_manifest(SPECS / "manifest.yaml")

COMPONENTS = {
    "ConvergenceGovernor": list(GOVERNOR_ACTIONS),
    "HierarchyActivator": ["ActivateLevel"],
    "FederatedBudget": ["Allocate", "Ration"],
    "GradientRouter": ["Route"],
    "AuditChain": ["Append", "Verify"],
    "GovernedTraining": ["GovernanceStep"],
    "DataTiers": ["Observe", "Rescore", "Reserve"],
}
LIVENESS = {
    "ConvergenceGovernor": "LowSignalConverges",
    "HierarchyActivator": "TopLevelEventuallyActive",
    "FederatedBudget": "RequestDecided",
    "GradientRouter": "WarmupEnds",
    "AuditChain": "EventuallyJudged",
    "GovernedTraining": "TopLevelEventuallyActive",
    "DataTiers": "EverySampleDrawn",
}


def definitions(module: str) -> set[str]:
    """Names defined at the start of a line of specs/<module>.tla (and what it EXTENDS)."""
    text = (SPECS / f"{module}.tla").read_text()
    names = set(re.findall(r"(?m)^([A-Za-z_][A-Za-z0-9_]*)(?:\([^)]*\))?\s*==", text))
    extends = re.search(r"(?m)^EXTENDS (.*)$", text)
    for parent in extends.group(1).split(",") if extends else []:
        if (SPECS / f"{parent.strip()}.tla").is_file():
            names |= definitions(parent.strip())
    return names


def cfg_lists(config: str) -> dict[str, set[str]]:
    text = (SPECS / config).read_text()
    out = {}
    for key in ("INVARIANTS", "PROPERTIES"):
        m = re.search(rf"(?m)^{key} (.*)$", text)
        out[key] = set(m.group(1).split()) if m else set()
    bug = re.search(r'(?m)^\s*Bug = "(\w+)"', text)
    out["Bug"] = {bug.group(1)} if bug else set()
    out["SPECIFICATION"] = set(re.findall(r"(?m)^SPECIFICATION (\w+)$", text))
    return out


def fair(lists: dict[str, set[str]]) -> bool:
    """Whether a model's specification carries fairness (`FairSpec`, `ObservedFairSpec`)."""
    return any("Fair" in spec for spec in lists["SPECIFICATION"])


def bug_variants(module: str) -> set[str]:
    text = (SPECS / f"{module}.tla").read_text()
    found = set()
    for block in re.findall(r"BugVariants == \{([^}]*)\}", text):
        found |= set(re.findall(r'"(\w+)"', block))
    return found


def spec_of(module: str) -> str:
    """The component spec a model module belongs to (MCHierarchyActivator -> HierarchyActivator)."""
    stem = module.removesuffix(".tla")
    for name in COMPONENTS:
        if name in stem:
            return name
    raise AssertionError(f"{module} belongs to no component")


def test_every_model_file_is_in_the_manifest_once():
    configs = sorted(p.name for p in SPECS.glob("*.cfg"))
    listed = sorted(m.config for m in MANIFEST.models)
    assert configs == listed


def test_one_spec_per_component_with_its_action_names():
    for module, actions in COMPONENTS.items():
        defined = definitions(module)
        assert "TypeOK" in defined, module
        missing = [a for a in actions if a not in defined]
        assert not missing, f"{module}.tla lacks the actions {missing}"


def test_the_python_invariants_are_defined_and_checked_by_name():
    defined = definitions("GovernedTraining")
    assert set(INVARIANTS) <= defined
    main = cfg_lists("MCGovernedTraining.cfg")
    assert set(INVARIANTS) <= main["INVARIANTS"] | main["PROPERTIES"]


def test_every_python_invariant_has_a_model_that_refutes_it():
    refuted = {m.expect.name for m in MANIFEST.models if m.expect.outcome is not Outcome.HOLDS}
    assert set(INVARIANTS) <= refuted, sorted(set(INVARIANTS) - refuted)


def test_expectations_fit_the_models():
    for m in MANIFEST.models:
        lists = cfg_lists(m.config)
        (bug,) = lists["Bug"]
        spec = spec_of(m.module)
        # GovernedTraining's models also take the abstraction's (MCGovernedTrainingRefines)
        variants = set().union(
            *(bug_variants(c) for c in (*COMPONENTS, "GovernedTrainingAbstract"))
        )
        allowed = variants if spec == "GovernedTraining" else bug_variants(spec)
        assert bug in allowed, f"{m.name}: Bug {bug!r} is not a variant of {spec}"
        if m.expect.outcome is Outcome.HOLDS:
            assert bug == "none" or m.name.endswith("Gated"), f"{m.name}: a broken model holds"
        else:
            # the real spec fails only where its liveness is run without fairness
            unfair = m.expect.outcome is Outcome.PROPERTY_VIOLATED and not fair(lists)
            assert bug != "none" or unfair, f"{m.name}: the real spec is expected to fail"
            key = "INVARIANTS" if m.expect.outcome is Outcome.INVARIANT_VIOLATED else "PROPERTIES"
            assert m.expect.name in lists[key], f"{m.name}: {m.expect.name} is not checked"
        if m.slow:
            assert m.seconds, f"{m.name}: a slow model documents its time"


def test_every_liveness_property_is_shown_to_need_its_fairness():
    """Each property a fair model proves is refuted by the same spec without fairness (a
    behaviour may then stop), or holds there too and is fairness-independent."""
    temporal = {
        p
        for m in MANIFEST.models
        if m.expect.outcome is Outcome.HOLDS and fair(cfg_lists(m.config))
        for p in cfg_lists(m.config)["PROPERTIES"]
    }
    # action properties [][A]_v (and a refinement of a spec without fairness) are safety:
    # fairness plays no part in them
    safety = {
        "LevelsMonotone",
        "NoSkippedLevels",
        "ActivationGated",
        "RefinesComponents",
        "AbstractInit",
        "AbstractSteps",
        "TiersMoveOnEvidence",
    }
    unfair = {}
    for m in MANIFEST.models:
        lists = cfg_lists(m.config)
        if not fair(lists) and lists["Bug"] == {"none"}:
            for p in lists["PROPERTIES"]:
                unfair[p] = m.expect.outcome
    for p in sorted(temporal - safety):
        assert p in unfair, f"{p} is never checked without fairness"
    independent = {p for p, outcome in unfair.items() if outcome is Outcome.HOLDS} - safety
    assert independent == {"AwakeningsStabilise"}, independent


def test_every_spec_has_a_liveness_property_checked_by_a_model_that_holds():
    for spec, prop in LIVENESS.items():
        assert prop in definitions(spec), f"{spec} defines no {prop}"
        checked = [
            m
            for m in MANIFEST.models
            if spec_of(m.module) == spec
            and m.expect.outcome is Outcome.HOLDS
            and prop in cfg_lists(m.config)["PROPERTIES"]
        ]
        assert checked, f"no model of {spec} checks {prop}"


def test_the_default_check_excludes_only_slow_models():
    default = {m.name for m in MANIFEST.select()}
    assert default == {m.name for m in MANIFEST.models if not m.slow}
    assert all(m.seconds and m.seconds > 60 for m in MANIFEST.models if m.slow)


# --------------------------------------------------------------------------- with TLC


@needs_tlc
@pytest.mark.parametrize("name", ["ConvergenceGovernor", "GovernedTraining_NoColdGuard"])
def test_models_give_the_manifests_result(name):
    (entry,) = [m for m in MANIFEST.models if m.name == name]
    verdict = check_model(entry, MANIFEST, toolchain=find_toolchain(), timeout=120)
    assert verdict.ok, verdict.problems
