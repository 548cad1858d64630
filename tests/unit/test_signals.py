"""Signals: each registered class reads what it should from a step and the registry is the
one list of signals (a new one governing a real run, the example of docs/signals.md:
tests/integration/test_signals.py). Also: the LR schedule is cosine."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from govtrain.governance import readings
from govtrain.governance.errors import ConfigError
from govtrain.governance.state import Phase
from govtrain.pipeline import signals
from govtrain.pipeline.config import GovernOptions, TrainConfig, parse_options
from govtrain.pipeline.signals import Context, Drift, GradNorm, Spectral, drift_reading

pytestmark = pytest.mark.torch

A, C = {"a": Phase.ACTIVE}, {"a": Phase.CONVERGED}


def _context(*params: torch.Tensor, window: int = 2, iterations: int = 3) -> Context:
    weights = [torch.nn.Parameter(p.clone()) for p in params]
    return Context({"a": weights}, window, True, iterations, torch.device("cpu"))


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


def test_drift_reads_its_group_every_window_of_own_steps_and_forgets_on_reset() -> None:
    ctx = _context(torch.zeros(64), window=2)
    drift, (w,) = Drift(ctx), ctx.params["a"]
    for _ in range(4):  # two windows of a steady drift: two snapshots, no reading yet
        with torch.no_grad():
            w += 0.1
        drift.step(A)
    assert drift.value("a") == 0.0
    for phases in (C, C, A, A):  # frozen steps are not its own: the weights hold still
        with torch.no_grad():
            w += 0.1 if phases is A else 0.0
        drift.step(phases)
    assert drift.value("a") == pytest.approx(1.0)  # d2 = 2 d1: a steady drift
    restored = Drift(ctx)
    restored.load_state_dict(drift.state_dict())
    assert restored.value("a") == drift.value("a")
    drift.reset("a")
    assert drift.value("a") == 0.0 and not drift.state_dict()["snapshots"]


def test_grad_norm_compares_its_windows_and_a_skipped_step_leaves_nothing() -> None:
    grad_norm = GradNorm(_context(torch.zeros(2), window=1))
    grad_norm.gradient("a", torch.tensor([3.0, 4.0]))  # norm 5
    grad_norm.step(A)
    grad_norm.gradient("a", torch.tensor([100.0, 0.0]))
    grad_norm.skip()  # its update was skipped: that gradient is not the group's
    grad_norm.gradient("a", torch.tensor([0.0, 6.0]))
    grad_norm.gradient("a", torch.tensor([8.0, 0.0]))  # two tensors: norm 10
    grad_norm.step(A)
    assert grad_norm.value("a") == pytest.approx(1.0)  # |10 - 5| / 5
    grad_norm.gradient("a", torch.tensor([7.0, 0.0]))
    grad_norm.step(C)  # a frozen group's window stands still
    assert grad_norm.value("a") == pytest.approx(1.0)
    grad_norm.reset("a")
    assert grad_norm.value("a") == 0.0


def test_spectral_reads_the_update_over_the_weights_from_the_second_probe() -> None:
    spectral = Spectral(_context(torch.diag(torch.tensor([2.0, 1.0])), iterations=50))
    (w,) = spectral.ctx.params["a"]
    assert spectral.measure("a", Phase.ACTIVE, None) is None  # nothing to compare with
    with torch.no_grad():
        w[0, 0] += 0.2  # sigma_max(update) 0.2, sigma_max(weights) 2.2
    assert spectral.measure("a", Phase.ACTIVE, None) == pytest.approx(0.2 / 2.2)
    assert spectral.measure("a", Phase.CONVERGED, None) is None  # frozen: not measured


def test_the_registry_is_the_one_list_of_signals() -> None:
    assert set(signals.SIGNALS) == set(readings.SIGNALS)
    for name, cls in signals.SIGNALS.items():
        assert issubclass(cls, readings.SIGNALS[name])  # the measuring side extends the rule
    for name in readings.SIGNALS:
        assert GovernOptions(signal=name).signal == name
    assert GovernOptions(measure=readings.measures()).measure == signals.MEASURES
    with pytest.raises(ConfigError, match="must be a registered signal"):
        parse_options({"signal": "rank"}, "options")
    with pytest.raises(ConfigError, match="'drift' is not a measure"):
        parse_options({"measure": ["drift"]}, "options")

    class Unruled(signals.Signal):  # a measuring side without a pure side
        name = "unruled"

    with pytest.raises(ValueError, match="register its pure side first"):
        signals.register(Unruled)
    with pytest.raises(ValueError, match="registered already"):
        readings.register(readings.GradNorm)


def test_cosine_schedule_warms_up_then_decays_to_zero() -> None:
    from govtrain.pipeline.schedule import scheduled_lr

    cfg = TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=10)
    lrs = [scheduled_lr(cfg, s, 110) for s in range(110)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert scheduled_lr(cfg, 110, 110) == pytest.approx(0.0, abs=1e-12)
    constant = TrainConfig(lr=0.3)
    assert {scheduled_lr(constant, s, 50) for s in range(50)} == {0.3}
    assert math.isclose(scheduled_lr(cfg, 35, 110), 0.5 * (1 + math.cos(math.pi * 0.25)))
