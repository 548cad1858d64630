"""Generic routing: any module whose rows are independent routes its weight gradients.

Tiny Llama-family models built from configs (no download), nn.RMSNorm alone, SwiGLU
MLPs and an attention that holds its own projections: with a random subset of the
batch routed to each group, a group's weight gradients are those of the mean loss
of its routed samples alone on a plain copy of the model, the input gradients stay
dense, and with every sample routed (native) the model is bit for bit the plain one.
Only modules that mix rows (BatchNorm) are refused, and only when a subset is routed.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from govtrain.pipeline.config import parse_config
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.routed import RoutedModule, make_routable
from tests.conftest import tiny_run

pytestmark = pytest.mark.torch

VOCAB, SEQ, BATCH, HIDDEN = 32, 8, 8, 16

# -- models ----------------------------------------------------------------------------

SIZES = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,  # grouped-query heads
    "head_dim": 4,
    "max_position_embeddings": 32,
}

FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "llama": lambda: LlamaForCausalLM(LlamaConfig(**SIZES)),
    "qwen2": lambda: Qwen2ForCausalLM(Qwen2Config(**SIZES)),  # biased q, k, v
    "mistral": lambda: MistralForCausalLM(MistralConfig(**SIZES)),
    "gemma": lambda: GemmaForCausalLM(GemmaConfig(**SIZES)),  # tied head, scaled embedding
}


def lm_losses(model: nn.Module, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample next-token losses, and the embeddings' output (its gradient is the
    gradient every layer passed down)."""
    seen: list[Tensor] = []

    def keep(module: nn.Module, args: object, out: Tensor) -> None:
        out.retain_grad()
        seen.append(out)

    embeddings = model.get_input_embeddings()
    assert isinstance(embeddings, nn.Module)
    handle = embeddings.register_forward_hook(keep)
    logits = model(input_ids=ids).logits
    handle.remove()
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none"
    )
    return losses.view(ids.shape[0], -1).mean(1), seen[0]


