"""Routed autograd: a group's weight gradient comes from its routed samples only.

Each Linear-like, LayerNorm and Embedding module of the model is switched (by
`__class__`, so parameter names and state dicts are unchanged) to a subclass
whose forward is ordinary but whose backward computes the *parameter*
gradients from the routed rows of the batch only (`g[idx].T @ x[idx]`), while
the *input* gradient stays dense so lower layers still learn from every
sample. The unrouted rows' weight-gradient work is never done: this is where
the compute saving comes from, not from masking afterwards.

Any other module that holds governed parameters (RMSNorm, an attention that
holds its own projections, a scaled embedding...) gets the generic routed
twin (`RoutedModule`): its forward runs with those parameters detached, so
autograd gives dense input gradients and no weight gradient, and its backward,
once the routed rows are known, runs the forward again on the routed rows alone
with the parameters attached and takes their gradient from that. This is exact
for any module whose output rows depend on their own input rows only; modules
that mix the rows of a batch (BatchNorm and its running statistics) cannot be
routed and are refused when a subset of their group is first routed (governance
by freezing alone never routes one, so never refuses).

A group's gradient is the gradient of the mean loss over its routed samples
(the batch-mean gradient rescaled by batch/routed), so its magnitude does not
depend on the quota. Routing is per sample (dim 0 of every activation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import _pytree as pytree
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


def runs_natively(module: nn.Module) -> bool:
    """Whether `module`'s next forward routes every sample (or it is not routed at all):
    its plain PyTorch forward runs, so nothing about its inputs has to be per sample."""
    return _native(getattr(module, "route", {}))


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


# -- the generic routed twin -----------------------------------------------------------------


def _rng(device: torch.device) -> Tensor | None:
    """The state of the generator a module on `device` draws from (None where unknown)."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state() if device.type == "cpu" else None


@contextmanager
def _swapped(module: nn.Module, own: dict[str, Tensor], others: bool) -> Iterator[None]:
    """For the block, `module`'s parameters named in `own` are those tensors; with `others`,
    every other parameter of the module and of its submodules is detached too."""
    saved: list[tuple[dict[str, Any], str, Any]] = []
    for m in module.modules() if others else (module,):
        table: dict[str, Any] = m._parameters
        for name, p in table.items():
            mine = m is module and name in own
            if p is None or not (mine or others):
                continue
            saved.append((table, name, p))
            table[name] = own[name] if mine else p.detach()
    try:
        yield
    finally:
        for table, name, p in reversed(saved):
            table[name] = p


def _scalar(x: object) -> bool:
    return x is None or isinstance(x, int | float | bool | str)


def _flatten(tree: Any) -> tuple[list[Any], Any]:
    """pytree's flatten, with a fast path for a lone tensor (spec None) and a tuple of them."""
    if isinstance(tree, Tensor):
        return [tree], None
    if type(tree) is tuple and all(isinstance(t, Tensor) for t in tree):
        return list(tree), len(tree)
    return pytree.tree_flatten(tree)


def _unflatten(leaves: list[Any], spec: Any) -> Any:
    if spec is None:
        return leaves[0]
    return tuple(leaves) if isinstance(spec, int) else pytree.tree_unflatten(leaves, spec)


