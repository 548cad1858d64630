"""A new signal, end to end (the example of docs/signals.md): one registered class that
governs a real run and replays (what each signal reads, the registry and the LR schedule:
tests/unit/test_signals.py)."""

from __future__ import annotations

import pytest
import torch

from govtrain.governance import readings
from govtrain.pipeline import signals

pytestmark = pytest.mark.torch


class WeightNormRule(readings.RelativeChange):
    """Pure side (in governance/readings.py for a shipped signal): read like geometry."""

    name = "weight_norm"


class WeightNorm(WeightNormRule, signals.Signal):
    """Measuring side (pipeline/signals.py): the L2 norm of the group's weights."""

    def measure(self, group, phase, hidden):
        weights = torch.cat([p.detach().flatten() for p in self.ctx.params[group]])
        return float(torch.linalg.vector_norm(weights))


@pytest.fixture
def weight_norm():
    """`weight_norm`, registered for one test."""
    readings.register(WeightNormRule)
    signals.register(WeightNorm)
    yield WeightNorm.name
    del signals.SIGNALS[WeightNorm.name], readings.SIGNALS[WeightNorm.name]


def test_a_new_signal_is_one_registered_class_that_governs_and_replays(
    tmp_path, weight_norm
) -> None:
    from govtrain.audit.provenance import read_records
    from govtrain.formal.replay import replay
    from tests.conftest import altered
    from tools.tiny import train_tiny

    # embed's weight norm changes by 8-13% per probe at first, under 9.5% by step 35
    train_tiny(
        tmp_path / "run", train__signal=weight_norm, governance__governor__signal_threshold=0.095
    )
    records = read_records(tmp_path / "run" / "audit.jsonl")
    steps = [r for r in records if r.kind == "step"]
    converged = [
        (r.body["step"], t["group"])
        for r in steps
        for t in r.body["transitions"]
        if t["action"] == "Converge"
    ]
    assert converged == [(37, "embed")]
    assert replay(records).ok  # replay reads the measurements by the registered rule
    probe = next(r for r in steps if r.body["step"] == 35)
    forged = altered(
        records, probe.seq, lambda b: b["measurements"]["embed"].update({weight_norm: 2.0})
    )
    report = replay(forged)
    assert not report.ok and report.divergence.step == 35
