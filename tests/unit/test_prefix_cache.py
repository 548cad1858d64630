"""The frozen-prefix activation cache (pipeline/prefix_cache.py): served outputs equal
recomputed ones, and any change to the prefix (an awakening, an update) drops it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.prefix_cache import PrefixCache

pytestmark = pytest.mark.torch


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return BertForSequenceClassification(cfg).train()


def stages(model) -> list[nn.Module]:
    return [model.bert.embeddings, *model.bert.encoder.layer]


def freeze(modules) -> None:
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)


DATA = torch.randint(1, 50, (24, 8), generator=torch.Generator().manual_seed(1))
LABELS = torch.randint(0, 2, (24,), generator=torch.Generator().manual_seed(2))


def logits(model, cache: PrefixCache | None, idx: list[int]) -> torch.Tensor:
    ids = DATA[idx]
    if cache is None:
        return model(input_ids=ids).logits
    with cache.serve(idx):
        return model(input_ids=ids).logits


def test_served_outputs_equal_recomputed_ones() -> None:
    model = tiny_bert()
    freeze(stages(model)[:2])
    cache = PrefixCache(stages(model))
    first = logits(model, cache, [0, 1, 2, 3])  # miss: computed and stored
    assert (cache.hits, cache.misses, cache.key[0]) == (0, 4, 2)
    again = logits(model, cache, [3, 1])  # hit: served, in another order
    assert cache.hits == 2
    model.eval()  # dropout off everywhere: the served batch must match plain recomputation
    plain = logits(model, None, [0, 1, 2, 3])
    served = logits(model, cache, [0, 1, 2, 3])
    torch.testing.assert_close(served, plain, rtol=0, atol=1e-6)
    assert first.shape == (4, 2) and again.shape == (2, 2)


def test_training_with_hits_equals_training_without() -> None:
    """Same steps, one run with repeated samples served from the cache, the other always
    recomputing (reuse=False): the same weights."""
    runs = []
    for reuse in (True, False):
        model = tiny_bert(seed=5)
        freeze(stages(model)[:2])
        cache = PrefixCache(stages(model), reuse=reuse)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        torch.manual_seed(7)
        for step in range(12):
            idx = [(step * 4 + i) % 8 for i in range(4)]  # every sample recurs
            loss = nn.functional.cross_entropy(logits(model, cache, idx), LABELS[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        runs.append((cache.hits, [p.detach().clone() for p in model.parameters()]))
    (hits, with_cache), (no_hits, without) = runs
    assert hits > 0 and no_hits == 0
    for a, b in zip(with_cache, without, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_an_awakening_shrinks_the_prefix_and_drops_the_cache() -> None:
    model = tiny_bert()
    freeze(stages(model)[:3])
    cache = PrefixCache(stages(model))
    logits(model, cache, [0, 1])
    assert cache.key[0] == 3 and len(cache.rows) == 2
    for p in stages(model)[1].parameters():  # layer 0 trains again
        p.requires_grad_(True)
    logits(model, cache, [0, 1])
    assert cache.key[0] == 1 and cache.hits == 0  # nothing served from the deeper prefix


def test_an_update_to_a_frozen_stage_drops_the_cache() -> None:
    model = tiny_bert()
    freeze(stages(model)[:2])
    cache = PrefixCache(stages(model))
    logits(model, cache, [0, 1])
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight.add_(1.0)  # e.g. a checkpoint load
    logits(model, cache, [0, 1])
    assert cache.hits == 0 and cache.misses == 4
    model.eval()
    torch.testing.assert_close(
        logits(model, cache, [0, 1]), logits(model, None, [0, 1]), rtol=0, atol=1e-6
    )


def test_nothing_frozen_caches_nothing() -> None:
    model = tiny_bert()
    cache = PrefixCache(stages(model))
    logits(model, cache, [0, 1])
    logits(model, cache, [0, 1])
    assert cache.rows == {} and cache.hits == cache.misses == 0


def test_a_stage_that_returns_no_tensor_is_refused() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x), x

    pair = Pair()
    freeze([pair])
    cache = PrefixCache([pair])
    with pytest.raises(GovtrainError, match="must return one tensor"), cache.serve([0]):
        pair(torch.zeros(1, 2))
