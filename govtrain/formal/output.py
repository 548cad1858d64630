"""Reading what TLC says: outcomes, TLA+ values, framed `-tool` messages, state graphs.

`parse_output` turns TLC's framed messages into a `TLCResult` (outcome, state
counts, depth, duration, the violated invariant or property, and the
counterexample as a list of states with their action names and variable
values); `parse_dot` reads a state graph written by `-dump dot,actionlabels`.
TLC's exit codes decide the outcome; the messages only add detail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from govtrain.governance.errors import GovtrainError


class TLCOutputError(GovtrainError):
    """TLC's output could not be read (not a TLC run, or a format this bridge does not know)."""


# --------------------------------------------------------------------------- outcomes


class Outcome(StrEnum):
    HOLDS = "holds"
    ASSUMPTION_VIOLATED = "assumption-violated"
    DEADLOCK = "deadlock"
    INVARIANT_VIOLATED = "invariant-violated"
    PROPERTY_VIOLATED = "property-violated"
    ASSERTION_FAILED = "assertion-failed"
    EVALUATION_ERROR = "evaluation-error"
    PARSE_ERROR = "parse-error"
    CONFIG_ERROR = "config-error"
    STATE_SPACE_TOO_LARGE = "state-space-too-large"
    SYSTEM_ERROR = "system-error"
    TIMEOUT = "timeout"
    ERROR = "error"


# TLC's exit statuses (tlc2.output.EC.ExitStatus). 12 is an invariant; 13 is a
# temporal or action property (TLC reports `[][A]_v` violations with 13 too).
EXIT_CODES: dict[int, Outcome] = {
    0: Outcome.HOLDS,
    10: Outcome.ASSUMPTION_VIOLATED,
    11: Outcome.DEADLOCK,
    12: Outcome.INVARIANT_VIOLATED,
    13: Outcome.PROPERTY_VIOLATED,
    14: Outcome.ASSERTION_FAILED,
    75: Outcome.EVALUATION_ERROR,  # while computing states (spec)
    76: Outcome.EVALUATION_ERROR,  # while checking an invariant (safety)
    77: Outcome.EVALUATION_ERROR,  # while checking a temporal property (liveness)
    150: Outcome.PARSE_ERROR,
    151: Outcome.CONFIG_ERROR,
    152: Outcome.STATE_SPACE_TOO_LARGE,
    153: Outcome.SYSTEM_ERROR,
}


def outcome_of(exit_code: int) -> Outcome:
    return EXIT_CODES.get(exit_code, Outcome.ERROR)


def describe_outcome(outcome: Outcome, name: str | None) -> str:
    """`holds`, `invariant NAME violated`, `property NAME violated`, `deadlock`, ..."""
    if outcome is Outcome.INVARIANT_VIOLATED:
        return f"invariant {name} violated"
    if outcome is Outcome.PROPERTY_VIOLATED:
        return f"property {name} violated"
    return outcome.value


# --------------------------------------------------------------------------- TLA+ values


class TLASet(tuple):
    """A TLA+ set as TLC printed it (in TLC's order); compares as a tuple."""

    __slots__ = ()


