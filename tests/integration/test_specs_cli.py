"""`govtrain specs ...` with TLC: the table and JSON, a mismatch with the manifest, the
comparisons and check-config (without TLC: tests/unit/test_specs_cli.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from govtrain.cli import main
from tests.conftest import ROOT, needs_tlc


@needs_tlc
def test_check_one_model_as_json():
    result = CliRunner().invoke(
        main, ["specs", "check", "ConvergenceGovernor_NoColdGuard", "--no-conform", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok"
    (row,) = payload["results"]
    assert row["model"] == "ConvergenceGovernor_NoColdGuard" and row["ok"]
    assert row["result"]["violated"] == "NoCoolingFromCold"
    assert [s["action"] for s in row["result"]["trace"]][-1] == "BeginCooling"


@needs_tlc
def test_a_result_that_differs_from_the_manifest_fails(tmp_path):
    manifest = tmp_path / "manifest.yaml"
    specs = ROOT / "specs"
    manifest.write_text(
        "models:\n"
        f"  - name: Governor\n    module: {specs / 'MCConvergenceGovernor.tla'}\n"
        f"    config: {specs / 'MCConvergenceGovernor_NoColdGuard.cfg'}\n"
        "    expect: holds\n    distinct_states: 4\n"
    )
    result = CliRunner().invoke(
        main, ["specs", "check", "--manifest", str(manifest), "--no-conform"]
    )
    assert result.exit_code == 1
    assert "MISMATCH" in result.output
    assert "expected holds, TLC says invariant-violated (NoCoolingFromCold)" in result.output


@needs_tlc
def test_conform_graph_against_a_broken_variant():
    """--bug names a manifest model: the comparison of its spec runs with its variant swapped
    in, and reports the difference (exit 1)."""
    result = CliRunner().invoke(
        main, ["specs", "conform-graph", "--bug", "ConvergenceGovernor_NoColdGuard", "--json"]
    )
    assert result.exit_code == 1, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "ConvergenceGovernor" and row["variant"] == "NoColdGuard"
    assert row["difference"]["kind"] == "transition only in TLA+"
    assert row["difference"]["path"] == ["Activate"]


@needs_tlc
def test_check_a_comparison_by_name():
    result = CliRunner().invoke(main, ["specs", "check", "conform:ConvergenceGovernor", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["results"]
    assert row["name"] == "ConvergenceGovernor" and row["ok"] and row["variant"] is None


def _check_config_states(name: str) -> list[int]:
    result = CliRunner().invoke(main, ["specs", "check-config", str(ROOT / "configs" / name)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "│ holds" in line]
    assert len(rows) == 2, result.output  # one governor, the abstract composition
    return [int(line.split("│")[4].strip().replace(",", "")) for line in rows]


@needs_tlc
def test_check_config_agrees_with_the_python_abstract_model():
    """TLC's abstract composition has exactly the states part 2 of `govtrain explore` finds,
    and its governor model exactly part 1's (two implementations, one abstraction)."""
    from govtrain.governance.abstraction import explore_abstract
    from govtrain.pipeline.config import load_config

    governor, composed = _check_config_states("small.yaml")
    python = explore_abstract(load_config(ROOT / "configs" / "small.yaml").governance)
    assert (governor, composed) == (python.governor_states, python.graph.number_of_nodes())


@needs_tlc
@pytest.mark.slow
def test_check_config_on_the_quickstart_config():
    from govtrain.governance.abstraction import explore_abstract
    from govtrain.pipeline.config import load_config

    _, composed = _check_config_states("quickstart.yaml")
    python = explore_abstract(load_config(ROOT / "configs" / "quickstart.yaml").governance)
    assert composed == python.graph.number_of_nodes() == 1124
