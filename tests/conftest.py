"""Shared fixtures: the small governance config every core test starts from."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from govtrain.governance.config import GovernanceConfig
from govtrain.pipeline.config import load_config
from tools.tiny import tiny_run, train_tiny

__all__ = ["tiny_run", "train_tiny"]

ROOT = Path(__file__).resolve().parent.parent
# runs made by tests keep their trust anchors in a store of the session's own
# (inherited by subprocesses), never in the user's
os.environ["GOVTRAIN_ANCHORS"] = tempfile.mkdtemp(prefix="govtrain-anchors-")
# deterministic CUDA runs (train.deterministic) need this before cuBLAS first starts
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def tlc_toolchain():
    """The TLC toolchain (java + jar), or None where TLC is not installed."""
    from govtrain.formal.toolchain import TLCNotFound, find_toolchain

    try:
        return find_toolchain()
    except TLCNotFound:
        return None


_no_tlc = pytest.mark.skipif(tlc_toolchain() is None, reason="TLC not installed (no java or jar)")


def needs_tlc(test):
    """Mark a test as needing TLC (`-m tlc` selects them) and skip it where TLC is missing."""
    return pytest.mark.tlc(_no_tlc(test))


@pytest.fixture(scope="session")
def small_cfg() -> GovernanceConfig:
    return load_config(ROOT / "configs" / "small.yaml").governance


@pytest.fixture(scope="session")
def small_raw() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())


@pytest.fixture(scope="session")
def tiny_full_run(tmp_path_factory):
    """One uninterrupted tiny run shared by the tests that only read it."""
    run_dir = tmp_path_factory.mktemp("runs") / "full"
    return run_dir, train_tiny(run_dir)


def altered(records: list, seq: int, change) -> list:
    """A copy of `records` whose record `seq` has `change(body)` applied (bytes kept)."""
    import copy

    from govtrain.audit.records import Record

    out = list(records)
    body = copy.deepcopy(out[seq].body)
    change(body)
    out[seq] = Record(out[seq].seq, out[seq].kind, out[seq].prev, body, out[seq].line)
    return out
