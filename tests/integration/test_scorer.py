"""The learned router scorer: straight-through gradients, entropy, a planted signal, bit-exact
resume, the audited digest, config errors and refusals."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.governance.config import LearnedScorerConfig, parse_governance
from govtrain.governance.errors import ConfigError, GovtrainError
from govtrain.governance.record import RecordSchemaError, StepRecord
from govtrain.pipeline import scorer
from govtrain.pipeline.config import parse_config
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.models import build_model
from govtrain.pipeline.trainer import GovernedTrainer
from tests.conftest import tiny_run, train_tiny

pytestmark = pytest.mark.torch

GROUPS = ["a", "b", "c"]
LEARNED = {
    "governance__router__scorer": "learned",
    "governance__router__learned": {"learn_every": 2},
}
HEX = set("0123456789abcdef")


def bare_scorer(**cfg) -> scorer.LearnedScorer:
    """A LearnedScorer for features made up by the test (no model outputs to watch)."""
    return scorer.LearnedScorer(
        torch.nn.Linear(2, 2), {}, GROUPS, LearnedScorerConfig(**cfg), seed=0
    )


def features(gen: torch.Generator, batch: int = 16) -> dict[str, torch.Tensor]:
    return {n: torch.randn(batch, len(scorer.FEATURES), generator=gen) for n in GROUPS}


def test_the_mask_is_the_routers_top_k_with_the_softmax_gradient() -> None:
    s = torch.tensor([0.3, 2.0, -1.0, 2.0, 0.7], requires_grad=True)
    b = torch.tensor([1.0, -0.5, 2.0, 0.1, -1.0])
    m = scorer.straight_through_mask(s, 2, 0.5)
    assert m.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]  # routing.route: top 2, tie to index 1
    (grad,) = torch.autograd.grad((m * b).sum(), s)
    soft = 2 * torch.softmax(s / 0.5, dim=0)
    (expected,) = torch.autograd.grad((soft * b).sum(), s)
    assert torch.allclose(grad, expected) and grad.abs().sum() > 0
    assert not (scorer.topk_mask(s, 2) * b).sum().requires_grad  # the hard mask alone: none


def test_straight_through_gradients_reach_every_groups_scorer(monkeypatch) -> None:
    gen = torch.Generator().manual_seed(0)
    x, b = features(gen), torch.randn(16, generator=gen)
    ks = dict.fromkeys(GROUPS, 4)
    learned = bare_scorer(entropy=0.0)
    before = {k: v.clone() for k, v in learned.nets.state_dict().items()}
    learned.learn(x, b, ks)
    for name, p in learned.nets.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(not torch.equal(before[k], v) for k, v in learned.nets.state_dict().items())

    # without the straight-through term (the hard mask, kept in the graph) nothing learns
    monkeypatch.setattr(
        scorer, "straight_through_mask", lambda s, k, t: scorer.topk_mask(s, k) + 0 * s
    )
    frozen = bare_scorer(entropy=0.0)
    before = {k: v.clone() for k, v in frozen.nets.state_dict().items()}
    frozen.learn(x, b, ks)
    assert all(p.grad.abs().sum() == 0 for p in frozen.nets.parameters())
    assert all(torch.equal(before[k], v) for k, v in frozen.nets.state_dict().items())


def test_the_entropy_term_counteracts_collapse() -> None:
    """One sample always helps most: without the entropy term the softmax collapses onto it."""
    gen = torch.Generator().manual_seed(1)
    x = features(gen)
    b = torch.zeros(16)
    b[5] = 10.0
    ks = dict.fromkeys(GROUPS, 4)
    left = {}
    for weight in (0.0, 1.0):
        learned = bare_scorer(entropy=weight, lr=0.05)
        for _ in range(150):
            learned.learn(x, b, ks)
        with torch.no_grad():
            left[weight] = float(scorer.entropy(torch.tensor(learned.scores(x)["a"]), 1.0))
    assert left[0.0] < 0.6 * math.log(16)  # collapsed
    assert left[1.0] > left[0.0] + 0.5


def test_the_scorer_learns_a_planted_signal() -> None:
    """The benefit is a known function of one feature (a different one per group): each
    group's top-k recovers the planted samples far above chance (k/B = 0.25)."""
    gen = torch.Generator().manual_seed(2)
    learned = bare_scorer()
    batch, k = 16, 4
    ks = dict.fromkeys(GROUPS, k)

    def planted() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = features(gen, batch)
        signal = torch.randn(batch, generator=gen)
        for i, n in enumerate(GROUPS):
            x[n][:, i] = signal  # group a sees it as feature 0, b as 1, c as 2
        return x, signal

    for _ in range(300):
        x, signal = planted()
        learned.learn(x, signal + 0.3 * torch.randn(batch, generator=gen), ks)
    hits = dict.fromkeys(GROUPS, 0)
    trials = 100
    for _ in range(trials):
        x, signal = planted()
        truth = set(signal.topk(k).indices.tolist())
        for n, s in learned.scores(x).items():
            hits[n] += len(truth & set(torch.tensor(s).topk(k).indices.tolist()))
    assert all(h / (trials * k) > 0.8 for h in hits.values()), hits


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


def test_torchrun_is_refused_by_name() -> None:
    cfg = parse_config(tiny_run(**LEARNED))
    model = build_model(cfg.model, 32, 16)
    opt = torch.optim.AdamW(model.parameters())
    with pytest.raises(GovtrainError, match=r"router.scorer 'learned' is not supported under"):
        Governor(model, opt, cfg.governance, world=SimpleNamespace())


@pytest.mark.parametrize(
    ("router", "field"),
    [
        ({"scorer": "learnt"}, "governance.router.scorer"),
        ({"learned": {"hidden": 0}}, "governance.router.learned.hidden"),
        ({"learned": {"learn_every": 0}}, "governance.router.learned.learn_every"),
        ({"learned": {"temperature": 0.0}}, "governance.router.learned.temperature"),
        ({"learned": {"entropy": -1.0}}, "governance.router.learned.entropy"),
        ({"learned": {"lr": 1}}, None),  # a number, not an error
        ({"learned": {"hidden": 16.0}}, "governance.router.learned.hidden"),
        ({"learned": {"momentum": 0.9}}, "governance.router.learned.momentum"),
    ],
)
def test_config_errors_name_the_field(router, field) -> None:
    raw = tiny_run()["governance"]
    raw["router"] = {**raw["router"], **router}
    if field is None:
        assert parse_governance(raw).router.learned.lr == 1
        return
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_governance(raw)


def test_the_callbacks_refusal_names_the_field() -> None:
    cfg = parse_governance(tiny_run(governance__router__scorer="learned")["governance"])
    (line,) = scorer.refused(cfg, "the HF callback")
    assert "router.scorer 'learned'" in line and "the HF callback" in line
    assert scorer.refused(parse_governance(tiny_run()["governance"]), "the HF callback") == []
