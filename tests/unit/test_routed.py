"""Routed autograd: a group's weight gradient comes from its routed samples only,
and the unrouted work is not done (fewer FLOPs), not done and then masked."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from govtrain.pipeline.config import ModelConfig
from govtrain.pipeline.models import build_model, per_sample_loss
from govtrain.pipeline.routed import make_routable

pytestmark = pytest.mark.torch

VOCAB, SEQ, BATCH = 40, 10, 6


def model_and_groups():
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_embd=16, n_head=2), VOCAB, SEQ).double()
    groups = {
        n: ("low" if (".h.0." in n or "wte" in n or "wpe" in n) else "high")
        for n, _ in model.named_parameters()
    }
    return model, groups


@pytest.mark.parametrize(
    ("low", "high"), [([0, 2, 5], [1, 2]), ([3], [0, 1, 2, 3, 4, 5]), ([], [4])]
)
def test_gradients_equal_reference_from_routed_samples_alone(low, high) -> None:
    reference, groups = model_and_groups()
    model = copy.deepcopy(reference)
    plan = make_routable(model, groups)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
    losses = per_sample_loss(model, ids)
    plan.set("low", torch.tensor(low, dtype=torch.long), BATCH)
    plan.set("high", torch.tensor(high, dtype=torch.long), BATCH)
    losses.mean().backward()
    for group, index in (("low", low), ("high", high)):
        ref = copy.deepcopy(reference)
        if index:
            per_sample_loss(ref, ids)[torch.tensor(index)].mean().backward()
        ref_grads = dict(ref.named_parameters())
        for name, p in model.named_parameters():
            if groups[name] != group:
                continue
            expected = ref_grads[name].grad
            if expected is None:
                expected = torch.zeros_like(p)
            torch.testing.assert_close(p.grad, expected, rtol=1e-9, atol=1e-12, msg=name)


def test_route_all_after_a_partial_route_is_the_plain_gradient() -> None:
    """route_all (the wake probe's) resets the routed rescale too: a slot left with a
    partial route's batch/k scale would inflate the probe's gradient by that factor."""
    reference, groups = model_and_groups()
    model = copy.deepcopy(reference)
    plan = make_routable(model, groups)
    for group in ("low", "high"):
        plan.set(group, torch.tensor([1], dtype=torch.long), BATCH)  # scale BATCH / 1
    plan.route_all()
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
    per_sample_loss(model, ids).mean().backward()
    per_sample_loss(reference, ids).mean().backward()
    ref = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[name].grad, rtol=1e-9, atol=1e-12, msg=name)


def test_all_routed_is_plain_autograd() -> None:
    reference, groups = model_and_groups()
    model = copy.deepcopy(reference)
    make_routable(model, groups)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    per_sample_loss(model, ids).mean().backward()
    per_sample_loss(reference, ids).mean().backward()
    ref = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[name].grad, rtol=1e-9, atol=1e-12)


def test_state_dict_names_unchanged() -> None:
    reference, groups = model_and_groups()
    model = copy.deepcopy(reference)
    make_routable(model, groups)
    assert list(model.state_dict()) == list(reference.state_dict())


def _backward_flops(quota: int | None, frozen_low: bool = False) -> int:
    model, groups = model_and_groups()
    plan = make_routable(model, groups)
    if frozen_low:
        for n, p in model.named_parameters():
            p.requires_grad_(groups[n] != "low")
    ids = torch.randint(0, VOCAB, (BATCH, SEQ))
    losses = per_sample_loss(model, ids)
    for g in ("low", "high"):
        plan.set(g, None if quota is None else torch.arange(quota), BATCH)
    with FlopCounterMode(display=False) as counter:
        losses.mean().backward()
    return counter.get_total_flops()


def test_unrouted_work_is_skipped() -> None:
    dense, half, one = _backward_flops(None), _backward_flops(3), _backward_flops(1)
    assert dense > half > one
    # the weight-gradient matmuls are linear in the routed rows
    assert dense - half == pytest.approx(3 * (half - one) / 2, rel=1e-9)


def test_frozen_prefix_skips_weight_and_input_gradients() -> None:
    assert _backward_flops(None, frozen_low=True) < _backward_flops(None) * 0.75


def test_unroutable_module_is_an_error() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(TypeError, match="BatchNorm1d"):
        make_routable(net, {n: "g" for n, _ in net.named_parameters()})
