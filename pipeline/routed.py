"""Routed autograd: a group's weight gradient comes from its routed samples only.

Each Linear-like, LayerNorm and Embedding module of the model is switched (by
`__class__`, so parameter names and state dicts are unchanged) to a subclass
whose forward is ordinary but whose backward computes the *parameter*
gradients from the routed rows of the batch only (`g[idx].T @ x[idx]`), while
the *input* gradient stays dense so lower layers still learn from every
sample. The unrouted rows' weight-gradient work is never done: this is where
the compute saving comes from, not from masking afterwards.

A group's gradient is the gradient of the mean loss over its routed samples
(the batch-mean gradient rescaled by batch/routed), so its magnitude does not
depend on the quota. Routing is per sample (dim 0 of every activation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.pytorch_utils import Conv1D


@dataclass
class RouteSlot:
    """The routed sample indices for one group, set after the forward, read in backward.

    `index=None` routes every sample. `batch` is the full batch size, used to
    rescale the routed sum into a routed mean. `native`: the next forward is known
    to route every sample (decided a step ahead), so the module runs its plain
    PyTorch forward and backward; a slot run natively cannot be routed afterwards.
    `scale` turns the routed rows' share of the batch-mean gradient into the mean over
    all routed samples: batch / routed, with both counted over the *global* batch
    when the batch is split across ranks.
    """

    index: Tensor | None = None
    batch: int = 1
    native: bool = False
    scale: float = 1.0

    def rows(self, t: Tensor) -> Tensor:
        if self.index is None:
            return t
        if t.shape[0] != self.batch:
            raise RuntimeError(
                f"routed backward got an activation of shape {tuple(t.shape)} whose first "
                f"dimension is not the batch ({self.batch}); pass per-sample inputs "
                f"(e.g. position_ids of shape [batch, seq])"
            )
        return t.index_select(0, self.index)


_ALL = RouteSlot(native=True)  # parameters not governed (frozen before governance began)


def _native(route: dict[str, RouteSlot]) -> bool:
    return all(slot.native for slot in route.values())


def _flat(t: Tensor) -> Tensor:
    return t.reshape(-1, t.shape[-1])


class _RoutedAffine(torch.autograd.Function):
    """y = x @ W (+ b), with W stored (in, out) when `transposed`, else (out, in) as nn.Linear."""

    @staticmethod
    def forward(ctx, x, weight, bias, w_slot, b_slot, transposed):
        ctx.save_for_backward(x, weight)
        ctx.slots, ctx.transposed = (w_slot, b_slot), transposed
        w = weight if transposed else weight.t()
        flat = _flat(x)
        out = flat.mm(w) if bias is None else torch.addmm(bias, flat, w)  # one fused kernel
        return out.view(*x.shape[:-1], w.shape[1])

    @staticmethod
    def backward(ctx, *grads):
        (g,) = grads  # one output, one incoming gradient
        x, weight = ctx.saved_tensors
        w_slot, b_slot = ctx.slots
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _flat(g).mm(weight.t() if ctx.transposed else weight).view(x.shape)
        if ctx.needs_input_grad[1]:
            xs, gs = _flat(w_slot.rows(x)), _flat(w_slot.rows(g))
            gw = xs.t().mm(gs) if ctx.transposed else gs.t().mm(xs)
            gw = gw.mul_(w_slot.scale) if w_slot.scale != 1.0 else gw
        if ctx.needs_input_grad[2]:
            gb = _flat(b_slot.rows(g)).sum(0).mul_(b_slot.scale)
        return gx, gw, gb, None, None, None


class _RoutedLayerNorm(torch.autograd.Function):
    """LayerNorm over the last dim with torch's own kernels; affine gradients from routed rows.

    The dense input gradient is aten's native LayerNorm backward (asked for the
    input gradient only); the weight and bias gradients are summed over the
    routed rows of the normalised input, rebuilt from the saved mean and rstd.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, w_slot, b_slot):
        shape = (x.shape[-1],)
        out, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)
        ctx.save_for_backward(x, mean, rstd, weight, bias)
        ctx.slots = (w_slot, b_slot)
        return out

    @staticmethod
    def backward(ctx, *grads):
        (g,) = grads  # one output, one incoming gradient
        x, mean, rstd, weight, bias = ctx.saved_tensors
        w_slot, b_slot = ctx.slots
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.native_layer_norm_backward(
                g, x, (x.shape[-1],), mean, rstd, weight, bias, [True, False, False]
            )[0]
        if ctx.needs_input_grad[1]:
            xhat = (w_slot.rows(x) - w_slot.rows(mean)) * w_slot.rows(rstd)
            gw = _flat(w_slot.rows(g) * xhat).sum(0).mul_(w_slot.scale)
        if ctx.needs_input_grad[2]:
            gb = _flat(b_slot.rows(g)).sum(0).mul_(b_slot.scale)
        return gx, gw, gb, None, None, None


