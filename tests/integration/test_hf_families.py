"""The model families people fine-tune, each a short governed HF Trainer run: built from
a config (no download), groups by `groups: auto`, part of each batch routed through the
generic routed path (RMSNorm, SwiGLU, rotary grouped-query attention, GELU MLPs, patch
embeddings), and the log verifies, replays and is a behaviour of the spec (TLC where
installed). An encoder-decoder (T5) is governed by freezing and refuses routing in one
line naming the module that cannot be routed per sample."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

from transformers import (
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
)

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.conform import conform_records
from govtrain.governance.config import parse_governance
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.autogroups import auto_groups
from govtrain.pipeline.hf import GovernanceCallback, start_audit
from tests.conftest import tlc_toolchain

pytestmark = pytest.mark.torch

STEPS, BATCH, SEQ, VOCAB = 10, 8, 12, 32
DECODER = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 8, "max_position_embeddings": SEQ}  # fmt: skip


def tokens(n: int = 64) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(1))


def lm_rows() -> list[dict]:
    return [{"input_ids": ids, "labels": ids} for ids in tokens()]


def class_rows() -> list[dict]:
    labels = torch.randint(0, 3, (64,), generator=torch.Generator().manual_seed(2))
    return [{"input_ids": i, "labels": y} for i, y in zip(tokens(), labels, strict=True)]


def image_rows() -> list[dict]:
    g = torch.Generator().manual_seed(3)
    images, labels = torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    return [{"pixel_values": x, "labels": y} for x, y in zip(images, labels, strict=True)]


ROBERTA = {"vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_labels": 3,
           "max_position_embeddings": SEQ + 2}  # fmt: skip
VIT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
       "num_attention_heads": 4, "image_size": 8, "patch_size": 4, "num_labels": 3}  # fmt: skip
FAMILIES: dict[str, tuple[Callable[[], nn.Module], Callable[[], list[dict]]]] = {
    "qwen2": (lambda: Qwen2ForCausalLM(Qwen2Config(**DECODER)), lm_rows),
    "mistral": (lambda: MistralForCausalLM(MistralConfig(**DECODER)), lm_rows),
    "gemma": (lambda: GemmaForCausalLM(GemmaConfig(**DECODER)), lm_rows),
    "roberta": (lambda: RobertaForSequenceClassification(RobertaConfig(**ROBERTA)), class_rows),
    "vit": (lambda: ViTForImageClassification(ViTConfig(**VIT)), image_rows),
}


def governance(groups: list[dict], master: int) -> dict:
    return {
        "total_steps": STEPS,
        "groups": groups,
        "governor": {"signal_threshold": 1e-9, "window": 2, "patience": 2,
                     "wake_threshold": 0.5, "max_awakenings": 1},
        "hierarchy": {"levels": 2, "emergency_fraction": 0.5},
        "budget": {"master": master, "floor": 2, "ceiling": BATCH},
        "router": {"batch_size": BATCH, "warmup_steps": 2, "scorer": "loss"},
    }  # fmt: skip


def train(
    model: nn.Module, rows: list[dict], raw: dict, run_dir: Path, extra=(), steps=STEPS, **kw
) -> None:
    cfg = parse_governance(raw)
    args = TrainingArguments(
        output_dir=str(run_dir / "hf"), max_steps=steps, per_device_train_batch_size=BATCH,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, seed=0, dataloader_drop_last=True,
    )  # fmt: skip
    callback = GovernanceCallback(
        cfg, audit=start_audit(run_dir, model, cfg, training_args=args), **kw
    )
    Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback, *extra]).train()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_is_governed_routed_audited_and_conforms(family: str, tmp_path: Path) -> None:
    build, rows = FAMILIES[family]
    torch.manual_seed(0)
    model = build()
    groups = auto_groups(model, 2)
    # a third less than every group's whole batch: the router cuts some rows
    master = len(groups) * BATCH * 2 // 3
    train(model, rows(), governance(groups, master), tmp_path / "run")
    assert verify_run(tmp_path / "run").closed
    records = read_records(tmp_path / "run" / "audit.jsonl")
    steps = [r.body for r in records if r.kind == "step"]
    assert len(steps) == STEPS
    quotas = [q["quota"] for s in steps for q in s["routed"].values()]
    assert any(0 < q < BATCH for q in quotas)  # the generic path really routed
    report = conform_records(records, toolchain=tlc_toolchain())
    assert report.replay_ok, report.replay_summary()
    assert report.tlc_status in ("ok", "skipped"), report.tlc_summary()


T5_GROUPS = [
    {"name": "shared", "patterns": ["shared.*"], "level": 0},
    {"name": "encoder", "patterns": ["encoder.*"], "level": 0},
    {"name": "decoder", "patterns": ["decoder.*"], "level": 1},
]


def t5() -> nn.Module:
    torch.manual_seed(0)
    return T5ForConditionalGeneration(
        T5Config(vocab_size=VOCAB, d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8,
                 decoder_start_token_id=0)
    )  # fmt: skip


def seq2seq_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample token cross-entropy: T5 predicts `labels` unshifted."""
    ce = nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, reduction="none")
    return ce.mean(1)


