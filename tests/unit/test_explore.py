"""Exhaustive exploration of the composed core, and proof that each invariant can fail.

Every broken rule below is patched into the running core by the test (never in
the code) and the explorer must name the invariant it breaks. An invariant no
broken rule can trip would be true by construction, and so worthless.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner

from govtrain.cli import main
from govtrain.governance import budget, completion, convergence, growth, hierarchy, routing
from govtrain.governance.abstraction import explore_abstract
from govtrain.governance.budget import Allocation
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.explore import explore, observations
from govtrain.governance.invariants import INVARIANTS
from govtrain.governance.state import ACTIONS, Phase
from govtrain.governance.step import govern
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def small_graph(small_cfg: GovernanceConfig):
    return explore(small_cfg)


def test_small_config_all_invariants_hold(small_graph) -> None:
    assert small_graph.violation is None
    assert small_graph.graph.number_of_nodes() > 1000  # 3 groups, 2 levels: a real space
    assert small_graph.checked == tuple(INVARIANTS)


def test_graph_is_closed_and_reachable(small_cfg: GovernanceConfig, small_graph) -> None:
    """Every successor of every explored state was explored, and nothing else was."""
    import networkx as nx

    g = small_graph.graph
    for state in g.nodes:
        for obs in observations(state, small_cfg):
            assert govern(state, obs, small_cfg).state in g
    assert set(nx.descendants(g, small_graph.initial)) | {small_graph.initial} == set(g.nodes)


def test_every_phase_and_level_is_reached(small_graph) -> None:
    phases = {gs.phase for s in small_graph.graph.nodes for gs in s.groups}
    assert phases == set(Phase)
    assert {s.active_level for s in small_graph.graph.nodes} == {0, 1}
    labels = {k for _, _, k in small_graph.graph.edges(keys=True)}
    taken = {a.split("(")[0] for lbl in labels for a in lbl.split("|")}
    assert set(ACTIONS) <= taken, set(ACTIONS) - taken


def bypassing(cfg: GovernanceConfig) -> GovernanceConfig:
    """Dormant levels bypassed (governance/growth.py)."""
    return cfg.model_copy(
        update={"hierarchy": cfg.hierarchy.model_copy(update={"dormant": "bypass"})}
    )


def in_level_order(cfg: GovernanceConfig) -> GovernanceConfig:
    """Three levels, each group converging only after the groups below it."""
    cfg = three_levels(cfg)
    hierarchy_cfg = cfg.hierarchy.model_copy(update={"converge_after_lower": True})
    return cfg.model_copy(update={"hierarchy": hierarchy_cfg})


def after_upper(cfg: GovernanceConfig) -> GovernanceConfig:
    """Three levels, each group counting lows only once every level above is active."""
    cfg = three_levels(cfg)
    hierarchy_cfg = cfg.hierarchy.model_copy(update={"converge_after_upper": True})
    return cfg.model_copy(update={"hierarchy": hierarchy_cfg})


def three_levels(cfg: GovernanceConfig) -> GovernanceConfig:
    return cfg.model_copy(
        update={
            "hierarchy": cfg.hierarchy.model_copy(update={"levels": 3}),
            "groups": (
                cfg.groups[0],
                cfg.groups[1].model_copy(update={"level": 1}),
                cfg.groups[2].model_copy(update={"level": 2}),
            ),
        }
    )


def tight_budget(cfg: GovernanceConfig) -> GovernanceConfig:
    return cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"master": 2})})


def truncating_allocate(weights, cfg):
    """The classic leak: proportional shares rounded down, remainder dropped."""
    units = [0] * len(weights)
    live = {i: w for i, w in enumerate(weights) if w is not None}
    total = sum(live.values()) or 1.0
    rest = cfg.master - cfg.floor * len(live)
    for i, w in live.items():
        units[i] = min(cfg.ceiling, cfg.floor + int(rest * w / total))
    return Allocation(tuple(units), "Allocate")


def _orig(module, name):
    return getattr(module, name)


BROKEN: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], Callable]] = {
    # invariant: (patch applying the broken rule, config transform)
    "FinishOnlyWhenAllConverged": (
        lambda mp: mp.setattr(
            completion,
            "nothing_to_train",
            lambda s, cfg: all(g.phase in (Phase.CONVERGED, Phase.COOLING) for g in s.groups),
        ),
        lambda c: c,
    ),
    "NoCoolingFromCold": (
        lambda mp: mp.setattr(convergence, "may_begin_cooling", lambda g: True),
        lambda c: c,
    ),
    "AwakeningsBounded": (
        lambda mp: mp.setattr(convergence, "may_awaken", lambda g, m: g.awakenings <= m),
        lambda c: c,
    ),
    "TypeOK": (
        lambda mp: mp.setattr(convergence, "patience_reached", lambda lows, p: lows > p),
        lambda c: c,
    ),
    "LevelsMonotone": (
        lambda mp, f=hierarchy.next_level: mp.setattr(
            hierarchy,
            "next_level",
            lambda s, cfg: (
                s.active_level - 1
                if s.active_level and any(g.phase is Phase.AWAKENED for g in s.groups)
                else f(s, cfg)
            ),
        ),
        lambda c: c,
    ),
    "NoSkippedLevels": (
        lambda mp, f=hierarchy.next_level: mp.setattr(
            hierarchy,
            "next_level",
            lambda s, cfg: (
                min(f(s, cfg) * 2, cfg.hierarchy.levels - 1)
                if f(s, cfg) > s.active_level
                else f(s, cfg)
            ),
        ),
        three_levels,
    ),
    "DormantAboveLevel": (lambda mp: mp.setattr(convergence, "activate", lambda g: g), lambda c: c),
    "ActivationGated": (
        lambda mp: mp.setattr(
            hierarchy, "gate_open", lambda s, cfg: any(g.phase is Phase.CONVERGED for g in s.groups)
        ),
        lambda c: c,
    ),
    "BudgetConserved": (
        lambda mp: mp.setattr(budget, "feasible", lambda n, cfg: True),
        tight_budget,
    ),
    "BudgetWithinBounds": (
        lambda mp: mp.setattr(budget, "feasible", lambda n, cfg: False),
        lambda c: c,
    ),
    "BudgetWorkConserving": (
        lambda mp: mp.setattr(budget, "allocate", truncating_allocate),
        lambda c: c,
    ),
    "NoBudgetForFrozen": (
        lambda mp, f=budget.allocate: mp.setattr(
            budget, "allocate", lambda ws, cfg: f([1.0 if w is None else w for w in ws], cfg)
        ),
        lambda c: c,
    ),
    "QuotaWithinBatch": (
        lambda mp, f=routing.quota: mp.setattr(
            routing,
            "quota",
            lambda s, i, u, cfg: f(s, i, u, cfg) + (1 if routing.in_warmup(s, cfg) else 0),
        ),
        lambda c: c,
    ),
    "ComputedIsNotDormant": (
        lambda mp: mp.setattr(growth, "computed", lambda s, cfg: tuple(True for _ in s.groups)),
        bypassing,
    ),
    "ComputedNeverShrinks": (
        lambda mp, f=growth.computed: mp.setattr(
            growth,
            "computed",
            lambda s, cfg: tuple(
                r and g.phase is not Phase.CONVERGED
                for r, g in zip(f(s, cfg), s.groups, strict=True)
            ),
        ),
        bypassing,
    ),
    "ConvergeAfterLower": (
        lambda mp: mp.setattr(hierarchy, "converge_after_lower", lambda s, i, cfg: True),
        in_level_order,
    ),
    "ConvergeAfterUpper": (
        lambda mp: mp.setattr(hierarchy, "converge_after_upper", lambda s, i, cfg: True),
        after_upper,
    ),
    "FrozenGetsNoGradient": (
        lambda mp: mp.setattr(
            routing,
            "quota",
            lambda s, i, u, cfg: cfg.router.batch_size if routing.in_warmup(s, cfg) else u,
        ),
        lambda c: c,
    ),
}


@pytest.mark.parametrize(
    "shape", [three_levels, tight_budget, in_level_order, after_upper, bypassing]
)
def test_config_variants_hold_unbroken(small_cfg: GovernanceConfig, shape: Callable) -> None:
    """The variants some broken rules need are themselves clean, so a catch means the rule."""
    assert explore(shape(small_cfg)).violation is None


def test_every_invariant_has_a_broken_rule() -> None:
    assert set(BROKEN) == set(INVARIANTS)


@pytest.mark.parametrize("explorer", [explore, explore_abstract], ids=["concrete", "abstract"])
@pytest.mark.parametrize("invariant", sorted(BROKEN))
def test_broken_rule_is_caught(
    invariant: str, explorer, small_cfg: GovernanceConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By the concrete explorer and by the abstract model (governance/abstraction.py)."""
    patch, shape = BROKEN[invariant]
    cfg = shape(small_cfg)
    patch(monkeypatch)
    violation = explorer(cfg).violation
    assert violation is not None, f"{invariant}: broken rule went unnoticed"
    assert invariant in violation.invariants
    text = violation.describe()
    assert f"invariant {invariant} violated" in text and "shortest path" in text