class ModelValue(str):
    """A TLC model value (an uninterpreted constant), printed as a bare identifier."""

    __slots__ = ()


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+)
      | (?P<punct><<|>>|\|->|:>|@@|[\[\](){},])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", '"': '"', "\\": "\\"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TLCOutputError(f"cannot read TLA+ value at {text[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _ValueParser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise TLCOutputError("TLA+ value ends early")
        tok = self.toks[self.i]
        if expected is not None and tok[1] != expected:
            raise TLCOutputError(f"expected {expected!r} in TLA+ value, found {tok[1]!r}")
        self.i += 1
        return tok

    def items(self, close: str) -> list[Any]:
        out: list[Any] = []
        if self.peek() == close:
            self.take(close)
            return out
        while True:
            out.append(self.value())
            sep = self.take()[1]
            if sep == close:
                return out
            if sep != ",":
                raise TLCOutputError(f"expected ',' or {close!r} in TLA+ value, found {sep!r}")

    def value(self) -> Any:
        kind, tok = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), tok[1:-1])
        if kind == "number":
            return int(tok)
        if kind == "ident":
            return {"TRUE": True, "FALSE": False}.get(tok, ModelValue(tok))
        if tok == "<<":
            return tuple(self.items(">>"))
        if tok == "{":
            return TLASet(self.items("}"))
        if tok == "[":
            return self.record()
        if tok == "(":
            return self.function()
        raise TLCOutputError(f"unexpected {tok!r} in TLA+ value")

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.peek() == "]":
            self.take("]")
            return out
        while True:
            kind, name = self.take()
            if kind != "ident":
                raise TLCOutputError(f"expected a record field, found {name!r}")
            self.take("|->")
            out[name] = self.value()
            sep = self.take()[1]
            if sep == "]":
                return out
            if sep != ",":
                raise TLCOutputError(f"expected ',' or ']' in record, found {sep!r}")

    def function(self) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while True:
            key = _hashable(self.value())
            self.take(":>")
            out[key] = self.value()
            sep = self.take()[1]
            if sep == ")":
                return out
            if sep != "@@":
                raise TLCOutputError(f"expected '@@' or ')' in function, found {sep!r}")


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, TLASet):
        return TLASet(_hashable(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    return value


def parse_value(text: str) -> Any:
    """A TLA+ value as TLC prints it: int, bool, str, tuple (sequence), TLASet,
    dict (record, or function printed as `(k :> v @@ ...)`), ModelValue."""
    parser = _ValueParser(text)
    value = parser.value()
    if parser.i != len(parser.toks):
        raise TLCOutputError(f"trailing text after TLA+ value: {text!r}")
    return value


def parse_state(text: str) -> dict[str, Any]:
    """The variables of one state, written `/\\ var = value` per line (values may wrap)."""
    text = text.strip()
    if not text:
        return {}
    if not text.startswith("/\\"):
        text = "/\\ " + text  # a spec with one variable prints `x = 1`
    out: dict[str, Any] = {}
    for chunk in re.split(r"(?m)^/\\ ", text):
        chunk = chunk.strip()
        if not chunk:
            continue
        name, sep, rest = chunk.partition(" = ")
        if not sep:
            raise TLCOutputError(f"cannot read state line {chunk!r}")
        out[name.strip()] = parse_value(rest)
    return out


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_jsonable(v) for k, v in value.items()}
        return [[to_jsonable(k), to_jsonable(v)] for k, v in value.items()]
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class TraceState:
    """One state of a counterexample: its number, the action that produced it
    (`Initial predicate` for the first, `Stuttering` for a stuttering end)."""

    index: int
    action: str
    location: str | None
    values: dict[str, Any]


@dataclass(frozen=True)
class TLCResult:
    outcome: Outcome
    exit_code: int
    states_generated: int | None = None
    distinct_states: int | None = None
    left_on_queue: int | None = None
    depth: int | None = None
    duration_s: float | None = None  # TLC's own "Finished in"
    wall_s: float | None = None  # the subprocess, measured here
    violated: str | None = None  # the invariant or property TLC names
    trace: tuple[TraceState, ...] = ()
    back_to_state: int | None = None  # a liveness lasso loops back to this state
    back_to_action: str | None = None  # ... by this action
    errors: tuple[str, ...] = ()  # TLC's error messages, verbatim
    version: str | None = None
    command: tuple[str, ...] = ()
    output: str = field(default="", repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("output")
        data["outcome"] = self.outcome.value
        data["trace"] = [{**asdict(s), "values": to_jsonable(s.values)} for s in self.trace]
        data["command"] = list(self.command)
        data["errors"] = list(self.errors)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.as_dict(), indent=indent)


@dataclass(frozen=True, slots=True)
class Message:
    code: int
    severity: int
    text: str


_START = re.compile(r"^@!@!@STARTMSG (\d+):(\d+) @!@!@$")
_END = re.compile(r"^@!@!@ENDMSG (\d+) @!@!@$")

# Message codes (tlc2.output.EC) this bridge reads.
MSG_VERSION = 2262
MSG_INVARIANT_INITIAL = 2107
MSG_PROPERTY_INITIAL = 2108
MSG_BACK_TO_STATE = 2122
MSG_STATE = 2217
MSG_STATE_STUTTER = 2218
MSG_STATS = 2199
MSG_DEPTH = 2194
MSG_FINISHED = 2186
SEVERITY_ERROR = 1


def unframed(output: str) -> list[str]:
    """The lines outside `-tool` frames: SANY's parser and semantic errors appear only there."""
    lines, inside = [], False
    for line in output.splitlines():
        if _START.match(line):
            inside = True
        elif _END.match(line):
            inside = False
        elif not inside:
            lines.append(line)
    return lines


def sany_errors(output: str) -> str | None:
    """SANY's report of a parse or semantic error, from its first error line on."""
    lines = unframed(output)
    for i, line in enumerate(lines):
        if re.match(r"^(\*\*\*|Semantic errors|Fatal errors)", line):
            report = [
                x for x in lines[i:] if not x.startswith(("Parsing file", "Semantic processing"))
            ]
            return "\n".join(report).strip()
    return None


def messages(output: str) -> Iterator[Message]:
    """TLC's `-tool` messages, in order; text outside the frames is skipped."""
    code = severity = None
    body: list[str] = []
    for line in output.splitlines():
        if code is None:
            m = _START.match(line)
            if m:
                code, severity, body = int(m.group(1)), int(m.group(2)), []
            continue
        if _END.match(line):
            yield Message(code, severity or 0, "\n".join(body).strip("\n"))
            code = None
            continue
        body.append(line)
    if code is not None:  # cut off (timeout, crash)
        yield Message(code, severity or 0, "\n".join(body).strip("\n"))


_STATE_HEAD = re.compile(r"^(\d+): (?:<(.*?)>|(Stuttering))\s*$")
_BACK_TO = re.compile(r"^(\d+): Back to state(?:: <(.*)>)?")
_STATS = re.compile(
    r"([\d,]+) states? generated, ([\d,]+) distinct states? found, ([\d,]+) states? left on queue"
)
_VIOLATED = re.compile(
    r"^(?:Invariant|Action property|Temporal property|Property) (\S+) (?:is|was) violated"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _duration(text: str) -> float | None:
    m = re.search(r"Finished in (.*?) at", text)
    if not m:
        return None
    total, found = 0.0, False
    for amount, unit in re.findall(r"(\d+)\s*(ms|min|h|s)\b", m.group(1)):
        found = True
        total += int(amount) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600}[unit]
    return total if found else None


def _trace_state(text: str) -> TraceState:
    head, _, rest = text.partition("\n")
    m = _STATE_HEAD.match(head.strip())
    if not m:
        raise TLCOutputError(f"cannot read counterexample state header {head!r}")
    index = int(m.group(1))
    if m.group(3):
        return TraceState(index, "Stuttering", None, {})
    action, location = _split_action(m.group(2))
    return TraceState(index, action, location, parse_state(rest))


def _split_action(described: str) -> tuple[str, str | None]:
    """`Learn line 3, col 1 to ... of module M` -> ("Learn", "line 3, ...")."""
    m = re.match(r"^(.*?) (line \d+, col \d+ to line \d+, col \d+ of module \w+)$", described)
    if m:
        return m.group(1), m.group(2)
    return described, None


def parse_output(
    output: str,
    exit_code: int,
    *,
    wall_s: float | None = None,
    command: Sequence[str] = (),
    timed_out: bool = False,
) -> TLCResult:
    """Read TLC's `-tool` output into a TLCResult; the exit code decides the outcome."""
    msgs = list(messages(output))
    if not msgs and not timed_out:
        raise TLCOutputError("no TLC messages in the output (was -tool given?)")
    outcome = Outcome.TIMEOUT if timed_out else outcome_of(exit_code)
    fields = _message_fields(msgs)
    if outcome is Outcome.PARSE_ERROR and (report := sany_errors(output)):
        fields["errors"] = (report, *fields["errors"])
    return TLCResult(
        outcome=outcome,
        exit_code=exit_code,
        wall_s=wall_s,
        command=tuple(command),
        output=output,
        **fields,
    )


def _message_fields(msgs: list[Message]) -> dict[str, Any]:
    """The TLCResult fields TLC's messages carry: version, counterexample, state counts,
    depth, duration, the violated invariant or property, and the error messages."""
    stats = depth = duration = violated = back_to = back_action = version = None
    trace: list[TraceState] = []
    errors: list[str] = []
    for msg in msgs:
        first = msg.text.splitlines()[0] if msg.text else ""
        if msg.code == MSG_VERSION:
            version = first.removeprefix("TLC2 Version ").strip()
        elif msg.code in (MSG_STATE, MSG_STATE_STUTTER):
            trace.append(_trace_state(msg.text))
        elif msg.code in (MSG_INVARIANT_INITIAL, MSG_PROPERTY_INITIAL):
            # "... is violated by the initial state:" followed by that state
            values = parse_state(msg.text.partition("\n")[2])
            trace.append(TraceState(1, "Initial predicate", None, values))
        elif msg.code == MSG_BACK_TO_STATE:
            m = _BACK_TO.match(first)
            if m:
                back_to = int(m.group(1))
                back_action = _split_action(m.group(2))[0] if m.group(2) else None
        elif msg.code == MSG_STATS:
            m = _STATS.search(msg.text)
            stats = tuple(_int(g) for g in m.groups()) if m else stats
        elif msg.code == MSG_DEPTH:
            m = re.search(r"is (\d+)", msg.text)
            depth = int(m.group(1)) if m else depth
        elif msg.code == MSG_FINISHED:
            duration = _duration(msg.text)
        if msg.severity == SEVERITY_ERROR:
            errors.append(msg.text)
            m = _VIOLATED.match(first)
            if m and violated is None:
                violated = m.group(1)
    if stats is None:  # no final statistics (an early error): take the last progress report
        for msg in msgs:
            m = _STATS.search(msg.text)
            if m:
                stats = tuple(_int(g) for g in m.groups())
    generated, distinct, queue = stats if stats else (None, None, None)
    return {
        "states_generated": generated,
        "distinct_states": distinct,
        "left_on_queue": queue,
        "depth": depth,
        "duration_s": duration,
        "violated": violated,
        "trace": tuple(trace),
        "back_to_state": back_to,
        "back_to_action": back_action,
        "errors": tuple(errors),
        "version": version,
    }


# --------------------------------------------------------------------------- state graphs


@dataclass
class StateGraph:
    """TLC's state graph: node id -> variable values, the initial node ids, and
    (source, target, action label) for every transition (duplicates removed)."""

    states: dict[str, dict[str, Any]]
    initial: set[str]
    edges: set[tuple[str, str, str]]


_DOT_NODE = re.compile(r'^(-?\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];?$')
_DOT_EDGE = re.compile(r'^(-?\d+) -> (-?\d+)(?: \[label="((?:[^"\\]|\\.)*)".*\])?;?$')


def _undot(label: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), label)


def parse_dot(text: str) -> StateGraph:
    """Read the graph TLC writes with `-dump dot,actionlabels FILE`."""
    graph = StateGraph({}, set(), set())
    for raw in text.splitlines():
        line = raw.strip()
        if m := _DOT_EDGE.match(line):
            graph.edges.add((m.group(1), m.group(2), _undot(m.group(3) or "")))
        elif m := _DOT_NODE.match(line):
            graph.states[m.group(1)] = parse_state(_undot(m.group(2)))
            if "style = filled" in m.group(3):
                graph.initial.add(m.group(1))
    missing = {n for e in graph.edges for n in e[:2]} - graph.states.keys()
    if missing:
        raise TLCOutputError(f"state graph names {len(missing)} states it never defines")
    if not graph.initial:
        raise TLCOutputError("state graph has no initial state")
    return graph