def test_t5_is_governed_by_freezing_and_refuses_routing_naming_the_module(tmp_path: Path):
    train(t5(), lm_rows(), governance(T5_GROUPS, 3 * BATCH), tmp_path / "frozen",
          per_sample_loss=seq2seq_loss)  # fmt: skip
    assert verify_run(tmp_path / "frozen").closed
    records = read_records(tmp_path / "frozen" / "audit.jsonl")
    assert conform_records(records, toolchain=tlc_toolchain()).replay_ok
    with pytest.raises(GovtrainError, match="relative_attention_bias"):
        train(t5(), lm_rows(), governance(T5_GROUPS, 2 * BATCH), tmp_path / "routed",
              per_sample_loss=seq2seq_loss)  # fmt: skip


def test_lora_adapters_are_the_groups_and_freeze_bottom_up(tmp_path: Path) -> None:
    """A PEFT LoRA Llama: the base stays frozen and outside governance, `groups: auto`
    claims only the adapters, they converge lower level first (`converge_after_lower`),
    and once the lower adapters are frozen the backward no longer reaches their layers."""
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**{**DECODER, "num_hidden_layers": 4}))
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                           lora_dropout=0.0, task_type="CAUSAL_LM")  # fmt: skip
    model = peft.get_peft_model(base, lora)
    groups = auto_groups(model, 2)
    assert [g["name"] for g in groups] == ["blocks_0", "blocks_1"]
    assert all("lora_" in p for g in groups for p in g["patterns"])
    raw = governance(groups, 2 * BATCH)
    raw["total_steps"] = 30
    raw["governor"] = {"signal_threshold": 0.2, "window": 2, "patience": 2,
                       "wake_threshold": 1e9, "max_awakenings": 0}  # fmt: skip
    raw["hierarchy"] |= {"converge_after_lower": True, "emergency_fraction": 0.2}
    reached: list[int] = []
    layer0 = model.base_model.model.model.layers[0].self_attn.q_proj
    layer0.register_full_backward_hook(lambda *a: reached.append(1))
    calls_before = []

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            calls_before.append(len(reached))

    base_weights = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    train(model, lm_rows(), raw, tmp_path / "run", extra=[Watch()], steps=30)
    records = read_records(tmp_path / "run" / "audit.jsonl")
    steps = [r.body for r in records if r.kind == "step"]
    converged = [
        next(s["step"] for s in steps if s["state"]["groups"][g]["phase"] == "CONVERGED")
        for g in ("blocks_0", "blocks_1")
    ]
    assert converged[0] < converged[1]  # bottom-up
    # after blocks_0 froze (its decision takes effect the next step) layer 0 saw no backward
    frozen_from = converged[0] + 1
    assert calls_before[frozen_from] == calls_before[-1] > 0
    assert all(
        torch.equal(p, base_weights[n]) for n, p in model.named_parameters() if n in base_weights
    )
    report = conform_records(records, toolchain=tlc_toolchain())
    assert report.replay_ok and report.tlc_status in ("ok", "skipped"), report.tlc_summary()
