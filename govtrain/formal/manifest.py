"""The manifest of models (`specs/manifest.yaml`): what each model must do, and the verdict.

Each entry names a spec module, a config, the expected outcome (holds, or the
invariant or property TLC must name) and the distinct state count, which
catches a model that silently explores less than it did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from govtrain.formal.output import Outcome, TLCResult, describe_outcome
from govtrain.formal.toolchain import Toolchain, run_tlc
from govtrain.governance.errors import GovtrainError

# --------------------------------------------------------------------------- manifest


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
    slow: bool = False
    seconds: float | None = None  # documented time on 2 cores, for slow models
    about: str = ""

    @property
    def workers(self) -> int:
        """A failing model runs on one worker: breadth-first search is then deterministic,
        so the state count at the violation is the same on every machine."""
        return 2 if self.expect.outcome is Outcome.HOLDS else 1


@dataclass(frozen=True)
class Manifest:
    root: Path
    models: tuple[ModelEntry, ...]

    def select(self, patterns: Sequence[str] = (), include_slow: bool = False) -> list[ModelEntry]:
        """Models matching any fnmatch pattern (all when none); slow ones only when asked
        or named exactly."""
        if not patterns:
            return [m for m in self.models if include_slow or not m.slow]
        chosen = []
        for m in self.models:
            exact = m.name in patterns
            matched = exact or any(fnmatchcase(m.name, p) for p in patterns)
            if matched and (exact or include_slow or not m.slow):
                chosen.append(m)
        return chosen


_ENTRY_KEYS = {"name", "module", "config", "expect", "distinct_states", "slow", "seconds", "about"}


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
    root = Path(path).parent
    models, seen = [], set()
    for i, raw in enumerate(data["models"]):
        where = f"{path}: models[{i}]"
        if not isinstance(raw, dict):
            raise GovtrainError(f"{where}: expected a mapping")
        unknown = set(raw) - _ENTRY_KEYS
        missing = {"name", "module", "config", "expect", "distinct_states"} - set(raw)
        if unknown or missing:
            raise GovtrainError(
                f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        name = raw["name"]
        if name in seen:
            raise GovtrainError(f"{where}: duplicate model name {name!r}")
        seen.add(name)
        states = raw["distinct_states"]
        if not isinstance(states, int) or isinstance(states, bool) or states < 1:
            raise GovtrainError(f"{where} ({name}): distinct_states must be a positive integer")
        for key in ("module", "config"):
            if not (root / str(raw[key])).is_file():
                raise GovtrainError(f"{where} ({name}): {key} {raw[key]} not found in {root}")
        models.append(
            ModelEntry(
                name=name,
                module=str(raw["module"]),
                config=str(raw["config"]),
                expect=Expectation.parse(raw["expect"], f"{where} ({name})"),
                distinct_states=states,
                slow=bool(raw.get("slow", False)),
                seconds=raw.get("seconds"),
                about=str(raw.get("about", "")).strip(),
            )
        )
    return Manifest(root, tuple(models))


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
    if result.outcome is want.outcome and result.distinct_states != entry.distinct_states:
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
