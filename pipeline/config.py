"""Run configs: YAML files in `configs/` validated into pydantic models.

A run config wires components together (which governance rules, model, data,
optimiser and audit settings); it never contains logic. This module imports no
torch, so validating a config is instant.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from govtrain.governance.config import (
    MAX_INT_CHARS,
    GovernanceConfig,
    StrictSection,
    TiersConfig,
    check_shape,
    format_validation_error,
    load_yaml,
    parse_yaml,
)
from govtrain.governance.errors import ConfigError
from govtrain.governance.readings import SIGNALS, measures

if TYPE_CHECKING:
    from torch import nn


class ModelConfig(StrictSection):
    """A GPT-2 architecture built from these numbers (no download)."""

    name: Literal["gpt2"] = "gpt2"
    n_layer: int = Field(ge=1, le=1024)
    n_embd: int = Field(ge=8, le=65536)
    n_head: int = Field(ge=1, le=1024)
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class DedupConfig(StrictSection):
    """Near-duplicate removal before training (pipeline/data.py: datasketch MinHash LSH
    over token shingles); training sequences too like an eval one are removed as well."""

    threshold: float = Field(default=0.8, gt=0, le=1)  # estimated Jaccard similarity
    shingle: int = Field(default=5, ge=1)  # tokens per shingle
    num_perm: int = Field(default=128, ge=16, le=1024)


MAX_TOKENS = 2**31  # a synthetic corpus is one int64 tensor: 16 GiB at this size


class DataConfig(StrictSection):
    """`synthetic`: a deterministic order-2 Markov corpus made in code; `text`: a local file."""

    source: Literal["synthetic", "text"]
    path: Path | None = None
    seq_len: int = Field(ge=2, le=65536)
    vocab_size: int = Field(ge=8, le=2**20)
    sequences: int = Field(default=4096, ge=16)
    eval_fraction: float = Field(default=0.1, gt=0, lt=1)
    # near-duplicate removal before training; off when null
    dedup: DedupConfig | None = None
    # governed data tiers (governance/tiers.py): tier-weighted batches; off when null
    # (uniform: seeded permutations, one per epoch)
    tiers: TiersConfig | None = None

    @field_validator("path")
    @classmethod
    def _no_nul(cls, v: Path | None) -> Path | None:
        if v is not None and "\0" in str(v):
            raise ValueError("a path cannot hold a NUL byte")
        return v

    @model_validator(mode="after")
    def _path_for_text(self) -> DataConfig:
        if self.source == "text" and self.path is None:
            raise ValueError("source 'text' needs a path")
        if self.source == "synthetic" and self.path is not None:
            raise ValueError("source 'synthetic' takes no path")
        if self.source == "synthetic" and self.sequences * self.seq_len > MAX_TOKENS:
            raise ValueError(
                f"sequences x seq_len ({self.sequences} x {self.seq_len}) exceeds "
                f"{MAX_TOKENS} tokens: the synthetic corpus would not fit in memory"
            )
        return self


class GeometryGuardConfig(StrictSection):
    """Effective-rank guards (governance/readings.py): relative tolerances."""

    # a trainable group whose rank falls by more than this between probes cannot converge
    collapse: float = Field(gt=0, lt=1)
    # a converged group whose rank moved by more than this since it converged wakes
    wake: float = Field(gt=0)


class GovernOptions(StrictSection):
    """How a loop governs, whichever loop it is (`govtrain run`'s `train:` section, or the
    HF and Lightning callbacks' keyword arguments): what the Governor measures, whether it
    applies its decisions, and when a run of non-finite steps stops it."""

    probe_every: int = Field(default=10, ge=1)
    awaken_optimizer_state: Literal["reset", "keep"] = "reset"
    # the convergence signal the pipeline measures: a registered one (governance/
    # readings.py's SIGNALS, measured by pipeline/signals.py), checked when validated
    signal: str = "grad_norm"
    # guards from the probe batch's effective rank (governance/readings.py); off when null
    geometry_guard: GeometryGuardConfig | None = None
    # measures recorded at every probe without deciding anything (the run report draws
    # them; a shadow run with them is how a threshold for a geometry signal is chosen):
    # registered signals a probe measures
    measure: tuple[str, ...] = ()
    # power-iteration steps per probe for `spectral` (warm-started from the last probe's)
    power_iterations: int = Field(default=3, ge=1, le=100)
    # "observe": measure, decide and audit, but apply nothing (shadow mode; the
    # overhead benchmark's middle arm). Every sample reaches every group.
    mode: Literal["governed", "observe"] = "governed"
    max_nonfinite: int = Field(default=3, ge=1)

    @field_validator("signal")
    @classmethod
    def _registered_signal(cls, v: str) -> str:
        if v not in SIGNALS:
            raise ValueError(f"must be a registered signal: one of {', '.join(SIGNALS)}")
        return v

    @field_validator("measure")
    @classmethod
    def _measured_signals(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in v if m not in measures()]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a measure: one of {', '.join(measures())}")
        return v

    @property
    def enforce(self) -> bool:
        return self.mode == "governed"


def parse_options(options: dict[str, Any], source: str) -> GovernOptions:
    """`GovernOptions` from a loop's keyword arguments; an error names the argument."""
    try:
        return GovernOptions.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


class TrainConfig(GovernOptions):
    """Optimiser and loop settings of `govtrain run`; the batch size and step count live
    in `governance`, how it governs in `GovernOptions`."""

    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(gt=0)
    # "cosine": linear warmup over `warmup_steps`, then cosine decay to 0 at total_steps
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    grad_clip: float | None = Field(default=1.0, gt=0)
    eval_every: int = Field(default=50, ge=1)
    # "on_change": an evaluation due every `eval_every` steps runs only when an optimizer
    # step changed the weights since the last one (a frozen model is not re-evaluated);
    # the run's last step is always evaluated. "every": always.
    eval: Literal["every", "on_change"] = "every"
    eval_batches: int = Field(default=4, ge=1)
    checkpoint_every: int = Field(default=100, ge=1)
    # "auto": CUDA when available, else CPU. Decisions do not depend on it.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Bit-exact resume on CUDA needs deterministic kernels (slower); CPU is exact anyway.
    deterministic: bool = False

    # Under torchrun (pipeline/distributed.py): "ddp" replicates the model and all-reduces
    # the trainable gradients, "fsdp2" shards it (FSDP2, one unit per block); collectives
    # error after `collective_timeout_s` instead of hanging on a lost rank; ranks compare
    # state and weight digests every `agree_every` steps (and at every checkpoint and
    # transition).
    # Experiment trackers fed from the audit records on rank 0 (pipeline/trackers.py):
    # TensorBoard event files in RUN/tensorboard; MLflow at `mlflow_uri` (default: the
    # MLFLOW_TRACKING_URI environment variable, else a file store beside the run,
    # RUN/../mlruns).
    trackers: tuple[Literal["tensorboard", "mlflow"], ...] = ()

    @field_validator("trackers")
    @classmethod
    def _each_tracker_once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"each tracker once, got {list(v)}")
        return v

    mlflow_uri: str | None = None
    mlflow_experiment: str = Field(default="govtrain", min_length=1)

    engine: Literal["ddp", "fsdp2"] = "ddp"
    collective_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    agree_every: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _engine_reads_signal(self) -> TrainConfig:
        if self.engine == "fsdp2" and self.signal != "grad_norm":
            raise ValueError(
                f"engine 'fsdp2' does not support signal {self.signal!r} yet (its weight "
                "snapshots and hidden states would be per-rank shards): use signal "
                "'grad_norm' or engine 'ddp'"
            )
        if self.engine == "fsdp2" and (self.geometry_guard is not None or self.measure):
            raise ValueError(
                "engine 'fsdp2' does not support geometry_guard or measure yet: use 'ddp'"
            )
        return self