def block_groups(model: nn.Module) -> dict[str, str]:
    """Embeddings and the first block low, the second block, final norm and head high."""
    return {
        n: "low" if ("embed" in n or ".layers.0." in n) else "high"
        for n, _ in model.named_parameters()
    }


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)), gate and up one fused Parameter held by the MLP itself."""

    def __init__(self, hidden: int = HIDDEN, inner: int = 24) -> None:
        super().__init__()
        self.gate_up = nn.Parameter(torch.randn(2 * inner, hidden) / math.sqrt(hidden))
        self.down = nn.Linear(inner, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = F.linear(x, self.gate_up).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def rotate(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary position embedding over the last dimension (half-split convention);
    `positions` [1, T] are shared by every sample."""
    d = x.shape[-1] // 2
    freq = 1.0 / (10000 ** (torch.arange(d, dtype=x.dtype) / d))
    angle = positions.to(x.dtype)[:, None, :, None] * freq  # [1, 1, T, d]
    cos, sin = angle.cos().repeat(1, 1, 1, 2), angle.sin().repeat(1, 1, 1, 2)
    x1, x2 = x[..., :d], x[..., d:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class OwnAttention(nn.Module):
    """Causal rotary attention with grouped-query heads that holds its q, k, v projections
    as its own Parameters (the output projection is a child Linear); with attention dropout
    its routed rows are rerun with the forward's own random draws. Called with keywords,
    a broadcast argument and a tuple output, as HF's attentions are."""

    def __init__(self, dropout: float, hidden: int = HIDDEN, heads: int = 4, kv_heads: int = 2):
        super().__init__()
        self.heads, self.kv_heads, self.dim = heads, kv_heads, hidden // heads
        self.dropout = dropout
        self.q = nn.Parameter(torch.randn(hidden, hidden) / math.sqrt(hidden))
        self.kv = nn.Parameter(torch.randn(2 * kv_heads * self.dim, hidden) / math.sqrt(hidden))
        self.q_bias = nn.Parameter(torch.randn(hidden) / 10)
        self.o = nn.Linear(hidden, hidden)

    def forward(self, hidden_states: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        x = hidden_states
        b, t, _ = x.shape
        q = F.linear(x, self.q, self.q_bias).view(b, t, self.heads, self.dim).transpose(1, 2)
        k, v = F.linear(x, self.kv).view(b, t, 2, self.kv_heads, self.dim).unbind(2)
        k, v = (z.transpose(1, 2).repeat_interleave(self.heads // self.kv_heads, 1) for z in (k, v))
        q, k = rotate(q, positions), rotate(k, positions)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout, is_causal=True)
        return self.o(out.transpose(1, 2).reshape(b, t, -1)), k


class OwnBlock(nn.Module):
    """x + attention(norm(x)), the attention's (output, keys) both used."""

    def __init__(self, dropout: float) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(HIDDEN)
        self.attn = OwnAttention(dropout)

    def forward(self, x: Tensor) -> Tensor:
        positions = torch.arange(x.shape[1])[None]
        out, keys = self.attn(hidden_states=self.norm(x), positions=positions)
        return x + out + keys.mean((1, 2))[:, None, :1]


def module_losses(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_()
    out = model(x)
    return (out * torch.linspace(-1, 1, HIDDEN, dtype=x.dtype)).pow(2).sum((1, 2)), x


MODULES: dict[str, Callable[[], nn.Module]] = {
    "rmsnorm": lambda: nn.RMSNorm(HIDDEN),  # alone: the model's root holds the weight
    "swiglu": lambda: nn.Sequential(nn.RMSNorm(HIDDEN), SwiGLU()),
    "own_attention": lambda: nn.Sequential(OwnBlock(0.0), nn.RMSNorm(HIDDEN)),
    "own_attention_dropout": lambda: nn.Sequential(OwnBlock(0.2), nn.RMSNorm(HIDDEN)),
}


def module_groups(model: nn.Module) -> dict[str, str]:
    names = [n for n, _ in model.named_parameters()]
    return {n: "low" if i < len(names) // 2 else "high" for i, n in enumerate(names)}


def case(kind: str) -> tuple[nn.Module, Tensor, Callable, dict[str, str]]:
    torch.manual_seed(0)
    if kind in FAMILIES:
        model = FAMILIES[kind]().double()
        ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
        return model, ids, lm_losses, block_groups(model)
    model = MODULES[kind]().double()
    with torch.no_grad():  # norms start at 1: give their weights something to route
        for n, p in model.named_parameters():
            if "weight" in n and p.dim() == 1:
                p.uniform_(0.5, 1.5)
    x = torch.randn(BATCH, SEQ, HIDDEN, dtype=torch.float64)
    return model, x, module_losses, module_groups(model)


KINDS = [*FAMILIES, *MODULES]

# -- gradients --------------------------------------------------------------------------


def subsets(groups: dict[str, str], seed: int) -> dict[str, Tensor]:
    """A random subset of the batch per group, of 1, 2 or 4 of its 8 rows: HF's RMSNorms
    compute in float32 even in a float64 model, so the gradients are exact to float64
    only where the routed rescale (batch / routed) is a power of two."""
    g = torch.Generator().manual_seed(seed)
    chosen = {}
    for name in sorted(set(groups.values())):
        k = 2 ** int(torch.randint(0, 3, (1,), generator=g))
        chosen[name] = torch.randperm(BATCH, generator=g)[:k].sort().values
    return chosen


def run(model: nn.Module, inputs: Tensor, losses: Callable) -> tuple[Tensor, Tensor]:
    torch.manual_seed(7)  # dropout draws alike in every copy
    return losses(model, inputs)


@pytest.mark.parametrize("kind", KINDS)
def test_routed_gradients_equal_those_of_the_routed_samples_alone(kind: str) -> None:
    reference, inputs, losses, groups = case(kind)
    model = copy.deepcopy(reference)
    plan = make_routable(model, groups)
    if kind in FAMILIES:
        norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
        assert norms and all(isinstance(m, RoutedModule) for m in norms)
    chosen = subsets(groups, seed=len(kind))
    routed, below = run(model, inputs, losses)
    for name, index in chosen.items():
        plan.set(name, index, BATCH)
    routed.mean().backward()

    dense = copy.deepcopy(reference)
    plain, plain_below = run(dense, inputs, losses)
    plain.mean().backward()
    torch.testing.assert_close(routed, plain, rtol=1e-12, atol=1e-12)
    # the input gradient stays dense: every row, whatever was routed above
    assert below.grad is not None and plain_below.grad is not None
    torch.testing.assert_close(below.grad, plain_below.grad, rtol=1e-9, atol=1e-12)

    params = dict(model.named_parameters())
    for name, index in chosen.items():
        alone = copy.deepcopy(reference)
        run(alone, inputs, losses)[0][index].mean().backward()
        for pname, p in alone.named_parameters():
            if groups[pname] != name:
                continue
            got = params[pname].grad
            assert got is not None, pname
            expected = torch.zeros_like(p) if p.grad is None else p.grad
            torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12, msg=pname)


@pytest.mark.parametrize("kind", KINDS)
def test_everything_routed_is_the_plain_model_bit_for_bit(kind: str) -> None:
    reference, inputs, losses, groups = case(kind)
    model = copy.deepcopy(reference)
    plan = make_routable(model, groups)
    for name in plan.slots:
        plan.set_native(name, True)
    out, below = run(model, inputs, losses)
    ref, ref_below = run(reference, inputs, losses)
    assert torch.equal(out, ref)
    out.mean().backward()
    ref.mean().backward()
    assert below.grad is not None and ref_below.grad is not None
    assert torch.equal(below.grad, ref_below.grad)
    plain = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, plain[name].grad), name
    assert list(model.state_dict()) == list(reference.state_dict())


def test_an_empty_route_gives_zero_gradients_and_no_subset_is_needed_to_route_all() -> None:
    reference, inputs, losses, groups = case("llama")
    model = copy.deepcopy(reference)
    plan = make_routable(model, groups)
    out, _ = run(model, inputs, losses)
    plan.set("low", torch.tensor([], dtype=torch.long), BATCH)
    plan.set("high", None, BATCH)  # every sample, through the routed (not native) forward
    out.mean().backward()
    run(reference, inputs, losses)[0].mean().backward()
    plain = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        expected = torch.zeros_like(p) if groups[name] == "low" else plain[name].grad
        torch.testing.assert_close(p.grad, expected, rtol=1e-9, atol=1e-12, msg=name)


# -- modules that mix rows ---------------------------------------------------------------


class NormLM(nn.Module):
    """A toy LM with a BatchNorm over its hidden features: its rows are not independent."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.bn = nn.BatchNorm1d(HIDDEN)
        self.norm = nn.RMSNorm(HIDDEN)
        self.head = nn.Linear(HIDDEN, VOCAB)

    def forward(self, ids: Tensor) -> Tensor:
        h = self.bn(self.embed(ids).transpose(1, 2)).transpose(1, 2)
        return self.head(self.norm(h))


def norm_lm_losses(model: nn.Module, ids: Tensor) -> Tensor:
    logits = model(ids)
    per_token = F.cross_entropy(
        logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1), reduction="none"
    )
    return per_token.view(ids.shape[0], -1).mean(1)


NORM_GROUPS = {"embed.weight": "low", "bn.weight": "low", "bn.bias": "low"} | {
    n: "high" for n in ("norm.weight", "head.weight", "head.bias")
}


def test_a_batchnorm_is_refused_only_when_its_group_is_routed() -> None:
    torch.manual_seed(0)
    model = NormLM()
    with pytest.raises(TypeError, match=r"module bn \(BatchNorm1d\) .* mixes the rows"):
        make_routable(copy.deepcopy(model), NORM_GROUPS)  # a plan meant to route
    plan = make_routable(model, NORM_GROUPS, lazy=True)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    losses = norm_lm_losses(model, ids)
    plan.set("low", None, BATCH)  # routing every sample: the plain BatchNorm
    plan.set("high", torch.tensor([0, 3]), BATCH)  # the other group routes a subset
    with pytest.raises(TypeError, match=r"module bn \(BatchNorm1d\)") as refused:
        plan.set("low", torch.tensor([1, 2]), BATCH)
    assert "\n" not in str(refused.value)
    losses.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def governed_norm_lm(budget: dict[str, int]) -> tuple[Governor, NormLM, torch.optim.Optimizer]:
    groups = [
        {"name": "embed", "patterns": ["embed.*"], "level": 0},
        {"name": "block0", "patterns": ["bn.*", "norm.*"], "level": 0},
        {"name": "top", "patterns": ["head.*"], "level": 1},
    ]
    cfg = parse_config(tiny_run(governance__groups=groups, governance__budget=budget))
    torch.manual_seed(0)
    model = NormLM()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    ids = torch.randint(0, VOCAB, (4, SEQ))
    gov = Governor(model, opt, cfg.governance, probe=lambda m: norm_lm_losses(m, ids).mean())
    return gov, model, opt


def train(gov: Governor, model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    for step in range(steps):
        ids = torch.randint(0, VOCAB, (8, SEQ), generator=torch.Generator().manual_seed(step))
        losses = norm_lm_losses(model, ids)
        gov.route(losses)
        losses.mean().backward()
        opt.step()
        gov.commit(loss=losses.mean().item(), lr=1e-2)
        opt.zero_grad(set_to_none=True)


def test_governing_a_batchnorm_by_freezing_alone_never_refuses_it() -> None:
    gov, model, opt = governed_norm_lm({"master": 24, "floor": 8, "ceiling": 8})
    train(gov, model, opt, 6)  # the budget routes every sample: nothing to refuse
    assert gov.step == 6
    gov, model, opt = governed_norm_lm({"master": 12, "floor": 2, "ceiling": 6})
    with pytest.raises(TypeError, match=r"module bn \(BatchNorm1d\)"):
        train(gov, model, opt, 6)  # after the warmup, block0 routes a subset
