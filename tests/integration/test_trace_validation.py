"""Trace validation: `govtrain audit export-trace`, TLC on specs/TraceGovernedTraining.tla,
and `govtrain specs conform` (Python replay + TLC) on real tiny runs.

The TLC tests skip when no Java or no tla2tools.jar is found (govtrain.formal.toolchain);
the Python replay and the SKIPPED path run everywhere.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.cli import main
from govtrain.formal.conform import conform_records
from govtrain.formal.trace import (
    TRACE_CONSTANTS,
    export_trace,
    read_trace,
    trace_config,
    trace_lines,
    validate_trace,
)
from tests.audit_support import rechain
from tests.conftest import needs_tlc, train_tiny
from tests.conftest import tlc_toolchain as toolchain

pytestmark = pytest.mark.torch

NO_TLC = {"TLA2TOOLS_JAR": "/nonexistent/tla2tools.jar"}


@pytest.fixture(scope="module")
def full_trace(tiny_full_run) -> list[dict]:
    run_dir, _ = tiny_full_run
    return [json.loads(x) for x in export_trace(run_dir).splitlines()]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    from govtrain.pipeline.trainer import GovernedTrainer

    run_dir = tmp_path_factory.mktemp("runs") / "resumed"
    train_tiny(run_dir, stop_after=15)
    GovernedTrainer.resume(run_dir).train(progress=False)
    return run_dir


def first_line_with_actions(trace: list[dict]) -> int:
    """0-based index of the first GovernanceStep line that took an action."""
    return next(i for i, x in enumerate(trace) if x.get("actions"))


# --------------------------------------------------------------------------- export-trace


def test_export_trace_cli_writes_the_trace(tiny_full_run, tmp_path) -> None:
    run_dir, _ = tiny_full_run
    expected = export_trace(run_dir)
    result = CliRunner().invoke(main, ["audit", "export-trace", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected
    out = tmp_path / "trace.ndjson"
    result = CliRunner().invoke(main, ["audit", "export-trace", str(run_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == expected
    assert f"wrote {out} (41 lines)" in result.stderr
    assert result.stdout == ""


def test_the_trace_model_sets_every_constant_of_the_spec() -> None:
    from govtrain.formal.vocabulary import CONSTANT_NAMES

    assert [name for name, _ in TRACE_CONSTANTS] == list(CONSTANT_NAMES)
    cfg = trace_config(Path("/tmp/t.ndjson"))
    assert 'TraceFile = "/tmp/t.ndjson"' in cfg
    assert "INVARIANTS TraceMatched " in cfg and "VIEW TraceView" in cfg


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"event":"Init","constants":{}}\nnot json\n', "trace line 2 is not JSON"),
        ('{"event":"GovernanceStep"}\n', "starts with an Init line"),
        ('{"event":"Init","constants":{}}\n\n', "trace line 2 is empty"),
    ],
)
def test_unreadable_traces_are_refused_before_tlc(text, needle) -> None:
    from govtrain.governance.errors import GovtrainError

    with pytest.raises(GovtrainError, match=needle):
        read_trace(text)


# --------------------------------------------------------------------------- conform CLI


def test_conform_cli_accepts_a_fresh_run(tiny_full_run, tmp_path) -> None:
    run_dir, _ = tiny_full_run
    kept = tmp_path / "model"
    result = CliRunner().invoke(main, ["specs", "conform", str(run_dir), "--keep-model", str(kept)])
    assert result.exit_code == 0, result.output
    assert "Python replay: 40 steps" in result.output
    if toolchain() is None:
        assert "TLC trace validation: SKIPPED (TLC not found" in result.output
    else:
        assert "TLC trace validation: all 41 trace lines accepted" in result.output
        assert (kept / "trace.ndjson").read_text() == export_trace(run_dir)
        cfg = (kept / "MCTraceGovernedTraining.cfg").read_text()
        assert f'TraceFile = "{kept.resolve() / "trace.ndjson"}"' in cfg
    assert "conform: every validator that ran accepts the run" in result.output


def test_conform_cli_without_tlc_skips_loudly_and_still_replays(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    result = CliRunner().invoke(main, ["specs", "conform", str(run_dir)], env=NO_TLC)
    assert result.exit_code == 0, result.output
    assert "TLC trace validation: SKIPPED (TLC not found" in result.output
    assert "/nonexistent/tla2tools.jar" in result.output
    assert "Python replay: 40 steps" in result.output

    result = CliRunner().invoke(main, ["specs", "conform", str(run_dir), "--json"], env=NO_TLC)
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["status"] == "ok" and payload["tlc"]["status"] == "skipped"
    assert payload["replay"]["steps"] == 40 and payload["replay"]["divergence"] is None
    assert "TLC trace validation: SKIPPED" in result.stderr

    # a CI that must not lose the TLC half silently requires it: exit 2 without it
    for extra in ([], ["--json"]):
        args = ["specs", "conform", str(run_dir), "--require-tlc", *extra]
        result = CliRunner().invoke(main, args, env=NO_TLC)
        assert result.exit_code == 2, result.output
        assert "--require-tlc, and TLC did not run" in result.stderr


def test_conform_cli_rejects_a_rechained_log_with_a_wrong_transition(
    tiny_full_run, tmp_path
) -> None:
    """A log whose hash chain is intact but whose governance is wrong (what a buggy writer
    holding the key would produce: a group kept COOLING where the core converges it):
    both validators name the record."""
    run_dir, _ = tiny_full_run
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    log = copy_dir / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    recs = [Record.from_line(x) for x in lines]
    target = next(
        r
        for r in recs
        if r.kind == "step" and any(t["action"] == "Converge" for t in r.body["transitions"])
    )
    body = copy.deepcopy(target.body)
    moved = next(t for t in body["transitions"] if t["action"] == "Converge")
    moved.update(action="Cool", after="COOLING")
    body["state"]["groups"][moved["group"]].update(phase="COOLING", lows=2)
    lines[target.seq] = Record.build(target.seq, target.kind, target.prev, body).line
    log.write_bytes(b"\n".join(rechain(lines, target.seq)) + b"\n")

    result = CliRunner().invoke(main, ["specs", "conform", str(copy_dir), "--json"], env=NO_TLC)
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "diverged" and payload["tlc"]["status"] == "skipped"
    assert payload["replay"]["divergence"]["seq"] == target.seq
    assert "recorded transitions" in payload["replay"]["divergence"]["what"]

    result = CliRunner().invoke(main, ["specs", "conform", str(copy_dir)])
    assert result.exit_code == 1, result.output
    assert f"Python replay: record seq {target.seq} (step " in result.output
    if toolchain() is not None:
        line = next(
            i
            for i, x in enumerate(export_trace(copy_dir).splitlines(), 1)
            if json.loads(x).get("seq") == target.seq
        )
        text = " ".join(result.output.split())  # the console wraps long lines
        assert f"TLC trace validation: trace line {line} (record seq {target.seq}," in text
        assert f'phase[{moved["group"]}]: spec "CONVERGED", trace "COOLING"' in text
    assert "conform: DIVERGED" in result.output


def _step(recs: list, pick) -> Record:
    return next(r for r in recs if r.kind == "step" and pick(r.body))


def _eligible(body: dict) -> list[str]:
    frozen = ("DORMANT", "CONVERGED")
    return [n for n, g in body["state"]["groups"].items() if g["phase"] not in frozen]


def _unit_moved(recs):
    r = _step(recs, lambda b: b["step"] > 3 and len(_eligible(b)) >= 2)
    a, b = _eligible(r.body)[:2]

    def change(body):
        body["decision"]["allocations"][a] -= 1
        body["decision"]["allocations"][b] += 1

    return r, change, (f"units[{a}]: spec", "recorded decision")


def _allocate_to_ration(recs):
    r = _step(recs, lambda b: b["decision"]["budget_action"] == "Allocate" and b["step"] > 3)
    return (
        r,
        lambda body: body["decision"].update(budget_action="Ration"),
        ('budgetAction: spec "Allocate", trace "Ration"', "recorded decision"),
    )


def _unit_to_a_frozen_group(recs):
    r = _step(recs, lambda b: len(_eligible(b)) < len(b["state"]["groups"]))
    frozen = next(n for n in r.body["state"]["groups"] if n not in _eligible(r.body))
    donor = max(r.body["decision"]["allocations"], key=r.body["decision"]["allocations"].get)

    def change(body):
        body["decision"]["allocations"][donor] -= 1
        body["decision"]["allocations"][frozen] += 1

    return r, change, (f"units[{frozen}]: spec 0, trace 1", "recorded decision")


def _quota_above_the_decision(recs):
    r = _step(recs, lambda b: any(0 < v["quota"] < 8 for v in b["routed"].values()))
    group = next(n for n, v in r.body["routed"].items() if 0 < v["quota"] < 8)
    used = r.body["routed"][group]["quota"]

    def change(body):
        body["routed"][group]["quota"] += 1

    return r, change, (f"routed[{group}]: spec {used}, trace {used + 1}", "was routed")


def _warmup_flipped(recs):
    r = _step(recs, lambda b: b["step"] == 5)
    return (
        r,
        lambda body: body["decision"].update(warmup=not body["decision"]["warmup"]),
        ("warmup: spec FALSE, trace TRUE", "recorded decision"),
    )


@pytest.mark.parametrize(
    "alter",
    [
        _unit_moved,
        _allocate_to_ration,
        _unit_to_a_frozen_group,
        _quota_above_the_decision,
        _warmup_flipped,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_an_altered_decision_is_caught_by_the_replay_and_by_tlc_alone(
    tiny_full_run, tmp_path, alter
) -> None:
    """Each alteration of a decision, in a real run's log with the chain recomputed: the
    Python replay and TLC trace validation each reject it at the altered step."""
    run_dir, _ = tiny_full_run
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    log = copy_dir / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")[:-1]
    recs = [Record.from_line(x) for x in lines]
    target, change, (tlc_needle, replay_needle) = alter(recs)
    body = copy.deepcopy(target.body)
    change(body)
    lines[target.seq] = Record.build(target.seq, target.kind, target.prev, body).line
    log.write_bytes(b"\n".join(rechain(lines, target.seq)) + b"\n")

    report = conform_records(read_records(log), toolchain=toolchain())
    assert not report.ok
    assert report.replay.divergence.seq == target.seq, report.replay_summary()
    assert replay_needle in str(report.replay.divergence)
    if toolchain() is None:
        return
    bad = report.tlc.mismatch
    assert bad is not None and bad.seq == target.seq, report.tlc_summary()
    assert bad.check == "TraceMatched"
    assert any(tlc_needle in d for d in bad.differences), bad.differences


# --------------------------------------------------------------------------- TLC


@needs_tlc
def test_tlc_accepts_a_resumed_run(resumed_run) -> None:
    report = conform_records(read_records(resumed_run / "audit.jsonl"), toolchain=toolchain())
    assert report.ok, (report.replay_summary(), report.tlc_summary())
    assert report.tlc.lines == report.tlc.matched == 42  # Init, 40 steps, one Rewind
    assert report.tlc.result.distinct_states == 43


@needs_tlc
def test_tlc_accepts_superseded_steps_after_a_rewind(tiny_full_run) -> None:
    """A crash after step 39 and a resume from step 20: the Rewind returns to the state of
    step 19 and the re-run steps 20..39 are matched again."""
    run_dir, _ = tiny_full_run
    recs = read_records(run_dir / "audit.jsonl")
    resume = Record(len(recs), "run_resume", "", {"from_step": 20}, b"")
    again = [r for r in recs if r.kind == "step" and r.body["step"] >= 20]
    report = conform_records([*recs, resume, *again], toolchain=toolchain())
    assert report.ok, (report.replay_summary(), report.tlc_summary())
    assert report.tlc.matched == 41 + 1 + 20


def _phase(trace: list[dict]) -> tuple[list[dict], int, str]:
    i = first_line_with_actions(trace)
    phases = trace[i]["state"]["phase"]
    phases[0] = "ACTIVE" if phases[0] != "ACTIVE" else "COOLING"
    return trace, i, "phase[embed]: spec"


def _label(trace: list[dict]) -> tuple[list[dict], int, str]:
    i = first_line_with_actions(trace)
    trace[i]["actions"] = trace[i]["actions"] + ["Reheat(top)"]
    return trace, i, "actions: spec"


def _dropped(trace: list[dict]) -> tuple[list[dict], int, str]:
    del trace[25]  # the old line 27 becomes line 26: its step number is one too high
    return trace, 25, "step number 25 where step 24 is due"


def _rewind_to_unreached_step(trace: list[dict]) -> tuple[list[dict], int, str]:
    trace.append({"event": "Rewind", "seq": 99, "fromStep": 45, "state": trace[-1]["state"]})
    return trace, len(trace) - 1, "no earlier line reached step 44"


def _init(trace: list[dict]) -> tuple[list[dict], int, str]:
    trace[0]["state"]["seenHigh"][1] = True
    return trace, 0, "seenHigh[block0]: spec FALSE, trace TRUE"


@needs_tlc
@pytest.mark.parametrize(
    "alter", [_phase, _label, _dropped, _rewind_to_unreached_step, _init], ids=lambda f: f.__name__
)
def test_tlc_rejects_an_altered_trace_at_its_first_bad_line(full_trace, alter) -> None:
    trace, index, needle = alter(copy.deepcopy(full_trace))
    validation = validate_trace(trace, toolchain=toolchain())
    assert not validation.ok and validation.problem is None
    bad = validation.mismatch
    assert bad.line == index + 1 and validation.matched == index
    assert bad.check == "TraceMatched"
    assert bad.seq == trace[index].get("seq")
    where = f"trace line {index + 1} " + (
        f"(record seq {bad.seq}," if bad.seq is not None else "(Init)"
    )
    assert str(bad).startswith(where), str(bad)
    assert any(needle in d for d in bad.differences), bad.differences


@needs_tlc
def test_tlc_reports_no_verdict_on_a_malformed_line(full_trace) -> None:
    trace = copy.deepcopy(full_trace)
    del trace[5]["high"]
    validation = validate_trace(trace, toolchain=toolchain())
    assert not validation.ok and validation.mismatch is None
    assert "evaluation-error at trace line 6" in validation.problem
    assert 'nonexistent field "high"' in validation.problem


def test_trace_lines_of_in_memory_records_match_the_export(tiny_full_run) -> None:
    """conform_records validates the trace of the records it replayed: the same lines."""
    run_dir, _ = tiny_full_run
    lines = list(trace_lines(read_records(run_dir / "audit.jsonl")))
    assert lines == [json.loads(x) for x in export_trace(run_dir).splitlines()]


# --------------------------------------------------------------------------- reading TLC's verdict


def _states(cursors: list[int]) -> tuple:
    from govtrain.formal.output import TraceState

    return tuple(
        TraceState(i + 1, "StepLine", None, {"l": c, "expected": {"event": "unknown"}})
        for i, c in enumerate(cursors)
    )


@pytest.mark.parametrize(
    ("outcome", "violated", "cursors", "line", "needle"),
    [
        ("invariant-violated", "AwakeningsBounded", [0, 1, 2, 3], 3, "breaks the invariant"),
        ("property-violated", "StepsAreSpecSteps", [0, 1, 2], 2, "not a LabelledNext step"),
        ("invariant-violated", "TraceMatched", [0, 1, 2], 3, "cannot follow"),
    ],
)
def test_the_line_named_for_each_check(full_trace, outcome, violated, cursors, line, needle):
    """A state invariant or StepsAreSpecSteps names the line whose state or step broke it
    (the cursor of the last state); TraceMatched the line after it."""
    from govtrain.formal.output import Outcome, TLCResult
    from govtrain.formal.trace import judge_trace

    result = TLCResult(Outcome(outcome), 12, violated=violated, trace=_states(cursors))
    validation = judge_trace(result, full_trace)
    assert validation.mismatch.line == line and validation.mismatch.check == violated
    assert validation.mismatch.seq == full_trace[line - 1]["seq"]
    assert any(needle in d for d in validation.mismatch.differences)


def test_a_verdict_that_does_not_fit_the_trace_is_a_problem(full_trace) -> None:
    from govtrain.formal.output import Outcome, TLCResult
    from govtrain.formal.trace import judge_trace

    short = TLCResult(Outcome.HOLDS, 0, distinct_states=12)
    assert "12 states for 41 lines" in judge_trace(short, full_trace).problem
    gap = TLCResult(Outcome.INVARIANT_VIOLATED, 12, violated="TraceMatched", trace=_states([0, 5]))
    assert judge_trace(gap, full_trace).problem.startswith("TLC gave no verdict")
