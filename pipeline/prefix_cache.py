"""Reuse the outputs of a model's frozen bottom stages across epochs (AutoFreeze's caching).

    cache = PrefixCache([model.bert.embeddings, *model.bert.encoder.layer])
    for ids, batch in loader:              # ids: each sample's stable index in the dataset
        with cache.serve(ids):
            loss = model(**batch).loss
        loss.backward()

A model is read as a chain of stages, each a module that maps one tensor to
the next (BERT's embeddings, then each encoder layer). The frozen prefix is
the longest run of stages from the bottom none of whose parameters requires
grad. Its output for a sample depends only on that sample and those weights,
so once computed it can stand in for the whole prefix's forward. The cache
is correct by construction, not by trusting whoever freezes:

* a stage counts as frozen only by its own `requires_grad` flags, read every
  batch; the prefix shrinks the moment a group awakens or activates;
* every cached tensor is tied to the version counters of the prefix's
  parameters and buffers; any in-place update (an optimiser step, a load)
  bumps them, and then the whole cache is dropped;
* the frozen prefix runs in eval mode (no dropout) whether it is served from
  the cache or computed, so a served output equals a recomputed one.

A batch is served only if every sample in it is cached at the current prefix
depth; otherwise the model runs normally and the prefix's output is stored.
With `reuse=False` nothing is stored or served, but the frozen prefix still
runs in eval mode: the same training, every forward computed (the baseline a
cache's saving is measured against).
Samples must have a fixed shape (pad to one length), since each is stored as
its own row. A batch on which nothing is frozen costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from govtrain.governance.errors import GovtrainError


class PrefixCache:
    def __init__(self, stages: Sequence[nn.Module], *, reuse: bool = True) -> None:
        self.stages, self.reuse = list(stages), reuse
        self.rows: dict[int, Tensor] = {}
        self.key: tuple[int, tuple[int, ...]] = (0, ())  # (depth, versions) of self.rows
        self.hits = self.misses = 0
        self._serving: Tensor | None = None  # what the prefix returns in this batch
        self._storing: list[int] | None = None  # ids whose prefix output this batch stores
        self._depth = 0
        for i, stage in enumerate(self.stages):
            stage.register_forward_hook(self._store_hook(i))
            stage.forward = self._short_circuit(i, stage.forward)

    def depth(self) -> int:
        """How many stages from the bottom have no parameter that requires grad."""
        n = 0
        for stage in self.stages:
            if any(p.requires_grad for p in stage.parameters()):
                break
            n += 1
        return n

    def _versions(self, depth: int) -> tuple[int, ...]:
        return tuple(
            t._version
            for stage in self.stages[:depth]
            for t in (*stage.parameters(), *stage.buffers())
        )

    @contextmanager
    def serve(self, ids: Sequence[int]) -> Iterator[None]:
        """Run one forward of the batch `ids` with the frozen prefix cached."""
        depth = self.depth()
        key = (depth, self._versions(depth))
        if key != self.key:
            self.rows, self.key = {}, key
        ids = [int(i) for i in ids]
        modes = [s.training for s in self.stages[:depth]]
        for s in self.stages[:depth]:
            s.eval()
        self._depth = depth
        if depth and self.reuse and all(i in self.rows for i in ids):
            self._serving = torch.stack([self.rows[i] for i in ids])
            self.hits += len(ids)
        elif depth and self.reuse:
            self._storing = ids
            self.misses += len(ids)
        try:
            yield
        finally:
            self._serving = self._storing = None
            for s, mode in zip(self.stages[:depth], modes, strict=True):
                s.train(mode)

    def _short_circuit(self, index: int, forward):
        def run(*args: Any, **kwargs: Any) -> Any:
            if self._serving is not None and index < self._depth:
                return self._serving
            return forward(*args, **kwargs)

        return run

    def _store_hook(self, index: int):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._storing is None or index != self._depth - 1:
                return
            if not isinstance(output, Tensor) or output.shape[0] != len(self._storing):
                raise GovtrainError(
                    f"prefix cache: stage {index} ({type(module).__name__}) must return one "
                    "tensor with the batch first"
                )
            for i, row in zip(self._storing, output.detach(), strict=True):
                self.rows[i] = row.clone()

        return hook


__all__ = ["PrefixCache"]
