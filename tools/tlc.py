"""The TLC bridge: run `tlc2.TLC` from tla2tools.jar in a subprocess and read what it says.

Nothing else talks to TLA+ tools. `find_toolchain` locates Java and the jar
(`TLA2TOOLS_JAR` when set, even if it points nowhere, else
`~/.tlaplus/tla2tools.jar`); `run_tlc` runs one model with an explicit config,
worker count, private metadir and timeout in `-tool` mode; `parse_output`
turns TLC's framed messages into a `TLCResult` (outcome, state counts, depth,
duration, the violated invariant or property, and the counterexample as a
list of states with their action names and variable values); `parse_dot`
reads a state graph written by `-dump dot,actionlabels`.

TLC's exit codes decide the outcome; the messages only add detail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from governance.errors import GovtrainError

JAR_ENV = "TLA2TOOLS_JAR"

# TLC's own advice for model checking throughput.
JVM_FLAGS = ("-XX:+UseParallelGC",)


class TLCNotFound(GovtrainError):
    """No Java runtime or no tla2tools.jar: model checking cannot run here."""


class TLCOutputError(GovtrainError):
    """TLC's output could not be read (not a TLC run, or a format this bridge does not know)."""


# --------------------------------------------------------------------------- toolchain


@dataclass(frozen=True, slots=True)
class Toolchain:
    java: str
    jar: Path


def find_jar(env: Mapping[str, str] | None = None) -> Path | None:
    """TLA2TOOLS_JAR if set (an explicit path that does not exist means "not found"),
    else ~/.tlaplus/tla2tools.jar."""
    env = os.environ if env is None else env
    if JAR_ENV in env:
        explicit = Path(env[JAR_ENV]).expanduser()
        return explicit if explicit.is_file() else None
    default = Path(env.get("HOME", "~")).expanduser() / ".tlaplus" / "tla2tools.jar"
    return default if default.is_file() else None


def find_java(env: Mapping[str, str] | None = None) -> str | None:
    """$JAVA_HOME/bin/java if present, else `java` on the PATH."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java", path=env.get("PATH"))


def find_toolchain(env: Mapping[str, str] | None = None) -> Toolchain:
    java, jar = find_java(env), find_jar(env)
    if java is None:
        raise TLCNotFound("no Java runtime (set JAVA_HOME or put java on the PATH)")
    if jar is None:
        where = (env or os.environ).get(JAR_ENV)
        raise TLCNotFound(
            f"{JAR_ENV}={where} is not a file"
            if where is not None
            else f"no tla2tools.jar (set {JAR_ENV} or install ~/.tlaplus/tla2tools.jar)"
        )
    return Toolchain(java, jar)


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
MSG_INVARIANT = 2110
MSG_ACTION_PROPERTY = 2112
MSG_TEMPORAL_PROPERTY = 2116
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
    outcome = Outcome.TIMEOUT if timed_out else outcome_of(exit_code)
    if outcome is Outcome.PARSE_ERROR and (report := sany_errors(output)):
        errors.insert(0, report)
    generated, distinct, queue = stats if stats else (None, None, None)
    return TLCResult(
        outcome=outcome,
        exit_code=exit_code,
        states_generated=generated,
        distinct_states=distinct,
        left_on_queue=queue,
        depth=depth,
        duration_s=duration,
        wall_s=wall_s,
        violated=violated,
        trace=tuple(trace),
        back_to_state=back_to,
        back_to_action=back_action,
        errors=tuple(errors),
        version=version,
        command=tuple(command),
        output=output,
    )


# --------------------------------------------------------------------------- running


def tlc_command(
    toolchain: Toolchain,
    spec: Path,
    config: Path,
    *,
    workers: int,
    metadir: Path,
    dump_dot: Path | None = None,
) -> list[str]:
    cmd = [
        toolchain.java,
        *JVM_FLAGS,
        "-cp",
        str(toolchain.jar),
        "tlc2.TLC",
        spec.name,
        "-config",
        str(config.resolve()),
        "-workers",
        str(workers),
        "-metadir",
        str(metadir),
        "-cleanup",
        "-noGenerateSpecTE",
        # Liveness on the complete state graph only: TLC otherwise also checks the
        # partial graph after 3 s, and a failing liveness model would then report a
        # state count that depends on the machine's speed.
        "-lncheck",
        "final",
        "-tool",
    ]
    if dump_dot is not None:
        cmd += ["-dump", "dot,actionlabels", str(dump_dot.resolve())]
    return cmd


def run_tlc(
    spec: Path,
    config: Path,
    *,
    workers: int = 2,
    timeout: float = 600,
    toolchain: Toolchain | None = None,
    dump_dot: Path | None = None,
) -> TLCResult:
    """Model-check `spec` with `config` in a private metadir; never raises on a TLC failure,
    only when TLC cannot be started (TLCNotFound)."""
    toolchain = toolchain or find_toolchain()
    spec, config = Path(spec).resolve(), Path(config).resolve()
    if not spec.is_file():
        raise GovtrainError(f"no such spec: {spec}")
    if not config.is_file():
        raise GovtrainError(f"no such model config: {config}")
    with tempfile.TemporaryDirectory(prefix="govtrain-tlc-") as meta:
        cmd = tlc_command(
            toolchain, spec, config, workers=workers, metadir=Path(meta), dump_dot=dump_dot
        )
        start = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                cwd=spec.parent,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            output, code, timed_out = done.stdout + done.stderr, done.returncode, False
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            code, timed_out = -1, True
        except OSError as exc:
            raise TLCNotFound(f"cannot start {toolchain.java}: {exc.strerror}") from None
        wall = time.monotonic() - start
    return parse_output(output, code, wall_s=wall, command=cmd, timed_out=timed_out)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


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


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a model must do: hold, or fail with this invariant or property named."""

    outcome: Outcome
    name: str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Expectation:
        if raw == "holds":
            return cls(Outcome.HOLDS)
        if raw == "deadlock":
            return cls(Outcome.DEADLOCK)
        if isinstance(raw, dict) and len(raw) == 1:
            ((kind, name),) = raw.items()
            kinds = {"invariant": Outcome.INVARIANT_VIOLATED, "property": Outcome.PROPERTY_VIOLATED}
            if kind in kinds and isinstance(name, str) and name:
                return cls(kinds[kind], name)
        raise GovtrainError(
            f"{where}: expect must be 'holds', 'deadlock', {{invariant: NAME}} or "
            f"{{property: NAME}}, got {raw!r}"
        )

    def describe(self) -> str:
        return describe_outcome(self.outcome, self.name)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    module: str
    config: str
    expect: Expectation
    distinct_states: int
    slow: bool = False
    seconds: float | None = None  # documented time on 2 cores, for slow models
    about: str = ""

    @property
    def workers(self) -> int:
        """A failing model runs on one worker: breadth-first search is then deterministic,
        so the state count at the violation is the same on every machine."""
        return 2 if self.expect.outcome is Outcome.HOLDS else 1


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: tuple[ModelEntry, ...]

    def select(self, patterns: Sequence[str] = (), include_slow: bool = False) -> list[ModelEntry]:
        """Models matching any fnmatch pattern (all when none); slow ones only when asked
        or named exactly."""
        if not patterns:
            return [m for m in self.models if include_slow or not m.slow]
        chosen = []
        for m in self.models:
            exact = m.name in patterns
            matched = exact or any(fnmatchcase(m.name, p) for p in patterns)
            if matched and (exact or include_slow or not m.slow):
                chosen.append(m)
        return chosen


