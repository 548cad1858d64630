"""Governed data tiers (governance/tiers.py, specs/DataTiers.tla): no tier starves under
adversarial losses, tiers move only on evidence, sampling follows the tiers, and
near-duplicates are removed (a run with tiers replays and resumes exactly:
tests/integration/test_tiers.py)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govtrain.governance import tiers
from govtrain.governance.config import TIERS, TiersConfig
from govtrain.governance.errors import ConfigError
from tests.conftest import ROOT, examples

# the most a tier weight can bias the draw: an adversary uses both extremes
EXTREME = {"Mastered": 1e-6, "Learning": 1e6, "Struggling": 1e-6, "Failing": 1e-6}


def run_periods(n, batch, cfg, periods, loss_of, seed=0):
    """Drive the pure pipeline for `periods` periods; `loss_of(sample, period)` is the
    adversary. Returns every plan, checking the invariants at each re-scoring."""
    state = tiers.initial(n, cfg, batch, seed)
    plans = [list(state.plan)]
    for _ in range(periods):
        for step in range(cfg.rescore_every):
            drawn = tiers.rows(state, state.period * cfg.rescore_every + step, cfg, batch)
            tiers.Observe(state, drawn, [loss_of(s, state.period) for s in drawn], cfg)
        before, observed = list(state.tiers), set(state.observed)
        tiers.Rescore(state, cfg, batch, seed)
        assert tiers.WaitBounded(state, cfg), state.wait
        assert tiers.PlanSize(state, cfg, batch)
        assert tiers.ReserveInPlan(state, cfg)
        assert tiers.TiersMoveOnEvidence(before, state.tiers, observed)
        plans.append(list(state.plan))
    return plans


def longest_gap(n, plans):
    """The most consecutive plans any sample is missing from."""
    worst = 0
    for s in range(n):
        gap = 0
        for plan in plans:
            gap = 0 if s in plan else gap + 1
            worst = max(worst, gap)
    return worst


@settings(max_examples=examples(40), deadline=None)
@given(
    n=st.integers(8, 60),
    batch=st.integers(1, 6),
    every=st.integers(1, 4),
    max_wait=st.integers(1, 6),
    adversary=st.sampled_from(["starve_waiters", "flip", "constant", "one_outlier"]),
    seed=st.integers(0, 3),
)
def test_no_sample_starves_under_adversarial_losses(n, batch, every, max_wait, adversary, seed):
    """Whatever the losses, every sample is planned in every `max_wait` consecutive
    periods, with the weights as biased as they can be (EverySampleDrawn, WaitBounded)."""
    cfg = TiersConfig(rescore_every=every, max_wait=max_wait, weights=EXTREME)
    if every * batch > n or math.ceil(n / max_wait) > every * batch:
        with pytest.raises(ConfigError, match=r"data\.tiers\.(rescore_every|max_wait)"):
            tiers.initial(n, cfg, batch, seed)
        return
    # the adversary drives every sample it sees into a tier of negligible weight, or
    # makes the tiers churn, or leaves them all in one tier
    losses = {
        "starve_waiters": lambda s, p: 0.01 if s % 2 else 100.0,
        "flip": lambda s, p: 0.01 if (s + p) % 2 else 50.0,
        "constant": lambda s, p: 1.0,
        "one_outlier": lambda s, p: 1e3 if s == 0 else 1.0,
    }[adversary]
    plans = run_periods(n, batch, cfg, 3 * max_wait + 2, losses, seed)
    assert longest_gap(n, plans) < max_wait


def test_without_the_reserve_the_same_adversary_starves_samples(monkeypatch):
    """The starvation test can fail: with no reserve, extreme weights leave samples
    unplanned for many periods."""
    monkeypatch.setattr(tiers, "reserve_size", lambda samples, cfg: 0)
    cfg = TiersConfig(rescore_every=2, max_wait=3, weights=EXTREME)
    n, batch = 40, 7
    state = tiers.initial(n, cfg, batch, 0)
    plans = [list(state.plan)]
    for _ in range(12):
        for step in range(cfg.rescore_every):
            drawn = tiers.rows(state, state.period * cfg.rescore_every + step, cfg, batch)
            tiers.Observe(state, drawn, [0.01 if s % 2 else 100.0 for s in drawn], cfg)
        tiers.Rescore(state, cfg, batch, 0)
        plans.append(list(state.plan))
    assert longest_gap(n, plans) >= cfg.max_wait
    assert not tiers.WaitBounded(state, cfg)


def test_reserve_is_the_longest_waiting_ties_to_the_lower_index():
    """Reserve as DataTiers.tla writes it: s is reserved when fewer than R samples come
    before it (waited longer, or as long with a lower index)."""
    wait = [2, 0, 3, 2, 1, 3, 0, 2]
    for r in range(len(wait) + 1):
        by_spec = {
            s
            for s in range(len(wait))
            if sum(wait[t] > wait[s] or (wait[t] == wait[s] and t < s) for t in range(len(wait)))
            < r
        }
        assert set(tiers.Reserve(wait, r)) == by_spec


def test_tiers_come_from_the_recent_loss_over_the_median():
    cfg = TiersConfig(history=2, rescore_every=1, max_wait=4)
    state = tiers.initial(8, cfg, 8, 0)
    losses = {0: 0.1, 1: 0.5, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.4, 6: 3.0, 7: 1.0}
    tiers.Observe(state, list(range(8)), [losses[s] for s in range(8)], cfg)
    event = tiers.Rescore(state, cfg, 8, 0)
    # median 1.0: ratios .1, .5 Mastered; 1.4 Struggling; 3.0 Failing
    assert state.tiers == [
        "Mastered",
        "Mastered",
        "Learning",
        "Learning",
        "Learning",
        "Struggling",
        "Failing",
        "Learning",
    ]
    assert event["counts"] == {"Mastered": 2, "Learning": 4, "Struggling": 1, "Failing": 1}
    assert event["moves"] == {
        "Learning->Failing": 1,
        "Learning->Mastered": 2,
        "Learning->Struggling": 1,
    }
    # the history is the last `history` losses: two low ones move sample 6 back
    tiers.Observe(state, [6, 6], [1.0, 1.0], cfg)
    tiers.Rescore(state, cfg, 8, 0)
    assert state.tiers[6] == "Learning" and state.recent[6] == [1.0, 1.0]


def test_an_unobserved_sample_keeps_its_tier():
    cfg = TiersConfig(rescore_every=1, max_wait=2)
    state = tiers.initial(4, cfg, 2, 0)
    tiers.Observe(state, [0, 1, 2], [0.1, 1.0, 10.0], cfg)
    tiers.Rescore(state, cfg, 2, 0)
    assert state.tiers[:3] == ["Mastered", "Learning", "Failing"]
    # the median rises to 3.0: sample 1 would now be Mastered, but it was not observed
    tiers.Observe(state, [3], [5.0], cfg)
    tiers.Rescore(state, cfg, 2, 0)
    assert state.tiers == ["Mastered", "Learning", "Failing", "Struggling"]


def test_the_draw_follows_the_tier_weights():
    """Struggling samples at 8x the weight of Mastered ones are drawn far more often."""
    cfg = TiersConfig(
        rescore_every=1,
        max_wait=20,
        weights={"Mastered": 1.0, "Learning": 2.0, "Struggling": 8.0, "Failing": 1.0},
    )
    n, batch = 200, 20
    state = tiers.initial(n, cfg, batch, 0)
    state.tiers = ["Struggling" if s < 20 else "Mastered" for s in range(n)]
    drawn = Counter()
    for _ in range(200):
        state.period += 1
        state.plan = tiers.make_plan(state, cfg, batch, 0)
        drawn.update(state.plan)
    struggling = sum(drawn[s] for s in range(20)) / 20
    mastered = sum(drawn[s] for s in range(20, n)) / (n - 20)
    assert struggling > 4 * mastered


def test_capacity_errors_name_the_field_to_change():
    cfg = TiersConfig(rescore_every=2, max_wait=4)
    with pytest.raises(ConfigError, match=r"^router\.batch_size: a batch of 8 exceeds the 5"):
        tiers.initial(5, cfg, 8, 0)
    with pytest.raises(ConfigError, match=r"^data\.tiers\.rescore_every: .* at most every 3 steps"):
        tiers.initial(50, TiersConfig(rescore_every=4, max_wait=4), 16, 0)
    with pytest.raises(ConfigError, match=r"^data\.tiers\.max_wait: .* at least 4"):
        tiers.initial(50, TiersConfig(rescore_every=1, max_wait=2), 16, 0)


def test_plans_are_seeded_and_state_round_trips():
    cfg = TiersConfig(rescore_every=2, max_wait=3)
    a, b = tiers.initial(30, cfg, 5, 7), tiers.initial(30, cfg, 5, 7)
    assert a.plan == b.plan and tiers.initial(30, cfg, 5, 8).plan != a.plan
    tiers.Observe(a, a.plan[:5], [1.0, 2.0, 3.0, 4.0, 5.0], cfg)
    assert tiers.TierState.from_dict(a.to_dict()) == a


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"mastered": 1.5}, "thresholds must rise"),
        ({"weights": {"Mastered": 0.0, "Learning": 1, "Struggling": 1, "Failing": 1}}, "starves"),
        ({"weights": {"Learning": 1.0}}, "missing"),
        ({"history": 0}, "history"),
        ({"weights": {"Mastered": True, "Learning": 1, "Struggling": 1, "Failing": 1}}, "numbers"),
        ({"weights": {"Mastered": "2", "Learning": 1, "Struggling": 1, "Failing": 1}}, "numbers"),
    ],
)
def test_bad_tier_configs_name_the_field(fields, needle):
    from govtrain.pipeline.config import parse_config
    from tools.tiny import tiny_run

    raw = tiny_run()
    raw["data"]["tiers"] = fields
    with pytest.raises(ConfigError, match=needle) as err:
        parse_config(raw)
    assert "data.tiers" in str(err.value) and "\n" not in str(err.value)


def test_the_spec_defines_the_python_names():
    text = (ROOT / "specs" / "DataTiers.tla").read_text()
    for name in (*tiers.SPEC_NAMES, "TiersMoveOnEvidence", "EverySampleDrawn"):
        assert f"\n{name}" in text and f"{name}" in text, name
    assert all(f'"{t}"' in (ROOT / "specs" / "MCDataTiers_AllTiers.cfg").read_text() for t in TIERS)


@pytest.mark.torch
def test_dedup_removes_near_duplicates_and_eval_leaks():
    import torch

    from govtrain.pipeline.config import DedupConfig
    from govtrain.pipeline.data import DUP_OF_EVAL, DUP_OF_TRAIN, Corpus, dedup

    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 500, (200, 48), generator=g)
    evals = torch.randint(0, 500, (10, 48), generator=g)
    train[10] = train[3]
    train[11] = train[3]
    train[11, 47] = 499  # the last token differs: still a near-duplicate
    train[50] = evals[2]
    kept, report = dedup(Corpus(train, evals, 500, ()), DedupConfig(threshold=0.8))
    assert report["removed_rows"] == [10, 11, 50]
    assert report["why"] == {DUP_OF_TRAIN: 2, DUP_OF_EVAL: 1}
    assert kept.train.shape[0] == 197 and torch.equal(kept.train[3], train[3])
    assert {e["like"] for e in report["examples"]} == {"train:3", "eval:2"}
    # unrelated sequences all stay
    _, clean = dedup(Corpus(train[:10], evals, 500, ()), DedupConfig())
    assert clean["removed"] == 0 and clean["kept"] == 10
    # a threshold that removes everything is refused, naming it
    with pytest.raises(ConfigError, match=r"^data\.dedup\.threshold: at 0\.8 every one"):
        dedup(Corpus(evals[:3].repeat(2, 1), evals, 500, ()), DedupConfig())