class _RoutedEmbedding(torch.autograd.Function):
    """Row lookup; the table's gradient is scattered from routed samples only."""

    @staticmethod
    def forward(ctx, ids, weight, slot):
        ctx.save_for_backward(ids)
        ctx.slot, ctx.rows = slot, weight.shape[0]
        return F.embedding(ids, weight)

    @staticmethod
    def backward(ctx, *grads):
        (g,) = grads  # one output, one incoming gradient
        (ids,) = ctx.saved_tensors
        slot = ctx.slot
        if not ctx.needs_input_grad[1]:
            return None, None, None
        sel = slot.rows(ids).reshape(-1)
        gw = g.new_zeros(ctx.rows, g.shape[-1]).index_add_(0, sel, _flat(slot.rows(g)))
        return None, gw.mul_(slot.scale), None


class RoutedConv1D(Conv1D):
    """HF GPT-2's Conv1D (weight stored in x out) with routed weight gradients."""

    route: dict[str, RouteSlot]

    def forward(self, x: Tensor) -> Tensor:
        if _native(self.route):
            return super().forward(x)
        return _RoutedAffine.apply(
            x, self.weight, self.bias, self.route["weight"], self.route["bias"], True
        )


class RoutedLinear(nn.Linear):
    route: dict[str, RouteSlot]

    def forward(self, input: Tensor) -> Tensor:
        if _native(self.route):
            return super().forward(input)
        return _RoutedAffine.apply(
            input, self.weight, self.bias, self.route["weight"], self.route.get("bias", _ALL), False
        )


class RoutedLayerNorm(nn.LayerNorm):
    route: dict[str, RouteSlot]

    def forward(self, input: Tensor) -> Tensor:
        if _native(self.route):
            return super().forward(input)
        return _RoutedLayerNorm.apply(
            input, self.weight, self.bias, self.eps, self.route["weight"], self.route["bias"]
        )


class RoutedEmbedding(nn.Embedding):
    route: dict[str, RouteSlot]

    def forward(self, input: Tensor) -> Tensor:
        if _native(self.route):
            return super().forward(input)
        return _RoutedEmbedding.apply(input, self.weight, self.route["weight"])


_ROUTED: dict[type[nn.Module], type[nn.Module]] = {
    Conv1D: RoutedConv1D,
    nn.Linear: RoutedLinear,
    nn.LayerNorm: RoutedLayerNorm,
    nn.Embedding: RoutedEmbedding,
}


@dataclass
class RoutingPlan:
    """One RouteSlot per group; `set` fills them between the forward and the backward."""

    slots: dict[str, RouteSlot] = field(default_factory=dict)

    def set(self, group: str, index: Tensor | None, batch: int, scale: float | None = None) -> None:
        """Route `index` of a batch of `batch` rows; `scale` defaults to batch / len(index)."""
        slot = self.slots[group]
        if slot.native and index is not None:
            raise RuntimeError(
                f"group {group} ran its forward natively (every sample routed) and cannot be "
                f"routed now; is the batch ({batch}) larger than router.batch_size?"
            )
        if scale is None:
            scale = 1.0 if index is None else batch / max(1, int(index.numel()))
        slot.index, slot.batch, slot.scale = index, batch, scale

    def set_native(self, group: str, native: bool) -> None:
        self.slots[group].native = native

    def route_all(self) -> None:
        for slot in self.slots.values():
            slot.index, slot.scale = None, 1.0

    def routed_forward(self) -> None:
        """Every module runs its routed forward (FLOP counting sets quotas after it)."""
        for slot in self.slots.values():
            slot.native = False


def make_routable(model: nn.Module, group_of: dict[str, str]) -> RoutingPlan:
    """Switch every supported module to its routed twin, wired to its parameters' groups.

    `group_of` maps full parameter names to group names. A parameter held by a
    module type that cannot be routed is an error, since its gradient would
    silently ignore the router.
    """
    plan = RoutingPlan({g: RouteSlot() for g in sorted(set(group_of.values()))})
    # id(param) -> slot, so a tied weight (GPT-2's lm_head is wte) routes with its owner;
    # parameters outside `group_of` (frozen before governance began) get no routing
    owners = {id(p): plan.slots[group_of[n]] for n, p in model.named_parameters() if n in group_of}
    for mod_name, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        routed = _ROUTED.get(type(module))
        if routed is None:
            raise TypeError(
                f"module {mod_name or '<root>'} ({type(module).__name__}) holds parameters "
                f"{sorted(own)} but has no routed implementation"
            )
        module.__class__ = routed
        # a plain attribute (nn.Module.__setattr__'s types name only tensors and modules)
        setattr(module, "route", {p: owners.get(id(t), _ALL) for p, t in own.items()})  # noqa: B010
    return plan
