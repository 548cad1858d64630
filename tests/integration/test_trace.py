"""Trace export: one spec-vocabulary line per governance step, consistent with the log."""

from __future__ import annotations

import json

import pytest

from govtrain.formal.trace import export_trace

pytestmark = pytest.mark.torch

PHASES = {"DORMANT", "ACTIVE", "COOLING", "CONVERGED", "AWAKENED"}


def test_trace_has_init_then_one_line_per_step(tiny_full_run, tmp_path) -> None:
    run_dir, _ = tiny_full_run
    out = tmp_path / "trace.ndjson"
    lines = [json.loads(x) for x in export_trace(run_dir, out).splitlines()]
    assert out.read_text().count("\n") == len(lines)
    init, steps = lines[0], lines[1:]
    assert init["event"] == "Init"
    assert init["constants"]["GroupNames"] == ["embed", "block0", "top"]
    assert init["constants"]["EmergencyFraction"] == [1, 2]
    assert init["state"]["phase"] == ["ACTIVE", "ACTIVE", "DORMANT"]
    assert [s["step"] for s in steps] == list(range(40))
    clocks = [s["state"]["clock"] for s in steps]
    assert clocks == sorted(clocks) and clocks[0] == 1
    for line in steps:
        assert line["event"] == "GovernanceStep"
        assert set(line["state"]["phase"]) <= PHASES
        assert len(line["high"]) == len(line["wake"]) == 3
    labels = {a.split("(")[0] for s in steps for a in s["actions"]}
    assert {"Learn", "ActivateLevel", "Activate"} <= labels


def test_rewind_on_resume(tmp_path) -> None:
    from govtrain.pipeline.trainer import GovernedTrainer
    from tests.conftest import train_tiny

    train_tiny(tmp_path / "r", stop_after=15)
    GovernedTrainer.resume(tmp_path / "r").train(progress=False)
    lines = [json.loads(x) for x in export_trace(tmp_path / "r").splitlines()]
    rewinds = [x for x in lines if x["event"] == "Rewind"]
    assert len(rewinds) == 1 and rewinds[0]["fromStep"] == 15
    before = next(x for x in lines if x.get("step") == 14)
    assert rewinds[0]["state"] == before["state"]
