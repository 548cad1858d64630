"""The specs, their models and the manifest agree with each other and with the Python core.

One name, three places: every invariant and action name of governance/ is a
definition of the matching spec, every model of specs/ is in the manifest with
an expectation that fits its config, and every invariant of the Python core is
refuted by at least one broken model. The component specs read clean: a broken
variant is an operator of an MC module that a model's config swaps in. The
comparisons the manifest declares resolve to functions of the known signature.
A few models run with TLC in tests/integration/test_specs_manifest.py.
"""

from __future__ import annotations

import re

import pytest

from govtrain.formal.manifest import (
    DEFAULT_SET,
    check_signature,
    extended,
    load_manifest,
    resolve,
)
from govtrain.formal.output import Outcome
from govtrain.governance.errors import GovtrainError
from govtrain.governance.invariants import INVARIANTS
from govtrain.governance.state import GOVERNOR_ACTIONS
from tests.conftest import ROOT

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


OVERRIDE = re.compile(r"(?m)^\s*(\w+) <- (?:\[(\w+)\] )?(\w+)$")
# definition overrides a config may make besides a broken variant's: a model's constants
CONSTANT_PREFIXES = ("MC_", "Deep_", "Small", "Three", "Half")


def cfg_lists(config: str) -> dict[str, set[str]]:
    text = (SPECS / config).read_text()
    out = {}
    for key in ("INVARIANTS", "PROPERTIES"):
        m = re.search(rf"(?m)^{key} (.*)$", text)
        out[key] = set(m.group(1).split()) if m else set()
    out["SPECIFICATION"] = set(re.findall(r"(?m)^SPECIFICATION (\w+)$", text))
    out["overrides"] = {
        m.group(0).strip()
        for m in OVERRIDE.finditer(text)
        if not m.group(3).startswith(CONSTANT_PREFIXES)
    }
    return out


def fair(lists: dict[str, set[str]]) -> bool:
    """Whether a model's specification carries fairness (`FairSpec`, `ObservedFairSpec`)."""
    return any("Fair" in spec for spec in lists["SPECIFICATION"])


def broken_operators(module: str) -> set[str]:
    """The <Variant>_<Operator> definitions of an MC module (not its constants)."""
    text = (SPECS / module).read_text()
    names = re.findall(r"(?m)^([A-Z]\w*_\w+)(?:\([^)]*\))?\s*==", text)
    return {name for name in names if not name.startswith(CONSTANT_PREFIXES)}


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


def test_the_specs_read_clean():
    """No spec threads a Bug constant: the broken variants live in the MC modules."""
    for path in SPECS.glob("*.tla"):
        text = path.read_text()
        assert not re.search(r"\bBug\b|BugVariants", text), f"{path.name} still names Bug"
    for path in SPECS.glob("*.cfg"):
        assert not re.search(r"(?m)^\s*Bug\b", path.read_text()), f"{path.name} sets Bug"


def test_every_variant_swaps_in_operators_of_its_mc_module():
    for m in MANIFEST.models:
        swapped = cfg_lists(m.config)["overrides"]
        assert swapped == set(m.overrides), f"{m.name}: overrides besides its variant's"
        if m.variant is None:
            continue
        available = definitions(m.module.removesuffix(".tla"))
        for line in m.overrides:
            op, scope, broken = OVERRIDE.match(line).groups()
            assert broken == f"{m.variant}_{op}" and broken in available, f"{m.name}: {line}"
            # the operator replaced exists where the override says: in the root module's
            # definitions, or in the component module named in brackets
            assert op in definitions(scope or m.module.removesuffix(".tla")), f"{m.name}: {line}"


def test_every_broken_operator_is_checked_by_a_model():
    used = {line.split()[-1] for m in MANIFEST.models for line in m.overrides}
    for path in SPECS.glob("MC*.tla"):
        unused = broken_operators(path.name) - used
        assert not unused, f"{path.name}: no model swaps in {sorted(unused)}"


# Broken variants under which every property holds: only a spec-vs-code comparison sees
# them (tests/integration/test_conformance.py checks that it does).
CAUGHT_BY_A_COMPARISON = {"DataTiers_TiesToHigherIndex"}