_ENTRY_KEYS = {"name", "module", "config", "expect", "distinct_states", "slow", "seconds", "about"}


def load_manifest(path: Path) -> Manifest:
    """Read specs/manifest.yaml; every problem names the entry and the field."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GovtrainError(f"cannot read manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise GovtrainError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise GovtrainError(f"{path}: expected a mapping with a 'models' list")
    root = Path(path).parent
    models, seen = [], set()
    for i, raw in enumerate(data["models"]):
        where = f"{path}: models[{i}]"
        if not isinstance(raw, dict):
            raise GovtrainError(f"{where}: expected a mapping")
        unknown = set(raw) - _ENTRY_KEYS
        missing = {"name", "module", "config", "expect", "distinct_states"} - set(raw)
        if unknown or missing:
            raise GovtrainError(
                f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        name = raw["name"]
        if name in seen:
            raise GovtrainError(f"{where}: duplicate model name {name!r}")
        seen.add(name)
        states = raw["distinct_states"]
        if not isinstance(states, int) or isinstance(states, bool) or states < 1:
            raise GovtrainError(f"{where} ({name}): distinct_states must be a positive integer")
        for key in ("module", "config"):
            if not (root / str(raw[key])).is_file():
                raise GovtrainError(f"{where} ({name}): {key} {raw[key]} not found in {root}")
        models.append(
            ModelEntry(
                name=name,
                module=str(raw["module"]),
                config=str(raw["config"]),
                expect=Expectation.parse(raw["expect"], f"{where} ({name})"),
                distinct_states=states,
                slow=bool(raw.get("slow", False)),
                seconds=raw.get("seconds"),
                about=str(raw.get("about", "")).strip(),
            )
        )
    return Manifest(root, tuple(models))


@dataclass(frozen=True)
class Verdict:
    """One model's check: what TLC said against what the manifest expects."""

    entry: ModelEntry
    result: TLCResult
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.entry.name,
            "ok": self.ok,
            "expected": self.entry.expect.describe(),
            "expected_distinct_states": self.entry.distinct_states,
            "problems": list(self.problems),
            "result": self.result.as_dict(),
        }


