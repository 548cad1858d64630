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

With `hierarchy.dormant: bypass` the blocks that run change as levels activate, so
every count is keyed by the bypassed blocks too, and the forward's FLOPs (which
routing does not change) are counted per bypassed set. The dense reference runs
every block.
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
        self._base: dict[tuple[frozenset[str], frozenset[str]], int] = {}
        self._forward: dict[frozenset[str], int] = {}
        self._per_sample: dict[tuple[str, frozenset[str]], int] = {}
        self.seconds = 0.0  # time spent counting, so benchmarks can leave it out
        self.dense_forward, self.dense = self._dense()

    def _bypassed(self) -> frozenset[str]:
        blocks = self.gov.blocks
        return frozenset() if blocks is None else blocks.bypassed()

    def step_flops(self, frozen: frozenset[str], quotas: dict[str, int]) -> int:
        """Backward FLOPs of a step with this frozen set and these routed-sample counts."""
        key = (frozen, self._bypassed())
        if key not in self._base:
            self._base[key] = self._count(frozen, dict.fromkeys(self.params, 0))[1]
        return self._base[key] + sum(
            q * self._per_sample_cost(g) for g, q in quotas.items() if g not in frozen
        )

    def forward_flops(self) -> int:
        """Forward FLOPs of a step with the blocks that run now."""
        key = self._bypassed()
        if key not in self._forward:
            self._forward[key] = self._count(frozenset(self.params), None)[0]
        return self._forward[key]

    def _per_sample_cost(self, group: str) -> int:
        key = (group, self._bypassed())
        if key not in self._per_sample:
            others = frozenset(self.params) - {group}
            quotas = {g: (1 if g == group else 0) for g in self.params}
            self._per_sample[key] = (
                self._count(others, quotas)[1]
                - self._count(others, dict.fromkeys(self.params, 0))[1]
            )
        return self._per_sample[key]

    def _dense(self) -> tuple[int, int]:
        """The ungoverned reference: every block run, everything trainable, every sample
        routed: (forward, backward) FLOPs."""
        if self.gov.blocks is None:
            return self._count(frozenset(), None)
        with self.gov.blocks.all_computed():
            return self._count(frozenset(), None)

    def _count(self, frozen: frozenset[str], quotas: dict[str, int] | None) -> tuple[int, int]:
        """Count one (forward, backward). The RNG is forked: dropout in the counting forward
        must draw nothing from the training's stream, or a resumed run (which counts anew)
        would diverge from the uninterrupted one."""
        device = self.gov._device()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return self._count_unforked(frozen, quotas)

    def _count_unforked(
        self, frozen: frozenset[str], quotas: dict[str, int] | None
    ) -> tuple[int, int]:
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
            with FlopCounterMode(display=False) as forward:
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
            return int(forward.get_total_flops()), int(counter.get_total_flops())
        finally:
            self.gov.observing = True
            for p in self.gov.all_params:
                p.requires_grad_(saved[id(p)][0])
                p.grad = saved[id(p)][1]
            for g, (index, batch, native, scale) in slots.items():
                self.plan.set(g, index, batch, scale)
                self.plan.set_native(g, native)
            self.seconds += time.perf_counter() - start
