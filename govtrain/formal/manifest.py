"""The manifest (`specs/manifest.yaml`): every TLC model and every spec-vs-code comparison.

A model entry names an MC module, a config, the expected outcome (holds, or the
invariant or property TLC must name), the distinct state count (which catches a
model that silently explores less than it did), the broken `variant` its config
swaps in (if any) and the `set` it belongs to. A comparison entry names the MC
module TLC runs, the Python functions it compares with, the comparator (a
function with the signature of `Comparator`), the run config and extra bounds.
`govtrain specs check` runs what the manifest lists; nothing is wired in the CLI.

A broken variant is an operator `<Variant>_<Operator>` of an MC module that a
model's config swaps in by a definition override, `Operator <- <Variant>_<Operator>`
(or `Operator <- [Module] <Variant>_<Operator>` to reach into a component's
instances), so the component specs read clean.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from govtrain.formal.output import Outcome, TLCResult, describe_outcome
from govtrain.formal.toolchain import Toolchain, run_tlc
from govtrain.governance.errors import GovtrainError

if TYPE_CHECKING:
    from govtrain.formal.compare import Comparison
    from govtrain.governance.config import GovernanceConfig

DEFAULT_SET = "default"
CONFORM_PREFIX = "conform:"

# --------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a model must do: hold, or fail with this invariant or property named."""

    outcome: Outcome
    name: str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Expectation:
        if raw == "holds":
            return cls(Outcome.HOLDS)
        if raw == "deadlock":
            return cls(Outcome.DEADLOCK)
        if isinstance(raw, dict) and len(raw) == 1:
            ((kind, name),) = raw.items()
            kinds = {"invariant": Outcome.INVARIANT_VIOLATED, "property": Outcome.PROPERTY_VIOLATED}
            if kind in kinds and isinstance(name, str) and name:
                return cls(kinds[kind], name)
        raise GovtrainError(
            f"{where}: expect must be 'holds', 'deadlock', {{invariant: NAME}} or "
            f"{{property: NAME}}, got {raw!r}"
        )

    def describe(self) -> str:
        return describe_outcome(self.outcome, self.name)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    name: str
    module: str
    config: str
    expect: Expectation
    distinct_states: int
    variant: str | None = None  # the broken variant the config swaps in
    overrides: tuple[str, ...] = ()  # its definition overrides, as the config writes them
    set: str = DEFAULT_SET
    seconds: float | None = None  # documented time on 2 cores, for models outside the default
    about: str = ""

    @property
    def workers(self) -> int:
        """A failing model runs on one worker: breadth-first search is then deterministic,
        so the state count at the violation is the same on every machine."""
        return 2 if self.expect.outcome is Outcome.HOLDS else 1


# --------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Target:
    """The TLA+ side of a comparison: the MC module TLC runs (it EXTENDS the spec and
    defines its broken operators) and, to compare a broken variant instead of the real
    spec, that variant's definition overrides (config lines `Op <- Variant_Op`)."""

    module: Path
    variant: str | None = None
    overrides: tuple[str, ...] = ()


class Comparator(Protocol):
    """A spec-vs-code comparison: `cfg` is the run config whose bounds both sides use,
    `target` what TLC runs, `source` how to name the config; the entry's `bounds` come
    as further keyword arguments."""

    def __call__(
        self,
        cfg: GovernanceConfig,
        toolchain: Toolchain,
        target: Target,
        *,
        timeout: float,
        source: str,
        **bounds: Any,
    ) -> Comparison: ...


@dataclass(frozen=True)
class ComparisonEntry:
    name: str  # its row is conform:<name>
    module: str
    compare: str  # dotted path of the Comparator
    python: tuple[str, ...]  # dotted paths of the core functions it compares with
    config: str  # shipped run config (configs/<config>) whose bounds it uses
    bounds: Mapping[str, Any] = field(default_factory=dict)
    set: str = DEFAULT_SET
    about: str = ""

    @property
    def row(self) -> str:
        return CONFORM_PREFIX + self.name

    def comparator(self) -> Comparator:
        return resolve(self.compare, f"comparison {self.name}: compare")


def resolve(dotted: str, where: str) -> Any:
    """The object a dotted path `package.module.name` names."""
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise GovtrainError(f"{where}: cannot import {dotted}: {exc}") from None


