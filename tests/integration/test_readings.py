"""Probe measurements to observations through a real run: a collapse lifts the signal,
replay reads the recorded measurements, and a forged one is caught (the readings
themselves: tests/unit/test_readings.py)."""

from __future__ import annotations

import pytest

from tests.unit.test_readings import RANK


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
