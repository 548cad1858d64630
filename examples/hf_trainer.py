"""Govern an unmodified Hugging Face `Trainer` with one callback, and audit the run.

    python examples/hf_trainer.py [--run-dir DIR] [--steps N]

A 2-layer GPT-2 built from a config (no download) learns the synthetic
corpus of `pipeline.data` under governance: the embeddings, block 0 and the
final norm (level 0) learn first; block 1 (level 1) stays frozen until level 0
has converged or 60% of the run has passed. Every step, evaluation and saved
checkpoint goes into a signed audit log, verified at the end.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

from govtrain.audit.verify import verify_run
from govtrain.governance.config import parse_governance
from govtrain.pipeline.config import DataConfig, ModelConfig
from govtrain.pipeline.data import synthetic_corpus
from govtrain.pipeline.hf import GovernanceCallback, start_audit
from govtrain.pipeline.models import build_model

SEED = 0
BATCH = 16


def governance(total_steps: int) -> dict:
    return {
        "total_steps": total_steps,
        "groups": [
            {"name": "embed", "patterns": ["transformer.wte.*", "transformer.wpe.*"], "level": 0},
            {"name": "block0", "patterns": ["transformer.h.0.*"], "level": 0},
            {"name": "final_norm", "patterns": ["transformer.ln_f.*"], "level": 0},
            {"name": "block1", "patterns": ["transformer.h.1.*"], "level": 1},
        ],
        "governor": {
            "signal_threshold": 0.03,
            "window": 5,
            "patience": 5,
            "wake_threshold": 0.5,
            "max_awakenings": 1,
        },
        "hierarchy": {"levels": 2, "emergency_fraction": 0.6},
        "budget": {"master": 36, "floor": 4, "ceiling": 12},
        "router": {"batch_size": BATCH, "warmup_steps": 10, "scorer": "loss"},
    }


class CausalLMDataset(Dataset):
    """Rows of token ids as the Trainer wants them: input_ids and labels (the model shifts)."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main(run_dir: Path, steps: int) -> None:
    torch.set_num_threads(1)  # a model this small runs fastest on one thread
    cfg = parse_governance(governance(steps))
    data = DataConfig(source="synthetic", seq_len=32, vocab_size=64, sequences=1024)
    corpus = synthetic_corpus(data, SEED)
    torch.manual_seed(SEED)
    model = build_model(ModelConfig(n_layer=2, n_embd=64, n_head=4), corpus.vocab_size, 32)

    args = TrainingArguments(
        output_dir=str(run_dir / "hf"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=64,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        eval_strategy="steps",
        eval_steps=steps // 3,
        save_strategy="steps",
        save_steps=steps // 2,
        logging_steps=steps // 6,
        report_to="none",
        use_cpu=True,
        seed=SEED,
        disable_tqdm=True,
    )
    govern_and_report(model, cfg, args, corpus, run_dir)


def govern_and_report(model, cfg, args, corpus, run_dir: Path, **options) -> None:
    """Train `model` under the governance callback (its audit log in `run_dir`; `options`
    as the callback takes them, e.g. signal="drift"), then verify the log and print the
    run's outcome."""
    audit = start_audit(run_dir, model, cfg, training_args=args, seed=SEED)
    probe = {"input_ids": corpus.train[:8], "labels": corpus.train[:8]}
    callback = GovernanceCallback(cfg, audit=audit, probe_batch=probe, seed=SEED, **options)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=CausalLMDataset(corpus.train),
        eval_dataset=CausalLMDataset(corpus.eval[:128]),
        callbacks=[callback],
    )
    trainer.train()

    gov = callback.gov
    assert gov is not None
    report = verify_run(run_dir)
    print(f"final eval loss   {trainer.evaluate()['eval_loss']:.4f}")
    print(f"transitions       {dict(Counter(t.action for t in callback.transitions))}")
    phases = zip(gov.names, gov.state.groups, strict=True)
    print(f"final states      {', '.join(f'{n} {g.phase.value}' for n, g in phases)}")
    print(f"active level      {gov.state.active_level}")
    print(f"audit log         {report.summary()}")


def run_example(main, doc: str) -> None:
    """The examples' command line: --run-dir (default: a temporary one) and --steps."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, help="where the run goes (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=120, help="optimizer steps")
    opts = parser.parse_args()
    if opts.run_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "run", opts.steps)
    else:
        main(opts.run_dir, opts.steps)


if __name__ == "__main__":
    run_example(main, __doc__)
