"""Spec and code agree, with TLC: every comparison of the manifest, and the broken variants
and mutants each one must catch (the graph comparison itself and the TLA+ constants are
checked without TLC in tests/unit/test_conformance.py)."""

from __future__ import annotations

from govtrain.formal import compare as conf
from govtrain.formal.manifest import run_comparison
from govtrain.formal.toolchain import find_toolchain
from tests.conftest import needs_tlc
from tests.unit.test_conformance import MANIFEST, bounds, target


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
    # divisors 2k + 1, and a span every one of them divides, so the quotients stay exact
    swaps = (
        ("// (won + 2)", "// (2 * won + 3)"),
        ("max(cfg.ceiling - cfg.floor, 1) + 1", "2 * max(cfg.ceiling - cfg.floor, 1) + 2"),
        ("def allocate", "def sl"),
    )
    mutant = source
    for old, new in swaps:
        assert mutant.count(old) == 1, old
        mutant = mutant.replace(old, new)
    scope = dict(vars(budget))
    exec(compile(mutant, "sainte_lague", "exec"), scope)  # the repository's own source
    sainte_lague = scope["sl"]
    monkeypatch.setattr(budget, "allocate", sainte_lague)
    toolchain, spec, cases = find_toolchain(), target("FederatedBudget"), bounds("FederatedBudget")
    assert len(cases["cases"]) == 3  # MCFederatedBudget's requests, the Divisors model's, near ties
    first = conf.conform_budget(None, toolchain, spec, cases=cases["cases"][:1], timeout=120)
    assert first.ok
    diff = conf.conform_budget(None, toolchain, spec, timeout=120, **cases).difference
    assert diff is not None and diff.kind == "different decision"


@needs_tlc
def test_the_tiers_comparison_names_a_reserve_tied_to_the_higher_index():
    """DataTiers_TiesToHigherIndex holds under TLC (it is still a longest-waiting
    reserve); only the comparison sees that the spec no longer describes tiers.Reserve."""
    entry = MANIFEST.comparison("DataTiers")
    ((_, swapped),) = MANIFEST.variant_targets("DataTiers_TiesToHigherIndex")
    broken = run_comparison(entry, swapped, toolchain=find_toolchain(), timeout=120)
    assert broken.variant == "TiesToHigherIndex"
    assert broken.difference is not None, "the comparison missed the variant"
    kinds = ("different plans", "seeded plan outside the spec's plans")
    assert broken.difference.kind in kinds, broken.difference.describe()
