"""The abstract explorer (governance/abstraction.py): an over-approximation of the concrete
core at small bounds, quick on the shipped configs, and it catches every broken rule the
concrete explorer catches (its intervals: tests/unit/test_abstraction.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from govtrain.cli import main
from govtrain.governance.abstraction import _alpha as alpha
from govtrain.governance.abstraction import (
    clock_intervals,
    explore_abstract,
    quiet_intervals,
)
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.explore import explore
from govtrain.governance.invariants import INVARIANTS
from govtrain.pipeline.config import load_config
from tests.conftest import ROOT
from tests.unit.test_explore import BROKEN, three_levels, tight_budget


def patient(cfg: GovernanceConfig) -> GovernanceConfig:
    """Lows, quiet and clock intervals wider than one value: the abstraction merges them."""
    return cfg.model_copy(
        update={
            "total_steps": 12,
            "finish_window": 4,
            "governor": cfg.governor.model_copy(update={"patience": 4, "max_awakenings": 2}),
            "router": cfg.router.model_copy(update={"warmup_steps": 3}),
        }
    )


SHAPES: list[Callable[[GovernanceConfig], GovernanceConfig]] = [
    lambda c: c,
    three_levels,
    tight_budget,
    patient,
]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_concrete_state_and_step_maps_onto_the_abstract_model(
    small_cfg: GovernanceConfig, shape
) -> None:
    """The over-approximation the soundness rests on, checked at small bounds: the
    abstraction of every state and step the concrete explorer finds is one of its own."""
    cfg = shape(small_cfg)
    concrete, abstract = explore(cfg), explore_abstract(cfg)
    assert concrete.violation is None and abstract.violation is None
    clock, quiet = clock_intervals(cfg), quiet_intervals(cfg)
    nodes = set(abstract.graph.nodes)
    edges = {(u, v) for u, v in abstract.graph.edges()}
    for state in concrete.graph.nodes:
        assert alpha(state, cfg, clock, quiet) in nodes, state
    for u, v in concrete.graph.edges():
        assert (alpha(u, cfg, clock, quiet), alpha(v, cfg, clock, quiet)) in edges, (u, v)
    assert abstract.graph.number_of_nodes() < concrete.graph.number_of_nodes()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "bench_shakespeare", "shakespeare"])
def test_the_shipped_configs_are_checked_whole(name: str) -> None:
    """The configs whose concrete state space is out of reach (hundreds of clock values,
    patience 50): every part runs to its end and every invariant holds."""
    cfg = load_config(ROOT / "configs" / f"{name}.yaml").governance
    result = explore_abstract(cfg)
    assert result.violation is None and result.checked == tuple(INVARIANTS)
    assert result.governor_states > 2 * cfg.governor.patience  # every lows value, exactly
    assert set(clock_intervals(cfg).points) >= {0, cfg.router.warmup_steps, cfg.horizon}
    top = max(g.level for g in cfg.groups)
    assert {s.active_level for s in result.graph.nodes} == set(range(top + 1))


def test_cli_explore_checks_a_shipped_config_and_names_a_broken_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quickstart = str(ROOT / "configs" / "quickstart.yaml")
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["explore", quickstart])
    seconds = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    assert "abstract states: " in result.output and "one governor: " in result.output
    assert "all invariants hold" in result.output, seconds
    patch, _ = BROKEN["ActivationGated"]
    patch(monkeypatch)
    result = CliRunner().invoke(main, ["explore", quickstart])
    assert result.exit_code == 1
    assert "invariant ActivationGated violated" in result.output
    assert "abstract model's part: composition" in result.output
