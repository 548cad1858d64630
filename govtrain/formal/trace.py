"""Trace validation: a recorded run, exported in the vocabulary of the specs, checked by TLC.

Export: one ND-JSON line per governance step (the spec's
`GovernanceStep(high, wake)`), in record order. Each line names the event,
the spec's action labels for that step (`Learn(embed)`, `ActivateLevel(1)`),
the abstract observation the spec quantifies over (per group: signal high?
wake fired?), the values of every spec variable after the step, the quota each
group was routed during it, and the decision made after it with the needs it
was made from (on the budget's grid: naturals). Groups are listed in config
order, the order of the spec's `1..N`. A `resume` rewinds like the replay
does: a `Rewind` line carries the state the resumed run starts from. The
first line (`Init`) carries the constants a trace spec needs and whether the
run applied its decisions (`enforced`; shadow mode routes the whole batch).

With `hierarchy.dormant: bypass` the Init line also carries the model's blocks
as step 0 records them (`blocks`: name and group, 1..N), and each step line the
blocks the record says the next step does not run (`bypassed`, verbatim, only
where the record has it); every step line says whether it recorded a growth
(`grows`). The spec derives which groups are computed from the blocks, so a
group that owns no block is never claimed to be seen.

Validation: `specs/TraceGovernedTraining.tla` reads the trace and TLC checks
that it is a behaviour of GovernedTrainingLabelled; `judge_trace` turns TLC's
counterexample into the first line that does not match and what differs.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.formal.output import Outcome, TLCResult
from govtrain.formal.toolchain import Toolchain, find_toolchain, run_tlc
from govtrain.formal.vocabulary import (
    CONSTANT_NAMES,
    SPEC_VARIABLES,
    TRACE_CONSTANT_NAMES,
    spec_state,
    trace_constants,
)
from govtrain.governance.budget import need_grid
from govtrain.governance.config import parse_governance
from govtrain.governance.errors import GovtrainError
from govtrain.governance.record import StepRecord
from govtrain.governance.state import state_to_dict
from govtrain.governance.step import abstract, initial_state
from govtrain.resources import specs_dir


def trace_lines(records: Iterable[Record]) -> Iterator[dict[str, Any]]:
    records = list(records)
    config = records[0].body["config"]
    cfg = parse_governance(config["governance"])
    names = [g.name for g in cfg.groups]
    init = state_to_dict(initial_state(cfg), names)
    after: dict[int, dict[str, Any]] = {-1: init}
    yield {
        "event": "Init",
        "constants": trace_constants(cfg),
        "enforced": config.get("train", {}).get("mode", "governed") == "governed",
        "state": spec_state(init, names),
        "blocks": trace_blocks(records),
    }
    for rec in records[1:]:
        if rec.kind == "run_resume":
            state = after[rec.body["from_step"] - 1]
            yield {
                "event": "Rewind",
                "seq": rec.seq,
                "fromStep": rec.body["from_step"],
                "state": spec_state(state, names),
            }
        elif rec.kind == "step":
            b = rec.body
            step = StepRecord.from_dict(b, names)
            seen = [abstract(o, cfg) for o in step.observations]
            after[step.step] = b["state"]
            frozen = [g.phase.frozen for g in step.state.groups]
            grid = need_grid(
                [None if f else o.need for f, o in zip(frozen, step.observations, strict=True)]
            )
            line = {
                "event": "GovernanceStep",
                "seq": rec.seq,
                "step": step.step,
                "actions": [t.label for t in step.transitions],
                "high": [high for high, _ in seen],
                "wake": [wake for _, wake in seen],
                "routed": [step.routed[n]["quota"] for n in names],
                "state": spec_state(b["state"], names),
                "need": [0 if n is None else n for n in grid],
                "units": list(step.decision.allocations),
                "budgetAction": step.decision.budget_action,
                "quota": list(step.decision.quotas),
                "warmup": step.decision.warmup,
                "grows": b.get("growth") is not None,
            }
            if "bypassed" in b:
                line["bypassed"] = b["bypassed"]
            yield line


def trace_blocks(records: Sequence[Record]) -> list[dict[str, Any]]:
    """The blocks the first step 0 record lists (`[name, group index]` pairs, bypass
    only) as the trace's `{name, group}` with groups counted from 1, as the spec does; an
    entry that is no such pair keeps its text and group 0, which the spec rejects."""
    first = next((r for r in records if r.kind == "step" and r.body.get("step") == 0), None)
    raw = None if first is None else first.body.get("blocks")
    if raw is None:
        return []
    out = []
    for b in raw if isinstance(raw, list) else [raw]:
        pair = isinstance(b, list) and len(b) == 2 and isinstance(b[0], str)
        if pair and isinstance(b[1], int) and not isinstance(b[1], bool):
            out.append({"name": b[0], "group": b[1] + 1 if b[1] >= 0 else 0})
        else:
            out.append({"name": json.dumps(b), "group": 0})
    return out


def export_trace(run: Path, out: Path | None = None) -> str:
    """The trace of the run in `run` (a run directory or its audit.jsonl) as ND-JSON text."""
    log = run / "audit.jsonl" if run.is_dir() else run
    text = "".join(
        json.dumps(line, separators=(",", ":")) + "\n" for line in trace_lines(read_records(log))
    )
    if out is not None:
        out.write_text(text)
    return text


TRACE_MODULE = "TraceGovernedTraining"
# TraceMatched first: when a line does not match, it is the invariant TLC names.
TRACE_INVARIANTS = (
    "TraceMatched",
    "NoCoolingFromCold",
    "AwakeningsBounded",
    "DormantAboveLevel",
    "ComputedIsNotDormant",
)
TRACE_PROPERTIES = ("StepsAreSpecSteps",)
# GovernedTraining's constants in the trace model: read from the trace's Init line, or
# (Needs: each line carries its own) a value that satisfies the assumptions.
TRACE_CONSTANTS = tuple(
    (n, ("Trace" if n in TRACE_CONSTANT_NAMES else "Unchecked") + n) for n in CONSTANT_NAMES
)


def trace_config(trace_file: Path) -> str:
    """The model of TraceGovernedTraining.tla that validates the trace in `trace_file`."""
    path = str(trace_file.resolve())
    if '"' in path or "\\" in path:
        raise GovtrainError(f"cannot name {path} in a TLC config (quote or backslash)")
    lines = ["CONSTANTS", f'    TraceFile = "{path}"']
    lines += [f"    {name} <- {definition}" for name, definition in TRACE_CONSTANTS]
    lines += [
        "SPECIFICATION TraceSpec",
        "VIEW TraceView",
        "ALIAS TraceAlias",
        "CHECK_DEADLOCK FALSE",
        "INVARIANTS " + " ".join(TRACE_INVARIANTS),
        "PROPERTIES " + " ".join(TRACE_PROPERTIES),
    ]
    return "\n".join(lines) + "\n"


def read_trace(text: str) -> list[dict[str, Any]]:
    """The lines of an ND-JSON trace (`export_trace`), each a JSON object; line 1 is Init."""
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            raise GovtrainError(f"trace line {number} is empty")
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise GovtrainError(f"trace line {number} is not JSON: {exc.msg}") from None
        if not isinstance(line, dict) or not isinstance(line.get("event"), str):
            raise GovtrainError(f"trace line {number} is not an object with an event")
        out.append(line)
    if not out or out[0]["event"] != "Init" or not isinstance(out[0].get("constants"), dict):
        raise GovtrainError("a trace starts with an Init line carrying the constants")
    return out


@dataclass(frozen=True, slots=True)
class TraceMismatch:
    """The first trace line TLC could not accept, and what differs there."""

    line: int  # 1-based line number in the trace
    event: str
    seq: int | None  # the audit record the line was exported from
    step: int | None
    check: str  # the invariant or property TLC reports
    differences: tuple[str, ...]

    def where(self) -> str:
        if self.seq is None:
            return f"trace line {self.line} ({self.event})"
        kind = "from step" if self.event == "Rewind" else "step"
        step = f", {kind} {self.step}" if self.step is not None else ""
        return f"trace line {self.line} (record seq {self.seq}{step})"

    def __str__(self) -> str:
        return f"{self.where()}: {self.event} rejected ({self.check}): " + "; ".join(
            self.differences
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "differences": list(self.differences), "text": str(self)}


@dataclass(frozen=True)
class TraceValidation:
    """TLC's verdict on a trace: accepted, rejected at a line, or no verdict (`problem`)."""

    lines: int
    matched: int  # lines TLC matched before stopping (all of them when ok)
    mismatch: TraceMismatch | None
    problem: str | None
    result: TLCResult

    @property
    def ok(self) -> bool:
        return self.mismatch is None and self.problem is None

    def summary(self) -> str:
        if self.ok:
            return f"all {self.lines} trace lines accepted"
        return str(self.mismatch) if self.mismatch is not None else str(self.problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lines": self.lines,
            "matched": self.matched,
            "mismatch": None if self.mismatch is None else self.mismatch.as_dict(),
            "problem": self.problem,
            "summary": self.summary(),
            "result": self.result.as_dict(),
        }


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, list | tuple):
        return "<<" + ", ".join(_show(v) for v in value) + ">>"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def value_differences(var: str, spec: Any, recorded: Any, names: Sequence[str]) -> list[str]:
    """How one value differs: per group (`phase[embed]: ...`) for a per-group vector."""
    mine, theirs = _plain(spec), _plain(recorded)
    if mine == theirs:
        return []
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [
            f"{var}[{names[i] if i < len(names) else i + 1}]: spec {_show(a)}, trace {_show(b)}"
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
            if a != b
        ]
    return [f"{var}: spec {_show(mine)}, trace {_show(theirs)}"]


