"""The TLC bridge: finding TLC, exit codes, reading TLC's output and state graphs.

Parsing is tested on real TLC output of this project's specs, kept in
tests/fixtures/tlc/ (regenerate.py there says how each was made); the tests that
start TLC are in tests/integration/test_tlc_bridge.py.
"""

from __future__ import annotations

import json

import pytest

from govtrain.formal.manifest import (
    Expectation,
    ModelEntry,
    check_signature,
    judge,
    load_manifest,
)
from govtrain.formal.output import (
    EXIT_CODES,
    ModelValue,
    Outcome,
    TLASet,
    TLCOutputError,
    TLCResult,
    outcome_of,
    parse_dot,
    parse_output,
    parse_state,
    parse_value,
)
from govtrain.formal.toolchain import TLCNotFound, find_jar, find_toolchain
from govtrain.governance.errors import GovtrainError
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "tlc"
INDEX = json.loads((FIXTURES / "index.json").read_text())


def fixture(name: str) -> TLCResult:
    return parse_output((FIXTURES / f"{name}.out").read_text(), INDEX[name]["exit_code"])


# --------------------------------------------------------------------------- finding TLC


def test_explicit_jar_that_does_not_exist_is_not_found(tmp_path):
    home = tmp_path / "home"
    (home / ".tlaplus").mkdir(parents=True)
    (home / ".tlaplus" / "tla2tools.jar").write_bytes(b"PK")
    env = {"TLA2TOOLS_JAR": str(tmp_path / "missing.jar"), "HOME": str(home)}
    assert find_jar(env) is None  # the default location is not consulted


def test_explicit_jar_wins_over_the_default(tmp_path):
    jar = tmp_path / "mine.jar"
    jar.write_bytes(b"PK")
    home = tmp_path / "home"
    (home / ".tlaplus").mkdir(parents=True)
    (home / ".tlaplus" / "tla2tools.jar").write_bytes(b"PK")
    assert find_jar({"TLA2TOOLS_JAR": str(jar), "HOME": str(home)}) == jar


def test_default_jar_under_home(tmp_path):
    assert find_jar({"HOME": str(tmp_path)}) is None
    (tmp_path / ".tlaplus").mkdir()
    (tmp_path / ".tlaplus" / "tla2tools.jar").write_bytes(b"PK")
    assert find_jar({"HOME": str(tmp_path)}) == tmp_path / ".tlaplus" / "tla2tools.jar"


def test_toolchain_reports_what_is_missing(tmp_path):
    with pytest.raises(TLCNotFound, match="no Java runtime"):
        find_toolchain({"PATH": str(tmp_path), "HOME": str(tmp_path)})
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    env = {"PATH": str(java.parent), "TLA2TOOLS_JAR": "/nonexistent/tla2tools.jar"}
    with pytest.raises(TLCNotFound, match=r"/nonexistent/tla2tools\.jar is not a file"):
        find_toolchain(env)


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (0, Outcome.HOLDS),
        (10, Outcome.ASSUMPTION_VIOLATED),
        (11, Outcome.DEADLOCK),
        (12, Outcome.INVARIANT_VIOLATED),
        (13, Outcome.PROPERTY_VIOLATED),
        (14, Outcome.ASSERTION_FAILED),
        (75, Outcome.EVALUATION_ERROR),
        (76, Outcome.EVALUATION_ERROR),
        (77, Outcome.EVALUATION_ERROR),
        (150, Outcome.PARSE_ERROR),
        (151, Outcome.CONFIG_ERROR),
        (152, Outcome.STATE_SPACE_TOO_LARGE),
        (153, Outcome.SYSTEM_ERROR),
        (255, Outcome.ERROR),
        (1, Outcome.ERROR),
    ],
)
def test_exit_codes(code, outcome):
    assert outcome_of(code) is outcome


def test_every_fixture_exit_code_is_a_known_status():
    assert {m["exit_code"] for m in INDEX.values()} <= set(EXIT_CODES)


# --------------------------------------------------------------------------- values


