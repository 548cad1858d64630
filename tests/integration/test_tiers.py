"""Governed data tiers in a real run: a tiered run records, replays and resumes its tiers
exactly, and forged re-scorings or plans are named (the pure side, no tier starves, tiers
move on evidence, sampling follows the tiers: tests/unit/test_tiers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.formal.replay import replay
from govtrain.governance import tiers
from tests.conftest import altered, train_tiny

TIERED = {
    "data__tiers": {
        "rescore_every": 3,
        "max_wait": 10,
        "history": 2,
        "mastered": 0.97,
        "struggling": 1.03,
        "failing": 1.1,
    },
    "data__dedup": {"threshold": 0.8},
}


def step_rows(run_dir: Path) -> list:
    return [r.body["samples"] for r in read_records(run_dir / "audit.jsonl") if r.kind == "step"]


@pytest.fixture(scope="module")
def tiered_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiers") / "full"
    return run_dir, train_tiny(run_dir, **TIERED)


@pytest.mark.torch
def test_a_tiered_run_records_and_replays_its_tiers(tiered_run):
    run_dir, trainer = tiered_run
    records = read_records(run_dir / "audit.jsonl")
    start = records[0].body
    assert start["data_pipeline"]["train_sequences"] == trainer.corpus.train.shape[0]
    assert start["data_pipeline"]["dedup"]["examined"] >= trainer.corpus.train.shape[0]
    rescores = [r.body for r in records if r.kind == "rescore"]
    assert [r["step"] for r in rescores] == list(range(3, 40, 3))
    assert all(sum(r["counts"].values()) == trainer.corpus.train.shape[0] for r in rescores)
    assert any(r["moves"] for r in rescores)  # the tiers really moved
    report = replay(records)
    assert report.ok, report.divergence
    assert report.rescorings == len(rescores)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("what", "change", "needle"),
    [
        (
            "counts",
            lambda b: b["counts"].update(Mastered=b["counts"]["Mastered"] + 1),
            "recorded re-scoring",
        ),
        ("plan", lambda b: b.update(plan_sha256="0" * 64), "recorded re-scoring"),
        ("reserve", lambda b: b.update(reserve=0), "recorded re-scoring"),
    ],
)
def test_a_forged_rescoring_is_named(tiered_run, what, change, needle):
    run_dir, _ = tiered_run
    records = read_records(run_dir / "audit.jsonl")
    target = [r for r in records if r.kind == "rescore"][2]
    report = replay(altered(records, target.seq, change))
    assert report.divergence is not None and report.divergence.seq == target.seq, what
    assert needle in str(report.divergence)


@pytest.mark.torch
def test_a_step_off_its_plan_or_a_forged_loss_is_named(tiered_run):
    run_dir, _ = tiered_run
    records = read_records(run_dir / "audit.jsonl")
    step = next(r for r in records if r.kind == "step" and r.body["step"] == 7)
    swapped = altered(records, step.seq, lambda b: b["samples"]["rows"].reverse())
    report = replay(swapped)
    assert report.divergence.seq == step.seq and "the plan gives" in str(report.divergence)
    # a loss changed: it no longer averages to the step's loss
    early = next(r for r in records if r.kind == "step" and r.body["step"] == 1)
    forged = altered(records, early.seq, lambda b: b["samples"]["losses"].__setitem__(0, 1e6))
    report = replay(forged)
    assert report.divergence.seq == early.seq and "average" in str(report.divergence)

    # two losses changed, their mean kept: the next re-scoring no longer follows
    def shift(body):
        body["samples"]["losses"][0] += 5.0
        body["samples"]["losses"][1] -= 5.0

    report = replay(altered(records, early.seq, shift))
    first = next(r for r in records if r.kind == "rescore")
    assert report.divergence.seq == first.seq and "recorded re-scoring" in str(report.divergence)
    # a re-scoring dropped, or moved to a later period's start
    dropped = [r for r in records if r.seq != first.seq]
    assert "reach period 0" in str(replay(dropped).divergence)
    moved = altered(records, first.seq, lambda b: b.update(step=b["step"] + 9))
    report = replay(moved)
    assert report.divergence.seq == first.seq and "the next is due at step 3" in str(
        report.divergence
    )


@pytest.mark.torch
@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["samples"]["rows"].__setitem__(0, float(b["samples"]["rows"][0])),
        lambda b: b["samples"]["losses"].__setitem__(0, 10**400),
        lambda b: b["samples"]["losses"].__setitem__(0, True),
        lambda b: b["samples"].update(losses=b["samples"]["losses"][:-1]),
        lambda b: b.pop("samples"),
    ],
)
def test_malformed_samples_are_a_divergence_not_a_crash(tiered_run, change):
    run_dir, _ = tiered_run
    records = read_records(run_dir / "audit.jsonl")
    step = next(r for r in records if r.kind == "step" and r.body["step"] == 4)
    report = replay(altered(records, step.seq, change))
    assert report.divergence.seq == step.seq and "lacks its samples" in str(report.divergence)


@pytest.mark.torch
@pytest.mark.parametrize(
    ("field", "value"), [("train_sequences", -5), ("train_sequences", "231"), ("seed", "x")]
)
def test_a_run_start_that_cannot_drive_the_tiers_is_a_divergence(tiered_run, field, value):
    run_dir, _ = tiered_run
    records = read_records(run_dir / "audit.jsonl")

    def change(body):
        (body["data_pipeline"] if field == "train_sequences" else body["config"])[field] = value

    report = replay(altered(records, 0, change))
    assert report.divergence is not None and "cannot drive the data tiers" in str(report.divergence)


@pytest.mark.torch
@pytest.mark.parametrize("every", [3, 4])  # step 20: mid-period, and a period's first step
def test_resume_restores_tiers_and_the_sampler_exactly(tiered_run, tmp_path, every):
    from govtrain.pipeline.trainer import GovernedTrainer

    extra = {**TIERED, "data__tiers": {**TIERED["data__tiers"], "rescore_every": every}}
    if every == 3:
        full_dir, full = tiered_run
    else:
        full_dir = tmp_path / "full"
        full = train_tiny(full_dir, **extra)
    part = tmp_path / "part"
    train_tiny(part, stop_after=20, **extra)
    resumed = GovernedTrainer.resume(part)
    assert resumed.tiers == tiers.TierState.from_dict(resumed.tiers.to_dict())
    resumed.train(progress=False)
    assert resumed.tiers == full.tiers
    assert step_rows(part) == step_rows(full_dir)
    import torch

    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    report = replay(read_records(part / "audit.jsonl"))
    assert report.ok, report.divergence


@pytest.mark.torch
def test_resume_refuses_data_that_no_longer_gives_the_committed_sequences(tmp_path, monkeypatch):
    from govtrain.pipeline import trainer as trainer_module
    from govtrain.pipeline.trainer import GovernedTrainer, RunError

    part = tmp_path / "part"
    train_tiny(part, stop_after=10, **TIERED)
    real = trainer_module.dedup

    def one_more_removed(corpus, cfg):
        kept, report = real(corpus, cfg)
        shorter = type(kept)(kept.train[:-1], kept.eval, kept.vocab_size, kept.files)
        return shorter, {**report, "kept": report["kept"] - 1, "removed": report["removed"] + 1}

    monkeypatch.setattr(trainer_module, "dedup", one_more_removed)
    before = (part / "audit.jsonl").read_bytes()
    with pytest.raises(RunError, match=r"data pipeline now gives 230 .* \(did the data change\?\)"):
        GovernedTrainer.resume(part)
    assert (part / "audit.jsonl").read_bytes() == before
