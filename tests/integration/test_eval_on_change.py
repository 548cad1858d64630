"""`train.eval: on_change`: an evaluation is skipped only where the weights are unchanged
since the last one, so every skipped loss is the one the last evaluation measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.pipeline.trainer import GovernedTrainer
from tests.conftest import train_tiny

pytestmark = pytest.mark.torch

# a tiny run whose groups all converge long before its end and stay frozen (no Finish)
FREEZES = {
    "governance__total_steps": 120,
    "governance__hierarchy__emergency_fraction": 0.1,
    "governance__governor__signal_threshold": 0.2,
    "governance__governor__max_awakenings": 0,
}


def _by_kind(run: Path, *kinds: str) -> list[tuple[str, dict]]:
    skip = {"step_time_ms"}
    return [
        (r.kind, {k: v for k, v in r.body.items() if k not in skip})
        for r in read_records(run / "audit.jsonl")
        if r.kind in kinds
    ]


def test_a_frozen_model_is_not_re_evaluated(tmp_path: Path) -> None:
    every = train_tiny(tmp_path / "every", **FREEZES)
    lazy = train_tiny(tmp_path / "lazy", **FREEZES, train__eval="on_change")
    # evaluation never changes training: the same steps, states and decisions
    assert _by_kind(tmp_path / "every", "step") == _by_kind(tmp_path / "lazy", "step")
    evaluated = dict(
        (b["step"], b["loss"]) for k, b in _by_kind(tmp_path / "every", "eval") if k == "eval"
    )
    last = None
    skipped = 0
    for kind, body in _by_kind(tmp_path / "lazy", "eval", "eval_skipped"):
        if kind == "eval":
            assert body["loss"] == evaluated[body["step"]]
            last = body
        else:  # the loss it would have measured is the last one's: nothing changed since
            skipped += 1
            assert body["since"] == last["step"] and evaluated[body["step"]] == last["loss"]
    assert skipped > 0 and last["step"] == 120  # the end is always evaluated
    assert set(lazy.summary().final_state.values()) == {"CONVERGED"}
    s = lazy.summary()
    assert (s.evals, s.evals_skipped) == (len(evaluated) - skipped, skipped)
    assert every.summary().evals_skipped == 0
    assert verify_run(tmp_path / "lazy").closed
    assert replay(read_records(tmp_path / "lazy" / "audit.jsonl")).ok


def test_resume_skips_as_the_uninterrupted_run_does(tmp_path: Path) -> None:
    train_tiny(tmp_path / "whole", **FREEZES, train__eval="on_change")
    train_tiny(tmp_path / "part", stop_after=95, **FREEZES, train__eval="on_change")
    GovernedTrainer.resume(tmp_path / "part").train(progress=False)
    kinds = ("step", "eval", "eval_skipped")
    assert _by_kind(tmp_path / "part", *kinds) == _by_kind(tmp_path / "whole", *kinds)
