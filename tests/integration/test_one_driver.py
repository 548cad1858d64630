"""One loop policy (pipeline/driver.py) under four loops: the same governed run through
GovernedTrainer, an HF Trainer with the GovernanceCallback, a Lightning fit with its
GovernanceCallback and a hand-written Accelerate loop with GovernedLoop takes the same
decisions and leaves the same sealed log shape, with a streak of non-finite steps and a
Finish in it.

The four start from the same weights and see the same batches in the same order with
the same optimizer; two batches are poisoned (their logits made NaN in the training
forward), so every loop must skip exactly those steps alike, and the run converges and
Finishes before `total_steps`."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")
L = pytest.importorskip("lightning.pytorch")

from transformers import Trainer, TrainingArguments  # noqa: E402

from govtrain.audit.provenance import read_records  # noqa: E402
from govtrain.audit.verify import LOG_FILE, verify_run  # noqa: E402
from govtrain.formal.replay import replay  # noqa: E402
from govtrain.pipeline import hf, lightning  # noqa: E402
from govtrain.pipeline.accelerate import GovernedLoop  # noqa: E402
from govtrain.pipeline.config import parse_config  # noqa: E402
from govtrain.pipeline.models import build_model, per_sample_loss  # noqa: E402
from govtrain.pipeline.trainer import GovernedTrainer  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

pytestmark = pytest.mark.torch

STEPS, BATCH, LR = 60, 8, 3e-3
POISONED = (7, 8)  # two non-finite steps in a row: skipped, not a stop (max_nonfinite 3)
GOVERNED = ("step", "nonfinite", "stop")


def config():
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["train"].update(
        lr=LR, weight_decay=0.0, grad_clip=None, probe_every=5, eval_every=1000,
        checkpoint_every=1000, max_nonfinite=3,
    )  # fmt: skip
    gov = raw["governance"]
    gov.update(total_steps=STEPS, finish_window=2)
    gov["governor"] = {
        "signal_threshold": 0.1,
        "window": 2,
        "patience": 2,
        "wake_threshold": 100.0,
        "max_awakenings": 1,
    }
    # patterns that match the bare model (GovernedTrainer, HF) and the LightningModule's
    # `model.` prefix alike
    gov["groups"] = [
        {"name": "embed", "patterns": ["*transformer.wte.*", "*transformer.wpe.*"], "level": 0},
        {"name": "block0", "patterns": ["*transformer.h.0.*"], "level": 0},
        {"name": "top", "patterns": ["*transformer.h.1.*", "*transformer.ln_f.*"], "level": 1},
    ]
    return parse_config(raw)


def poison(model: nn.Module, batches: list[Tensor]):
    """NaN logits (and loss) for the poisoned batches' training forwards, whoever calls."""
    bad = [batches[i] for i in POISONED]

    def hook(module, args, kwargs, output):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if module.training and torch.is_grad_enabled() and any(torch.equal(ids, b) for b in bad):
            output["logits"] = output["logits"] * float("nan")
            if output.get("loss") is not None:
                output["loss"] = output["loss"] * float("nan")
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


class InOrder(IterableDataset):
    """The batches' rows in order: an HF Trainer without a sampler's shuffle."""

    def __init__(self, batches: list[Tensor]) -> None:
        self.rows = torch.cat(batches)

    def __iter__(self):
        for row in self.rows:
            yield {"input_ids": row, "labels": row}


class Wrapped(L.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: Tensor, index: int):
        per_sample = per_sample_loss(self.model, batch)
        return {"loss": per_sample.mean(), "per_sample_loss": per_sample}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=LR, weight_decay=0.0)


