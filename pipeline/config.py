"""Run configs: YAML files in `configs/` validated into pydantic models.

A run config wires components together (which governance rules, and later which
model, data and audit settings); it never contains logic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from governance.config import GovernanceConfig, format_validation_error
from governance.errors import ConfigError


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    seed: int = Field(default=0, ge=0)
    governance: GovernanceConfig


def parse_config(data: Any, source: str = "config") -> RunConfig:
    """Validate a mapping into a RunConfig; errors name the field and the value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config(path: Path) -> RunConfig:
    """Read and validate a YAML run config."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, str(path))
