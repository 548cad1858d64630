"""Replay validation: re-run the governance core on a run's recorded observations.

Every `step` record carries the observations the core consumed, the
transitions it took, the state it reached and the decision it made for the
next step. Replaying the pure core from the config committed in `run_start`
must reproduce every one of them exactly, every named invariant must hold at
every recorded state, and the routing a step used must be the decision of the
step before (in shadow mode, `train.mode: observe`, the whole batch). The
first record that disagrees is reported with its `seq`.

On a probe step that measured groups (geometry or spectral signals, geometry
guards), the record's `measurements` are read by the same rules the run used
(governance/readings.py): every group's recorded signal and wake must be what
those rules give from the measurements so far.

A run ends at a Finish (nothing left to train, governance/completion.py): a
step record after the step that took it is a divergence.

Step records must be numbered 0, 1, 2, ... (a `nonfinite` record takes its
step's number): a dropped, repeated or reordered step record is a divergence,
even when the states around it would replay. A `run_resume` record rewinds
the replay to the state after step `from_step - 1`: step records written after
the checkpoint a crashed run resumed from are superseded by the ones the
resumed run writes.

With data tiers (`data.tiers`, governance/tiers.py) the replay also redoes the
data pipeline from the step records' sample rows and losses: every step's rows
must be its place in the plan, and every `rescore` record must be exactly the
re-scoring the tier rules give (counts, moves, reserve, the tiers' and the next
plan's digests), with DataTiers.tla's invariants holding.

With `hierarchy.dormant: bypass`, step 0 records the model's blocks and their
groups, and every step the blocks the next step does not run (`bypassed`), which
must be exactly those of the groups the rule does not compute (governance/growth.py).
A step that activates a level must record its growth and only such a step may:
the operator, level, groups and block pairs must be the plan the rule gives for
the recorded blocks, and under `stack` the grown blocks' SHA-256 must equal their
sources'.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from govtrain.audit.records import Record
from govtrain.governance import completion, growth, routing, tiers
from govtrain.governance.config import GovernanceConfig, TiersConfig, parse_governance
from govtrain.governance.errors import GovtrainError
from govtrain.governance.invariants import Checked, violations
from govtrain.governance.readings import Readings
from govtrain.governance.record import OBSERVATION_FIELDS, decision_to_dict
from govtrain.governance.state import GovernanceState, GroupObservation, state_to_dict
from govtrain.governance.step import Decision, decide, govern, initial_state

# a step's loss is the float32 mean of its per-sample losses; replay averages them in
# float64, so the two agree to float32's precision, not exactly
LOSS_TOLERANCE = 1e-5
# a divergence names the first key path that differs and both values there, each cut to
# this many characters: one line, however large the state
SHOWN_CHARS = 100
_ABSENT = object()  # a key or list item one side lacks


@dataclass(frozen=True)
class Divergence:
    seq: int
    step: int | None
    what: str

    def __str__(self) -> str:
        where = f"record seq {self.seq}" + (f" (step {self.step})" if self.step is not None else "")
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class ReplayReport:
    steps: int
    transitions: int
    divergence: Divergence | None
    rescorings: int = 0  # data-tier re-scorings reproduced

    @property
    def ok(self) -> bool:
        return self.divergence is None


def replay(records: Sequence[Record]) -> ReplayReport:
    """Replay every governance step of a run; stop at the first divergence."""
    if not records or records[0].kind != "run_start":
        return ReplayReport(0, 0, Divergence(0, None, "the log does not start with run_start"))
    config = records[0].body["config"]
    cfg = parse_governance(config["governance"])
    train = config.get("train", {})
    if not isinstance(train, dict):
        return ReplayReport(0, 0, Divergence(0, None, "run_start's config.train is not a mapping"))
    enforced = train.get("mode", "governed") == "governed"
    names = [g.name for g in cfg.groups]
    state = initial_state(cfg)
    decision = decide(state, [1.0] * len(names), cfg)
    readings = Readings.for_run(names, train, cfg.governor)
    after: dict[int, tuple[GovernanceState, Decision, dict]] = {
        -1: (state, decision, readings.state_dict())
    }
    steps = transitions = due = 0  # `due`: the step number the next step record must carry
    owners: list[tuple[str, int]] | None = None  # the blocks and their groups (bypass)
    for rec in records[1:]:
        body = rec.body
        if rec.kind in ("step", "nonfinite") and body.get("step") != due:
            what = (
                f"step number {body.get('step')} where step {due} is due "
                "(a step record is missing, repeated or out of order)"
            )
            return ReplayReport(steps, transitions, Divergence(rec.seq, body.get("step"), what))
        if rec.kind == "nonfinite":  # a skipped update: the core's state stands still
            after[due] = (state, decision, readings.state_dict())
            due += 1
            continue
        if rec.kind == "run_resume" and "from_step" in body:
            back = after.get(body["from_step"] - 1)
            if back is None:
                what = f"resume from step {body['from_step']} that was never recorded"
                return ReplayReport(steps, transitions, Divergence(rec.seq, None, what))
            state, decision, kept = back
            readings.load_state_dict(kept)
            due = body["from_step"]
            continue
        if rec.kind != "step":
            continue
        if completion.finished(state, cfg):
            what = f"step {due} after the run finished at step {due - 1} (Finish)"
            return ReplayReport(steps, transitions, Divergence(rec.seq, due, what))
        problem = _check_readings(body, state, readings, names) or _check_step(
            body, state, decision, cfg, names, enforced
        )
        if isinstance(problem, str):
            return ReplayReport(steps, transitions, Divergence(rec.seq, body.get("step"), problem))
        blocks = _check_blocks(body, problem[0], cfg, enforced, owners)
        if isinstance(blocks, str):
            return ReplayReport(steps, transitions, Divergence(rec.seq, body.get("step"), blocks))
        owners = blocks
        state, decision, taken = problem
        for t in body["transitions"]:
            if t["group"] is not None:
                readings.transition(t["action"], t["group"])
        after[body["step"]] = (state, decision, readings.state_dict())
        due += 1
        steps += 1
        transitions += taken
    rescorings, divergence = replay_tiers(records)
    return ReplayReport(steps, transitions, divergence, rescorings)


def replay_tiers(records: Sequence[Record]) -> tuple[int, Divergence | None]:
    """Redo a run's data tiers from its step records; (re-scorings reproduced, the first
    divergence). A run without `data.tiers` has nothing to redo. Runs after the core's
    replay, which has checked the step records' numbering."""
    start = records[0].body
    config = start["config"]
    data = config.get("data") or {}
    if not isinstance(data, dict) or data.get("tiers") is None:
        return 0, None
    try:
        tcfg = TiersConfig.model_validate(data["tiers"])
        samples = start["data_pipeline"]["train_sequences"]
        batch, seed = config["governance"]["router"]["batch_size"], config["seed"]
        if not all(type(v) is int for v in (samples, batch, seed)):
            raise TypeError("train_sequences, batch_size and seed must be integers")
        state = tiers.initial(samples, tcfg, batch, seed)
    except (KeyError, TypeError, ValueError, GovtrainError) as exc:
        return 0, Divergence(0, None, f"run_start cannot drive the data tiers: {exc}")
    # the records a resumed run did not supersede: a resume from step F drops the
    # step, nonfinite and rescore records of steps F and later written before it
    kept: list[Record] = []
    for rec in records[1:]:
        if rec.kind == "rescore" and type(rec.body.get("step")) is not int:
            return 0, Divergence(rec.seq, None, "a rescore record without an integer step")
        if rec.kind == "run_resume" and "from_step" in rec.body:
            kept = [r for r in kept if r.body["step"] < rec.body["from_step"]]
        elif rec.kind in ("step", "nonfinite", "rescore"):
            kept.append(rec)
    done = 0
    for rec in kept:
        step = rec.body["step"]
        period = step // tcfg.rescore_every  # the period the step belongs to
        if rec.kind == "rescore":
            problem = _rescore_problem(rec.body, state, tcfg, batch, seed, period)
            if problem:
                return done, Divergence(rec.seq, step, problem)
            done += 1
        elif period != state.period:
            what = f"step {step} is in period {period}, but the re-scorings recorded before it "
            return done, Divergence(rec.seq, step, what + f"reach period {state.period}")
        elif rec.kind == "step":
            problem = _tiered_step_problem(rec.body, state, tcfg, batch)
            if problem:
                return done, Divergence(rec.seq, step, problem)
    return done, None