def judge(entry: ModelEntry, result: TLCResult) -> Verdict:
    """Compare TLC's result with the manifest: outcome, the name it reports, distinct states."""
    problems = []
    want = entry.expect
    if result.outcome is not want.outcome:
        detail = f" ({result.violated})" if result.violated else ""
        first_error = result.errors[0].splitlines()[0] if result.errors else ""
        if result.outcome not in (Outcome.INVARIANT_VIOLATED, Outcome.PROPERTY_VIOLATED):
            detail += f": {first_error}" if first_error else ""
        problems.append(f"expected {want.describe()}, TLC says {result.outcome.value}{detail}")
    elif want.name is not None and result.violated != want.name:
        problems.append(f"expected {want.name} to fail, TLC names {result.violated}")
    if result.outcome is want.outcome and result.distinct_states != entry.distinct_states:
        problems.append(
            f"expected {entry.distinct_states} distinct states, TLC found {result.distinct_states}"
        )
    return Verdict(entry, result, tuple(problems))


def check_model(
    entry: ModelEntry, manifest: Manifest, *, toolchain: Toolchain, timeout: float = 600
) -> Verdict:
    result = run_tlc(
        manifest.root / entry.module,
        manifest.root / entry.config,
        workers=entry.workers,
        timeout=timeout,
        toolchain=toolchain,
    )
    return judge(entry, result)


# --------------------------------------------------------------------------- trace validation

SPECS = Path(__file__).resolve().parent.parent / "specs"
TRACE_MODULE = "TraceGovernedTraining"
# TraceMatched first: when a line does not match, it is the invariant TLC names.
TRACE_INVARIANTS = ("TraceMatched", "NoCoolingFromCold", "AwakeningsBounded", "DormantAboveLevel")
TRACE_PROPERTIES = ("StepsAreSpecSteps",)
# GovernedTraining's constants in the trace model: read from the trace's Init line, or
# (budget and router, which this module does not check) values that satisfy the
# components' assumptions.
TRACE_CONSTANTS = (
    ("GroupNames", "TraceGroupNames"),
    ("Level", "TraceLevel"),
    ("Patience", "TracePatience"),
    ("MaxAwakenings", "TraceMaxAwakenings"),
    ("TotalSteps", "TraceTotalSteps"),
    ("EmergencyFraction", "TraceEmergencyFraction"),
    ("Warmup", "TraceWarmup"),
    ("Batch", "TraceBatch"),
    ("Master", "UncheckedMaster"),
    ("Floor", "UncheckedFloor"),
    ("Ceiling", "UncheckedCeiling"),
    ("Multiplier", "UncheckedMultiplier"),
    ("Needs", "UncheckedNeeds"),
)
_SPEC_VARIABLES = ("clock", "activeLevel", "phase", "seenHigh", "lows", "awakenings")
_PER_GROUP = {"phase", "seenHigh", "lows", "awakenings"}


def trace_config(trace_file: Path) -> str:
    """The model of TraceGovernedTraining.tla that validates the trace in `trace_file`."""
    path = str(trace_file.resolve())
    if '"' in path or "\\" in path:
        raise GovtrainError(f"cannot name {path} in a TLC config (quote or backslash)")
    lines = ["CONSTANTS", f'    TraceFile = "{path}"']
    lines += [f"    {name} <- {definition}" for name, definition in TRACE_CONSTANTS]
    lines += [
        '    Bug = "none"',
        "SPECIFICATION TraceSpec",
        "VIEW TraceView",
        "ALIAS TraceAlias",
        "CHECK_DEADLOCK FALSE",
        "INVARIANTS " + " ".join(TRACE_INVARIANTS),
        "PROPERTIES " + " ".join(TRACE_PROPERTIES),
    ]
    return "\n".join(lines) + "\n"


def read_trace(text: str) -> list[dict[str, Any]]:
    """The lines of an ND-JSON trace (pipeline/trace.py), each a JSON object; line 1 is Init."""
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


def state_differences(spec: Any, recorded: Any, names: Sequence[str]) -> list[str]:
    """Each spec variable whose value the spec reaches and the trace records differ."""
    if not isinstance(spec, dict) or not isinstance(recorded, dict):
        return [f"state: spec {_show(spec)}, trace {_show(recorded)}"]
    out = []
    for var in _SPEC_VARIABLES:
        mine, theirs = _plain(spec.get(var)), _plain(recorded.get(var))
        if mine == theirs:
            continue
        if var in _PER_GROUP and isinstance(theirs, list) and len(theirs) == len(mine or []):
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
                if a != b:
                    name = names[i] if i < len(names) else str(i + 1)
                    out.append(f"{var}[{name}]: spec {_show(a)}, trace {_show(b)}")
        else:
            out.append(f"{var}: spec {_show(mine)}, trace {_show(theirs)}")
    extra = sorted(set(recorded) - set(_SPEC_VARIABLES))
    if extra:
        out.append(f"state has fields the spec does not: {', '.join(extra)}")
    return out


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
    out += state_differences(expected["state"], line.get("state"), names)
    spec_actions, recorded = _plain(expected.get("actions", [])), line.get("actions", [])
    if event == "GovernanceStep" and spec_actions != recorded:
        out.append(f"actions: spec {_show(spec_actions)}, trace {_show(recorded)}")
    return out or ["no step of the spec reaches the recorded line (malformed values?)"]


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
    specs: Path = SPECS,
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
            specs / f"{TRACE_MODULE}.tla",
            config,
            workers=1,
            timeout=timeout,
            toolchain=toolchain,
        )
    return judge_trace(result, lines)