def test_values_as_tlc_prints_them():
    assert parse_value("42") == 42
    assert parse_value("-3") == -3
    assert parse_value("TRUE") is True
    assert parse_value('"a \\"quoted\\" \\\\ word"') == 'a "quoted" \\ word'
    assert parse_value("<<>>") == ()
    assert parse_value('<<1, "x", <<FALSE>>>>') == (1, "x", (False,))
    assert parse_value("{}") == TLASet()
    assert isinstance(parse_value("{1, 2}"), TLASet)
    assert parse_value('[size |-> 0, root |-> <<"genesis">>]') == {
        "size": 0,
        "root": ("genesis",),
    }
    assert parse_value('(1 :> "a" @@ 2 :> "b")') == {1: "a", 2: "b"}
    assert parse_value("m1") == ModelValue("m1")
    record_keys = parse_value("([a |-> 1] :> 2)")
    assert record_keys == {(("a", 1),): 2}


@pytest.mark.parametrize("bad", ["<<1, 2", "[a |-> ]", "{1 2}", "1 2", "<<1,, 2>>", "@"])
def test_malformed_values_are_rejected(bad):
    with pytest.raises(TLCOutputError):
        parse_value(bad)


def test_state_with_wrapped_values():
    text = '/\\ log = <<[seq |-> 1,\n       payload |-> "a"]>>\n/\\ closed = FALSE\n'
    assert parse_state(text) == {"log": ({"seq": 1, "payload": "a"},), "closed": False}
    assert parse_state("x = 3") == {"x": 3}


# --------------------------------------------------------------------------- TLC output


def test_model_that_holds():
    r = fixture("holds")
    assert r.outcome is Outcome.HOLDS
    assert (r.states_generated, r.distinct_states, r.left_on_queue) == (30, 12, 0)
    assert r.depth == 11
    assert r.violated is None and r.trace == () and r.errors == ()
    assert r.duration_s is not None and 0 < r.duration_s < 60
    assert r.version and r.version.startswith("20")


def test_invariant_counterexample():
    r = fixture("invariant")
    assert r.outcome is Outcome.INVARIANT_VIOLATED
    assert r.violated == "NoCoolingFromCold"
    assert r.distinct_states == 4
    assert [s.action for s in r.trace] == ["Initial predicate", "Activate", "BeginCooling"]
    assert [s.index for s in r.trace] == [1, 2, 3]
    assert r.trace[1].location and "module ConvergenceGovernor" in r.trace[1].location
    last = r.trace[-1].values
    assert last == {"phase": "COOLING", "seenHigh": False, "lows": 0, "awakenings": 0}


def test_invariant_violated_by_the_initial_state():
    r = fixture("invariant_initial")
    assert r.outcome is Outcome.INVARIANT_VIOLATED
    assert r.violated == "FrozenGetsNoGradient"
    assert len(r.trace) == 1 and r.trace[0].action == "Initial predicate"
    assert r.trace[0].values["phase"] == ("ACTIVE", "ACTIVE", "DORMANT")
    assert r.distinct_states is None  # TLC stopped before counting


def test_action_property_counterexample():
    r = fixture("action_property")
    assert r.outcome is Outcome.PROPERTY_VIOLATED
    assert r.violated == "LevelsMonotone"
    levels = [s.values["activeLevel"] for s in r.trace]
    assert levels[-2:] == [1, 0]  # the last step lowers the level
    assert r.trace[-1].action == "ActivateLevel"


def test_liveness_counterexample_ending_in_a_loop():
    r = fixture("liveness_lasso")
    assert r.outcome is Outcome.PROPERTY_VIOLATED
    assert r.violated == "TopLevelEventuallyActive"
    assert r.back_to_state is not None and 1 <= r.back_to_state <= len(r.trace)
    assert r.back_to_action == "GovernorsMove"
    assert all(s.values["activeLevel"] == 0 for s in r.trace)


def test_liveness_counterexample_ending_in_stuttering():
    r = fixture("liveness_stuttering")
    assert r.violated == "LowSignalConverges"
    assert r.trace[-1].action == "Stuttering" and r.trace[-1].values == {}
    assert r.trace[-2].values["phase"] == "COOLING"


def test_deadlock():
    r = fixture("deadlock")
    assert r.outcome is Outcome.DEADLOCK
    assert r.trace[-1].values == {
        "phase": "CONVERGED",
        "seenHigh": True,
        "lows": 0,
        "awakenings": 1,
    }


def test_parse_error_keeps_sanys_report():
    r = fixture("parse_error")
    assert r.outcome is Outcome.PARSE_ERROR
    assert r.distinct_states is None and r.trace == ()
    assert "***Parse Error***" in r.errors[0]
    assert "line 117, column 51" in r.errors[0]
    assert any("Parsing or semantic analysis failed" in e for e in r.errors)


