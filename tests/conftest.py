"""Shared fixtures: the small governance config every core test starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.config import GovernanceConfig
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def small_cfg() -> GovernanceConfig:
    return load_config(ROOT / "configs" / "small.yaml").governance


@pytest.fixture(scope="session")
def small_raw() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "configs" / "small.yaml").read_text())