def state_differences(spec: Any, recorded: Any, names: Sequence[str]) -> list[str]:
    """Each spec variable whose value the spec reaches and the trace records differ."""
    if not isinstance(spec, dict) or not isinstance(recorded, dict):
        return [f"state: spec {_show(spec)}, trace {_show(recorded)}"]
    out = []
    for var in SPEC_VARIABLES:
        out += value_differences(var, spec.get(var), recorded.get(var), names)
    extra = sorted(set(recorded) - set(SPEC_VARIABLES))
    if extra:
        out.append(f"state has fields the spec does not: {', '.join(extra)}")
    return out


DECISION_FIELDS = ("units", "budgetAction", "quota", "warmup")


def _line_differences(expected: Any, line: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Why TLC could not match `line`, from what the spec makes of it (the model's alias)."""
    if not isinstance(expected, dict) or expected.get("event") == "unknown":
        return [f"event {line['event']!r} cannot follow the lines before it"]
    event = expected["event"]
    out = []
    if event == "GovernanceStep" and line.get("step") != expected["step"]:
        out.append(
            f"step number {line.get('step')} where step {expected['step']} is due "
            "(a line is missing, repeated or out of order)"
        )
    if event == "Rewind":
        target = expected["target"]
        due = line.get("fromStep", 0) - 1
        if target == 0:
            return [
                f"rewinds to step {line.get('fromStep')}, but no earlier line reached step {due}"
            ]
        diff = state_differences(expected["state"], line.get("state"), names)
        return [f"not the state line {target} reached after step {due}: {d}" for d in diff]
    if event == "GovernanceStep":
        out += value_differences("routed", expected.get("routed"), line.get("routed"), names)
    out += state_differences(expected["state"], line.get("state"), names)
    spec_actions, recorded = _plain(expected.get("actions", [])), line.get("actions", [])
    if event == "GovernanceStep" and spec_actions != recorded:
        out.append(f"actions: spec {_show(spec_actions)}, trace {_show(recorded)}")
    if event == "GovernanceStep":
        decision = expected.get("decision") or {}
        for field in DECISION_FIELDS:
            out += value_differences(field, decision.get(field), line.get(field), names)
        out += _bypassed_differences(expected, line)
        if "grows" in expected and expected["grows"] != line.get("grows"):
            out.append(f"grows: spec {_show(expected['grows'])}, trace {_show(line.get('grows'))}")
    if event == "Init" and expected.get("blocksWellFormed") is False:
        out.append("blocks: step 0 lists a block of no group of the run, or one block twice")
    return out or ["no step of the spec reaches the recorded line (malformed values?)"]


def _bypassed_differences(expected: dict[str, Any], line: dict[str, Any]) -> list[str]:
    """How the line's bypassed blocks differ from those the spec's computed groups leave
    out (hierarchy.dormant bypass)."""
    if "recordsBypassed" not in expected:
        return []
    if not expected["recordsBypassed"]:
        return [] if "bypassed" not in line else ["bypassed: recorded, but the run does not bypass"]
    recorded = line.get("bypassed")
    if not isinstance(recorded, list):
        return ["bypassed: the run bypasses, but the line records no list of blocks"]
    spec = {str(b) for b in expected.get("bypassed", ())}
    names = [str(b) for b in recorded]
    out = [
        f"bypassed: trace skips block {b!r}, spec runs it (or step 0 lists no such block)"
        for b in sorted(set(names) - spec)
    ]
    out += [f"bypassed: spec skips block {b!r}, trace runs it" for b in sorted(spec - set(names))]
    twice = sorted({n for n in names if names.count(n) > 1})
    out += [f"bypassed: block {b!r} listed twice" for b in twice]
    return out


def judge_trace(result: TLCResult, lines: Sequence[dict[str, Any]]) -> TraceValidation:
    """Read TLC's verdict on the trace model: the cursor `l` of the last state of a
    counterexample is the number of lines matched before the violation."""
    names = [str(n) for n in lines[0]["constants"].get("GroupNames", [])]
    total = len(lines)
    last = result.trace[-1].values if result.trace else {}
    cursor = last.get("l")
    if result.outcome is Outcome.HOLDS:
        if result.distinct_states != total + 1:
            problem = f"TLC found {result.distinct_states} states for {total} lines"
            return TraceValidation(total, 0, None, problem, result)
        return TraceValidation(total, total, None, None, result)
    violated = result.outcome in (Outcome.INVARIANT_VIOLATED, Outcome.PROPERTY_VIOLATED)
    if not violated or not isinstance(cursor, int) or len(result.trace) != cursor + 1:
        first = result.errors[0].strip().splitlines()[:2] if result.errors else ["no message"]
        where = f" at trace line {cursor + 1}" if isinstance(cursor, int) else ""
        problem = f"TLC gave no verdict ({result.outcome.value}{where}): " + " ".join(first)
        return TraceValidation(total, cursor or 0, None, problem, result)
    if result.violated == "TraceMatched":
        number = cursor + 1  # the first line that does not match
        line = lines[cursor]
        diffs = _line_differences(last.get("expected"), line, names)
    else:  # a state invariant of the state line `cursor` reached, or StepsAreSpecSteps
        number, line = cursor, lines[cursor - 1]
        if result.outcome is Outcome.INVARIANT_VIOLATED:
            diffs = [f"the recorded state breaks the invariant {result.violated}"]
        else:
            diffs = ["the step is not a LabelledNext step of GovernedTrainingLabelled"]
    mismatch = TraceMismatch(
        line=number,
        event=str(line["event"]),
        seq=line.get("seq"),
        step=line.get("step", line.get("fromStep")),
        check=str(result.violated),
        differences=tuple(diffs),
    )
    matched = cursor if result.violated == "TraceMatched" else cursor - 1
    return TraceValidation(total, matched, mismatch, None, result)


def validate_trace(
    trace: str | Path | Sequence[Mapping[str, Any]],
    *,
    toolchain: Toolchain | None = None,
    timeout: float = 300,
    specs: Path | None = None,
    keep: Path | None = None,
) -> TraceValidation:
    """Check with TLC that a trace (ND-JSON text, a file, or its lines) is a behaviour of
    GovernedTrainingLabelled: specs/TraceGovernedTraining.tla, with a model generated
    into a scratch directory next to a copy of the trace (into `keep`, and left there,
    when given: `trace.ndjson` and `MCTraceGovernedTraining.cfg`)."""
    if isinstance(trace, Path):
        text = trace.read_text(encoding="utf-8")
    elif isinstance(trace, str):
        text = trace
    else:
        text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in trace)
    lines = read_trace(text)
    toolchain = toolchain or find_toolchain()
    with tempfile.TemporaryDirectory(prefix="govtrain-trace-") as scratch:
        work = Path(scratch) if keep is None else keep
        work.mkdir(parents=True, exist_ok=True)
        trace_file = work / "trace.ndjson"
        trace_file.write_text(
            "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines),
            encoding="utf-8",
        )
        config = work / f"MC{TRACE_MODULE}.cfg"
        config.write_text(trace_config(trace_file), encoding="utf-8")
        result = run_tlc(
            (specs or specs_dir()) / f"{TRACE_MODULE}.tla",
            config,
            workers=1,
            timeout=timeout,
            toolchain=toolchain,
        )
    return judge_trace(result, lines)