def test_config_error():
    r = fixture("config_error")
    assert r.outcome is Outcome.CONFIG_ERROR
    assert "NoSuchInvariant" in r.errors[0]


def test_evaluation_error_with_its_trace():
    r = fixture("evaluation_error")
    assert r.outcome is Outcome.EVALUATION_ERROR
    assert any("Attempted to check equality" in e for e in r.errors)
    assert r.trace and r.trace[0].values["checkpoint"] == {"size": 0, "root": "genesis"}


def test_output_without_messages_is_not_a_tlc_run():
    with pytest.raises(TLCOutputError, match="no TLC messages"):
        parse_output("Error: Could not find or load main class tlc2.TLC\n", 1)


def test_timeout_keeps_what_was_said():
    text = (FIXTURES / "holds.out").read_text()
    cut = text[: text.index("@!@!@STARTMSG 2199")]
    r = parse_output(cut, -1, timed_out=True)
    assert r.outcome is Outcome.TIMEOUT
    assert r.version is not None


def test_result_as_json():
    r = fixture("invariant")
    data = json.loads(r.to_json())
    assert data["outcome"] == "invariant-violated"
    assert data["violated"] == "NoCoolingFromCold"
    assert data["distinct_states"] == 4
    assert data["trace"][2]["action"] == "BeginCooling"
    assert data["trace"][2]["values"]["phase"] == "COOLING"
    assert "output" not in data


# --------------------------------------------------------------------------- state graphs


def test_state_graph_dump():
    graph = parse_dot((FIXTURES / "holds.dot").read_text())
    assert len(graph.states) == 12
    (init,) = graph.initial
    assert graph.states[init]["phase"] == "DORMANT"
    labels = {label for _, _, label in graph.edges}
    assert labels == {"Activate", "Learn", "BeginCooling", "Cool", "Converge", "Reheat", "Awaken"}
    assert len(graph.edges) == 15  # TLC writes each of these twice (two observations)


def test_state_graph_with_undefined_states_is_rejected():
    with pytest.raises(TLCOutputError, match="never defines"):
        parse_dot('1 [label="/\\\\ x = 1",style = filled]\n1 -> 2 [label="A"];\n')


# --------------------------------------------------------------------------- manifest


def entry(expect: Expectation, states: int = 10) -> ModelEntry:
    return ModelEntry("M", "M.tla", "M.cfg", expect, states)


def result(outcome: Outcome, violated: str | None = None, states: int | None = 10) -> TLCResult:
    return TLCResult(outcome, 0, distinct_states=states, violated=violated)


def test_judge_accepts_exactly_the_expected_result():
    want = Expectation(Outcome.INVARIANT_VIOLATED, "TypeOK")
    assert judge(entry(want), result(Outcome.INVARIANT_VIOLATED, "TypeOK")).ok
    wrong_name = judge(entry(want), result(Outcome.INVARIANT_VIOLATED, "NoSkippedLevels"))
    assert wrong_name.problems == ("expected TypeOK to fail, TLC names NoSkippedLevels",)
    held = judge(entry(want), result(Outcome.HOLDS))
    assert held.problems[0].startswith("expected invariant TypeOK violated, TLC says holds")
    counted = judge(entry(want, 11), result(Outcome.INVARIANT_VIOLATED, "TypeOK"))
    assert counted.problems == ("expected 11 distinct states, TLC found 10",)


def test_judge_reports_tlc_errors():
    r = TLCResult(Outcome.PARSE_ERROR, 150, errors=("***Parse Error***\nEncountered x",))
    verdict = judge(entry(Expectation(Outcome.HOLDS)), r)
    assert verdict.problems == ("expected holds, TLC says parse-error: ***Parse Error***",)


