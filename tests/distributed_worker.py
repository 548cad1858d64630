"""Run by tests/integration/test_distributed.py under torchrun (and once in-process, world=None):
the pieces of a distributed governed step, with results left for the test to compare.

    python -m torch.distributed.run --standalone --nproc_per_node=2 \
        tests/distributed_worker.py grads OUT QUOTA ENGINE
    ... diverge RUN_DIR
    ... hf OUT_DIR
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from govtrain.governance.config import parse_governance
from govtrain.pipeline import distributed
from govtrain.pipeline.config import ModelConfig
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.models import build_model, per_sample_loss
from govtrain.pipeline.trainer import GovernedTrainer

BATCH, SEQ, VOCAB = 8, 12, 40
GOVERNANCE = {
    "total_steps": 10,
    "groups": [
        {"name": "embed", "patterns": ["transformer.wte.*", "transformer.wpe.*"], "level": 0},
        {"name": "body", "patterns": ["transformer.h.*", "transformer.ln_f.*"], "level": 0},
    ],
    "governor": {
        "signal_threshold": 0.05,
        "window": 2,
        "patience": 2,
        "wake_threshold": 0.5,
        "max_awakenings": 1,
    },
    "hierarchy": {"levels": 1, "emergency_fraction": 0.5},
    "budget": {"master": 8, "floor": 1, "ceiling": 8},
    "router": {"batch_size": BATCH, "warmup_steps": 0, "scorer": "loss"},
}


def routed_gradients(
    quota: int, world: distributed.World | None, engine: str = "ddp"
) -> dict[str, torch.Tensor]:
    """The averaged weight gradients of one governed step on the global batch, every group
    routed `quota` of its samples (this rank's share of the batch when `world` is given)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_embd=16, n_head=2), VOCAB, SEQ)
    sharded = world is not None and engine == "fsdp2"
    if sharded:
        distributed.shard(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gov = Governor(
        model, opt, parse_governance(GOVERNANCE), probe=None, world=world, synced=world is not None
    )
    gov.decision = dataclasses.replace(gov.decision, quotas=(quota,) * len(gov.names))
    gov._apply_freezing()
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
    if world is not None:
        ids = distributed.split(ids, world)
    losses = per_sample_loss(model, ids)
    shard = None if world is None else distributed.gather(losses, world)
    gov.route(losses, shard)
    losses.mean().backward()
    if world is not None and not sharded:
        distributed.all_reduce_gradients(gov.trainable(), world)
    return {
        n: distributed.full(p.grad).clone()
        for n, p in model.named_parameters()
        if p.grad is not None
    }


def diverge(run_dir: Path, world: distributed.World) -> None:
    """A governed run in which rank 1's weights are nudged after 3 steps: the next
    agreement must stop the job."""
    from govtrain.pipeline.config import load_config

    cfg = load_config(Path(__file__).parent.parent / "configs" / "smoke.yaml")
    trainer = GovernedTrainer(cfg, run_dir, world=world)
    trainer.start()
    for _ in range(3):
        trainer.train_step()
    if world.rank == 1:
        with torch.no_grad():
            trainer.gov.trainable()[0].add_(1e-3)
    trainer.train(progress=False)


def hf_trainer(out: Path, world: distributed.World) -> None:
    """An unmodified transformers.Trainer (its own DDP) governed by the callback; each rank
    writes the transitions it took, rank 0 also the audit log."""
    import json

    from torch.utils.data import Dataset
    from transformers import Trainer, TrainingArguments

    from govtrain.pipeline.config import DataConfig
    from govtrain.pipeline.data import synthetic_corpus
    from govtrain.pipeline.hf import GovernanceCallback, start_audit

    ids = synthetic_corpus(
        DataConfig(source="synthetic", seq_len=SEQ, vocab_size=VOCAB, sequences=256), 0
    ).train

    class LM(Dataset):
        def __len__(self) -> int:
            return ids.shape[0]

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "labels": ids[i]}

    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layer=2, n_embd=16, n_head=2), VOCAB, SEQ)
    governance = {**GOVERNANCE, "total_steps": 24}
    governance["governor"] = {**GOVERNANCE["governor"], "signal_threshold": 0.3}
    governance["groups"] = [*GOVERNANCE["groups"][:1], {**GOVERNANCE["groups"][1], "level": 1}]
    governance["hierarchy"] = {"levels": 2, "emergency_fraction": 0.5}
    cfg = parse_governance(governance)
    args = TrainingArguments(
        output_dir=str(out / "hf"), max_steps=24, per_device_train_batch_size=BATCH,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, seed=0, ddp_backend="gloo",
    )  # fmt: skip
    audit = start_audit(out / "run", model, cfg, training_args=args) if world.leader else None
    probe = {"input_ids": ids[:4], "labels": ids[:4]}
    callback = GovernanceCallback(cfg, audit=audit, probe_batch=probe, probe_every=2)
    Trainer(model=model, args=args, train_dataset=LM(), callbacks=[callback]).train()
    taken = [t.as_dict() for t in callback.transitions]
    (out / f"rank{world.rank}.json").write_text(json.dumps(taken))


def main() -> None:
    what, out = sys.argv[1], Path(sys.argv[2])
    world = distributed.join(60, cuda=False)
    try:
        if what == "grads":
            grads = routed_gradients(int(sys.argv[3]), world, sys.argv[4])
            if world.leader:
                torch.save(grads, out)
        elif what == "hf":
            hf_trainer(out, world)
        elif what == "diverge":
            try:
                diverge(out, world)
            except distributed.DistributedError as exc:
                print(f"rank {world.rank}: {exc}", flush=True)
                sys.exit(7)
    except BaseException:
        distributed.leave()
        raise
    distributed.finish()


if __name__ == "__main__":
    main()
