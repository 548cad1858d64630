"""Governed data tiers (spec: `specs/DataTiers.tla`).

Training draws its batches from a *plan*: one period of `rescore_every` steps,
`Slots = rescore_every x batch` distinct samples. At every re-scoring (the
step that starts a period) each sample drawn since the last one takes the
tier its recent losses give (Mastered / Learning / Struggling / Failing), and
the next plan is made of

* the *reserve*: the `ceil(N / max_wait)` samples that have waited longest
  since they were last drawn (ties to the lower index), then
* a tier-weighted draw without replacement of the rest of the slots,

shuffled. The reserve is what makes the pipeline safe to bias: R samples that
outrank a waiting sample are drawn (and fall behind it) every period it is
passed over, so after w passes R*w < N, and no sample waits `max_wait`
periods (`WaitBounded`): every sample is drawn again within `max_wait`
re-scorings, however the losses push the weights (`EverySampleDrawn`).

Tiers are re-scored periodically, never only at the start, when the model
cannot yet tell easy from hard and every sample would land in one tier; a
sample's tier moves only on a loss observed since the last re-scoring
(`TiersMoveOnEvidence`). Everything is a pure function of the losses and the
seed (Python's own seeded `random.Random`), so replay recomputes every plan
and every re-scoring from the losses the step records carry.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from govtrain.governance.config import TIERS, Tier, TiersConfig
from govtrain.governance.errors import ConfigError

LEARNING: Tier = "Learning"  # a sample's tier until it is first scored
# the actions, operators and invariants named alike here and in DataTiers.tla
SPEC_NAMES = ("Observe", "Rescore", "Reserve", "WaitBounded", "PlanSize", "ReserveInPlan")


@dataclass
class TierState:
    tiers: list[Tier]  # per sample
    recent: list[list[float]]  # per sample: its last `history` losses
    observed: set[int]  # samples that got a loss since the last re-scoring
    wait: list[int]  # per sample: whole periods since it was last drawn
    period: int  # re-scorings done; the plan is period `period`'s
    plan: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tiers": [TIERS.index(t) for t in self.tiers],
            "recent": [list(r) for r in self.recent],
            "observed": sorted(self.observed),
            "wait": list(self.wait),
            "period": self.period,
            "plan": list(self.plan),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TierState:
        return cls(
            [TIERS[i] for i in d["tiers"]],
            [list(r) for r in d["recent"]],
            set(d["observed"]),
            list(d["wait"]),
            d["period"],
            list(d["plan"]),
        )


def reserve_size(samples: int, cfg: TiersConfig) -> int:
    """R: enough longest-waiting samples per period that none waits `max_wait` periods."""
    return math.ceil(samples / cfg.max_wait)


def slots(cfg: TiersConfig, batch: int) -> int:
    return cfg.rescore_every * batch


def check_capacity(samples: int, cfg: TiersConfig, batch: int) -> None:
    """A plan holds distinct samples and the reserve fits in it; else a ConfigError
    naming the field to change."""
    s, r = slots(cfg, batch), reserve_size(samples, cfg)
    if batch > samples:
        raise ConfigError(
            f"router.batch_size: a batch of {batch} exceeds the {samples} training sequences "
            "(a tiered batch draws each at most once)"
        )
    if s > samples:
        raise ConfigError(
            f"data.tiers.rescore_every: a period of {cfg.rescore_every} steps x batch {batch} "
            f"= {s} slots exceeds the {samples} training sequences (a plan draws each at most "
            f"once); re-score at most every {samples // batch} steps"
        )
    if r > s:
        raise ConfigError(
            f"data.tiers.max_wait: drawing all {samples} sequences within {cfg.max_wait} "
            f"periods needs {r} of a period's {s} slots; raise max_wait to at least "
            f"{math.ceil(samples / s)}"
        )


def initial(samples: int, cfg: TiersConfig, batch: int, seed: int) -> TierState:
    """Every sample Learning and unscored; period 0's plan."""
    check_capacity(samples, cfg, batch)
    state = TierState([LEARNING] * samples, [[] for _ in range(samples)], set(), [0] * samples, 0)
    state.plan = make_plan(state, cfg, batch, seed)
    return state


def Reserve(wait: Sequence[int], r: int) -> list[int]:
    """The `r` samples that have waited longest, ties to the lower index."""
    return heapq.nsmallest(r, range(len(wait)), key=lambda s: (-wait[s], s))


