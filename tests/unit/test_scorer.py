"""The learned router scorer on its own: the straight-through mask and its gradients, the
entropy term, a planted signal learned, config errors and refusals (in real runs: bit-exact
resume and the audited digest, tests/integration/test_scorer.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from govtrain.governance.config import LearnedScorerConfig, parse_governance
from govtrain.governance.errors import ConfigError, GovtrainError
from govtrain.pipeline import scorer
from govtrain.pipeline.config import parse_config
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.models import build_model
from tests.conftest import tiny_run

pytestmark = pytest.mark.torch


GROUPS = ["a", "b", "c"]


LEARNED = {
    "governance__router__scorer": "learned",
    "governance__router__learned": {"learn_every": 2},
}


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
