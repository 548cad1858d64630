"""The learned router scorer in real runs: bit-exact resume, the audited digest, a loop
that forgets learn_router (the scorer on its own: tests/unit/test_scorer.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.governance.errors import GovtrainError
from govtrain.governance.record import RecordSchemaError, StepRecord
from govtrain.pipeline.config import parse_config
from govtrain.pipeline.trainer import GovernedTrainer
from tests.conftest import tiny_run, train_tiny
from tests.unit.test_scorer import LEARNED

pytestmark = pytest.mark.torch

HEX = set("0123456789abcdef")


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("learned") / "full"
    return run_dir, train_tiny(run_dir, **LEARNED)


def steps_of(run_dir: Path) -> list[dict]:
    return [r.body for r in read_records(run_dir / "audit.jsonl") if r.kind == "step"]


def test_resume_with_the_learned_scorer_is_bit_exact(learned_run, tmp_path: Path) -> None:
    full_dir, full = learned_run
    part = tmp_path / "part"
    train_tiny(part, stop_after=20, **LEARNED)
    resumed = GovernedTrainer.resume(part)
    resumed.train(progress=False)
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    mine, theirs = full.gov.scorer.state_dict(), resumed.gov.scorer.state_dict()
    for k, v in mine["nets"].items():
        assert torch.equal(v, theirs["nets"][k]), k
    for i, state in mine["optimizer"]["state"].items():
        assert all(torch.equal(v, theirs["optimizer"]["state"][i][k]) for k, v in state.items())

    def timeless(d: Path) -> list[dict]:
        return [{k: v for k, v in s.items() if k != "step_time_ms"} for s in steps_of(d)]

    assert timeless(part) == timeless(full_dir)
    assert verify_run(part).closed and replay(read_records(part / "audit.jsonl")).ok


def test_each_step_record_carries_the_scorer_digest(learned_run, tiny_full_run) -> None:
    run_dir, trainer = learned_run
    steps = steps_of(run_dir)
    digests = [s["scorer"] for s in steps]
    assert all(len(d) == 64 and set(d) <= HEX for d in digests)
    assert digests[-1] == trainer.gov.scorer.digest()
    # each step names the parameters that scored it: they change right after each learn
    # step (every 2nd; a backward ran on each of them), and step 0's are the seeded ones
    changed = [
        s["step"] for s, prev in zip(steps[1:], digests, strict=False) if s["scorer"] != prev
    ]
    assert changed == [s for s in range(1, 40) if s % 2 == 1]
    fresh = GovernedTrainer(parse_config(tiny_run(**LEARNED)), run_dir.parent / "fresh")
    assert digests[0] == fresh.gov.scorer.digest()
    # each group routed by its own scores: two groups, the same quota, different samples
    assert any(
        a["quota"] == b["quota"] and a["digest"] != b["digest"]
        for s in steps
        for a, b in itertools.combinations(s["routed"].values(), 2)
        if 0 < a["quota"] < 8
    )
    assert replay(read_records(run_dir / "audit.jsonl")).ok
    assert all("scorer" not in s for s in steps_of(tiny_full_run[0]))  # scorer: loss
    names = trainer.gov.names
    assert StepRecord.from_dict(steps[3], names).scorer == digests[3]
    with pytest.raises(RecordSchemaError, match="not a SHA-256"):
        StepRecord.from_dict({**steps[3], "scorer": "cafe"}, names)


def test_a_loop_that_never_calls_learn_router_is_stopped(tmp_path: Path) -> None:
    trainer = GovernedTrainer(parse_config(tiny_run(**LEARNED)), tmp_path / "r")
    trainer.start()
    trainer.gov.learn_router = lambda losses_after: None  # the call forgotten
    with pytest.raises(GovtrainError, match="learn_router was not called"):
        trainer.train_step()