def check_signature(entry: ComparisonEntry) -> None:
    """The comparator takes (cfg, toolchain, target, *, timeout, source, **bounds)."""
    fn = entry.comparator()
    try:
        inspect.signature(fn).bind(None, None, None, timeout=0, source="", **entry.bounds)
    except TypeError as exc:
        raise GovtrainError(
            f"comparison {entry.name}: {entry.compare} does not take "
            f"(cfg, toolchain, target, *, timeout, source, **bounds): {exc}"
        ) from None


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class Selection:
    models: list[ModelEntry]
    comparisons: list[ComparisonEntry]


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: tuple[ModelEntry, ...]
    comparisons: tuple[ComparisonEntry, ...] = ()

    @property
    def sets(self) -> list[str]:
        return sorted({e.set for e in (*self.models, *self.comparisons)})

    def select(
        self, patterns: Sequence[str] = (), sets: Sequence[str] | None = (DEFAULT_SET,)
    ) -> Selection:
        """Models and comparisons (`conform:NAME`) matching any fnmatch pattern (all when
        none), from the named sets (every set when `sets` is None); an entry named exactly
        runs whatever its set."""
        unknown = [s for s in sets or () if s not in self.sets]
        if unknown:
            raise GovtrainError(f"no set {', '.join(unknown)} (sets: {', '.join(self.sets)})")
        unmatched = [p for p in patterns if not any(fnmatchcase(n, p) for n in self._names())]
        if unmatched:
            raise GovtrainError(f"no model matches {', '.join(unmatched)}")

        def chosen(name: str, in_set: str) -> bool:
            in_sets = sets is None or in_set in sets
            if not patterns:
                return in_sets
            return name in patterns or (in_sets and any(fnmatchcase(name, p) for p in patterns))

        return Selection(
            [m for m in self.models if chosen(m.name, m.set)],
            [c for c in self.comparisons if chosen(c.row, c.set)],
        )

    def _names(self) -> list[str]:
        return [m.name for m in self.models] + [c.row for c in self.comparisons]

    def comparison(self, name: str) -> ComparisonEntry:
        for c in self.comparisons:
            if name in (c.name, c.row):
                return c
        raise GovtrainError(f"no comparison {name} in the manifest")

    def target(self, comparison: ComparisonEntry, model: ModelEntry | None = None) -> Target:
        """What the comparison runs TLC on: its module, with `model`'s variant swapped in."""
        module = self.root / comparison.module
        if model is None:
            return Target(module)
        return Target(module, model.variant, model.overrides)

    def variant_targets(self, name: str) -> list[tuple[ComparisonEntry, Target]]:
        """The comparisons a broken variant applies to, each with its Target. `name` is a
        model with a variant (`ConvergenceGovernor_NoColdGuard`), or a variant
        (`NoColdGuard`: the first model of each comparison's spec that swaps it in)."""
        models = [m for m in self.models if m.variant and name in (m.name, m.variant)]
        if not models:
            variants = sorted({m.variant for m in self.models if m.variant})
            raise GovtrainError(
                f"no broken variant {name}: name a model with a variant or one of "
                + ", ".join(variants)
            )
        out = []
        for c in self.comparisons:
            for m in models:
                if c.module in extended(self.root, m.module):
                    out.append((c, self.target(c, m)))
                    break
        if not out:
            shown = ", ".join(m.name for m in models)
            raise GovtrainError(f"{shown}: no spec-vs-code comparison runs that spec")
        return out


_MODEL_KEYS = {
    "name",
    "module",
    "config",
    "expect",
    "distinct_states",
    "variant",
    "set",
    "seconds",
    "about",
}
_COMPARISON_KEYS = {"name", "module", "compare", "python", "config", "bounds", "set", "about"}
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_OVERRIDE = re.compile(r"(?m)^\s*(\w+)\s*<-\s*(?:\[(\w+)\]\s*)?(\w+)\s*$")


def overrides(config_text: str, variant: str) -> tuple[str, ...]:
    """The definition overrides of `variant` in a config: `Op <- [M] Variant_Op` lines."""
    return tuple(
        m.group(0).strip()
        for m in _OVERRIDE.finditer(config_text)
        if m.group(3) == f"{variant}_{m.group(1)}"
    )


