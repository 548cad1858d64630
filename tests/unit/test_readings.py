"""Probe measurements to observations: geometry signals, guards, and replay reading them."""

from __future__ import annotations

import json

import pytest

from govtrain.governance.readings import (
    Guard,
    Readings,
    collapsing,
    relative_change,
)
from govtrain.governance.state import GroupObservation, Phase
from govtrain.governance.step import govern, initial_state

A, C = Phase.ACTIVE, Phase.CONVERGED
RANK = "effective_rank"


def _readings(signal: str = "grad_norm", guard: Guard | None = None) -> Readings:
    return Readings(["g"], signal, guard, signal_threshold=0.05, wake_threshold=0.5)


def test_relative_change_and_collapse() -> None:
    assert relative_change(10.0, 12.0) == pytest.approx(0.2)
    assert relative_change(0.0, 3.0) == 0.0  # nothing to compare with
    assert collapsing(10.0, 7.0, 0.2) and not collapsing(10.0, 9.0, 0.2)
    assert not collapsing(10.0, 20.0, 0.2)  # a rising rank is not a collapse


def test_a_geometry_signal_is_the_change_between_the_last_two_readings_since_activation() -> None:
    r = _readings(RANK)
    assert r.observe("g", A, 0.9, 0.0, probed=False) == (0.0, 0.0)  # no reading yet
    r.read({"g": {RANK: 10.0}}, {"g": A})
    assert r.observe("g", A, 0.9, 0.0, probed=True)[0] == 0.0  # one reading: no change yet
    r.read({"g": {RANK: 12.0}}, {"g": A})
    assert r.observe("g", A, 0.9, 0.0, probed=True)[0] == pytest.approx(0.2)
    assert r.observe("g", A, 0.9, 0.0, probed=False)[0] == pytest.approx(0.2)  # held
    r.transition("Awaken", "g")
    assert r.observe("g", A, 0.9, 0.0, probed=False)[0] == 0.0  # history starts afresh


def test_a_geometry_wake_compares_with_the_reading_the_group_converged_on() -> None:
    r = _readings(RANK)
    for v in (10.0, 10.1):
        r.read({"g": {RANK: v}}, {"g": A})
    r.transition("Converge", "g")
    r.read({"g": {RANK: 15.15}}, {"g": C})
    assert r.observe("g", C, 0.0, 0.0, probed=True) == (0.0, pytest.approx(0.5))
    assert r.observe("g", C, 0.0, 0.0, probed=False) == (0.0, 0.0)  # only on the probe


def test_the_collapse_guard_lifts_a_low_signal_to_the_threshold() -> None:
    r = _readings("grad_norm", Guard(collapse=0.2, wake=0.3))
    for v in (10.0, 7.0):  # a 30% fall in rank
        r.read({"g": {RANK: v}}, {"g": A})
    assert r.observe("g", A, 0.01, 0.0, probed=True) == (0.05, 0.0)
    assert r.observe("g", A, 0.01, 0.0, probed=False) == (0.05, 0.0)  # until the next probe
    assert r.observe("g", A, 0.3, 0.0, probed=False) == (0.3, 0.0)  # never lowered
    r.read({"g": {RANK: 6.9}}, {"g": A})  # stable again
    assert r.observe("g", A, 0.01, 0.0, probed=True) == (0.01, 0.0)


def test_the_wake_guard_wakes_a_converged_group_whose_rank_moved() -> None:
    r = _readings("grad_norm", Guard(collapse=0.2, wake=0.3))
    r.read({"g": {RANK: 10.0}}, {"g": A})
    r.transition("Converge", "g")
    r.read({"g": {RANK: 12.0}}, {"g": C})  # 20%: within the tolerance
    assert r.observe("g", C, 0.0, 0.1, probed=True) == (0.0, 0.1)
    r.read({"g": {RANK: 6.0}}, {"g": C})  # 40%
    assert r.observe("g", C, 0.0, 0.1, probed=True) == (0.0, 0.5)


