"""Bypassed dormant blocks and growth under someone else's loop: the HF Trainer and the
Lightning Trainer govern a tiny GPT-2 whose dormant top block does not run until its
level activates, is grown from the block below, and the log verifies and replays."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.governance.config import parse_governance
from govtrain.pipeline.config import DataConfig, ModelConfig
from govtrain.pipeline.data import synthetic_corpus
from govtrain.pipeline.models import build_model, per_sample_loss

pytestmark = pytest.mark.torch

STEPS, BATCH, SEQ, VOCAB = 12, 8, 16, 32


def governance():
    return parse_governance(
        {
            "total_steps": STEPS,
            "groups": [
                {"name": "embed", "patterns": ["transformer.w[tp]e.*"], "level": 0},
                {"name": "block0", "patterns": ["transformer.h.0.*"], "level": 0},
                {"name": "final_norm", "patterns": ["transformer.ln_f.*"], "level": 0},
                {"name": "block1", "patterns": ["transformer.h.1.*"], "level": 1},
            ],
            "governor": {"signal_threshold": 1e-9, "window": 2, "patience": 2,
                         "wake_threshold": 0.5, "max_awakenings": 1},
            "hierarchy": {"levels": 2, "emergency_fraction": 0.5, "dormant": "bypass",
                          "grow": "stack"},
            "budget": {"master": 32, "floor": 2, "ceiling": 8},
            "router": {"batch_size": BATCH, "warmup_steps": 2, "scorer": "loss"},
        }
    )  # fmt: skip


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=2, n_embd=32, n_head=2), VOCAB, SEQ)


def corpus() -> torch.Tensor:
    cfg = DataConfig(source="synthetic", seq_len=SEQ, vocab_size=VOCAB, sequences=256)
    return synthetic_corpus(cfg, 0).train


class Runs:
    """Counts the training forwards of block 1 (a bypassed block never runs)."""

    def __init__(self, model: nn.Module) -> None:
        self.calls = 0
        model.transformer.h[1].attn.register_forward_hook(lambda *a: self.count())

    def count(self) -> None:
        self.calls += 1


def check_log(run_dir: Path, block: str = "transformer.h.1") -> list[dict]:
    assert verify_run(run_dir).closed
    records = read_records(run_dir / "audit.jsonl")
    assert replay(records).divergence is None
    steps = [r.body for r in records if r.kind == "step"]
    grown = [s for s in steps if "growth" in s]
    assert len(grown) == 1 and grown[0]["step"] == 5  # the deadline: ceil(0.5 * 12) - 1
    if grown[0]["growth"]["operator"] == "stack":
        assert grown[0]["growth"]["source_sha256"] == grown[0]["growth"]["result_sha256"]
    # what the next step runs: steps 0-5 ran without block 1, steps 6-11 with it
    assert [s["bypassed"] for s in steps] == [[block]] * 5 + [[]] * 7
    return steps


def test_the_hf_trainer_skips_the_dormant_block_and_grows_it(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    from govtrain.pipeline.hf import GovernanceCallback, start_audit

    class LM(Dataset):
        def __init__(self, ids: torch.Tensor) -> None:
            self.ids = ids

        def __len__(self) -> int:
            return self.ids.shape[0]

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    model, cfg, run_dir = tiny_gpt2(), governance(), tmp_path / "run"
    runs = Runs(model)
    args = TrainingArguments(
        output_dir=str(run_dir / "hf"), max_steps=STEPS, per_device_train_batch_size=BATCH,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    callback = GovernanceCallback(cfg, audit=start_audit(run_dir, model, cfg, training_args=args))
    Trainer(model=model, args=args, train_dataset=LM(corpus()), callbacks=[callback]).train()
    check_log(run_dir)
    assert runs.calls == 6  # the six steps after the growth, and none before it
    h = model.transformer.h
    assert not all(
        torch.equal(a, b) for a, b in zip(h[0].parameters(), h[1].parameters(), strict=True)
    )


def lightning_gpt():
    """The tiny GPT-2 as a LightningModule (under `model.`), returning per-sample losses."""
    import lightning as L

    class GPT(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = tiny_gpt2()

        def training_step(self, batch, batch_idx):
            per = per_sample_loss(self.model, batch[0])
            return {"loss": per.mean(), "per_sample_loss": per}

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)

    return GPT()


def under_model(cfg):
    """`cfg` with its groups' patterns under `model.`, where the LightningModule holds it."""
    groups = [
        g.model_copy(update={"patterns": tuple(f"model.{p}" for p in g.patterns)})
        for g in cfg.groups
    ]
    return cfg.model_copy(update={"groups": tuple(groups)})


def test_lightning_skips_the_dormant_block_and_grows_it(tmp_path: Path) -> None:
    import lightning as L

    from govtrain.pipeline.lightning import GovernanceCallback, start_audit

    module = lightning_gpt()
    runs = Runs(module.model)
    cfg = under_model(governance())
    run_dir = tmp_path / "run"
    callback = GovernanceCallback(cfg, audit=start_audit(run_dir, module, cfg))
    data = DataLoader(torch.utils.data.TensorDataset(corpus()), batch_size=BATCH, drop_last=True)
    L.Trainer(
        max_steps=STEPS, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[callback],
    ).fit(module, data)  # fmt: skip
    steps = check_log(run_dir, "model.transformer.h.1")
    assert steps[0]["blocks"] == [["model.transformer.h.0", 1], ["model.transformer.h.1", 3]]
    assert runs.calls == 6


def test_a_llama_under_the_hf_trainer_is_routed_bypassed_and_grown(tmp_path: Path) -> None:
    """RMSNorm, SwiGLU and grouped-query rotary attention: routed by the generic path,
    the dormant decoder layer bypassed, then grown function-preserving (`identity`)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    from govtrain.pipeline.hf import GovernanceCallback, start_audit

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ)
    )  # fmt: skip
    raw = governance().model_dump(mode="json")
    raw["groups"] = [
        {"name": "embed", "patterns": ["model.embed_tokens.*"], "level": 0},
        {"name": "layer0", "patterns": ["model.layers.0.*"], "level": 0},
        {"name": "head", "patterns": ["model.norm.*", "lm_head.*"], "level": 0},
        {"name": "layer1", "patterns": ["model.layers.1.*"], "level": 1},
    ]
    raw["hierarchy"]["grow"] = "identity"
    raw["budget"] = {"master": 12, "floor": 2, "ceiling": 4}  # routes 3-4 rows of 8
    cfg = parse_governance(raw)
    run_dir = tmp_path / "run"
    args = TrainingArguments(
        output_dir=str(run_dir / "hf"), max_steps=STEPS, per_device_train_batch_size=BATCH,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    callback = GovernanceCallback(cfg, audit=start_audit(run_dir, model, cfg, training_args=args))
    calls = []
    model.model.layers[1].self_attn.register_forward_hook(lambda *a: calls.append(1))
    data = [{"input_ids": ids, "labels": ids} for ids in corpus()]
    Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    steps = check_log(run_dir, "model.layers.1")
    assert steps[5]["growth"]["operator"] == "identity" and calls == [1] * 6
    routed = [s["routed"]["layer0"]["quota"] for s in steps]
    assert any(0 < q < BATCH for q in routed)  # the generic path really routed
