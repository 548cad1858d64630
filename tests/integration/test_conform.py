"""Replay validation: a real run replays exactly; any altered decision is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.formal.conform import conform_records
from govtrain.formal.replay import replay
from tests.conftest import altered, tlc_toolchain, train_tiny

pytestmark = pytest.mark.torch


def records(run_dir: Path) -> list[Record]:
    return read_records(run_dir / "audit.jsonl")


def first_step_with_transition(recs: list[Record]) -> Record:
    return next(r for r in recs if r.kind == "step" and r.body["transitions"])


def test_real_run_replays_exactly(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    report = replay(records(run_dir))
    assert report.ok, report.divergence
    assert report.steps == 40 and report.transitions > 0


def test_resumed_run_replays_exactly(tmp_path: Path) -> None:
    from govtrain.pipeline.trainer import GovernedTrainer

    train_tiny(tmp_path / "r", stop_after=15)
    GovernedTrainer.resume(tmp_path / "r").train(progress=False)
    report = replay(records(tmp_path / "r"))
    assert report.ok, report.divergence
    assert report.steps == 40


def test_superseded_steps_after_a_crash_are_rewound(tiny_full_run) -> None:
    """A resume from step 20 after records up to 39: replay restarts at the checkpoint."""
    run_dir, _ = tiny_full_run
    recs = records(run_dir)
    resume = Record(len(recs), "run_resume", "", {"from_step": 20}, b"")
    again = [r for r in recs if r.kind == "step" and r.body["step"] >= 20]
    report = replay([*recs, resume, *again])
    assert report.ok, report.divergence
    assert report.steps == 60


@pytest.mark.parametrize(
    ("field", "change", "needle"),
    [
        ("transitions", lambda b: b["transitions"].pop(), "recorded transitions"),
        (
            "action name",
            lambda b: b["transitions"][0].update(action="Freeze"),
            "recorded transitions",
        ),
        ("state", lambda b: b["state"].update(clock=b["state"]["clock"] + 1), "recorded state"),
        ("decision", lambda b: b["decision"].update(budget_action="Ration"), "recorded decision"),
        (
            "observation",
            lambda b: [o.update(signal=0.0, need=0.0) for o in b["observations"].values()],
            "recorded",
        ),
    ],
)
def test_altered_record_is_named(tiny_full_run, field, change, needle) -> None:
    run_dir, _ = tiny_full_run
    recs = records(run_dir)
    target = first_step_with_transition(recs)
    report = replay(altered(recs, target.seq, change))
    assert not report.ok, field
    assert report.divergence.seq == target.seq
    assert needle in str(report.divergence) and f"record seq {target.seq}" in str(report.divergence)


def test_routing_that_ignores_the_decision_is_caught(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    recs = records(run_dir)
    target = next(r for r in recs if r.kind == "step" and r.body["step"] == 5)
    group = next(g for g, v in target.body["routed"].items() if v["quota"] > 0)
    report = replay(altered(recs, target.seq, lambda b: b["routed"][group].update(quota=0)))
    assert report.divergence.seq == target.seq
    assert f"group {group} was routed 0 samples" in str(report.divergence)


def test_shadow_mode_decides_and_audits_but_applies_nothing(tmp_path: Path) -> None:
    trainer = train_tiny(tmp_path / "shadow", **{"train__mode": "observe"})
    recs = records(tmp_path / "shadow")
    assert replay(recs).ok
    steps = [r.body for r in recs if r.kind == "step"]
    assert all(v["quota"] == 8 for s in steps for v in s["routed"].values())
    assert any(s["transitions"] for s in steps)
    assert all(p.requires_grad for p in trainer.model.parameters())
    if tlc_toolchain() is None:
        return
    # TLC reads `enforced: false` from the trace: the whole batch, every step
    assert conform_records(recs, toolchain=tlc_toolchain()).ok
    target = next(r for r in recs if r.kind == "step" and r.body["step"] == 9)
    cut = altered(recs, target.seq, lambda b: b["routed"]["top"].update(quota=7))
    bad = conform_records(cut, toolchain=tlc_toolchain()).tlc.mismatch
    assert bad.seq == target.seq and "routed[top]: spec 8, trace 7" in bad.differences


def _quiet_steps(recs: list) -> list[int]:
    """Indices of step records whose step took no action (the replay's states agree around them)."""
    return [i for i, r in enumerate(recs) if r.kind == "step" and not r.body["transitions"]]


@pytest.mark.parametrize("edit", ["drop", "repeat", "swap"])
def test_dropped_repeated_or_swapped_step_records_are_named(tiny_full_run, edit: str) -> None:
    run_dir, _ = tiny_full_run
    recs = records(run_dir)
    quiet = _quiet_steps(recs)
    i = next(q for q in quiet if q + 1 in quiet and recs[q].body["step"] > 25)
    step = recs[i].body["step"]
    if edit == "drop":
        recs = recs[:i] + recs[i + 1 :]
    elif edit == "repeat":
        recs = [*recs[: i + 1], recs[i], *recs[i + 1 :]]
    else:
        recs = [*recs[:i], recs[i + 1], recs[i], *recs[i + 2 :]]
    report = replay(recs)
    assert not report.ok
    assert "is due (a step record is missing, repeated or out of order)" in report.divergence.what
    assert report.divergence.step in (step, step + 1)


def test_a_nonfinite_step_keeps_the_numbering(tiny_full_run) -> None:
    """A skipped update is recorded as `nonfinite` with its step's number; the step records
    after it carry the next numbers, and the state does not move."""
    run_dir, _ = tiny_full_run
    recs = records(run_dir)
    steps = [r for r in recs if r.kind == "step"]
    head = [r for r in recs if r.kind != "step" and r.seq < steps[0].seq]
    skipped = Record(0, "nonfinite", "", {"step": 0, "loss": float("nan")}, b"")
    shifted = [altered([r], 0, lambda b: b.update(step=b["step"] + 1))[0] for r in steps[:5]]
    assert replay([*head, skipped, *shifted]).ok
    assert not replay([*head, skipped, *steps[:5]]).ok