def test_manifest_loads_and_selects(tmp_path):
    (tmp_path / "A.tla").write_text("")
    (tmp_path / "A.cfg").write_text("")
    (tmp_path / "manifest.yaml").write_text(
        "models:\n"
        "  - {name: A, module: A.tla, config: A.cfg, expect: holds, distinct_states: 3}\n"
        "  - {name: A_Big, module: A.tla, config: A.cfg, expect: holds, distinct_states: 9,\n"
        "     set: slow, seconds: 99}\n"
        "  - {name: A_Bug, module: A.tla, config: A.cfg, expect: {property: P},\n"
        "     distinct_states: 2}\n"
    )
    m = load_manifest(tmp_path / "manifest.yaml")

    def names(*args, **kwargs):
        return [x.name for x in m.select(*args, **kwargs).models]

    assert names() == ["A", "A_Bug"]
    assert names(sets=None) == ["A", "A_Big", "A_Bug"]
    assert names(sets=["slow"]) == ["A_Big"]
    assert names(["A_*"]) == ["A_Bug"]
    assert names(["A_*"], sets=None) == ["A_Big", "A_Bug"]
    assert names(["A_Big"]) == ["A_Big"]  # named exactly: runs whatever its set
    assert m.sets == ["default", "slow"]
    assert m.models[2].expect == Expectation(Outcome.PROPERTY_VIOLATED, "P")
    assert m.models[2].workers == 1 and m.models[0].workers == 2
    with pytest.raises(GovtrainError, match="no set nightly"):
        m.select(sets=["nightly"])
    with pytest.raises(GovtrainError, match="no model matches B"):
        m.select(["B"])


def test_a_variant_is_read_from_its_config(tmp_path):
    (tmp_path / "A.tla").write_text("")
    (tmp_path / "A.cfg").write_text(
        "CONSTANTS\n    N = 3\n    Guard <- [Comp] Loose_Guard\n    Step <- Loose_Step\n"
        "    Other <- Tight_Other\n"
    )
    entry = "{name: A, module: A.tla, config: A.cfg, expect: {invariant: I}, distinct_states: 2"
    (tmp_path / "manifest.yaml").write_text(f"models:\n  - {entry}, variant: Loose}}\n")
    (model,) = load_manifest(tmp_path / "manifest.yaml").models
    assert model.variant == "Loose"
    assert model.overrides == ("Guard <- [Comp] Loose_Guard", "Step <- Loose_Step")
    (tmp_path / "manifest.yaml").write_text(f"models:\n  - {entry}, variant: Wrong}}\n")
    with pytest.raises(GovtrainError, match="swaps in no Wrong_<Operator>"):
        load_manifest(tmp_path / "manifest.yaml")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{name: C, module: A.tla, python: a.b, config: s.yaml}", "missing keys \\['compare'\\]"),
        ("{name: C, module: A.tla, compare: x, python: a.b, config: s.yaml}", "dotted"),
        ("{name: C, module: B.tla, compare: a.b, python: a.b, config: s.yaml}", "B.tla"),
        ("{name: C, module: A.tla, compare: a.b, python: a.b, config: s, bounds: 1}", "bounds"),
    ],
)
def test_comparison_errors_name_the_entry(tmp_path, line, message):
    (tmp_path / "A.tla").write_text("")
    (tmp_path / "manifest.yaml").write_text(f"models: []\ncomparisons:\n  - {line}\n")
    with pytest.raises(GovtrainError, match=message):
        load_manifest(tmp_path / "manifest.yaml")


def test_a_comparator_of_another_signature_is_refused(tmp_path):
    (tmp_path / "A.tla").write_text("")
    (tmp_path / "manifest.yaml").write_text(
        "models: []\ncomparisons:\n  - {name: C, module: A.tla, config: small.yaml,\n"
        "     compare: govtrain.formal.compare.conform_router, python: a.b,\n"
        "     bounds: {levels: 3}}\n"
    )
    (entry,) = load_manifest(tmp_path / "manifest.yaml").comparisons
    assert entry.row == "conform:C"
    with pytest.raises(GovtrainError, match="does not take"):
        check_signature(entry)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{name: A, module: A.tla, config: A.cfg, expect: holds}", "missing keys"),
        ("{name: A, module: A.tla, config: A.cfg, expect: fine, distinct_states: 1}", "expect"),
        ("{name: A, module: B.tla, config: A.cfg, expect: holds, distinct_states: 1}", "B.tla"),
        ("{name: A, module: A.tla, config: A.cfg, expect: holds, distinct_states: 0}", "initial"),
        ("{name: A, module: A.tla, config: A.cfg, expect: holds, distinct_states: 1, x: 1}", "x"),
    ],
)
def test_manifest_errors_name_the_entry(tmp_path, line, message):
    (tmp_path / "A.tla").write_text("")
    (tmp_path / "A.cfg").write_text("")
    (tmp_path / "manifest.yaml").write_text(f"models:\n  - {line}\n")
    with pytest.raises(Exception, match=message):
        load_manifest(tmp_path / "manifest.yaml")


def test_the_projects_manifest_loads():
    m = load_manifest(ROOT / "specs" / "manifest.yaml")
    assert len(m.models) >= 30 and len(m.comparisons) == 6
