"""The `step` audit record: one governance step as the log carries it.

The governor and the HF callback write it, replay and trace export read it:
this module is the only place that knows its fields. Groups are keyed by name
in the record and listed in config order (the specs' `1..N`) in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from govtrain.governance.errors import GovtrainError
from govtrain.governance.state import (
    GovernanceState,
    GroupObservation,
    GroupState,
    Transition,
    state_from_dict,
    state_to_dict,
)
from govtrain.governance.step import Decision

OBSERVATION_FIELDS = ("signal", "wake", "need")


class RecordSchemaError(GovtrainError):
    """A step record lacks a field or has one of the wrong shape."""


def decision_to_dict(d: Decision, names: Sequence[str]) -> dict[str, Any]:
    return {
        "allocations": dict(zip(names, d.allocations, strict=True)),
        "quotas": dict(zip(names, d.quotas, strict=True)),
        "budget_action": d.budget_action,
        "warmup": d.warmup,
    }


def decision_from_dict(d: Mapping[str, Any], names: Sequence[str]) -> Decision:
    return Decision(
        tuple(d["allocations"][n] for n in names),
        tuple(d["quotas"][n] for n in names),
        d["budget_action"],
        d["warmup"],
    )


@dataclass(frozen=True)
class StepRecord:
    """What one governed step consumed, did and decided; `routed` is what the step used
    (per group: the quota applied and the SHA-256 of the routed sample indices)."""

    step: int
    loss: float
    lr: float
    step_time_ms: float
    routed: Mapping[str, Mapping[str, Any]]
    observations: tuple[GroupObservation, ...]
    transitions: tuple[Transition, ...]
    state: GovernanceState
    decision: Decision
    grad_bytes: int | None = None  # gradient bytes all-reduced (distributed runs only)
    # the step's backward FLOPs and what a dense backward would have cost (the trainer's
    # FlopMeter; absent where nothing counts them, e.g. the HF callback)
    backward_flops: int | None = None
    dense_backward_flops: int | None = None
    # on a probe step that measured (governance/readings.py): per group, per measure
    measurements: Mapping[str, Mapping[str, float]] | None = None
    # with data tiers (governance/tiers.py): the batch's sample rows and their losses
    samples: Mapping[str, list] | None = None
    # with `router.scorer: learned`: SHA-256 (hex) of the scorer parameters that scored this
    # step (before the step's own learning; step 0's: the seeded initial ones)
    scorer: str | None = None
    # on a step that activated a bypassed level: how its blocks grew (governance/growth.py)
    growth: Mapping[str, Any] | None = None
    # with `hierarchy.dormant: bypass`: the blocks the next step does not run, as the
    # model has them after this step's decision was applied
    bypassed: Sequence[str] | None = None
    # with `hierarchy.dormant: bypass`, on step 0: every block and its group's index
    blocks: Sequence[Sequence[Any]] | None = None

    def to_dict(self, names: Sequence[str]) -> dict[str, Any]:
        extra = {
            f: getattr(self, f)
            for f in (
                "grad_bytes",
                "backward_flops",
                "dense_backward_flops",
                "measurements",
                "samples",
                "scorer",
                "growth",
                "bypassed",
                "blocks",
            )
            if getattr(self, f) is not None
        }
        return {
            "step": self.step,
            "loss": self.loss,
            "lr": self.lr,
            "step_time_ms": self.step_time_ms,
            "routed": {n: dict(self.routed[n]) for n in names},
            "observations": {
                n: {f: getattr(o, f) for f in OBSERVATION_FIELDS}
                for n, o in zip(names, self.observations, strict=True)
            },
            "transitions": [t.as_dict() for t in self.transitions],
            "state": state_to_dict(self.state, list(names)),
            "decision": decision_to_dict(self.decision, names),
            **extra,
        }

    def per_group(
        self, names: Sequence[str]
    ) -> Iterator[tuple[str, GroupState, GroupObservation, int, int]]:
        """Each group's (name, state after the step, observation, budget units, quota)."""
        return zip(
            names,
            self.state.groups,
            self.observations,
            self.decision.allocations,
            self.decision.quotas,
            strict=True,
        )

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], names: Sequence[str]) -> StepRecord:
        """Parse a recorded step; a missing or malformed field is a RecordSchemaError."""
        try:
            return cls(
                step=body["step"],
                loss=body["loss"],
                lr=body["lr"],
                step_time_ms=body["step_time_ms"],
                routed={n: body["routed"][n] for n in names},
                observations=tuple(
                    GroupObservation(**{f: body["observations"][n][f] for f in OBSERVATION_FIELDS})
                    for n in names
                ),
                transitions=tuple(Transition.from_dict(t) for t in body["transitions"]),
                state=state_from_dict(body["state"], list(names)),
                decision=decision_from_dict(body["decision"], names),
                grad_bytes=body.get("grad_bytes"),
                backward_flops=body.get("backward_flops"),
                dense_backward_flops=body.get("dense_backward_flops"),
                measurements=body.get("measurements"),
                samples=body.get("samples"),
                scorer=_hex_digest(body.get("scorer")),
                growth=body.get("growth"),
                bypassed=body.get("bypassed"),
                blocks=body.get("blocks"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordSchemaError(f"malformed step record: {type(exc).__name__}: {exc}") from None


def _hex_digest(value: Any) -> str | None:
    """A recorded SHA-256 digest: 64 lowercase hex digits (or absent)."""
    if value is not None and not (
        isinstance(value, str) and len(value) == 64 and set(value) <= set("0123456789abcdef")
    ):
        raise ValueError(f"scorer digest {value!r} is not a SHA-256 hex digest")
    return value