def extended(root: Path, module: str) -> set[str]:
    """`module` (a file name in root) and every module of root it EXTENDS, transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = root / name
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        for line in re.findall(r"(?m)^EXTENDS (.*)$", path.read_text(encoding="utf-8")):
            todo += [f"{m.strip()}.tla" for m in line.split(",")]
    return seen


def _check_keys(raw: Any, where: str, allowed: set[str], required: set[str]) -> None:
    if not isinstance(raw, dict):
        raise GovtrainError(f"{where}: expected a mapping")
    unknown, missing = set(raw) - allowed, required - set(raw)
    if unknown or missing:
        raise GovtrainError(
            f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
        )


def _file(root: Path, raw: dict[str, Any], key: str, where: str) -> str:
    if not (root / str(raw[key])).is_file():
        raise GovtrainError(f"{where}: {key} {raw[key]} not found in {root}")
    return str(raw[key])


def _model(root: Path, raw: Any, where: str) -> ModelEntry:
    _check_keys(raw, where, _MODEL_KEYS, {"name", "module", "config", "expect", "distinct_states"})
    name = raw["name"]
    where = f"{where} ({name})"
    states = raw["distinct_states"]
    if not isinstance(states, int) or isinstance(states, bool) or states < 0:
        raise GovtrainError(f"{where}: distinct_states must be an integer >= 0")
    if states == 0 and raw["expect"] == "holds":
        raise GovtrainError(f"{where}: distinct_states 0 is for a violating initial state")
    module, config = _file(root, raw, "module", where), _file(root, raw, "config", where)
    variant = raw.get("variant")
    swapped: tuple[str, ...] = ()
    if variant is not None:
        swapped = overrides((root / config).read_text(encoding="utf-8"), str(variant))
        if not swapped:
            raise GovtrainError(
                f"{where}: variant {variant}: {config} swaps in no {variant}_<Operator> "
                f"(a line `Operator <- {variant}_Operator`)"
            )
    return ModelEntry(
        name=name,
        module=module,
        config=config,
        expect=Expectation.parse(raw["expect"], where),
        distinct_states=states,
        variant=None if variant is None else str(variant),
        overrides=swapped,
        set=str(raw.get("set", DEFAULT_SET)),
        seconds=raw.get("seconds"),
        about=str(raw.get("about", "")).strip(),
    )


def _comparison(root: Path, raw: Any, where: str) -> ComparisonEntry:
    _check_keys(raw, where, _COMPARISON_KEYS, {"name", "module", "compare", "python", "config"})
    where = f"{where} ({raw['name']})"
    python = raw["python"] if isinstance(raw["python"], list) else [raw["python"]]
    for dotted in [raw["compare"], *python]:
        if not isinstance(dotted, str) or not _DOTTED.match(dotted):
            raise GovtrainError(f"{where}: {dotted!r} is not a dotted import path")
    bounds = raw.get("bounds") or {}
    if not isinstance(bounds, dict):
        raise GovtrainError(f"{where}: bounds must be a mapping of keyword arguments")
    return ComparisonEntry(
        name=str(raw["name"]),
        module=_file(root, raw, "module", where),
        compare=raw["compare"],
        python=tuple(python),
        config=str(raw["config"]),
        bounds=bounds,
        set=str(raw.get("set", DEFAULT_SET)),
        about=str(raw.get("about", "")).strip(),
    )


def load_manifest(path: Path) -> Manifest:
    """Read specs/manifest.yaml; every problem names the entry and the field."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GovtrainError(f"cannot read manifest {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise GovtrainError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise GovtrainError(f"{path}: expected a mapping with a 'models' list")
    if not isinstance(data.get("comparisons", []), list):
        raise GovtrainError(f"{path}: 'comparisons' must be a list")
    root = Path(path).parent
    models = [_model(root, raw, f"{path}: models[{i}]") for i, raw in enumerate(data["models"])]
    comparisons = [
        _comparison(root, raw, f"{path}: comparisons[{i}]")
        for i, raw in enumerate(data.get("comparisons", []))
    ]
    names = [m.name for m in models] + [c.row for c in comparisons]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GovtrainError(f"{path}: duplicate names {', '.join(duplicates)}")
    return Manifest(root, tuple(models), tuple(comparisons))


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Verdict:
    """One model's check: what TLC said against what the manifest expects."""

    entry: ModelEntry
    result: TLCResult
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.entry.name,
            "ok": self.ok,
            "expected": self.entry.expect.describe(),
            "expected_distinct_states": self.entry.distinct_states,
            "variant": self.entry.variant,
            "set": self.entry.set,
            "problems": list(self.problems),
            "result": self.result.as_dict(),
        }


def judge(entry: ModelEntry, result: TLCResult) -> Verdict:
    """Compare TLC's result with the manifest: outcome, the name it reports, distinct states."""
    problems = []
    want = entry.expect
    if result.outcome is not want.outcome:
        detail = f" ({result.violated})" if result.violated else ""
        first_error = result.errors[0].splitlines()[0] if result.errors else ""
        if result.outcome not in (Outcome.INVARIANT_VIOLATED, Outcome.PROPERTY_VIOLATED):
            detail += f": {first_error}" if first_error else ""
        problems.append(f"expected {want.describe()}, TLC says {result.outcome.value}{detail}")
    elif want.name is not None and result.violated != want.name:
        problems.append(f"expected {want.name} to fail, TLC names {result.violated}")
    # a violating initial state: TLC stops before it counts (the manifest's 0)
    found = (
        0 if result.distinct_states is None and want.name is not None else result.distinct_states
    )
    if result.outcome is want.outcome and found != entry.distinct_states:
        problems.append(
            f"expected {entry.distinct_states} distinct states, TLC found {result.distinct_states}"
        )
    return Verdict(entry, result, tuple(problems))


def check_model(
    entry: ModelEntry, manifest: Manifest, *, toolchain: Toolchain, timeout: float = 600
) -> Verdict:
    result = run_tlc(
        manifest.root / entry.module,
        manifest.root / entry.config,
        workers=entry.workers,
        timeout=timeout,
        toolchain=toolchain,
    )
    return judge(entry, result)


def run_comparison(
    entry: ComparisonEntry,
    target: Target,
    *,
    toolchain: Toolchain,
    config: Path | None = None,
    source: str | None = None,
    timeout: float = 600,
) -> Comparison:
    """Run one comparison at the bounds of `config` (default: the entry's shipped config)."""
    from govtrain.pipeline.config import load_config
    from govtrain.resources import config_path

    path = config if config is not None else config_path(entry.config)
    shown = source if source is not None else f"configs/{entry.config}"
    cfg = load_config(path).governance
    run: Callable[..., Comparison] = entry.comparator()
    return run(cfg, toolchain, target, timeout=timeout, source=shown, **entry.bounds)
