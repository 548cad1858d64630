"""The federated budget allocator (spec: `specs/FederatedBudget.tla`).

A master budget of integer units (one unit = one sample's weight gradient for
one group) is split among eligible, i.e. non-frozen, groups:

* Allocate (feasible: floors fit): every eligible group gets `floor`; the rest
  is handed out one unit at a time by the D'Hondt rule, each unit to the open
  group (below `ceiling`) with the largest weight / (units won + 1), ties to
  fewer units won, then lower index. Proportional, integer, never over the
  master, and it leaves nothing unallocated while any group is below its
  ceiling, so rounding cannot leak budget (BudgetWorkConserving).
* Ration (infeasible: floors exceed the master): floors cannot be honoured, so
  the master is split equally and the remainder goes one unit each to the
  heaviest groups. Still conserving, still zero for frozen groups.

Weights are need x multiplier[phase]: the needs on one binary grid (`need_grid`,
naturals, as the spec's are), the multipliers as the decimals the config
writes, compared as exact fractions, so every rank of a distributed run takes
the same decision from the same inputs, the spec's integer arithmetic and this
code agree on every tie, and TLC can check a recorded decision from the very
naturals the core used.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from govtrain.governance.config import BudgetConfig


@dataclass(frozen=True, slots=True)
class Allocation:
    units: tuple[int, ...]
    action: str  # "Allocate" or "Ration"


NEED_BITS = 16


def need_grid(needs: Sequence[float | None]) -> tuple[int | None, ...]:
    """The eligible groups' learning needs as naturals (None stays None: frozen).

    Each is rounded (half to even) to 2**-NEED_BITS of the binade of the largest,
    so they are at most 2**NEED_BITS. D'Hondt reads weights only as ratios, so the
    common power-of-two scale changes nothing, and the rounding changes a decision
    only where two quotients agree to about one part in 65536; small integer needs
    (the explorer's 1 and 3) keep their exact ratios. TLC's integers are 32-bit: a
    need times a multiplier times a divisor stays within them for the shipped configs.
    """
    top = max((n for n in needs if n is not None), default=0.0)
    if top <= 0:
        return tuple(None if n is None else 0 for n in needs)
    _, exponent = math.frexp(top)  # top < 2**exponent
    scale = Fraction(2) ** (NEED_BITS - exponent)
    return tuple(None if n is None else round(Fraction(n) * scale) for n in needs)


def feasible(eligible: int, cfg: BudgetConfig) -> bool:
    """Floors fit in the master budget."""
    return eligible * cfg.floor <= cfg.master


def allocate(weights: Sequence[Fraction | float | None], cfg: BudgetConfig) -> Allocation:
    """Split the master budget; `None` marks a frozen group, which gets zero."""
    exact = {i: Fraction(w) for i, w in enumerate(weights) if w is not None}
    units = [0] * len(weights)
    if not exact:
        return Allocation(tuple(units), "Allocate")
    if not feasible(len(exact), cfg):
        return Allocation(_ration(exact, units, cfg.master), "Ration")
    for i in exact:
        units[i] = cfg.floor
    remaining = cfg.master - cfg.floor * len(exact)
    # D'Hondt's quotients w / (won + 1), exactly, in integers: weights scaled by their
    # common denominator, and every divisor a group can reach (1 .. ceiling - floor)
    # divides `span`, so w * span // (won + 1) orders and ties as the fractions do
    scale = math.lcm(*(w.denominator for w in exact.values()))
    span = math.lcm(*range(1, max(cfg.ceiling - cfg.floor, 1) + 1))
    weight = {i: int(w * scale) * span for i, w in exact.items()}
    heap = [(-weight[i], 0, i) for i in exact if units[i] < cfg.ceiling]
    heapq.heapify(heap)
    while remaining and heap:
        _, won, i = heapq.heappop(heap)
        units[i] += 1
        remaining -= 1
        if units[i] < cfg.ceiling:
            heapq.heappush(heap, (-(weight[i] // (won + 2)), won + 1, i))
    return Allocation(tuple(units), "Allocate")


def _ration(exact: dict[int, Fraction], units: list[int], master: int) -> tuple[int, ...]:
    share, extra = divmod(master, len(exact))
    heaviest = sorted(exact, key=lambda i: (-exact[i], i))
    for rank, i in enumerate(heaviest):
        units[i] = share + (1 if rank < extra else 0)
    return tuple(units)