def test_a_collapsing_group_is_never_declared_converged(small_cfg) -> None:
    """Through the pure core: low gradient signals converge a group, unless its rank falls."""

    names = ["embed", "body", "head"]

    def run(guarded: bool) -> set[Phase]:
        r = Readings(
            names,
            "grad_norm",
            Guard(0.1, 1.0) if guarded else None,
            small_cfg.governor.signal_threshold,
            small_cfg.governor.wake_threshold,
        )
        state, seen = initial_state(small_cfg), set()
        for step in range(small_cfg.total_steps):
            phases = {n: g.phase for n, g in zip(names, state.groups, strict=True)}
            r.read({"body": {RANK: 20.0 * 0.8**step}}, phases)  # falls 20% per probe
            base = 1.0 if step < 1 else 0.0  # high once, then low: would converge
            obs = []
            for n, p in phases.items():
                signal, wake = r.observe(n, p, base, 0.0, probed=True)
                obs.append(GroupObservation(signal, wake, signal))
            result = govern(state, obs, small_cfg)
            for t in result.transitions:
                if t.group is not None:
                    r.transition(t.action, t.group)
            state = result.state
            seen.add(state.groups[1].phase)
        return seen

    assert C in run(guarded=False)
    assert C not in run(guarded=True)


def test_readings_survive_a_round_trip() -> None:
    r = _readings(RANK, Guard(0.2, 0.3))
    r.read({"g": {RANK: 10.0}}, {"g": A})
    r.transition("Converge", "g")
    s = _readings(RANK, Guard(0.2, 0.3))
    s.load_state_dict(json.loads(json.dumps(r.state_dict())))
    assert s.state_dict() == r.state_dict()


# -- through a real run ------------------------------------------------------------------


@pytest.mark.torch
def test_a_real_collapse_lifts_the_signal_and_replay_reads_the_measurements(tmp_path) -> None:
    import torch

    from govtrain.audit.provenance import read_records
    from govtrain.formal.replay import replay
    from govtrain.pipeline.config import parse_config
    from govtrain.pipeline.trainer import GovernedTrainer
    from tests.conftest import altered
    from tools.tiny import tiny_run

    cfg = tiny_run(
        train__geometry_guard={"collapse": 0.3, "wake": 0.3},
        governance__governor__signal_threshold=0.9,  # gradients alone read low
    )
    groups = cfg["governance"]["groups"]  # top (block 1 + final norm) learns from the start
    groups[0]["level"], groups[2]["level"] = 1, 0
    trainer = GovernedTrainer(parse_config(cfg), tmp_path / "run")
    trainer.start()
    for _ in range(11):
        trainer.train_step()
    ln_f = trainer.model.transformer.ln_f
    with torch.no_grad():  # the final norm now writes every token onto one axis
        ln_f.weight.zero_()
        ln_f.weight[0] = 1.0
        ln_f.bias.zero_()
    for _ in range(6):
        trainer.train_step()
    trainer.audit.close()
    records = read_records(tmp_path / "run" / "audit.jsonl")
    steps = {r.body["step"]: r for r in records if r.kind == "step"}
    before, after = (steps[s].body["measurements"]["top"][RANK] for s in (10, 15))
    assert after < 0.5 * before  # the rank really collapsed ...
    top = steps[15].body["observations"]["top"]
    assert top["signal"] == 0.9  # ... and the guard lifted the signal to the threshold
    assert steps[15].body["state"]["groups"]["top"]["phase"] != "CONVERGED"
    assert replay(records).ok

    # measurements that show a collapse the recorded signal ignored
    seq = steps[10].seq
    assert steps[10].body["observations"]["top"]["signal"] < 0.9
    forged = altered(records, seq, lambda b: b["measurements"]["top"].update({RANK: 0.1}))
    report = replay(forged)
    assert not report.ok and report.divergence.step == 10
    assert "measurements give signal 0.9" in report.divergence.what
    bad = altered(records, seq, lambda b: b.update(measurements=[1, 2]))
    assert "measurements must map" in replay(bad).divergence.what


@pytest.mark.torch
@pytest.mark.parametrize(
    "signal", ["effective_rank", "participation_ratio", "isotropy", "distance_cv"]
)
def test_a_geometry_signal_run_replays_and_any_forged_measurement_is_caught(
    tmp_path, signal
) -> None:
    from govtrain.audit.provenance import read_records
    from govtrain.formal.replay import replay
    from tests.conftest import altered
    from tools.tiny import train_tiny

    train_tiny(tmp_path / "run", train__signal=signal)
    records = read_records(tmp_path / "run" / "audit.jsonl")
    assert replay(records).ok
    probed = [r for r in records if r.kind == "step" and "measurements" in r.body]
    assert [r.body["step"] for r in probed] == list(range(0, 40, 5))
    # block0 is trainable at step 10 and read at 5: nudge its reading there
    target = probed[2]
    assert target.body["observations"]["block0"]["signal"] > 0
    forged = altered(
        records, target.seq, lambda b: b["measurements"]["block0"].update({signal: 1e-3})
    )
    report = replay(forged)
    assert not report.ok and report.divergence.step == 10
