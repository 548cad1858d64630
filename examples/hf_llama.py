"""Govern a Llama-family model under an unmodified Hugging Face `Trainer`, and audit it.

    python examples/hf_llama.py [--run-dir DIR] [--steps N]

A 4-layer `LlamaForCausalLM` (RMSNorm, SwiGLU, rotary attention with grouped-query
heads) built from a `LlamaConfig` (no download) learns the synthetic corpus of
`pipeline.data`, grown coarse to fine: the embeddings, the two lower decoder layers,
the final norm and the head train first while the two upper layers are bypassed
(not computed at all); when level 0 converges, or at 30% of the run, the upper
layers are grown by stacking the trained lower ones (`hierarchy.grow: stack`). Every
step, its growth and the saved checkpoints go into a signed audit log, verified at
the end. The same callback governs Qwen2, Mistral or Gemma: only the group patterns
name other modules when a family does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hf_trainer import govern_and_report, run_example  # the GPT-2 example beside this one
from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

from govtrain.governance.config import parse_governance
from govtrain.pipeline.config import DataConfig
from govtrain.pipeline.data import synthetic_corpus

SEED = 0
BATCH = 16
SEQ = 32


def governance(total_steps: int) -> dict:
    return {
        "total_steps": total_steps,
        "groups": [
            {"name": "embed", "patterns": ["model.embed_tokens.*"], "level": 0},
            {"name": "lower", "patterns": ["model.layers.0.*", "model.layers.1.*"], "level": 0},
            {"name": "head", "patterns": ["model.norm.*", "lm_head.*"], "level": 0},
            {"name": "upper", "patterns": ["model.layers.2.*", "model.layers.3.*"], "level": 1},
        ],
        "governor": {
            "signal_threshold": 0.03,
            "window": 5,
            "patience": 5,
            "wake_threshold": 0.5,
            "max_awakenings": 1,
        },
        "hierarchy": {
            "levels": 2,
            "emergency_fraction": 0.3,
            "dormant": "bypass",
            "grow": "stack",
            "converge_after_lower": True,
        },
        # 4 groups x the batch: every sample reaches every group (nothing routed)
        "budget": {"master": 4 * BATCH, "floor": 4, "ceiling": BATCH},
        "router": {"batch_size": BATCH, "warmup_steps": 10, "scorer": "loss"},
    }


def main(run_dir: Path, steps: int) -> None:
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    cfg = parse_governance(governance(steps))
    data = DataConfig(source="synthetic", seq_len=SEQ, vocab_size=64, sequences=1024)
    corpus = synthetic_corpus(data, SEED)
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=corpus.vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=SEQ,
        )
    )
    args = TrainingArguments(
        output_dir=str(run_dir / "hf"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=3e-3,
        lr_scheduler_type="cosine",
        save_strategy="steps",
        save_steps=max(1, steps // 2),
        report_to="none",
        use_cpu=True,
        seed=SEED,
        disable_tqdm=True,
        dataloader_drop_last=True,
    )
    govern_and_report(model, cfg, args, corpus, run_dir, signal="drift")


if __name__ == "__main__":
    run_example(main, __doc__)