@pytest.fixture(scope="module")
def three(tmp_path_factory) -> dict[str, Path]:
    """The same run through the three loops: each one's run directory."""
    cfg = config()
    base = tmp_path_factory.mktemp("one-driver")
    runs = {name: base / name for name in ("trainer", "hf", "lightning", "accelerate")}

    trainer = GovernedTrainer(cfg, runs["trainer"])
    batches = [trainer.corpus.batch(i, BATCH, cfg.seed) for i in range(STEPS)]
    probe_ids = trainer.corpus.train[:8]
    initial = copy.deepcopy(trainer.model.state_dict())
    poison(trainer.model, batches)
    trainer.start()
    trainer.train(progress=False)

    def model() -> nn.Module:
        built = build_model(cfg.model, trainer.corpus.vocab_size, cfg.data.seq_len)
        built.load_state_dict(initial)
        poison(built, batches)
        return built.train()

    options = {"probe_every": 5, "max_nonfinite": 3}
    gpt = model()
    audit = hf.start_audit(runs["hf"], gpt, cfg.governance)
    callback = hf.GovernanceCallback(
        cfg.governance,
        audit=audit,
        probe_batch={"input_ids": probe_ids, "labels": probe_ids},
        seed=cfg.seed,
        **options,
    )
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=LR, weight_decay=0.0)
    args = TrainingArguments(
        output_dir=str(base / "hf-out"),
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        max_grad_norm=0,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(
        model=gpt,
        args=args,
        train_dataset=InOrder(batches),
        optimizers=(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)),
        callbacks=[callback],
    ).train()

    module = Wrapped(model())
    audit = lightning.start_audit(runs["lightning"], module, cfg.governance)
    callback = lightning.GovernanceCallback(
        cfg.governance,
        probe=lambda m: per_sample_loss(m.model, probe_ids).mean(),
        audit=audit,
        seed=cfg.seed,
        **options,
    )
    L.Trainer(
        max_steps=STEPS,
        callbacks=[callback],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(module, DataLoader(torch.cat(batches), batch_size=BATCH))

    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    gpt = model()
    audit = hf.start_audit(runs["accelerate"], gpt, cfg.governance)
    optimizer = torch.optim.AdamW(gpt.parameters(), lr=LR, weight_decay=0.0)
    gpt, optimizer = accelerator.prepare(gpt, optimizer)
    loop = GovernedLoop(
        accelerator,
        gpt,
        optimizer,
        cfg.governance,
        probe=lambda m: per_sample_loss(m, probe_ids).mean(),
        audit=audit,
        seed=cfg.seed,
        **options,
    )
    for batch in batches:
        if loop.step(per_sample_loss(gpt, batch)).stop:
            break
    loop.close()
    return runs


def governed(run: Path) -> list[tuple]:
    """What the loop policy decided, step by step: kind, step, and for a governed step its
    transitions, state, decision and quotas."""
    out = []
    for r in read_records(run / LOG_FILE):
        if r.kind not in GOVERNED:
            continue
        body = r.body
        decided = (
            (
                [(t["action"], t["group"]) for t in body["transitions"]],
                body["state"],
                body["decision"],
                {g: v["quota"] for g, v in body["routed"].items()},
            )
            if r.kind == "step"
            else ()
        )
        out.append((r.kind, body["step"], *decided))
    return out


def test_every_loop_takes_the_same_decisions(three: dict[str, Path]) -> None:
    runs = {name: governed(run) for name, run in three.items()}
    reference = runs["trainer"]
    assert [s for kind, s, *_ in reference if kind == "nonfinite"] == list(POISONED)
    actions = [a for kind, _, *rest in reference if kind == "step" for a, _ in rest[0]]
    assert "Finish" in actions and len(reference) < STEPS  # a Finish ended it early
    for name in ("hf", "lightning", "accelerate"):
        assert len(runs[name]) == len(reference), name
        for ours, theirs in zip(reference, runs[name], strict=True):
            assert ours == theirs, (name, ours[:2])


def test_every_loop_seals_the_same_log_shape(three: dict[str, Path]) -> None:
    ends = {}
    for name, run in three.items():
        assert verify_run(run).closed, name
        records = read_records(run / LOG_FILE)
        assert replay(records).ok, name
        ends[name] = records[-1]
    assert {e.kind for e in ends.values()} == {"run_end"}
    bodies = [e.body for e in ends.values()]
    assert all(b == bodies[0] for b in bodies), bodies
    assert bodies[0]["status"] == "ok" and bodies[0]["finished_at"] == bodies[0]["steps"]
