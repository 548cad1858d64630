"""The optimiser, its learning-rate schedule and the seeds of `govtrain run`."""

from __future__ import annotations

import math
import random

import torch
from torch import nn

from govtrain.pipeline.config import TrainConfig


def scheduled_lr(tcfg: TrainConfig, step: int, total: int) -> float:
    """The learning rate of (0-based) `step` under `train.lr_schedule`."""
    if tcfg.lr_schedule == "constant":
        return tcfg.lr
    if step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    progress = (step - tcfg.warmup_steps) / max(1, total - tcfg.warmup_steps)
    return tcfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def build_optimizer(model: nn.Module, tcfg) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if tcfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
