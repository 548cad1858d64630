"""Shared by tests/unit/ and tests/integration/: fixtures (the small governance config every
core test starts from, a tiny run), the `integration` marker and Hypothesis' profiles.

Where a test goes: tests/unit/ is `make test`: pure governance and audit logic, parsers,
property tests, single torch components; no training run, no subprocess, no torchrun, no
TLC. Everything else (training runs, the CLI in subprocesses, torchrun, TLC, HF and
Lightning, reports, the multi-second explorations) is tests/integration/, marked
`integration` here by its path: `make test-integration` and CI run it. A test module left
directly in tests/ is treated as integration too, so `make test` stays fast.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

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

UNIT = Path(__file__).resolve().parent / "unit"

# Hypothesis: "ci" runs every property test at the size it states (examples(n) is n, a test
# that states none gets Hypothesis' default 100); "dev", for `make test` on a laptop, at a
# quarter of it. CI (the variable CI set, or the seeded-bugs harness) loads "ci"; anyone
# can pick one with `pytest --hypothesis-profile=ci`.
settings.register_profile("ci", max_examples=100)
settings.register_profile("dev", max_examples=25)
settings.load_profile(
    "ci" if os.environ.get("CI") or os.environ.get("SEEDED_BUGS_REPORT") else "dev"
)


def examples(ci: int) -> int:
    """A property test's max_examples: `ci` under the "ci" profile, scaled with the profile
    loaded (a quarter of it under "dev", never below 10). Call it in @settings(...), which
    runs when the module is imported: after this conftest has loaded a profile."""
    return min(ci, max(10, ci * settings().max_examples // 100))


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `integration` every test outside tests/unit/ (tests/integration/, and any module
    not yet placed in either folder): `make test` runs `-m "not slow and not integration"`."""
    for item in items:
        if not item.path.resolve().is_relative_to(UNIT):
            item.add_marker(pytest.mark.integration)


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