def _rescore_problem(
    body: dict[str, Any],
    state: tiers.TierState,
    tcfg: TiersConfig,
    batch: int,
    seed: int,
    period: int,
) -> str | None:
    """A rescore record must start the next period, and be what the tier rules give."""
    if not (tiers.due(body["step"], tcfg) and period == state.period + 1):
        return f"a re-scoring at step {body['step']}; the next is due at step " + str(
            (state.period + 1) * tcfg.rescore_every
        )
    before, observed = list(state.tiers), set(state.observed)
    expected = {"step": body["step"], **tiers.Rescore(state, tcfg, batch, seed)}
    if body != expected:
        return _differs("re-scoring", body, expected, "the tiers give")
    for name, holds in (
        ("TiersMoveOnEvidence", tiers.TiersMoveOnEvidence(before, state.tiers, observed)),
        ("WaitBounded", tiers.WaitBounded(state, tcfg)),
        ("PlanSize", tiers.PlanSize(state, tcfg, batch)),
        ("ReserveInPlan", tiers.ReserveInPlan(state, tcfg)),
    ):
        if not holds:
            return f"invariant {name} violated"
    return None


def _tiered_step_problem(
    body: dict[str, Any], state: tiers.TierState, tcfg: TiersConfig, batch: int
) -> str | None:
    """A tiered step trained on its slice of the plan, with one finite loss per sample whose
    mean is the step's recorded loss (to float32 precision); its losses join the tiers."""
    drawn = body.get("samples")
    if not (
        isinstance(drawn, dict)
        and isinstance(drawn.get("rows"), list)
        and isinstance(drawn.get("losses"), list)
        and all(type(r) is int for r in drawn["rows"])
        and all(_number(v) for v in drawn["losses"])
        and len(drawn["losses"]) == len(drawn["rows"])
    ):
        return "a tiered step record lacks its samples (integer rows, one finite loss each)"
    planned = tiers.rows(state, body["step"], tcfg, batch)
    if drawn["rows"] != planned:
        return _differs("samples.rows", drawn["rows"], planned, "the plan gives")
    mean, loss = statistics.fmean(drawn["losses"]), body["loss"]
    if not (_number(loss) and abs(mean - loss) <= LOSS_TOLERANCE * max(1.0, abs(loss))):
        return f"the samples' losses average {mean}, not the step's recorded loss {loss}"
    tiers.Observe(state, planned, drawn["losses"], tcfg)
    return None


