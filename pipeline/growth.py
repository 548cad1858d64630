"""Bypassed dormant blocks and growth at activation, on a real model (the rule:
governance/growth.py).

A block is one entry of the model's residual stack (GPT-2's `transformer.h`, the
Llama family's `model.layers`, BERT's `encoder.layer`), owned by the one group its
trainable parameters belong to. A bypassed block's `forward` is the identity of its
residual stream (it returns the hidden states it is given), so no forward, no
backward and no activation memory; its parameters stay in the model, the optimizer
and every checkpoint, which keeps names, state dicts and resume unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.governance.growth import GrowthPlan

# where the residual stack lives, by family (matched as a suffix: wrappers such as
# `bert.` or PEFT's `base_model.model.` may come before it)
BLOCK_LISTS = ("transformer.h", "model.layers", "encoder.layer")
# the projections that write a block's residual branches back into the stream (GPT-2;
# Llama, Qwen2, Mistral, Gemma): zeroed, the block is the identity (`grow: identity`)
RESIDUAL_OUTPUTS = ("attn.c_proj", "mlp.c_proj", "self_attn.o_proj", "mlp.down_proj")


def _identity(hidden_states: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """A bypassed block: what it is given is what the next block gets."""
    return hidden_states


class Blocks:
    """A model's residual blocks, the group owning each, and which of them run."""

    def __init__(self, model: nn.Module, group_of: dict[str, str], cfg: GovernanceConfig) -> None:
        names = [g.name for g in cfg.groups]
        prefix, modules = find_blocks(model)
        self.modules: dict[str, nn.Module] = {}
        self.owners: list[tuple[str, int]] = []  # (block name, group index), forward order
        for i, module in enumerate(modules):
            name = f"{prefix}.{i}"
            groups = {
                group_of[f"{name}.{n}"]
                for n, _ in module.named_parameters()
                if f"{name}.{n}" in group_of
            }
            if len(groups) > 1:
                raise GovtrainError(
                    f"block {name} holds parameters of groups {sorted(groups)}: with "
                    "hierarchy.dormant 'bypass' each block must belong to one group"
                )
            if groups:
                self.modules[name] = module
                self.owners.append((name, names.index(groups.pop())))
        self._refuse_growth(cfg)

    def _refuse_growth(self, cfg: GovernanceConfig) -> None:
        """One line for a growth this model cannot take, before the first step."""
        grown = [(b, g) for b, g in self.owners if cfg.level_of(g) > 0]
        if cfg.hierarchy.grow == "stack" and grown:
            first = min(cfg.level_of(g) for _, g in grown)
            if not any(cfg.level_of(g) < first for _, g in self.owners):
                raise GovtrainError(
                    f"hierarchy.grow 'stack' copies trained blocks, but no block is below "
                    f"level {first}: put some of {self.owners[0][0].rsplit('.', 1)[0]} at level 0"
                )
        if cfg.hierarchy.grow == "identity":
            for name, _ in grown:
                if not self._outputs(name):
                    kind = type(self.modules[name]).__name__
                    raise GovtrainError(
                        f"hierarchy.grow 'identity' zeroes a block's residual output "
                        f"projections ({', '.join(RESIDUAL_OUTPUTS)}); block {name} ({kind}) "
                        "has none (a post-norm block cannot be made the identity that way): "
                        "use 'stack' or 'none'"
                    )

    def set_computed(self, computed: tuple[bool, ...]) -> None:
        """Bypass the blocks of the groups not computed; restore the others' forward."""
        for name, g in self.owners:
            module = self.modules[name]
            if computed[g]:
                module.__dict__.pop("forward", None)  # the class's forward again
            else:
                module.forward = _identity  # an instance attribute shadows the class's

    def owned(self) -> list[list[str | int]]:
        """Every block and the index of the group that owns it, in forward order."""
        return [[b, g] for b, g in self.owners]

    @contextmanager
    def all_computed(self) -> Iterator[None]:
        """Every block runs inside (the dense reference), as it was again after."""
        saved = {
            n: m.__dict__.pop("forward") for n, m in self.modules.items() if "forward" in m.__dict__
        }
        try:
            yield
        finally:
            for name, forward in saved.items():
                self.modules[name].forward = forward

    def bypassed(self) -> frozenset[str]:
        return frozenset(n for n, m in self.modules.items() if "forward" in m.__dict__)

    @torch.no_grad()
    def grow(self, plan: GrowthPlan) -> dict[str, Any]:
        """Initialise the plan's target blocks; the audit record of it: the plan, every
        block's owner, and SHA-256 of the source blocks and of the grown ones (equal
        under `stack`, where each target is a copy)."""
        sources = [s for _, s in plan.pairs if s is not None]
        before = _digest([self.modules[s] for s in sources]) if sources else None
        for target, source in plan.pairs:
            if plan.operator == "stack" and source is not None:
                mine, theirs = self.modules[target].state_dict(), self.modules[source].state_dict()
                for key, tensor in mine.items():
                    tensor.copy_(theirs[key])
            elif plan.operator == "identity":
                for tensor in self._outputs(target):
                    tensor.zero_()
        return {
            **plan.as_dict(),
            "blocks": self.owned(),
            "source_sha256": before,
            "result_sha256": _digest([self.modules[t] for t, _ in plan.pairs]),
        }

    def _outputs(self, name: str) -> list[Tensor]:
        return [
            p
            for n, p in self.modules[name].named_parameters()
            if n.rsplit(".", 1)[0].endswith(RESIDUAL_OUTPUTS)
        ]


def block_list(model: nn.Module) -> tuple[str, list[nn.Module]] | None:
    """The model's residual stack by its known names (BLOCK_LISTS): its path and blocks."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and any(
            name == s or name.endswith("." + s) for s in BLOCK_LISTS
        ):
            return name, list(module)
    return None


def find_blocks(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """The model's residual stack, by its known names; one line when it has none."""
    found = block_list(model)
    if found is not None:
        return found
    raise GovtrainError(
        f"hierarchy.dormant 'bypass' skips residual blocks, but {type(model).__name__} has "
        f"no block list ({', '.join(BLOCK_LISTS)}): use dormant 'frozen'"
    )


def _digest(blocks: list[nn.Module]) -> str:
    """SHA-256 over the blocks' tensors in order, each named relative to its block (whole
    tensors: a sharded block's shards are gathered, a collective every rank joins)."""
    h = hashlib.sha256()
    for block in blocks:
        for key, tensor in sorted(block.state_dict().items()):
            whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
            h.update(key.encode())
            h.update(whole.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
