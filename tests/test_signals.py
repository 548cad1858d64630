"""Signals: the drift reading separates steady motion from noise; the schedule is cosine."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from govtrain.pipeline.config import TrainConfig
from govtrain.pipeline.signals import SignalMeter, drift_reading

pytestmark = pytest.mark.torch


def _walk(steps: int, drift: float, noise: float, seed: int = 0) -> list[list[float]]:
    """A 64-dimensional trajectory: constant drift plus independent noise per step."""
    rng = random.Random(seed)
    x, out = [0.0] * 64, []
    for _ in range(steps):
        x = [v + drift + rng.gauss(0, noise) for v in x]
        out.append(x)
    return out


def _reading(path: list[list[float]], w: int) -> float:
    now, one, two = path[-1], path[-1 - w], path[-1 - 2 * w]
    d1 = sum((a - b) ** 2 for a, b in zip(now, one, strict=True))
    d2 = sum((a - b) ** 2 for a, b in zip(now, two, strict=True))
    return drift_reading(d1, d2)


def test_steady_drift_reads_high_and_a_random_walk_low() -> None:
    assert _reading(_walk(101, drift=0.1, noise=0.0), 50) == pytest.approx(1.0)
    assert _reading(_walk(101, drift=0.0, noise=1.0), 50) < 0.3
    oscillating = [[(-1) ** t] * 64 for t in range(101)]
    assert _reading(oscillating, 25) == 0.0  # back where it was: no coherent motion
    assert drift_reading(0.0, 5.0) == 0.0  # a group that did not move at all


def test_drift_meter_holds_the_last_reading_and_forgets_on_reset() -> None:
    meter = SignalMeter(["a"], window=5, kind="drift")
    assert meter.signal("a") == 0.0
    meter.record_drift("a", 0.7)
    meter.record("a", 3.0)  # gradient norms do not move a drift meter
    assert meter.signal("a") == 0.7
    restored = SignalMeter(["a"], window=5, kind="drift")
    restored.load_state_dict(meter.state_dict())
    assert restored.signal("a") == 0.7
    meter.reset("a")
    assert meter.signal("a") == 0.0
    with pytest.raises(ValueError, match="signal must be one of"):
        SignalMeter(["a"], window=5, kind="rank")


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    from govtrain.pipeline.trainer import scheduled_lr

    cfg = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10)
    lrs = [scheduled_lr(cfg, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert scheduled_lr(cfg, 110, 110) == pytest.approx(0.0, abs=1e-12)
    constant = TrainConfig(lr=0.3)
    assert {scheduled_lr(constant, s, 50) for s in range(50)} == {0.3}
    assert math.isclose(scheduled_lr(cfg, 35, 110), 0.5 * (1 + math.cos(math.pi * 0.25)))