def _number(v: Any) -> bool:
    """A finite JSON number (RFC 8785 writes 2.0 as 2, so an integral loss reads back as
    an int) that converts to a float."""
    return (type(v) is int and abs(v) <= 2**53) or (type(v) is float and math.isfinite(v))


def _check_readings(
    body: dict[str, Any], state: GovernanceState, readings: Readings, names: list[str]
) -> str | None:
    """The step's observations must follow from its measurements (governance/readings.py),
    taken on exactly the probe steps when the run measures; each group's need is its signal."""
    phases = {n: g.phase for n, g in zip(names, state.groups, strict=True)}
    probed = "measurements" in body
    if readings.measures and probed != (body["step"] % readings.probe_every == 0):
        return (
            f"measurements {'on' if probed else 'missing from'} step {body['step']}: the run "
            f"measures every {readings.probe_every} steps"
        )
    if probed:
        measured = body["measurements"]
        if not (
            isinstance(measured, dict)
            and all(
                isinstance(m, dict)
                and all(type(v) in (int, float) and isinstance(k, str) for k, v in m.items())
                for m in measured.values()
            )
        ):
            return "measurements must map each group to {measure: number}"
        unknown = set(measured) - set(names)
        if unknown:
            return f"measurements for groups not in the config: {sorted(unknown)}"
        readings.read(measured, phases)
    for name in names:
        seen = body["observations"][name]
        if seen["need"] != seen["signal"]:
            return f"group {name}'s need {seen['need']} is not its signal {seen['signal']}"
        expected = readings.observe(name, phases[name], seen["signal"], seen["wake"], probed)
        if expected != (seen["signal"], seen["wake"]):
            return (
                f"group {name} observed signal {seen['signal']}, wake {seen['wake']}; its "
                f"measurements give signal {expected[0]}, wake {expected[1]}"
            )
    return None


def _check_step(
    body: dict[str, Any],
    state: GovernanceState,
    decision: Decision,
    cfg: GovernanceConfig,
    names: list[str],
    enforced: bool,
) -> str | tuple[GovernanceState, Decision, int]:
    batch = cfg.router.batch_size
    for i, name in enumerate(names):
        expected = routing.applied_quota(state, i, decision.quotas[i], batch, enforced)
        used = body["routed"][name]["quota"]
        if used != expected:
            return (
                f"group {name} was routed {used} samples; the previous decision allows {expected}"
            )
    obs = [
        GroupObservation(**{k: body["observations"][n][k] for k in OBSERVATION_FIELDS})
        for n in names
    ]
    result = govern(state, obs, cfg)
    recorded = [
        {k: t[k] for k in ("action", "group", "before", "after")} for t in body["transitions"]
    ]
    replayed = [t.as_dict() for t in result.transitions]
    if recorded != replayed:
        return _differs("transitions", recorded, replayed, "the core takes")
    reached = state_to_dict(result.state, names)
    if body["state"] != reached:
        return _differs("state", body["state"], reached, "the core reaches")
    decided = decision_to_dict(result.decision, names)
    if body["decision"] != decided:
        return _differs("decision", body["decision"], decided, "the core decides")
    grown = _check_growth(body.get("growth"), state, result.state, cfg, enforced)
    if grown is not None:
        return grown
    broken = violations(Checked(state, result.state, result.decision, cfg))
    if broken:
        return "invariant " + "; invariant ".join(f"{n} violated: {r}" for n, r in broken)
    return result.state, result.decision, len(result.transitions)


