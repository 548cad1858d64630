"""The tiny run: a config small enough to train in a second or two on 2 CPU cores.

Shared by the tests (through tests/conftest.py) and the seeded-bugs harness, which
trains it inside a patched copy of the code.
"""

from __future__ import annotations

from pathlib import Path


def tiny_run(**overrides) -> dict:
    """A run config small enough to train in a second or two on 2 CPU cores."""
    data = {
        "name": "tiny",
        "seed": 3,
        "model": {"name": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2},
        "data": {"source": "synthetic", "seq_len": 16, "vocab_size": 32, "sequences": 256},
        "train": {
            "deterministic": True,
            "lr": 3e-3,
            "weight_decay": 0.01,
            "eval_every": 10,
            "eval_batches": 2,
            "checkpoint_every": 10,
            "probe_every": 5,
        },
        "governance": {
            "total_steps": 40,
            "groups": [
                {
                    "name": "embed",
                    "patterns": ["transformer.wte.*", "transformer.wpe.*"],
                    "level": 0,
                },
                {"name": "block0", "patterns": ["transformer.h.0.*"], "level": 0},
                {
                    "name": "top",
                    "patterns": ["transformer.h.1.*", "transformer.ln_f.*"],
                    "level": 1,
                },
            ],
            "governor": {
                "signal_threshold": 0.05,
                "window": 3,
                "patience": 2,
                "wake_threshold": 0.5,
                "max_awakenings": 1,
            },
            "hierarchy": {"levels": 2, "emergency_fraction": 0.5},
            "budget": {"master": 12, "floor": 2, "ceiling": 6},
            "router": {"batch_size": 8, "warmup_steps": 2, "scorer": "loss"},
        },
        "audit": {"checkpoint_every": 16},
    }
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return data


def train_tiny(run_dir: Path, stop_after: int | None = None, **overrides):
    """Train the tiny config into `run_dir` (imports torch only when called)."""
    from govtrain.pipeline.config import parse_config
    from govtrain.pipeline.trainer import GovernedTrainer

    trainer = GovernedTrainer(parse_config(tiny_run(**overrides)), run_dir)
    trainer.start()
    trainer.train(stop_after=stop_after, progress=False)
    return trainer