@dataclass(eq=False)
class _Call:
    """One routed forward of a RoutedModule, kept for its backward: the inputs to run again."""

    module: RoutedModule
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    names: list[str]  # the parameters taken from the routed rows, as the module names them
    params: list[Tensor]
    slots: list[RouteSlot]
    outputs: list[int]  # where the differentiable outputs sit among the output's leaves
    inputs: list[tuple[Tensor, int]]  # the tensor arguments and their versions before it
    rng: Tensor | None  # the generator's state before the forward, where the forward drew from it
    autocast: tuple[bool, torch.dtype]

    def gradients(
        self, outs: tuple[Tensor | None, ...], need: tuple[bool, ...]
    ) -> list[Tensor | None]:
        """The parameters' gradients from the routed rows of `outs` (the outputs' gradients)."""
        for t, version in self.inputs:
            if t._version != version:
                raise RuntimeError(
                    f"routed module {self.module.routed_name}: an input of its forward was "
                    "modified in place (by it or after it), so its routed rows cannot be rerun"
                )
        result: list[Tensor | None] = [None] * len(self.names)
        by_slot: dict[int, list[int]] = {}
        for i, slot in enumerate(self.slots):
            if need[i]:
                by_slot.setdefault(id(slot), []).append(i)
        for positions in by_slot.values():
            grads = self._rerun(self.slots[positions[0]], positions, outs)
            for i, g in zip(positions, grads, strict=True):
                result[i] = g
        return result

    def _rerun(
        self, slot: RouteSlot, positions: list[int], outs: tuple[Tensor | None, ...]
    ) -> list[Tensor]:
        """Run the forward again on `slot`'s routed rows, its parameters attached."""
        params = [self.params[i] for i in positions]
        index = slot.index
        live = [(k, g) for k, g in zip(self.outputs, outs, strict=True) if g is not None]
        if index is not None:
            for _, g in live:
                if g.dim() == 0 or g.shape[0] != slot.batch:
                    raise RuntimeError(
                        f"routed module {self.module.routed_name} gave an output of shape "
                        f"{tuple(g.shape)} whose first dimension is not the batch ({slot.batch})"
                    )
        if not live or (index is not None and index.numel() == 0):
            return [torch.zeros_like(p) for p in params]
        args, kwargs = self.args, self.kwargs
        if index is None:
            grads = [g for _, g in live]
        elif self.rng is not None:
            # it drew random numbers (dropout): the whole batch again, with the same draws,
            # its unrouted rows' output gradients zero
            grads = [
                torch.zeros_like(g).index_add_(0, index, g.index_select(0, index)) for _, g in live
            ]
        else:

            def rows(t: Any) -> Any:
                per_sample = isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == slot.batch
                return t.index_select(0, index) if per_sample else t

            if kwargs or not all(isinstance(a, Tensor) for a in args):
                args, kwargs = pytree.tree_map(rows, (args, kwargs))
            else:
                args = tuple(rows(a) for a in args)
            grads = [g.index_select(0, index) for _, g in live]
        leaves = {
            self.names[i]: p.detach().requires_grad_()
            for i, p in zip(positions, params, strict=True)
        }
        device = params[0].device
        enabled, dtype = self.autocast
        cast = torch.autocast(device.type, dtype=dtype) if enabled else nullcontext()
        with torch.enable_grad(), cast, self._draws(device), _swapped(self.module, leaves, True):
            flat, _ = _flatten(self.module._plain(*args, **kwargs))
        pairs = [(flat[k], g) for (k, _), g in zip(live, grads, strict=True)]
        pairs = [(o, g) for o, g in pairs if isinstance(o, Tensor) and o.requires_grad]
        found = (
            torch.autograd.grad(
                [o for o, _ in pairs],
                list(leaves.values()),
                [g for _, g in pairs],
                allow_unused=True,
            )
            if pairs
            else [None] * len(params)
        )
        return [
            torch.zeros_like(p) if g is None else g.mul_(slot.scale) if slot.scale != 1.0 else g
            for p, g in zip(params, found, strict=True)
        ]

    @contextmanager
    def _draws(self, device: torch.device) -> Iterator[None]:
        """The forward's random draws again (the caller's generator left as it was)."""
        if self.rng is None:
            yield
            return
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if device.type == "cuda":
                torch.cuda.set_rng_state(self.rng, device)
            else:
                torch.set_rng_state(self.rng)
            yield


class _Tap(torch.autograd.Function):
    """Identity on a RoutedModule's outputs that links them to its parameters: the backward
    passes the outputs' gradients through and gives the parameters their routed gradient."""

    @staticmethod
    def forward(ctx, call, *tensors):
        ctx.call = call
        ctx.set_materialize_grads(False)
        return tuple(t.detach() for t in tensors[len(call.params) :])

    @staticmethod
    def backward(ctx, *grads):
        call: _Call = ctx.call
        n = len(call.params)
        need = tuple(ctx.needs_input_grad[1 : 1 + n])
        params = call.gradients(grads, need) if any(need) else [None] * n
        return (None, *params, *grads)


class RoutedModule(nn.Module):
    """The generic routed twin of a module class (`_generic` makes one subclass per class).

    Its forward runs the class's own forward with the governed parameters detached, so
    autograd gives every row's input gradient and no parameter gradient; `_Tap` links the
    outputs back to the parameters, and its backward runs the forward again on the routed
    rows alone (`_Call`) to take the parameters' gradient. Exact for a module whose output
    rows depend only on the same input rows (a tensor argument whose first dimension is the
    batch is per sample; any other is shared by every row). A forward that draws random
    numbers (dropout) is rerun on the whole batch with the same draws, the unrouted rows'
    output gradients zero: still exact, without the saving.
    """

    route: dict[str, RouteSlot]
    routed_name: str
    _plain: Callable[..., Any]  # the class's own forward

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        route = self.route
        tapped = {
            n: p
            for n, p in self._parameters.items()
            if p is not None and p.requires_grad and not route.get(n, _ALL).native
        }
        if not tapped or not torch.is_grad_enabled():
            return self._plain(*args, **kwargs)
        device = next(iter(tapped.values())).device
        inputs = _flatten((*args, *kwargs.values()))[0]
        versions = [(t, t._version) for t in inputs if isinstance(t, Tensor)]
        before = _rng(device)
        with _swapped(self, {n: p.detach() for n, p in tapped.items()}, False):
            out = self._plain(*args, **kwargs)
        after = _rng(device)
        flat, spec = _flatten(out)
        outputs = [
            i
            for i, t in enumerate(flat)
            if isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex())
        ]
        if not outputs:
            if all(isinstance(t, Tensor) or _scalar(t) for t in flat):
                return out  # nothing differentiable: its parameters take no gradient anyway
            raise TypeError(
                f"routed module {self.routed_name} ({type(self).__name__}) returned a "
                f"{type(out).__name__}, whose tensors routing cannot find"
            )
        drew = before is not None and after is not None and not torch.equal(before, after)
        call = _Call(
            module=self,
            args=args,
            kwargs=kwargs,
            names=list(tapped),
            params=list(tapped.values()),
            slots=[route[n] for n in tapped],
            outputs=outputs,
            inputs=versions,
            rng=before if drew else None,
            autocast=(
                torch.is_autocast_enabled(device.type),
                torch.get_autocast_dtype(device.type),
            ),
        )
        linked = _Tap.apply(call, *tapped.values(), *(flat[i] for i in outputs))
        for i, t in zip(outputs, linked, strict=True):
            flat[i] = t
        return _unflatten(flat, spec)