def _check_blocks(
    body: dict[str, Any],
    after: GovernanceState,
    cfg: GovernanceConfig,
    enforced: bool,
    owners: list[tuple[str, int]] | None,
) -> str | list[tuple[str, int]] | None:
    """The step's bypassed blocks against the rule; the blocks' owners (from step 0)."""
    if cfg.hierarchy.dormant != "bypass":
        if "bypassed" in body or "blocks" in body:
            return "bypassed blocks are recorded, but hierarchy.dormant is 'frozen'"
        return None
    if body.get("step") == 0:
        recorded = body.get("blocks")
        if not isinstance(recorded, list) or not all(
            isinstance(b, list) and len(b) == 2 and isinstance(b[0], str)
            and _index(b[1], len(cfg.groups))
            for b in recorded
        ):  # fmt: skip
            return "step 0 must record the model's blocks as [name, group index] pairs"
        owners = [(b, g) for b, g in recorded]
    if owners is None:
        return "the blocks' groups are unknown: no step 0 record carries them"
    runs = growth.computed(after, cfg) if enforced else (True,) * len(cfg.groups)
    expected = sorted(b for b, g in owners if not runs[g])
    if body.get("bypassed") != expected:
        return _differs("bypassed", body.get("bypassed"), expected, "the rule bypasses")
    grown = body.get("growth")
    if isinstance(grown, dict) and grown.get("blocks") != [list(o) for o in owners]:
        return _differs(
            "growth.blocks", grown.get("blocks"), [list(o) for o in owners], "step 0 has"
        )
    return owners


def _check_growth(
    recorded: Any,
    before: GovernanceState,
    after: GovernanceState,
    cfg: GovernanceConfig,
    enforced: bool,
) -> str | None:
    """The step's growth record against the rule (None: it agrees)."""
    due = enforced and growth.grows(before, after, cfg)
    if recorded is None:
        if due:
            level = after.active_level
            return f"level {level} activated with its blocks bypassed, but no growth is recorded"
        return None
    if not due:
        return "a growth is recorded where no bypassed level activated"
    try:
        blocks = [(b, g) for b, g in recorded["blocks"]]
        digests = recorded["source_sha256"], recorded["result_sha256"]
    except (KeyError, TypeError, ValueError):
        return "malformed growth record (blocks, source_sha256, result_sha256)"
    if not all(isinstance(b, str) and _index(g, len(cfg.groups)) for b, g in blocks):
        return "malformed growth record: blocks must be [name, group index] pairs"
    planned = growth.plan(after.active_level, blocks, cfg).as_dict()
    mine = {k: recorded.get(k) for k in planned}
    if mine != planned:
        return _differs("growth", mine, planned, "the rule plans")
    copies = any(s is not None for _, s in planned["pairs"])
    if copies and (digests[0] is None or digests[0] != digests[1]):
        return (
            "growth 'stack': the grown blocks' SHA-256 differs from their sources' "
            "(they are not copies)"
        )
    return None


def _index(value: Any, size: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def _differs(path: str, recorded: Any, replayed: Any, by: str) -> str:
    """`recorded PATH is A, BY B` at the first key path where the two values differ: two
    whole state dicts would bury the difference."""
    path, recorded, replayed = _first_difference(path, recorded, replayed)
    return f"recorded {path} is {_shown(recorded)}, {by} {_shown(replayed)}"


def _first_difference(path: str, a: Any, b: Any) -> tuple[str, Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = [(f"{path}.{k}", a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in {**a, **b}]
    elif isinstance(a, list) and isinstance(b, list):
        pairs = [
            (f"{path}[{i}]", a[i] if i < len(a) else _ABSENT, b[i] if i < len(b) else _ABSENT)
            for i in range(max(len(a), len(b)))
        ]
    else:
        return path, a, b
    return next((_first_difference(*p) for p in pairs if p[1] != p[2]), (path, a, b))


def _shown(value: Any) -> str:
    if value is _ABSENT:
        return "absent"
    text = json.dumps(value, default=str)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