def test_expectations_fit_the_models():
    for m in MANIFEST.models:
        lists = cfg_lists(m.config)
        if m.expect.outcome is Outcome.HOLDS:
            exempt = m.name.endswith("Gated") or m.name in CAUGHT_BY_A_COMPARISON
            broken = m.variant is not None and not exempt
            assert not broken, f"{m.name}: a broken model holds"
        else:
            # the real spec fails only where its liveness is run without fairness
            unfair = m.expect.outcome is Outcome.PROPERTY_VIOLATED and not fair(lists)
            assert m.variant or unfair, f"{m.name}: the real spec is expected to fail"
            key = "INVARIANTS" if m.expect.outcome is Outcome.INVARIANT_VIOLATED else "PROPERTIES"
            assert m.expect.name in lists[key], f"{m.name}: {m.expect.name} is not checked"
        if m.set != DEFAULT_SET:
            assert m.seconds, f"{m.name}: a model outside the default set documents its time"


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
        "ComputedNeverShrinks",
        "ConvergeAfterLower",
        "ConvergeAfterUpper",
    }
    unfair = {}
    for m in MANIFEST.models:
        lists = cfg_lists(m.config)
        if not fair(lists) and m.variant is None:
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


def test_the_default_set_has_every_model_that_must_fail():
    """Every broken variant (and every property shown to need its fairness) is checked by
    default; only models that hold may be left to the slow set."""
    default = MANIFEST.select()
    assert {m.name for m in default.models} == {
        m.name for m in MANIFEST.models if m.set == DEFAULT_SET
    }
    assert MANIFEST.sets == [DEFAULT_SET, "slow"]
    for m in MANIFEST.models:
        if m.set != DEFAULT_SET:
            assert m.expect.outcome is Outcome.HOLDS and m.variant is None, m.name
            assert m.seconds and m.seconds > 0, m.name
    assert {c.name for c in default.comparisons} == {c.name for c in MANIFEST.comparisons}


def test_comparisons_resolve_to_functions_of_the_known_signature():
    assert [c.name for c in MANIFEST.comparisons] == [
        "ConvergenceGovernor",
        "GovernedTraining",
        "GovernedTraining_UnevenDeadline",
        "FederatedBudget",
        "GradientRouter",
        "DataTiers",
    ]
    for c in MANIFEST.comparisons:
        check_signature(c)
        for dotted in c.python:
            assert callable(resolve(dotted, c.name)), dotted
        # the comparison runs an MC module of its own spec (a name's prefix: its spec)
        spec = c.name.split("_")[0]
        assert f"{spec}.tla" in extended(SPECS, c.module), c.module
        assert (ROOT / "configs" / c.config).is_file()


def test_variants_reach_the_comparisons_of_their_spec():
    """`conform-graph --bug NAME`: a model's variant goes to the comparison of its spec, a
    variant's name to every comparison with a model of it."""
    ((c, target),) = MANIFEST.variant_targets("ConvergenceGovernor_NoColdGuard")
    assert c.name == "ConvergenceGovernor" and target.module == SPECS / c.module
    assert target.overrides == ("MayBeginCooling <- NoColdGuard_MayBeginCooling",)
    pairs = MANIFEST.variant_targets("NoColdGuard")
    assert [(c.name, t.variant) for c, t in pairs] == [
        ("ConvergenceGovernor", "NoColdGuard"),
        ("GovernedTraining", "NoColdGuard"),
        ("GovernedTraining_UnevenDeadline", "NoColdGuard"),
    ]
    assert pairs[1][1].overrides == (
        "MayBeginCooling <- [ConvergenceGovernor] NoColdGuard_MayBeginCooling",
    )
    compared = {c.name for c in MANIFEST.comparisons}
    for m in MANIFEST.models:
        # every variant of a compared spec reaches its comparison, except the abstraction's
        # (MCGovernedTrainingRefines), which no comparison runs
        if m.variant and spec_of(m.module) in compared and "Refines" not in m.module:
            assert MANIFEST.variant_targets(m.name), m.name
    with pytest.raises(GovtrainError, match="no broken variant Nothing"):
        MANIFEST.variant_targets("Nothing")
    with pytest.raises(GovtrainError, match="no spec-vs-code comparison"):
        MANIFEST.variant_targets("AuditChain_NoPrevCheck")
