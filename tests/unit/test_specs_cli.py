"""`govtrain specs ...`: SKIPPED without TLC, errors as one line, the table and JSON with TLC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from govtrain.cli import main
from tests.conftest import needs_tlc

ROOT = Path(__file__).resolve().parent.parent
NO_TLC = {"TLA2TOOLS_JAR": "/nonexistent/tla2tools.jar"}


def test_check_without_tlc_is_skipped_with_exit_2():
    result = CliRunner().invoke(main, ["specs", "check"], env=NO_TLC)
    assert result.exit_code == 2
    assert "TLC not found: SKIPPED" in result.output
    assert "/nonexistent/tla2tools.jar" in result.output


def test_check_json_without_tlc():
    result = CliRunner().invoke(main, ["specs", "check", "--json"], env=NO_TLC)
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["status"] == "skipped"


def test_conform_graph_without_tlc_is_skipped():
    result = CliRunner().invoke(main, ["specs", "conform-graph"], env=NO_TLC)
    assert result.exit_code == 2 and "TLC not found: SKIPPED" in result.output


def test_unknown_model_name_is_an_error_even_without_tlc():
    result = CliRunner().invoke(main, ["specs", "check", "NoSuchModel"], env=NO_TLC)
    assert result.exit_code == 1
    assert "no model matches NoSuchModel" in result.output


def test_sets_and_variants_are_checked_before_tlc():
    result = CliRunner().invoke(main, ["specs", "check", "--set", "nightly"], env=NO_TLC)
    assert result.exit_code == 1 and "no set nightly (sets: default, slow)" in result.output
    for args in (["--set", "slow"], ["--all"], ["--slow"]):
        result = CliRunner().invoke(main, ["specs", "check", *args], env=NO_TLC)
        assert result.exit_code == 2 and "TLC not found: SKIPPED" in result.output
    result = CliRunner().invoke(main, ["specs", "conform-graph", "--bug", "Nope"], env=NO_TLC)
    assert result.exit_code == 1 and "no broken variant Nope" in result.output
    result = CliRunner().invoke(
        main, ["specs", "conform-graph", "--bug", "AuditChain_NoPrevCheck"], env=NO_TLC
    )
    assert result.exit_code == 1 and "no spec-vs-code comparison runs that spec" in result.output


def test_gen_model_renders_the_checked_in_module(tmp_path):
    result = CliRunner().invoke(main, ["specs", "gen-model", str(ROOT / "configs" / "small.yaml")])
    assert result.exit_code == 0
    assert result.output == (ROOT / "specs" / "MCGovernedTraining.tla").read_text()
    out = tmp_path / "MCOther.tla"
    result = CliRunner().invoke(
        main, ["specs", "gen-model", str(ROOT / "configs" / "small.yaml"), "--out", str(out)]
    )
    assert result.exit_code == 0
    assert "MODULE MCOther " in out.read_text()


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


def test_gen_model_abstract_renders_the_checked_in_module():
    small = str(ROOT / "configs" / "small.yaml")
    result = CliRunner().invoke(main, ["specs", "gen-model", small, "--abstract"])
    assert result.exit_code == 0
    assert result.output == (ROOT / "specs" / "MCGovernedTrainingAbstract.tla").read_text()


def test_check_config_without_tlc_is_skipped_and_bad_needs_are_one_line():
    small = str(ROOT / "configs" / "small.yaml")
    result = CliRunner().invoke(main, ["specs", "check-config", small], env=NO_TLC)
    assert result.exit_code == 2 and "TLC not found: SKIPPED" in result.output
    result = CliRunner().invoke(main, ["specs", "check-config", small, "--needs", "1,x"])
    assert result.exit_code == 1 and "--needs: '1,x' is not comma-separated naturals" in (
        result.output
    )


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