class AuditConfig(StrictSection):
    checkpoint_every: int = Field(default=256, ge=1)
    fsync: Literal["always", "every_n", "checkpoint"] = "checkpoint"


class _Run(StrictSection):
    """What every run config has; `RunConfig` adds the sections a training run needs,
    which a governance-only config (explore, specs) may leave out."""

    # names the default run directory (runs/NAME-...): no path separators, no leading dot
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    # seeds derived from it (seed x 1_000_003 + step) must stay within torch's 64-bit seeds
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    governance: GovernanceConfig
    audit: AuditConfig = AuditConfig()


class RunConfig(_Run):
    model: ModelConfig | None = None
    data: DataConfig | None = None
    train: TrainConfig | None = None

    def trainable(self) -> TrainableConfig:
        """This config, checked to have the sections a training run needs."""
        missing = [s for s in ("model", "data", "train") if getattr(self, s) is None]
        if missing:
            raise ConfigError(f"config {self.name!r} lacks section(s) needed to train: {missing}")
        # already validated: the same values, typed as present
        return TrainableConfig.model_construct(
            self.model_fields_set, **{k: getattr(self, k) for k in type(self).model_fields}
        )


class TrainableConfig(_Run):
    """A RunConfig with every section `govtrain run` needs (`RunConfig.trainable`)."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig


def parse_config(data: Any, source: str = "config") -> RunConfig:
    """Validate a mapping into a RunConfig; errors name the field and the value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    check_shape(data, source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from None


def load_config(
    path: Path, overrides: Sequence[str] = (), model: nn.Module | None = None
) -> RunConfig:
    """Read and validate a YAML run config, with `FIELD=VALUE` overrides applied first.

    Relative data paths resolve against the file, or, when an override set the
    path, against the working directory the command was typed in. `governance.groups:
    auto` is written out from `model`, or from the config's own `model` section
    (pipeline/autogroups.py; needs torch).
    """
    path = Path(path)
    data = load_yaml(path)
    source = str(path)
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{path} with {' '.join(repr(o)[1:-1] for o in overrides)}"  # one line
    governance = data.get("governance") if isinstance(data, dict) else None
    if isinstance(governance, dict) and governance.get("groups") == "auto":
        try:
            from govtrain.pipeline.autogroups import resolve_auto_groups
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"{source}: governance.groups 'auto' reads the model's structure, which "
                f"needs torch ({exc.name} is not installed): pip install 'govtrain[train]'"
            ) from None
        data = resolve_auto_groups(data, model, source)
    cfg = parse_config(data, source)
    if cfg.data is not None and cfg.data.path is not None and not cfg.data.path.is_absolute():
        typed = any(o.partition("=")[0] in ("data", "data.path") for o in overrides)
        base = Path.cwd() if typed else path.parent
        resolved = (base / cfg.data.path).resolve()
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"path": resolved})})
    return cfg


