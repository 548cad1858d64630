"""`govtrain specs ...` without TLC: SKIPPED, errors as one line, the generated models (the
table and JSON with TLC: tests/integration/test_specs_cli.py)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from govtrain.cli import main
from tests.conftest import ROOT

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
