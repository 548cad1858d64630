"""`governance.groups: auto`: parameter groups read off the model's own structure.

A user governing a transformer should not have to write fnmatch patterns. The rule,
the coarse-to-fine split the shipped configs write by hand:

* `embed`: every parameter registered before the residual stack (token and position
  embeddings, an embedding norm);
* `blocks_0` ... `blocks_{L-1}`: the stack split into `hierarchy.levels` contiguous
  runs of blocks, the lower runs one block longer where it does not divide; run k
  is at level k;
* `head`: every parameter registered after the stack (final norm, untied head,
  pooler, classifier).

`embed`, `blocks_0` and `head` make level 0: the bottom and the top of the model
train first, the middle arrives level by level. Only trainable parameters are claimed:
a parameter frozen before governance starts (a PEFT model's base weights) stays outside
every group, and a part with nothing trainable gets no group (adapters-only models
have no `embed` or `head`). The groups are written into the
config before it is validated, so the run's log records them like any others and
replay never needs the model.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import torch
from torch import nn

from govtrain.governance.errors import ConfigError
from govtrain.pipeline.growth import block_list


def residual_stack(model: nn.Module) -> tuple[str, list[nn.Module]]:
    """The model's stack of blocks: a known block list (BLOCK_LISTS), else the one
    outermost ModuleList of two or more blocks of one class (ViT's `vit.layers`, a PEFT
    wrapper's). Two such stacks (an encoder-decoder's) or none: one line."""
    known = block_list(model)
    if known is not None:
        return known
    stacks: list[tuple[str, list[nn.Module]]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        if len({type(block) for block in module}) != 1:
            continue
        if any(name.startswith(outer + ".") for outer, _ in stacks):
            continue  # inside a block of a stack already found
        stacks.append((name, list(module)))
    if len(stacks) == 1:
        return stacks[0]
    if not stacks:
        raise ConfigError(
            f"governance.groups: 'auto' reads the model's stack of blocks, but "
            f"{type(model).__name__} has none: write the groups' patterns"
        )
    raise ConfigError(
        f"governance.groups: 'auto' finds {len(stacks)} stacks of blocks in "
        f"{type(model).__name__} ({', '.join(n for n, _ in stacks)}): an encoder-decoder's "
        "levels are a choice to write down, as the groups' patterns"
    )


def auto_groups(model: nn.Module, levels: int) -> list[dict[str, Any]]:
    """The groups of the rule above for `model`, as config mappings."""
    prefix, blocks = residual_stack(model)
    if len(blocks) < levels:
        raise ConfigError(
            f"governance.groups: 'auto' splits {len(blocks)} blocks of {prefix} into "
            f"hierarchy.levels {levels}: at most {len(blocks)} levels"
        )
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    inside = [[n for n in trainable if n.startswith(f"{prefix}.{i}.")] for i in range(len(blocks))]
    stack = {n for names in inside for n in names}
    order = list(trainable)  # registration order
    cut = next((k for k, n in enumerate(order) if n in stack), len(order))  # the stack starts
    before = [n for n in order[:cut] if n not in stack]
    after = [n for n in order[cut:] if n not in stack]
    groups = []
    if patterns := _claims(trainable, before):
        groups.append({"name": "embed", "patterns": patterns, "level": 0})
    start = 0
    for level in range(levels):
        size = len(blocks) // levels + (level < len(blocks) % levels)
        patterns = [
            p for i in range(start, start + size) for p in _claims(trainable, inside[i], i, prefix)
        ]
        if patterns:
            groups.append({"name": f"blocks_{level}", "patterns": patterns, "level": level})
        start += size
    if patterns := _claims(trainable, after):
        groups.append({"name": "head", "patterns": patterns, "level": 0})
    return groups


def _claims(
    trainable: dict[str, bool], names: list[str], block: int | None = None, prefix: str = ""
) -> list[str]:
    """Patterns claiming exactly the trainable ones of `names` (one part of the model): the
    whole block's `prefix.i.*`, else each parameter's module `path.*`, wherever that
    claims nothing frozen and nothing outside the part, else the parameter's own name.
    A frozen parameter is never claimed: it stays outside governance (a PEFT base)."""
    part = set(names)

    def clean(pattern: str) -> bool:
        return all(trainable[n] and n in part for n in trainable if fnmatchcase(n, pattern))

    if block is not None and names and clean(f"{prefix}.{block}.*"):
        return [f"{prefix}.{block}.*"]
    claims: list[str] = []
    for name in names:
        if not trainable[name] or any(fnmatchcase(name, p) for p in claims):
            continue
        module = name.rpartition(".")[0]
        claims.append(f"{module}.*" if module and clean(f"{module}.*") else name)
    return claims


def resolve_auto_groups(data: dict, model: nn.Module | None, source: str) -> dict:
    """`data` (a run config mapping) with `governance.groups: auto` written out from
    `model`, or, without one, from a model built from the config's `model` section on
    the meta device (no memory, no weights: only its structure is read)."""
    governance = data.get("governance")
    if not isinstance(governance, dict) or governance.get("groups") != "auto":
        return data
    hierarchy = governance.get("hierarchy")
    levels = hierarchy.get("levels") if isinstance(hierarchy, dict) else None
    if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
        raise ConfigError(f"{source}: governance.groups 'auto' needs hierarchy.levels >= 1")
    if model is None:
        model = _model_from_config(data, source)
    groups = auto_groups(model, levels)
    return {**data, "governance": {**governance, "groups": groups}}


def _model_from_config(data: dict, source: str) -> nn.Module:
    from govtrain.pipeline.config import ModelConfig
    from govtrain.pipeline.models import build_model

    if not isinstance(data.get("model"), dict):
        raise ConfigError(
            f"{source}: governance.groups 'auto' needs the model: a `model:` section, or "
            "the model passed to load_config(..., model=)"
        )
    try:
        model_cfg = ModelConfig.model_validate(data["model"])
    except ValueError as exc:
        raise ConfigError(f"{source}: model: {exc}") from None
    with torch.device("meta"):  # parameter names do not depend on the vocabulary's size
        return build_model(model_cfg, vocab_size=8, seq_len=8)