# An override's plain value is read as YAML 1.2's core schema, not PyYAML's 1.1:
# `1e-3` is a number, `010` is not octal 8, `1:30` is not 90, `no` is not false.
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE = {"true": True, "false": False, "null": None, "~": None}


def _value(field: str, text: str) -> Any:
    """A plain scalar by the core schema (anything else stays a string, as typed);
    quoted scalars and flow collections (`"8"`, `[a, b]`, `{k: v}`) as YAML."""
    plain = text.strip()
    if plain[:1] in ("[", "{", '"', "'"):
        return parse_yaml(plain, f"override {field}", "not a YAML value")
    if plain.lower() in _CORE:
        return _CORE[plain.lower()]
    if _INT.fullmatch(plain) and not re.fullmatch(r"[-+]?0[0-9]+", plain):
        if len(plain) > MAX_INT_CHARS:
            raise ConfigError(
                f"override {field}: an integer of {len(plain)} characters is out of range"
            )
        return int(plain)
    if _FLOAT.fullmatch(plain) and not _INT.fullmatch(plain):
        return float(plain)
    return text


def apply_overrides(data: Any, overrides: Sequence[str]) -> dict:
    """A copy of the config mapping with each `dotted.field=value` set.

    The value is a YAML scalar or flow collection (`8`, `1e-3`, `true`, `[a, b]`);
    a list item is named by its index (`governance.groups.2.level=1`); sections
    that are absent are created. The result is validated like any config, so an
    unknown or ill-typed field is named there.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"overrides need a mapping at the top level, got {type(data).__name__}")
    data = copy.deepcopy(data)
    for item in overrides:
        field, eq, text = item.partition("=")
        keys = field.split(".")
        if not eq or not all(keys):
            raise ConfigError(f"override {item!r}: expected FIELD=VALUE, e.g. train.lr=1e-3")
        value = _value(field, text)
        node: Any = data
        for depth, key in enumerate(keys):
            where = ".".join(keys[:depth]) or "the top level"
            last = depth == len(keys) - 1
            if isinstance(node, list):
                if not key.isdigit() or int(key) >= len(node):
                    raise ConfigError(
                        f"override {field}: {where} is a list of {len(node)}, "
                        f"{key!r} is not an index of it"
                    )
                if last:
                    node[int(key)] = value
                else:
                    node = node[int(key)]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"override {field}: {where} is a value, not a section")
            if last:
                node[key] = value
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
    return data
