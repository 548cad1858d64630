"""A tiny LightningModule governed by the Lightning callback: shared by
tests/integration/test_lightning.py and, as a script under torchrun, its 2-process DDP test
(one JSON result file per rank)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from govtrain.governance.config import parse_governance

BATCH = 8


def governance(total_steps: int = 24):
    return parse_governance(
        {
            "total_steps": total_steps,
            "groups": [
                {"name": "inp", "patterns": ["inp.*"], "level": 0},
                {"name": "mid", "patterns": ["mid.*"], "level": 0},
                {"name": "out", "patterns": ["out.*"], "level": 1},
            ],
            "governor": {
                "signal_threshold": 0.2,
                "window": 2,
                "patience": 2,
                "wake_threshold": 0.3,
                "max_awakenings": 1,
            },
            "hierarchy": {"levels": 2, "emergency_fraction": 0.5},
            "budget": {"master": 16, "floor": 2, "ceiling": 8},
            "router": {"batch_size": BATCH, "warmup_steps": 2, "scorer": "loss"},
        }
    )


class Tiny(L.LightningModule):
    """A 3-layer MLP classifier; `training_step` gives the router its per-sample losses."""

    def __init__(self, per_sample: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.mid, self.out = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 4)
        self.per_sample = per_sample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.mid(torch.relu(self.inp(x)))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        per = F.cross_entropy(self(x), y, reduction="none")
        return {"loss": per.mean(), "per_sample_loss": per} if self.per_sample else per.mean()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)


def data(samples: int = 64, poisoned: tuple[int, ...] = ()) -> DataLoader:
    """Samples in a fixed order; those at `poisoned` have an infinite input."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(samples, 8, generator=g)
    x[list(poisoned)] = torch.inf
    y = (x[:, :4].argmax(1) + (x[:, 4] > 0).long()) % 4
    return DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False, drop_last=True)


def probe(module: nn.Module) -> torch.Tensor:
    x, y = next(iter(data()))
    return F.cross_entropy(module(x), y)


def trainer(max_steps: int, **kwargs) -> L.Trainer:
    options = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        **kwargs,
    }
    return L.Trainer(max_steps=max_steps, **options)


def digest(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def main(out: Path, strict: bool) -> None:
    """Under torchrun: one DDP fit over 2 ranks; rank 0 audits; each rank writes its view
    (with `strict`, DDP without find_unused_parameters: each rank writes the refusal)."""
    from lightning.pytorch.strategies import DDPStrategy

    from govtrain.pipeline.lightning import (
        GovernanceCallback,
        LightningGovernanceError,
        start_audit,
    )

    torch.set_num_threads(1)
    strategy = DDPStrategy(find_unused_parameters=not strict, process_group_backend="gloo")
    if strict:
        callback = GovernanceCallback(governance())
        try:
            trainer(24, devices=2, strategy=strategy, callbacks=[callback]).fit(Tiny(), data(128))
        except LightningGovernanceError as exc:
            (out / f"refused{os.environ['RANK']}.txt").write_text(str(exc))
        return
    model, cfg = Tiny(), governance()
    audit = start_audit(out / "run", model, cfg) if os.environ["RANK"] == "0" else None
    callback = GovernanceCallback(cfg, probe=probe, probe_every=4, audit=audit)
    fit = trainer(24, devices=2, strategy=strategy, callbacks=[callback])
    # sample 33 reaches one rank only, once per epoch: every rank must skip that step alike
    fit.fit(model, data(128, poisoned=(33,)))
    gov = callback.gov
    assert gov is not None
    view = {
        "rank": fit.global_rank,
        "step": gov.step,
        "state": [g.phase.value for g in gov.state.groups],
        "weights": digest(model),
        "finite": all(bool(torch.isfinite(p).all()) for p in model.parameters()),
        "frozen": [n for n, g in zip(gov.names, gov.state.groups, strict=True) if g.phase.frozen],
    }
    (out / f"rank{fit.global_rank}.json").write_text(json.dumps(view))


if __name__ == "__main__":
    from govtrain.pipeline import distributed

    main(Path(sys.argv[1]), strict="--strict" in sys.argv[2:])
    distributed.finish()  # not the interpreter's teardown: see its docstring
