"""Models built from a config (no hub download): a GPT-2 architecture from `transformers`,
and its per-sample loss (the router's scores)."""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.tensor import DTensor
from transformers import GPT2Config, GPT2LMHeadModel

from govtrain.pipeline.config import ModelConfig


def build_model(cfg: ModelConfig, vocab_size: int, seq_len: int) -> nn.Module:
    """A freshly initialised GPT-2 (the caller seeds torch first)."""
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=seq_len,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def per_sample_loss(model: nn.Module, ids: Tensor) -> Tensor:
    """Next-token cross-entropy averaged over each sequence: one loss per sample."""
    batch, seq = ids.shape
    positions = torch.arange(seq, device=ids.device).expand(batch, seq)
    logits = model(input_ids=ids, position_ids=positions).logits
    losses = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    )
    return losses.view(batch, -1).mean(1)


def structure_digest(model: nn.Module) -> str:
    """SHA-256 over parameter names, shapes and dtypes: what the architecture is."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(f"{name}:{tuple(p.shape)}:{p.dtype}\n".encode())
    return h.hexdigest()


def parameter_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter's bytes, in name order: what the weights are (whole
    tensors: a sharded model's shards are gathered, a collective every rank must join)."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        whole = p.full_tensor() if isinstance(p, DTensor) else p
        h.update(name.encode())
        h.update(whole.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
