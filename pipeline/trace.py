"""Export a run's audit log as an ND-JSON trace in the vocabulary of GovernedTraining.tla.

One line per governance step (the spec's `GovernanceStep(high, wake)`), in
record order. Each line names the event, the spec's action labels for that
step (`Learn(embed)`, `ActivateLevel(1)`, ...), the abstract observation the
spec quantifies over (per group: signal high? wake fired?) and the values of
every spec variable after the step. Groups are listed in config order, which
is the order of the spec's `1..N`. A `resume` rewinds like the replay does: a
`Rewind` line carries the state the resumed run starts from.

The first line (`Init`) carries the constants a trace spec needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from audit.provenance import read_records
from audit.records import Record
from governance.config import GovernanceConfig, parse_governance
from governance.state import GroupObservation, state_to_dict
from governance.step import abstract, initial_state


def spec_state(state: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A recorded state (governor.state_to_dict) as the spec's variables."""
    groups = [state["groups"][n] for n in names]
    return {
        "clock": state["clock"],
        "activeLevel": state["active_level"],
        "phase": [g["phase"] for g in groups],
        "seenHigh": [g["seen_high"] for g in groups],
        "lows": [g["lows"] for g in groups],
        "awakenings": [g["awakenings"] for g in groups],
    }


def constants(cfg: GovernanceConfig) -> dict[str, Any]:
    frac = cfg.hierarchy.emergency_ratio
    return {
        "GroupNames": [g.name for g in cfg.groups],
        "Level": [g.level for g in cfg.groups],
        "Patience": cfg.governor.patience,
        "MaxAwakenings": cfg.governor.max_awakenings,
        "TotalSteps": cfg.total_steps,
        "EmergencyFraction": [frac.numerator, frac.denominator],
        "Warmup": cfg.router.warmup_steps,
        "Batch": cfg.router.batch_size,
    }


def label(t: dict[str, Any]) -> str:
    return f"{t['action']}({t['group'] if t['group'] is not None else t['after']})"


def trace_lines(records: Iterable[Record]) -> Iterator[dict[str, Any]]:
    records = list(records)
    cfg = parse_governance(records[0].body["config"]["governance"])
    names = [g.name for g in cfg.groups]
    init = state_to_dict(initial_state(cfg), names)
    after: dict[int, dict[str, Any]] = {-1: init}
    yield {"event": "Init", "constants": constants(cfg), "state": spec_state(init, names)}
    for rec in records[1:]:
        if rec.kind == "resume":
            state = after[rec.body["from_step"] - 1]
            yield {
                "event": "Rewind",
                "seq": rec.seq,
                "fromStep": rec.body["from_step"],
                "state": spec_state(state, names),
            }
        elif rec.kind == "step":
            b = rec.body
            seen = [abstract(GroupObservation(**b["observations"][n]), cfg) for n in names]
            after[b["step"]] = b["state"]
            yield {
                "event": "GovernanceStep",
                "seq": rec.seq,
                "step": b["step"],
                "actions": [label(t) for t in b["transitions"]],
                "high": [high for high, _ in seen],
                "wake": [wake for _, wake in seen],
                "state": spec_state(b["state"], names),
            }


def export_trace(run: Path, out: Path | None = None) -> str:
    """The trace of the run in `run` (a run directory or its audit.jsonl) as ND-JSON text."""
    log = run / "audit.jsonl" if run.is_dir() else run
    text = "".join(
        json.dumps(line, separators=(",", ":")) + "\n" for line in trace_lines(read_records(log))
    )
    if out is not None:
        out.write_text(text)
    return text