_GENERIC: dict[type[nn.Module], type[RoutedModule]] = {}


def _generic(cls: type[nn.Module]) -> type[RoutedModule]:
    """The generic routed twin of `cls`: a subclass whose forward wraps `cls.forward`."""
    routed = _GENERIC.get(cls)
    if routed is None:
        routed = type(f"Routed{cls.__name__}", (RoutedModule, cls), {"_plain": cls.forward})
        _GENERIC[cls] = routed
    return routed


def _mixes_rows(module: nn.Module) -> bool:
    """Whether a module's rows are not independent: batch statistics (BatchNorm, SyncBatchNorm),
    or running statistics updated from the batch, which a rerun would update twice."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return True
    return isinstance(module, nn.modules.instancenorm._InstanceNorm) and module.track_running_stats


_ROUTED: dict[type[nn.Module], type[nn.Module]] = {
    Conv1D: RoutedConv1D,
    nn.Linear: RoutedLinear,
    nn.LayerNorm: RoutedLayerNorm,
    nn.Embedding: RoutedEmbedding,
}


@dataclass
class RoutingPlan:
    """One RouteSlot per group; `set` fills them between the forward and the backward.

    `mixing`: the groups holding a module whose rows mix (BatchNorm), with the line that
    refuses routing a subset of them.
    """

    slots: dict[str, RouteSlot] = field(default_factory=dict)
    mixing: dict[str, str] = field(default_factory=dict)

    def set(self, group: str, index: Tensor | None, batch: int, scale: float | None = None) -> None:
        """Route `index` of a batch of `batch` rows; `scale` defaults to batch / len(index)."""
        slot = self.slots[group]
        if index is not None and group in self.mixing:
            raise TypeError(self.mixing[group])
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


def make_routable(model: nn.Module, group_of: dict[str, str], *, lazy: bool = False) -> RoutingPlan:
    """Switch every module holding governed parameters to its routed twin, wired to their groups.

    `group_of` maps full parameter names to group names. Each module that directly holds
    (`_parameters`) a governed parameter is switched: Linear, Conv1D, LayerNorm and
    Embedding to their specialised twins, any other class to its generic one
    (`RoutedModule`). A module whose rows mix (BatchNorm) cannot be routed: it is refused
    here, or with `lazy` (the Governor: governance by freezing alone routes no subset)
    left as it is and refused by `RoutingPlan.set` when a subset of its group is routed.
    """
    plan = RoutingPlan({g: RouteSlot() for g in sorted(set(group_of.values()))})
    group_by_slot = {id(slot): g for g, slot in plan.slots.items()}
    # id(param) -> slot, so a tied weight (GPT-2's lm_head is wte) routes with its owner;
    # parameters outside `group_of` (frozen before governance began) get no routing
    owners = {id(p): plan.slots[group_of[n]] for n, p in model.named_parameters() if n in group_of}
    routed_classes = set(_ROUTED.values())
    for mod_name, module in model.named_modules():
        route = {n: owners.get(id(p), _ALL) for n, p in module._parameters.items() if p is not None}
        groups = sorted({group_by_slot[id(s)] for s in route.values() if s is not _ALL})
        if not groups:
            continue
        name, cls = mod_name or "<root>", type(module)
        if _mixes_rows(module):
            message = (
                f"module {name} ({cls.__name__}) holds parameters {sorted(route)} of group(s) "
                f"{', '.join(groups)} but mixes the rows of a batch (batch statistics), so it "
                "cannot be routed per sample; govern its group by freezing alone"
            )
            if not lazy:
                raise TypeError(message)
            for g in groups:
                plan.mixing.setdefault(g, message)
            continue
        if not (cls in routed_classes or isinstance(module, RoutedModule)):  # not routed yet
            module.__class__ = _ROUTED.get(cls) or _generic(cls)
        # plain attributes (nn.Module.__setattr__'s types name only tensors and modules)
        setattr(module, "route", route)  # noqa: B010
        setattr(module, "routed_name", name)  # noqa: B010
    return plan
