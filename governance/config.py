"""The governance config schema (pydantic v2).

Configs only select and parameterise; every rule lives in code. Every invalid
value is rejected with the dotted field path and the offending value, so a
typo in a YAML file is found at load time instead of a hundred steps in.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from govtrain.governance.errors import ConfigError
from govtrain.governance.state import Phase

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRAINABLE = (Phase.ACTIVE, Phase.COOLING, Phase.AWAKENED)


# The audit log's numbers are RFC 8785 (I-JSON) numbers: integers beyond 2^53 - 1
# cannot be written exactly, so no config integer may exceed it.
MAX_INT = 2**53 - 1


class StrictSection(BaseModel):
    """A config section: unknown keys, NaN and infinities rejected; numbers as written.

    YAML and pydantic would turn `true` into 1 and `1e30` into an integer; a
    config is a commitment, so an integer field takes an integer, a number
    field a number, and neither takes a boolean.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_as_written(cls, v: Any, info: ValidationInfo) -> Any:
        assert info.field_name is not None, "a `*` field validator runs for a field"
        kind = cls.model_fields[info.field_name].annotation
        if kind in (int, int | None):
            if isinstance(v, bool | float):
                raise ValueError("must be an integer")
            if isinstance(v, int) and abs(v) > MAX_INT:
                raise ValueError(f"must be at most {MAX_INT} (2^53 - 1) in size")
        elif kind in (float, float | None) and isinstance(v, bool):
            raise ValueError("must be a number")
        return v


# A config is a handful of levels deep and a few hundred values; more is a mistake or
# an attack, and would overflow the stack of the YAML composer or copy.deepcopy, or
# (aliases expanded, "billion laughs") exhaust the memory of whatever walks it.
MAX_DEPTH = 32
MAX_VALUES = 100_000
MAX_CONFIG_BYTES = 2**20
# an integer longer than this is out of every field's range (MAX_INT has 16 digits), and
# Python refuses to convert one of 4,300 digits from or to text at all
MAX_INT_CHARS = 32

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_regular_file(path: Path, name: str, limit: int) -> bytes:
    """The bytes of the regular file at `path` (a symlink to one is fine), or one
    ConfigError starting with `name`. Anything else is named by what it is: a FIFO is
    never opened (opening it blocks), a device never read (/dev/zero never ends), and a
    file over `limit` bytes is refused rather than read whole."""

    def regular(mode: int) -> None:
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
            raise ConfigError(f"{name}: {path} is {kind}, not a regular file")

    try:
        regular(os.stat(path).st_mode)
        # O_NONBLOCK: should a FIFO replace the file after the stat, opening it does not hang
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file {path}") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    with open(fd, "rb") as f:
        regular(os.fstat(fd).st_mode)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{name}: {path} is over the {limit:,} bytes this reads whole")
    return data


def load_yaml(path: Path) -> Any:
    """A YAML file's data; a repeated key, a non-UTF-8 byte or a syntax error is one
    ConfigError naming the file (and where), never a last-one-wins silent choice."""
    raw = read_regular_file(path, "config", MAX_CONFIG_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, str(path), "not valid YAML")


