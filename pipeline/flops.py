"""Backward FLOPs of a governed step, counted by `torch.utils.flop_counter`.

Counting every step under FlopCounterMode costs 15-30% of a small model's step,
so the meter uses the linearity of routed backward instead: with the frozen
set fixed, backward FLOPs are

    base(frozen set) + sum over groups of  routed samples x weight-grad FLOPs per sample

`base` (input gradients, attention, everything not routed) is measured with
FlopCounterMode once per distinct frozen set, with every quota at zero; the
per-sample weight-gradient cost of a group is measured once, with only that
group routed one sample. Both are real counts of the ops our backward runs; a
test checks the sum against a direct count at random quotas.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from govtrain.pipeline.governor import Governor

LossFn = Callable[[nn.Module], Tensor]  # per-sample losses [B] of a fixed batch


class FlopMeter:
    def __init__(self, gov: Governor, loss_fn: LossFn) -> None:
        self.gov, self.loss_fn = gov, loss_fn
        self.model, self.plan, self.params = gov.model, gov.plan, gov.params
        self._base: dict[frozenset[str], int] = {}
        self._per_sample: dict[str, int] = {}
        self.seconds = 0.0  # time spent counting, so benchmarks can leave it out
        self.dense = self._dense()

    def step_flops(self, frozen: frozenset[str], quotas: dict[str, int]) -> int:
        """Backward FLOPs of a step with this frozen set and these routed-sample counts."""
        if frozen not in self._base:
            self._base[frozen] = self._count(frozen, dict.fromkeys(self.params, 0))
        return self._base[frozen] + sum(
            q * self._per_sample_cost(g) for g, q in quotas.items() if g not in frozen
        )

    def _per_sample_cost(self, group: str) -> int:
        if group not in self._per_sample:
            others = frozenset(self.params) - {group}
            quotas = {g: (1 if g == group else 0) for g in self.params}
            self._per_sample[group] = self._count(others, quotas) - self._count(
                others, dict.fromkeys(self.params, 0)
            )
        return self._per_sample[group]

    def _dense(self) -> int:
        """The ungoverned reference: everything trainable, every sample routed."""
        return self._count(frozenset(), None)

    def _count(self, frozen: frozenset[str], quotas: dict[str, int] | None) -> int:
        """Count one backward. The RNG is forked: dropout in the counting forward must draw
        nothing from the training's stream, or a resumed run (which counts anew) would
        diverge from the uninterrupted one."""
        device = self.gov._device()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return self._count_unforked(frozen, quotas)

    def _count_unforked(self, frozen: frozenset[str], quotas: dict[str, int] | None) -> int:
        start = time.perf_counter()
        saved = {id(p): (p.requires_grad, p.grad) for p in self.gov.all_params}
        slots = {g: (s.index, s.batch, s.native, s.scale) for g, s in self.plan.slots.items()}
        self.plan.routed_forward()  # the counts below route after the forward
        try:
            self.gov.observing = False
            for g, ps in self.params.items():
                for p in ps:
                    p.requires_grad_(g not in frozen)
                    p.grad = None
            losses = self.loss_fn(self.model)
            batch = losses.shape[0]
            for g in self.params:
                index = (
                    None
                    if quotas is None or quotas[g] >= batch
                    else torch.arange(quotas[g], device=losses.device)
                )
                self.plan.set(g, index, batch)
            with FlopCounterMode(display=False) as counter:
                if losses.requires_grad:
                    losses.mean().backward()
            return int(counter.get_total_flops())
        finally:
            self.gov.observing = True
            for p in self.gov.all_params:
                p.requires_grad_(saved[id(p)][0])
                p.grad = saved[id(p)][1]
            for g, (index, batch, native, scale) in slots.items():
                self.plan.set(g, index, batch, scale)
                self.plan.set_native(g, native)
            self.seconds += time.perf_counter() - start
