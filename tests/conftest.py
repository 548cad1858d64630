"""Shared fixtures: the small governance config every core test starts from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from governance.config import GovernanceConfig
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parent.parent
# deterministic CUDA runs (train.deterministic) need this before cuBLAS first starts
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def tlc_toolchain():
    """The TLC toolchain (java + jar), or None where TLC is not installed."""
    from tools.tlc import TLCNotFound, find_toolchain

    try:
        return find_toolchain()
    except TLCNotFound:
        return None


needs_tlc = pytest.mark.skipif(tlc_toolchain() is None, reason="TLC not installed (no java or jar)")


@pytest.fixture(scope="session")
def small_cfg() -> GovernanceConfig:
    return load_config(ROOT / "configs" / "small.yaml").governance


@pytest.fixture(scope="session")
def small_raw() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())


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
    from pipeline.config import parse_config
    from pipeline.trainer import GovernedTrainer

    trainer = GovernedTrainer(parse_config(tiny_run(**overrides)), run_dir)
    trainer.start()
    trainer.train(stop_after=stop_after, progress=False)
    return trainer


@pytest.fixture(scope="session")
def tiny_full_run(tmp_path_factory):
    """One uninterrupted tiny run shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    return run_dir, train_tiny(run_dir)


def altered(records: list, seq: int, change) -> list:
    """A copy of `records` whose record `seq` has `change(body)` applied (bytes kept)."""
    import copy

    from audit.records import Record

    out = list(records)
    body = copy.deepcopy(out[seq].body)
    change(body)
    out[seq] = Record(out[seq].seq, out[seq].kind, out[seq].prev, body, out[seq].line)
    return out