def test_cli_explore_reports_size_and_success() -> None:
    small = str(ROOT / "configs" / "small.yaml")
    result = CliRunner().invoke(main, ["explore", small, "--concrete"])
    assert result.exit_code == 0, result.output
    assert "reachable states: 1443 " in result.output and "all invariants hold" in result.output
    result = CliRunner().invoke(main, ["explore", small])
    assert result.exit_code == 0, result.output
    assert "abstract states: " in result.output and "all invariants hold" in result.output


def test_progress_counts_every_state_found(small_cfg: GovernanceConfig) -> None:
    seen: list[tuple[int, int]] = []
    result = explore(small_cfg, progress=lambda found, waiting: seen.append((found, waiting)))
    found = [f for f, _ in seen]
    assert found == sorted(found) and len(seen) == result.graph.number_of_nodes()
    assert seen[-1] == (result.graph.number_of_nodes(), 0)


def test_cli_explore_shows_progress_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from govtrain import cli

    monkeypatch.setattr(cli._Progress, "EVERY_S", 0.0)
    small = str(ROOT / "configs" / "small.yaml")
    result = CliRunner().invoke(main, ["explore", small, "--concrete"])
    assert result.exit_code == 0
    lines = [x for x in result.stderr.splitlines() if x.startswith("... ")]
    assert lines and lines[-1].startswith("... 1443 states found, 0 waiting")


def test_cli_explore_fails_naming_invariant_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convergence, "may_begin_cooling", lambda g: True)
    small = str(ROOT / "configs" / "small.yaml")
    result = CliRunner().invoke(main, ["explore", small, "--concrete"])
    assert result.exit_code == 1
    assert "invariant NoCoolingFromCold violated" in result.output
    assert "1. obs" in result.output and "BeginCooling(embed)" in result.output


def test_cli_bad_config_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (ROOT / "configs" / "small.yaml").read_text().replace("patience: 2", "patience: 0")
    )
    result = CliRunner().invoke(main, ["explore", str(bad)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "governance.governor.patience" in result.output