def make_plan(state: TierState, cfg: TiersConfig, batch: int, seed: int) -> list[int]:
    """The reserve plus a tier-weighted draw without replacement (Efraimidis-Spirakis keys
    u^(1/w)) of the remaining slots, shuffled; seeded by (seed, period)."""
    n = len(state.tiers)
    rng = random.Random(seed * 1_000_003 + state.period)
    reserved = Reserve(state.wait, reserve_size(n, cfg))
    taken = set(reserved)
    keys = [
        (rng.random() ** (1.0 / cfg.weights[state.tiers[s]]), s) for s in range(n) if s not in taken
    ]
    drawn = [s for _, s in heapq.nlargest(slots(cfg, batch) - len(reserved), keys)]
    plan = reserved + drawn
    rng.shuffle(plan)
    return plan


def rows(state: TierState, step: int, cfg: TiersConfig, batch: int) -> list[int]:
    """The samples of `step`: its place in the current period's plan."""
    at = (step - state.period * cfg.rescore_every) * batch
    if not 0 <= at < len(state.plan):
        raise ValueError(f"step {step} is outside period {state.period}")
    return state.plan[at : at + batch]


def Observe(state: TierState, drawn: Sequence[int], losses: Sequence[float], cfg: TiersConfig):
    """A step's per-sample losses join each sample's recent history."""
    for s, loss in zip(drawn, losses, strict=True):
        history = state.recent[s]
        history.append(float(loss))
        del history[: -cfg.history]
        state.observed.add(s)


def tier_of(ratio: float, cfg: TiersConfig) -> Tier:
    if ratio < cfg.mastered:
        return "Mastered"
    if ratio > cfg.failing:
        return "Failing"
    if ratio > cfg.struggling:
        return "Struggling"
    return LEARNING


def Rescore(state: TierState, cfg: TiersConfig, batch: int, seed: int) -> dict[str, Any]:
    """End the period: re-tier the observed samples, age the waits, plan the next period.
    Returns the event the audit log records (replay recomputes it)."""
    scored = [statistics.fmean(r) for r in state.recent if r]
    median = statistics.median(scored) if scored else 0.0
    moves: Counter = Counter()
    for s in sorted(state.observed):
        mean = statistics.fmean(state.recent[s])
        ratio = mean / median if median > 0 else (0.0 if mean == 0 else math.inf)
        new = tier_of(ratio, cfg)
        if new != state.tiers[s]:
            moves[f"{state.tiers[s]}->{new}"] += 1
            state.tiers[s] = new
    planned = set(state.plan)
    state.wait = [0 if s in planned else w + 1 for s, w in enumerate(state.wait)]
    state.observed = set()
    state.period += 1
    state.plan = make_plan(state, cfg, batch, seed)
    counts = Counter(state.tiers)
    return {
        "period": state.period,
        "median_loss": median,
        "counts": {t: counts[t] for t in TIERS},
        "moves": dict(sorted(moves.items())),
        "reserve": reserve_size(len(state.tiers), cfg),
        "longest_wait": max(state.wait),
        "tiers_sha256": digest(",".join(str(TIERS.index(t)) for t in state.tiers)),
        "plan_sha256": digest(",".join(map(str, state.plan))),
    }


def due(step: int, cfg: TiersConfig) -> bool:
    """A re-scoring starts this step's period."""
    return step > 0 and step % cfg.rescore_every == 0


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- invariants (specs/DataTiers.tla), checked by replay and the tests ---------------


def WaitBounded(state: TierState, cfg: TiersConfig) -> bool:
    return all(w < cfg.max_wait for w in state.wait)


def PlanSize(state: TierState, cfg: TiersConfig, batch: int) -> bool:
    return len(state.plan) == slots(cfg, batch) and len(set(state.plan)) == len(state.plan)


def ReserveInPlan(state: TierState, cfg: TiersConfig) -> bool:
    return set(Reserve(state.wait, reserve_size(len(state.wait), cfg))) <= set(state.plan)


def TiersMoveOnEvidence(before: Sequence[str], after: Sequence[str], observed: set[int]) -> bool:
    return all(
        b == a for s, (b, a) in enumerate(zip(before, after, strict=True)) if s not in observed
    )