def parse_yaml(text: str, source: str, invalid: str) -> Any:
    """YAML text's data, checked by `check_shape`; errors are one ConfigError starting
    with `source`, a syntax error's with `invalid` and the line."""
    try:
        depth = 0  # the parser is iterative, the composer recursive: measure first
        for event in yaml.parse(text, Loader=_UniqueKeyLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ConfigError(
                        f"{source}: nested deeper than {MAX_DEPTH} levels "
                        f"(line {event.start_mark.line + 1})"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: {invalid}{at}: {problem}") from None
    check_shape(data, source)
    return data


def check_shape(data: Any, source: str) -> None:
    """Refuse data nested deeper than MAX_DEPTH or holding more than MAX_VALUES values,
    counting a value shared through a YAML alias each time it appears, without recursing
    (a self-containing list is infinitely deep)."""
    stack = [(data, 1)]
    values = 0
    while stack:
        node, depth = stack.pop()
        values += 1
        if values > MAX_VALUES:
            raise ConfigError(f"{source}: more than {MAX_VALUES:,} values (aliases expanded)")
        if isinstance(node, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels")
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {len(node.value)} characters is out of range",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


class GroupConfig(StrictSection):
    """A named parameter group: ordered fnmatch patterns and a hierarchy level."""

    name: str
    patterns: tuple[str, ...] = Field(min_length=1)
    level: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must be an identifier (letters, digits, underscore)")
        return v

    @field_validator("patterns")
    @classmethod
    def _nonblank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in v):
            raise ValueError("patterns must be non-empty strings")
        return v


class GovernorConfig(StrictSection):
    """Convergence-governor parameters shared by every group.

    `multipliers` scale a group's learning need into its budget weight; only the
    trainable phases have one because frozen groups get no budget at all.
    """

    signal_threshold: float = Field(gt=0)
    window: int = Field(ge=1)
    patience: int = Field(ge=1)
    wake_threshold: float = Field(gt=0)
    max_awakenings: int = Field(ge=0)
    multipliers: dict[Phase, float] = Field(
        default_factory=lambda: {Phase.ACTIVE: 1.0, Phase.COOLING: 0.5, Phase.AWAKENED: 1.0}
    )

    @field_validator("multipliers")
    @classmethod
    def _trainable_phases(cls, v: dict[Phase, float]) -> dict[Phase, float]:
        if set(v) != set(TRAINABLE):
            raise ValueError(
                "needs exactly the keys ACTIVE, COOLING, AWAKENED, got "
                + ", ".join(sorted(p.value for p in v))
            )
        for phase, m in v.items():
            if not (math.isfinite(m) and m >= 0):
                raise ValueError(f"{phase.value} multiplier must be finite and >= 0, got {m}")
        return v


class HierarchyConfig(StrictSection):
    """Coarse-to-fine levels; level k >= 1 is forced on by k/(levels-1) of the emergency point."""

    levels: int = Field(ge=1)
    emergency_fraction: float = Field(gt=0, le=1)
    # what a DORMANT level costs (governance/growth.py): `frozen` runs its blocks without
    # gradients; `bypass` does not run them (each is the identity of its residual stream)
    dormant: Literal["frozen", "bypass"] = "frozen"
    # how a bypassed level's blocks start when it activates: copies of the trained blocks
    # below (`stack`), function-preserving (`identity`), or their initial weights (`none`)
    grow: Literal["stack", "identity", "none"] = "none"
    # ConvergeAfterLower (governance/hierarchy.py): a group converges only once every group
    # at a lower level has; until then a patient group keeps cooling
    converge_after_lower: bool = False
    # ConvergeAfterUpper (governance/hierarchy.py): a group's patience counts only while
    # every level above it is active, so nothing converges before the levels above exist
    converge_after_upper: bool = False

    @model_validator(mode="after")
    def _grow_needs_bypass(self) -> HierarchyConfig:
        if self.grow != "none" and self.dormant != "bypass":
            raise ValueError(
                f"grow {self.grow!r} initialises bypassed blocks: it needs dormant 'bypass'"
            )
        return self

    @property
    def emergency_ratio(self) -> Fraction:
        """The fraction as the decimal written in the config, exactly (0.6 is 3/5, not
        0.59999...), so deadlines are exact integers here and in the TLA+ spec."""
        return _as_written(self.emergency_fraction)


class BudgetConfig(StrictSection):
    """Integer compute units per step; one unit is one sample's weight gradient for one group."""

    master: int = Field(ge=1)
    floor: int = Field(ge=0)
    ceiling: int = Field(ge=1)

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> BudgetConfig:
        if self.floor > self.ceiling:
            raise ValueError(f"floor ({self.floor}) exceeds ceiling ({self.ceiling})")
        return self


class LearnedScorerConfig(StrictSection):
    """The learned scorer's settings (`router.scorer: learned`, pipeline/scorer.py).

    One small MLP per group (features -> `hidden` tanh units -> one score), trained
    by Adam at `lr` every `learn_every` steps on the loss drop the update gave each
    sample; `entropy` weighs the entropy bonus of softmax(scores / `temperature`)
    that keeps the scores from collapsing onto a few samples.
    """

    hidden: int = Field(default=16, ge=1, le=4096)
    lr: float = Field(default=1e-2, gt=0, le=1)
    entropy: float = Field(default=1.0, ge=0)
    temperature: float = Field(default=1.0, gt=0)
    learn_every: int = Field(default=4, ge=1)


class RouterConfig(StrictSection):
    """Per-step sample routing: batch size, observation-only warmup, and the scorer.

    `loss` routes the highest per-sample losses (selective backprop); `random`
    routes a seeded uniform sample, the ablation baseline; `learned` routes each
    group by its own learned scores (`learned` holds their settings).
    """

    batch_size: int = Field(ge=1)
    warmup_steps: int = Field(ge=0)
    scorer: Literal["loss", "random", "learned"] = "loss"
    learned: LearnedScorerConfig = Field(default_factory=LearnedScorerConfig)


Tier = Literal["Mastered", "Learning", "Struggling", "Failing"]
TIERS: tuple[Tier, ...] = get_args(Tier)


class TiersConfig(StrictSection):
    """Governed data tiers (governance/tiers.py, specs/DataTiers.tla).

    A sample's tier comes from its recent loss over the median recent loss of the
    scored samples: a ratio, so the tiers stay populated as every loss falls.
    """

    mastered: float = Field(default=0.75, gt=0)  # ratio below: Mastered
    struggling: float = Field(default=1.25, gt=0)  # above: Struggling
    failing: float = Field(default=2.0, gt=0)  # above: Failing (likely noise or mislabelled)
    # a sample's recent loss: the mean of its last `history` losses
    history: int = Field(default=4, ge=1, le=1024)
    rescore_every: int = Field(default=50, ge=1)  # steps per period (one plan)
    # every sample is planned at least once in any `max_wait` consecutive periods
    max_wait: int = Field(default=16, ge=1)
    weights: dict[Tier, float] = Field(
        default_factory=lambda: {
            "Mastered": 1.0,
            "Learning": 2.0,
            "Struggling": 3.0,
            "Failing": 1.0,
        }
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _weights_are_numbers(cls, v: Any) -> Any:
        if isinstance(v, dict):
            bad = {t: w for t, w in v.items() if type(w) not in (int, float)}
            if bad:
                raise ValueError(f"weights must be numbers, got {bad}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> TiersConfig:
        if not self.mastered < self.struggling < self.failing:
            raise ValueError(
                f"thresholds must rise: mastered ({self.mastered}) < struggling "
                f"({self.struggling}) < failing ({self.failing})"
            )
        missing = [t for t in TIERS if t not in self.weights]
        if missing:
            raise ValueError(f"weights: every tier needs a weight, missing {missing}")
        bad = {t: w for t, w in self.weights.items() if not (w > 0 and math.isfinite(w))}
        if bad:
            raise ValueError(f"weights must be positive (a tier of weight 0 starves): {bad}")
        return self


class GovernanceConfig(StrictSection):
    """Everything the pure decision core needs, and nothing about torch."""

    total_steps: int = Field(ge=1)
    groups: tuple[GroupConfig, ...] = Field(min_length=1)
    governor: GovernorConfig
    hierarchy: HierarchyConfig
    budget: BudgetConfig
    router: RouterConfig
    # steps that must end with every group CONVERGED at the top level (and no wake
    # probe firing) before the run ends early; 0: the run always takes total_steps
    finish_window: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> GovernanceConfig:
        names = [g.name for g in self.groups]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"groups: duplicate group names {dupes}")
        used = {g.level for g in self.groups}
        expected = set(range(self.hierarchy.levels))
        if used != expected:
            raise ValueError(
                f"hierarchy.levels is {self.hierarchy.levels} but groups use levels "
                f"{sorted(used)}; every level 0..{self.hierarchy.levels - 1} needs a group"
            )
        if self.budget.ceiling > self.router.batch_size:
            raise ValueError(
                f"budget.ceiling ({self.budget.ceiling}) exceeds router.batch_size "
                f"({self.router.batch_size}); a unit is one sample"
            )
        if self.router.warmup_steps >= self.total_steps:
            raise ValueError(
                f"router.warmup_steps ({self.router.warmup_steps}) must be below "
                f"total_steps ({self.total_steps})"
            )
        return self

    def level_of(self, group: int) -> int:
        return self.groups[group].level

    def deadline(self, level: int) -> int:
        """The step count by which `level` is activated even if lower levels never converge."""
        h = self.hierarchy
        return _deadline(h.emergency_fraction, self.total_steps, h.levels, level)

    @property
    def horizon(self) -> int:
        """The clock saturates here: past it no threshold (warmup, deadline) can change."""
        return max(self.router.warmup_steps, self.deadline(self.hierarchy.levels - 1))


def _as_written(x: float) -> Fraction:
    """A config number as the decimal the user wrote (0.6 is 3/5, not 0.59999...)."""
    return Fraction(repr(x))


@functools.lru_cache(maxsize=4096)
def _deadline(fraction: float, total_steps: int, levels: int, level: int) -> int:
    # cached on the numbers it reads: the explorers and every step's invariants ask often
    if level == 0:
        return 0
    span = _as_written(fraction) * total_steps * level
    return max(1, math.ceil(span / (levels - 1)))


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: `field.path: message (got value)`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{loc or '<root>'}: {msg}{shown}")
    return "; ".join(lines)


def parse_governance(data: Any, prefix: str = "governance") -> GovernanceConfig:
    """Validate a plain mapping into a GovernanceConfig or raise ConfigError."""
    try:
        return GovernanceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix)) from None
