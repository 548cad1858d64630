"""Conform a recorded run to the specs: the Python replay always, TLC trace validation
when a toolchain is given. Both verdicts are kept, so a caller can tell "TLC rejected
the trace" from "TLC was not there"."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govtrain.formal.replay import ReplayReport, replay
from govtrain.formal.toolchain import Toolchain
from govtrain.formal.trace import TraceValidation, trace_lines, validate_trace
from govtrain.formal.vocabulary import OutOfTLCRange
from govtrain.governance.errors import GovtrainError


@dataclass
class ConformReport:
    """Both validators' verdicts on one run's records."""

    replay: ReplayReport | None  # or None when the records cannot be replayed
    replay_error: str | None
    replay_seconds: float
    tlc: TraceValidation | None  # or None when TLC did not run
    tlc_note: str | None  # why TLC did not run: skipped (no TLC) or an error
    tlc_skipped: bool
    tlc_seconds: float

    @property
    def replay_ok(self) -> bool:
        return self.replay is not None and self.replay.ok

    @property
    def tlc_status(self) -> str:
        if self.tlc is not None:
            return "ok" if self.tlc.ok else "rejected"
        return "skipped" if self.tlc_skipped else "error"

    @property
    def ok(self) -> bool:
        """Every validator that ran accepts the run (a skipped TLC is not a failure)."""
        return self.replay_ok and self.tlc_status in ("ok", "skipped")

    def replay_summary(self) -> str:
        if self.replay is None:
            return f"cannot replay: {self.replay_error}"
        if self.replay.ok:
            r = self.replay
            tiers = f", {r.rescorings} data-tier re-scorings" if r.rescorings else ""
            return f"{r.steps} steps, {r.transitions} transitions{tiers} reproduced"
        return str(self.replay.divergence)

    def tlc_summary(self) -> str:
        if self.tlc is not None:
            return self.tlc.summary()
        return f"SKIPPED ({self.tlc_note})" if self.tlc_skipped else f"error: {self.tlc_note}"

    def as_dict(self) -> dict[str, Any]:
        replay: dict[str, Any] = {
            "ok": self.replay_ok,
            "summary": self.replay_summary(),
            "seconds": round(self.replay_seconds, 2),
        }
        if self.replay is not None:
            div = self.replay.divergence
            replay |= {
                "steps": self.replay.steps,
                "transitions": self.replay.transitions,
                "divergence": None
                if div is None
                else {"seq": div.seq, "step": div.step, "what": div.what},
            }
        tlc: dict[str, Any] = {"status": self.tlc_status, "summary": self.tlc_summary()}
        if self.tlc is not None:
            tlc |= self.tlc.as_dict() | {"seconds": round(self.tlc_seconds, 2)}
        return {"status": "ok" if self.ok else "diverged", "replay": replay, "tlc": tlc}


def conform_records(
    records,
    *,
    toolchain: Toolchain | None = None,
    skip_reason: str = "no TLC toolchain given",
    timeout: float = 300,
    keep: Path | None = None,
) -> ConformReport:
    """Replay `records` (a run's audit records, in order) with the Python core and, when a
    TLC toolchain is given, validate the trace they export with TLC."""
    start = time.monotonic()
    report, error = None, None
    try:
        report = replay(records)
    except (KeyError, TypeError, ValueError, IndexError, GovtrainError) as exc:
        error = f"malformed record ({type(exc).__name__}: {exc})"
    replay_seconds = time.monotonic() - start
    if toolchain is None:
        return ConformReport(report, error, replay_seconds, None, skip_reason, True, 0.0)
    start = time.monotonic()
    try:
        lines = list(trace_lines(records))
    except OutOfTLCRange as exc:  # TLC cannot evaluate it: no verdict either way
        return ConformReport(report, error, replay_seconds, None, str(exc), True, 0.0)
    except (KeyError, TypeError, ValueError, IndexError, GovtrainError) as exc:
        note = f"cannot export the trace ({type(exc).__name__}: {exc})"
        return ConformReport(report, error, replay_seconds, None, note, False, 0.0)
    validation = validate_trace(lines, toolchain=toolchain, timeout=timeout, keep=keep)
    seconds = time.monotonic() - start
    return ConformReport(report, error, replay_seconds, validation, None, False, seconds)
