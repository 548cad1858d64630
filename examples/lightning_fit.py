"""Govern a Lightning fit with one callback, and audit it.

    python examples/lightning_fit.py [--run-dir DIR] [--steps N]

The GPT-2 and governance of examples/hf_trainer.py, as a LightningModule whose
`training_step` returns its per-sample losses beside the loss: the router's
scores. Every step and evaluation goes into a signed audit log, verified and
replayed at the end.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import torch
from hf_trainer import BATCH, SEED, governance, run_example
from torch.utils.data import DataLoader

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.governance.config import parse_governance
from govtrain.pipeline.config import DataConfig, ModelConfig
from govtrain.pipeline.data import synthetic_corpus
from govtrain.pipeline.lightning import GovernanceCallback, start_audit
from govtrain.pipeline.models import build_model, per_sample_loss


class CausalLM(L.LightningModule):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def training_step(self, ids: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        per_sample = per_sample_loss(self.model, ids)
        return {"loss": per_sample.mean(), "per_sample_loss": per_sample}

    def validation_step(self, ids: torch.Tensor, batch_idx: int) -> None:
        self.log("val_loss", per_sample_loss(self.model, ids).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.01)


def main(run_dir: Path, steps: int) -> None:
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    raw = governance(steps)
    for group in raw["groups"]:  # the GPT-2 sits in the module's `model` attribute
        group["patterns"] = [f"model.{p}" for p in group["patterns"]]
    cfg = parse_governance(raw)
    corpus = synthetic_corpus(
        DataConfig(source="synthetic", seq_len=32, vocab_size=64, sequences=1024), SEED
    )
    torch.manual_seed(SEED)
    module = CausalLM(build_model(ModelConfig(n_layer=2, n_embd=64, n_head=4), 64, 32))
    audit = start_audit(run_dir, module, cfg, seed=SEED)
    probe = corpus.train[:8]
    callback = GovernanceCallback(
        cfg, audit=audit, probe=lambda m: per_sample_loss(m.model, probe).mean(), seed=SEED
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        devices=1,
        callbacks=[callback],
        val_check_interval=steps // 3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train = DataLoader(corpus.train, batch_size=BATCH, shuffle=False, drop_last=True)
    trainer.fit(module, train, DataLoader(corpus.eval[:128], batch_size=64))

    gov = callback.gov
    assert gov is not None
    phases = zip(gov.names, gov.state.groups, strict=True)
    print(f"final states      {', '.join(f'{n} {g.phase.value}' for n, g in phases)}")
    print(f"active level      {gov.state.active_level}")
    print(f"audit log         {verify_run(run_dir).summary()}")
    report = replay(read_records(run_dir / "audit.jsonl"))
    print(
        f"replay            {report.steps} steps, {report.transitions} transitions, ok={report.ok}"
    )


if __name__ == "__main__":
    run_example(main, __doc__)
