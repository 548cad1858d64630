"""Seeded bugs: realistic implementation bugs, and proof that a named detector catches each.

Every entry of `CATALOGUE` is a small source patch (exact `old -> new` text
substitutions, each `old` occurring exactly once, so a refactor that moves the
code makes the entry fail loudly instead of silently testing nothing) and the
detectors that must catch it once the patch is applied:

* `FailingTests`: the named pytest node ids fail when run on the patched copy;
* `ReplayDivergence`: a tiny run trained by the patched copy is replayed by
  `govtrain.formal.replay.replay` and diverges with a message containing `needle`.
  `core="clean"` replays with this repository's own (trusted) governance core,
  in this process; `core="own"` replays with the patched copy's core, i.e.
  with the code that produced the run. A bug in the pipeline's application of
  decisions is caught by both; a bug in the core itself is invisible to its
  own replay unless it also breaks a named invariant (replay checks them at
  every recorded step), so an auditor must replay with a trusted core.

* `FormalCheck`: a formal validator rejects the patched copy: `"trace"`, TLC
  trace validation of the tiny run it trained, against this repository's specs;
  `"conform:NAME"`, the spec-vs-code comparison NAME (`govtrain specs check`)
  run on the copy's code. Both need TLC; without it they are left out of the
  verification (`verify_all(..., formal=False)`), never reported as passing.
`blind_to` lists detectors that are documented *not* to catch the bug (the
reason is the entry's `rationale`); verifying them keeps the documentation
honest: if one starts catching the bug, the entry must move it to `detectors`.
`GAPS` are bugs that currently escape every detector; they are reported with
the test that would catch them, and verified to escape.

Patches are only ever applied to a copy of the repository's code (`make_copy`)
in a directory outside the repository; `apply_bug` refuses any file inside it.
The copy runs in subprocesses with `PYTHONPATH=<copy>`, and `check_isolation`
proves that every package is imported from the copy, not from the checkout.

    python -m tools.seeded_bugs --list           # the catalogue
    python -m tools.seeded_bugs --markdown       # the tables of docs/seeded-bugs.md
    python -m tools.seeded_bugs cool_renamed     # verify entries (all with --all)

When loaded as a pytest plugin (`-p tools.seeded_bugs`) with the environment
variable `SEEDED_BUGS_REPORT` set, it writes every test outcome to that file;
the harness uses it to know exactly which named tests failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
# The copy mirrors the installed layout (the folders mapped into the `govtrain` namespace
# live inside govtrain/), so `PYTHONPATH=<copy>` imports every module from the copy.
MAPPED = ("governance", "audit", "pipeline", "specs", "configs")
PACKAGES = ("govtrain", *(f"govtrain.{m}" for m in MAPPED[:3]), "govtrain.formal", "tools")
COPIED = ("govtrain", "tools", "tests", "configs", "specs", "pyproject.toml")
REPORT_ENV = "SEEDED_BUGS_REPORT"
TIMEOUT_S = 600


class SeededBugError(Exception):
    """The catalogue no longer matches the code, or the harness was misused."""


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Patch:
    """Replace `old` (which must occur exactly once in `file`) with `new`."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class FailingTests:
    """Every named pytest node id fails on the patched copy."""

    nodeids: tuple[str, ...]

    def describe(self) -> str:
        return "tests: " + ", ".join(self.nodeids)


class _OnATinyRun:
    """A detector that reads the tiny run the patched copy trains (with `overrides`,
    stopped and resumed at `resume_at`); detectors with equal keys share one run."""

    overrides: tuple[tuple[str, Any], ...]
    resume_at: int | None
    needle: str

    @property
    def run_key(self) -> str:
        return json.dumps([list(self.overrides), self.resume_at], sort_keys=True)

    def words(self, what: str, quote: str) -> str:
        """`what`, then the run's overrides and resume, then the needle."""
        if self.overrides:
            pairs = (f"{quote}{k}={json.dumps(v)}{quote}" for k, v in self.overrides)
            what += " with " + ", ".join(pairs)
        if self.resume_at is not None:
            what += f", resumed at step {self.resume_at}"
        return what + (f": {quote}{self.needle}{quote}" if self.needle else "")


@dataclass(frozen=True)
class ReplayDivergence(_OnATinyRun):
    """Replay of a tiny run trained by the patched copy diverges, naming `needle`.

    `overrides` are `tools.tiny.tiny_run` overrides (`governance__budget=...`);
    `resume_at` stops the run there and resumes it to the end.
    """

    core: Literal["clean", "own"]
    needle: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    resume_at: int | None = None

    def describe(self, quote: str = "'") -> str:
        return self.words(f"replay ({self.core} core)", quote)


@dataclass(frozen=True)
class FormalCheck(_OnATinyRun):
    """A formal validator rejects the patched copy, naming `needle`.

    `check`: "trace" (TLC trace validation of the tiny run the copy trains, with
    `overrides` / `resume_at` as for `ReplayDivergence`) or "conform:NAME" (the
    spec-vs-code comparison NAME on the copy's code).
    """

    check: str
    needle: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    resume_at: int | None = None

    def describe(self, quote: str = "'") -> str:
        if self.check == "trace":
            return self.words("TLC trace validation", quote)
        return self.words(f"{self.check} (the specs against the copy's code)", quote)


Detector = FailingTests | ReplayDivergence | FormalCheck


@dataclass(frozen=True)
class SeededBug:
    name: str
    layer: Literal["core", "pipeline"]
    title: str
    patches: tuple[Patch, ...]
    symptom: str  # what a user of a run built on this code would see
    rationale: str  # why these detectors catch it and the others cannot
    detectors: tuple[Detector, ...]
    blind_to: tuple[Detector, ...] = ()
    suggested_test: str = ""  # for GAPS: the test that would catch it

    @property
    def location(self) -> str:
        return ", ".join(sorted({p.file for p in self.patches}))


# the test files named below that live in tests/integration/; the others are in tests/unit/
INTEGRATION_TESTS = ("test_conform.py", "test_trainer.py")


def _tests(*nodeids: str) -> FailingTests:
    """Node ids written from the test file's name on (tests/unit/ or tests/integration/ added)."""
    return FailingTests(
        tuple(
            f"tests/{'integration' if n.split('::')[0] in INTEGRATION_TESTS else 'unit'}/{n}"
            for n in nodeids
        )
    )


CLEAN_TRANSITIONS = ReplayDivergence("clean", "recorded transitions")
SMALL_INVARIANTS = "test_explore.py::test_small_config_all_invariants_hold"
REAL_RUN_REPLAYS = "test_conform.py::test_real_run_replays_exactly"
TIGHT_BUDGET = (("governance__budget", {"master": 3, "floor": 2, "ceiling": 6}),)
# block0 cools while top is DORMANT (tests/integration/test_converge_after_upper.py)
AFTER_UPPER = (
    (
        "governance__hierarchy",
        {"levels": 2, "emergency_fraction": 0.5, "converge_after_upper": True},
    ),
    ("governance__governor__signal_threshold", 0.2),
)

CATALOGUE: tuple[SeededBug, ...] = (
    SeededBug(
        name="cooling_from_cold",
        layer="core",
        title="cooling from cold (the seen_high guard dropped)",
        patches=(
            Patch(
                "governance/convergence.py",
                "            if may_begin_cooling(group):\n"
                '                return group.with_(phase=Phase.COOLING, lows=0), "BeginCooling"\n'
                "            return group, None\n",
                '            return group.with_(phase=Phase.COOLING, lows=0), "BeginCooling"\n',
            ),
        ),
        symptom="A group begins cooling on its first low signal, and the signal reads low "
        "(0) for the first 2 x window steps: layers are declared converged and frozen "
        "before they ever learned.",
        rationale="The recorded BeginCooling at step 0 is not what the trusted core takes "
        "(clean replay); the run's own core takes it too, but replay's NoCoolingFromCold "
        "check fails at the recorded state (own replay); unit and exhaustive tests hit "
        "the guard directly.",
        detectors=(
            _tests(
                "test_convergence.py::test_no_cooling_from_cold",
                "test_convergence.py::test_awakened_must_learn_again_before_cooling",
                SMALL_INVARIANTS,
            ),
            CLEAN_TRANSITIONS,
            ReplayDivergence("own", "NoCoolingFromCold"),
            FormalCheck("trace", 'phase[embed]: spec "ACTIVE", trace "COOLING"'),
            FormalCheck("conform:ConvergenceGovernor", "BeginCooling"),
        ),
    ),
    SeededBug(
        name="patience_off_by_one",
        layer="core",
        title="off-by-one patience (`>` for `>=`)",
        patches=(
            Patch(
                "governance/convergence.py",
                "    return lows >= patience\n",
                "    return lows > patience\n",
            ),
        ),
        symptom="Groups stay COOLING one step longer than governor.patience says, so every "
        "freeze comes a step late; `lows` reaches `patience` in the log.",
        rationale="The clean core converges a step earlier than the record (clean replay); "
        "the run's own core agrees with itself but the recorded lows = patience breaks "
        "TypeOK (own replay); unit tests count the lows.",
        detectors=(
            _tests(
                "test_convergence.py::test_full_path_to_converged",
                "test_convergence.py::test_patience_counts_lows_while_cooling",
                "test_convergence.py::test_patience_one_converges_on_first_low",
                SMALL_INVARIANTS,
            ),
            CLEAN_TRANSITIONS,
            ReplayDivergence("own", "TypeOK"),
            FormalCheck("trace", 'phase[embed]: spec "CONVERGED", trace "COOLING"'),
            FormalCheck("conform:ConvergenceGovernor"),
        ),
    ),
    SeededBug(
        name="awakening_unbounded",
        layer="core",
        title="awakening unbounded (may_awaken not called)",
        patches=(
            Patch(
                "governance/convergence.py",
                "            if wake and may_awaken(group, cfg.max_awakenings):\n",
                "            if wake:\n",
            ),
        ),
        symptom="A converged group whose drift probe keeps firing is woken again and "
        "again past governor.max_awakenings: freeze/wake can oscillate forever.",
        rationale="Needs two wakes of one group; the 40-step tiny run has none, so replay "
        "has nothing to see. The unit test and the explorer (AwakeningsBounded) reach it.",
        detectors=(
            _tests("test_convergence.py::test_awaken_is_bounded", SMALL_INVARIANTS),
            FormalCheck("conform:ConvergenceGovernor", "Awaken"),
        ),
        blind_to=(FormalCheck("trace"),),
    ),
    SeededBug(
        name="skipped_level",
        layer="core",
        title="a skipped level (jump to the highest level whose deadline passed)",
        patches=(
            Patch(
                "governance/hierarchy.py",
                "    nxt = state.active_level + 1\n",
                "    due = [k for k in range(cfg.hierarchy.levels) if emergency(state, k, cfg)]\n"
                "    nxt = max(state.active_level + 1, *due)\n",
            ),
        ),
        symptom="When two emergency deadlines coincide (short runs, small "
        "emergency_fraction) or a resumed run is past several, the activator jumps over a "
        "level: its groups go from DORMANT straight to sharing the budget with finer ones.",
        rationale="Needs three levels and two due deadlines; the tiny run has two levels. "
        "The hierarchy unit test builds exactly that state; random configs of the "
        "property test reach coinciding deadlines (NoSkippedLevels).",
        detectors=(
            _tests(
                "test_hierarchy.py::test_one_level_per_step_even_when_two_are_due",
                "test_step.py::TestGovernedSteps::runTest",
            ),
        ),
        blind_to=(FormalCheck("trace"),),
    ),
    SeededBug(
        name="premature_activation",
        layer="core",
        title="premature activation (the current level's deadline tested)",
        patches=(
            Patch(
                "governance/hierarchy.py",
                "(gate_open(state, cfg) or emergency(state, nxt, cfg))",
                "(gate_open(state, cfg) or emergency(state, state.active_level, cfg))",
            ),
        ),
        symptom="The emergency test reads the deadline of the level already active (always "
        "past), so one more level activates every step: coarse-to-fine collapses into "
        "training everything from step 1.",
        rationale="The clean core does not activate level 1 at step 0 (clean replay); the "
        "run's own core does, which breaks ActivationGated (own replay); the unit test "
        "and the explorer (ActivationGated) see it directly.",
        detectors=(
            _tests(
                "test_hierarchy.py::test_no_activation_before_gate_or_deadline",
                SMALL_INVARIANTS,
            ),
            CLEAN_TRANSITIONS,
            ReplayDivergence("own", "ActivationGated"),
            FormalCheck("trace", "activeLevel: spec 0, trace 1"),
            FormalCheck("conform:GovernedTraining", "ActivationGated"),
        ),
    ),
    SeededBug(
        name="ration_overspend",
        layer="core",
        title="budget overspend when rationing (`<=` for `<`)",
        patches=(
            Patch(
                "governance/budget.py",
                "share + (1 if rank < extra else 0)",
                "share + (1 if rank <= extra else 0)",
            ),
        ),
        symptom="When floors do not fit the master budget, one group more than the "
        "remainder gets an extra unit: the step spends more units than budget.master.",
        rationale="Only the infeasible (Ration) case is wrong, so replay needs a run whose "
        "floors exceed the master (the overrides); there the clean core decides "
        "differently and the own core's decision breaks BudgetConserved.",
        detectors=(
            _tests(
                "test_budget.py::test_infeasible_floors_ration_equally",
                "test_budget.py::test_allocation_invariants",
                "test_explore.py::test_config_variants_hold_unbroken[tight_budget]",
            ),
            ReplayDivergence("clean", "recorded decision", TIGHT_BUDGET),
            ReplayDivergence("own", "BudgetConserved", TIGHT_BUDGET),
            FormalCheck("trace", "units[block0]: spec 1, trace 2", TIGHT_BUDGET),
            FormalCheck("conform:FederatedBudget", "Ration"),
        ),
    ),
    SeededBug(
        name="frozen_routed_in_warmup",
        layer="core",
        title="routing to a frozen group (warmup checked before frozen)",
        patches=(
            Patch(
                "governance/routing.py",
                "    if state.frozen(group):\n        return 0\n"
                "    if in_warmup(state, cfg):\n        return cfg.router.batch_size\n",
                "    if in_warmup(state, cfg):\n        return cfg.router.batch_size\n"
                "    if state.frozen(group):\n        return 0\n",
            ),
        ),
        symptom="During the warmup, decisions (and the audit log) grant DORMANT and "
        "CONVERGED groups the whole batch; the log then claims gradient for frozen groups.",
        rationale="The clean core's decision gives frozen groups 0 (clean replay); the own "
        "core's breaks FrozenGetsNoGradient (own replay); the router unit test and the "
        "explorer check the quota of frozen groups.",
        detectors=(
            _tests("test_routing.py::test_warmup_routes_the_whole_batch", SMALL_INVARIANTS),
            ReplayDivergence("clean", "recorded decision"),
            ReplayDivergence("own", "FrozenGetsNoGradient"),
            FormalCheck("trace", "quota[top]: spec 0, trace 8"),
            FormalCheck("conform:GradientRouter", "different route"),
        ),
    ),
    SeededBug(
        name="lowest_loss_routing",
        layer="core",
        title="routing the lowest-loss samples instead of the highest",
        patches=(
            Patch(
                "governance/routing.py",
                "key=lambda i: (-scores[i], i)",
                "key=lambda i: (scores[i], i)",
            ),
        ),
        symptom="Selective backprop trains on the easiest samples: the loss falls more "
        "slowly for the same compute, and nothing in the log looks wrong.",
        rationale="Records carry each group's quota and a digest of the routed indices but "
        "not the per-sample scores, so replay cannot re-derive which samples were due "
        "(blind); the router unit/property tests and the governor test compare with the "
        "real losses.",
        detectors=(
            _tests(
                "test_routing.py::test_route_picks_highest_scores_ties_to_lower_index",
                "test_routing.py::test_route_is_top_k",
                "test_governor.py::test_quota_routes_the_highest_loss_samples",
            ),
            FormalCheck("conform:GradientRouter", "different route"),
        ),
        blind_to=(
            ReplayDivergence("clean"),
            FormalCheck("trace"),
        ),
    ),
    SeededBug(
        name="cool_renamed",
        layer="core",
        title="a wrong action name ('Cool' recorded as 'Cooling')",
        patches=(
            Patch(
                "governance/convergence.py",
                'return group.with_(lows=lows), "Cool"',
                'return group.with_(lows=lows), "Cooling"',
            ),
        ),
        symptom="The log names an action the specs do not have; behaviour is unchanged, "
        "but the run is no longer a behaviour of the spec (trace validation fails).",
        rationale="The clean core names the step Cool (clean replay). The run's own core "
        "agrees with its log and no invariant looks at names, so own replay is blind: "
        "this is why replay must use a trusted core.",
        detectors=(
            _tests(
                "test_convergence.py::test_full_path_to_converged",
                "test_convergence.py::test_patience_counts_lows_while_cooling",
                "test_step.py::TestGovernedSteps::runTest",
                "test_explore.py::test_every_phase_and_level_is_reached",
                "test_conformance.py::test_python_governor_graph",
            ),
            CLEAN_TRANSITIONS,
            FormalCheck("trace", 'trace <<"Cooling(embed)"'),
            FormalCheck("conform:ConvergenceGovernor", "only in TLA+: --Cool-->"),
        ),
        blind_to=(ReplayDivergence("own"),),
    ),
    SeededBug(
        name="stale_decision",
        layer="core",
        title="decisions a step late (decided from the state before the step)",
        patches=(
            Patch(
                "governance/step.py",
                "    decision = decider(new_state)\n",
                "    decision = decider(state)\n",
            ),
        ),
        symptom="Every decision lags a step: the warmup lasts a step longer, a group that "
        "just converged still gets budget and samples, a new level's groups get no samples "
        "for a step (today that crashes the routed backward: an empty float index).",
        rationale="The clean core ends the warmup a step earlier (clean replay at step 1); "
        "the own core's decision for a just-converged group breaks NoBudgetForFrozen "
        "(own replay); the step tests pin the timing.",
        detectors=(
            _tests(
                "test_step.py::test_decisions_take_effect_next_step",
                SMALL_INVARIANTS,
            ),
            ReplayDivergence("clean", "recorded decision"),
            ReplayDivergence("own", "NoBudgetForFrozen"),
            FormalCheck("trace", "warmup: spec FALSE, trace TRUE"),
        ),
    ),
    SeededBug(
        name="converged_not_frozen",
        layer="pipeline",
        title="optimizer drift on frozen parameters (CONVERGED not frozen)",
        patches=(
            Patch(
                "pipeline/governor.py",
                "            frozen = g.phase.frozen and self.enforce\n",
                "            frozen = g.phase is Phase.DORMANT and self.enforce\n",
            ),
        ),
        symptom="Converged groups keep requires_grad: their quota-0 gradient is zero, but "
        "AdamW moments and weight decay (SGD momentum) keep moving the 'frozen' weights. "
        "With today's pipeline the first step after a Converge crashes instead "
        "(index_select on an empty float index: a trainable group routed 0 samples).",
        rationale="The core's decisions are right and frozen groups' observations are 0 by "
        "construction, so the log, as far as it goes, replays exactly with any core "
        "(blind); only the governor test that checks freezing and compares weights bit "
        "for bit sees it.",
        detectors=(
            _tests(
                "test_governor.py::test_converged_group_stays_bit_identical[adamw]",
                "test_governor.py::test_converged_group_stays_bit_identical[sgd]",
            ),
        ),
        blind_to=(
            ReplayDivergence("clean"),
            FormalCheck("trace"),
        ),
    ),
    SeededBug(
        name="forgotten_step_record",
        layer="pipeline",
        title="a forgotten audit record (steps without transitions not logged)",
        patches=(
            Patch(
                "pipeline/governor.py",
                "        if self.audit is not None:\n            record = ",
                "        if self.audit is not None and result.transitions:\n            record = ",
            ),
        ),
        symptom="Quiet steps are missing from audit.jsonl; the hash chain and signed "
        "checkpoints still verify, because the records were never written.",
        rationale="Replay (either core: the core is not at fault) finds a step record whose "
        "number is not the one due; the conform and trainer tests count the step records.",
        detectors=(
            _tests(
                REAL_RUN_REPLAYS,
                "test_trainer.py::test_every_step_is_audited_and_the_log_verifies",
            ),
            ReplayDivergence("clean", "is due"),
            ReplayDivergence("own", "is due"),
            FormalCheck("trace", "step number 5 where step 0 is due"),
        ),
    ),
    SeededBug(
        name="routes_allocation_not_quota",
        layer="pipeline",
        title="routing by allocation instead of quota (warmup ignored)",
        patches=(
            Patch(
                "pipeline/governor.py",
                "routing.applied_quota(self.state, i, q, batch, self.enforce)\n"
                "            for i, q in enumerate(self.decision.quotas)",
                "routing.applied_quota(self.state, i, q, batch, self.enforce)\n"
                "            for i, q in enumerate(self.decision.allocations)",
            ),
            Patch(
                "pipeline/governor.py",
                "self.state, i, self.decision.quotas[i], batch, self.enforce)",
                "self.state, i, self.decision.allocations[i], batch, self.enforce)",
            ),
        ),
        symptom="The observation-only warmup is skipped: groups get `allocation` samples "
        "instead of the whole batch; the log's routed quota disagrees with its decision.",
        rationale="Replay (either core) checks each step's routed quota against the "
        "previous decision; the conform and trainer tests do the same on a real run.",
        detectors=(
            _tests(
                REAL_RUN_REPLAYS,
                "test_trainer.py::test_hierarchy_advances_and_decisions_apply_next_step",
            ),
            ReplayDivergence("clean", "was routed"),
            ReplayDivergence("own", "was routed"),
            FormalCheck("trace", "routed[embed]: spec 8, trace 6"),
        ),
    ),
    SeededBug(
        name="awaken_policy_inverted",
        layer="pipeline",
        title="awakening keeps stale optimiser state under 'reset' (policy inverted)",
        patches=(
            Patch(
                "pipeline/governor.py",
                'self.awaken_policy == "reset" and self.enforce',
                'self.awaken_policy != "reset" and self.enforce',
            ),
        ),
        symptom="An awakened group resumes with Adam moments from before it converged "
        "(and 'keep' throws them away): stale momentum pushes it in an old direction.",
        rationale="Optimiser state is not in the log, so replay cannot see it; the "
        "governor test checks both policies.",
        detectors=(
            _tests(
                "test_governor.py::test_awakening_optimizer_state_policy[reset-False]",
                "test_governor.py::test_awakening_optimizer_state_policy[keep-True]",
            ),
        ),
        blind_to=(FormalCheck("trace"),),
    ),
    SeededBug(
        name="resume_forgets_decision",
        layer="pipeline",
        title="resume forgets the checkpointed decision",
        patches=(
            Patch(
                "pipeline/governor.py",
                '        self.decision = decision_from_dict(sd["decision"], self.names)\n',
                "",
            ),
        ),
        symptom="A resumed run routes its first step by the initial warmup decision, not "
        "the one in the checkpoint: it silently differs from the uninterrupted run.",
        rationale="Replay of a resumed run rewinds to the checkpointed step and checks "
        "the first resumed step's routing against the decision before it (either core).",
        detectors=(
            _tests(
                "test_conform.py::test_resumed_run_replays_exactly",
                "test_trainer.py::test_resume_reproduces_the_uninterrupted_run[default]",
            ),
            ReplayDivergence("clean", "was routed", resume_at=15),
            ReplayDivergence("own", "was routed", resume_at=15),
            FormalCheck("trace", "routed[embed]: spec 6, trace 8", resume_at=15),
        ),
    ),
    SeededBug(
        name="ties_to_higher_index",
        layer="core",
        title="routing ties broken towards the higher sample index",
        patches=(
            Patch(
                "governance/routing.py",
                "key=lambda i: (-scores[i], i)",
                "key=lambda i: (-scores[i], -i)",
            ),
        ),
        symptom="Ranks still agree (the rule is deterministic), but the samples routed on "
        "tied scores are not the ones the spec and the docs promise, so an independent "
        "implementation of the router routes different samples from the same losses.",
        rationale="Every router invariant holds either way (a quota of top-scoring samples), "
        "so the explorer and the router models cannot see it; the tie test and the "
        "counting definition of top-k see it, and so does the router comparison, which "
        "routes every batch of tied scores through both the spec's TopK and route().",
        detectors=(
            _tests(
                "test_routing.py::test_route_picks_highest_scores_ties_to_lower_index",
                "test_routing.py::test_route_is_the_counting_top_k",
            ),
            FormalCheck("conform:GradientRouter", "different route"),
        ),
        blind_to=(_tests(SMALL_INVARIANTS),),
    ),
    SeededBug(
        name="sainte_lague_divisors",
        layer="core",
        title="another divisor method in the budget (Sainte-Lague's 1, 3, 5, ...)",
        patches=(
            Patch(
                "governance/budget.py",
                "-(weight[i] // (won + 2))",
                "-(weight[i] // (2 * won + 3))",
            ),
            Patch(
                "governance/budget.py",
                "max(cfg.ceiling - cfg.floor, 1) + 1",
                "2 * max(cfg.ceiling - cfg.floor, 1) + 2",
            ),
        ),
        symptom="Budgets drift towards equal shares: a group with three times the need "
        "no longer gets about three times the units once it has won a few.",
        rationale="Wherever a group wins at most two units beyond its floor (the explorer's "
        "and the default budget model's bounds) the two methods decide alike, so the "
        "invariants and the default comparison pass; D'Hondt's optimality property and the "
        "comparison at the Divisors bounds (a group wins up to five units) see it.",
        detectors=(
            _tests("test_budget.py::test_allocate_is_dhondt_optimal"),
            FormalCheck("conform:FederatedBudget", "different decision"),
        ),
        blind_to=(_tests(SMALL_INVARIANTS),),
    ),
    SeededBug(
        name="multipliers_ignored",
        layer="core",
        title="budget weights without the phase multipliers",
        patches=(
            Patch(
                "governance/step.py",
                "None if n is None else n * mult[g.phase] for g, n in",
                "None if n is None else n for g, n in",
            ),
        ),
        symptom="A cooling group bids for budget like an active one: the units no longer "
        "follow the phase, only the need.",
        rationale="Every state moves as before, so the invariants and the graph "
        "comparison pass, and the tiny run's budget is never contested while a group "
        "cools, so even the clean replay sees the same units; the composed comparison's "
        "decision check (decide() against the spec's DecisionFor in every reachable "
        "state, every vector of needs) does not.",
        detectors=(FormalCheck("conform:GovernedTraining", "different decision"),),
        blind_to=(_tests(SMALL_INVARIANTS), ReplayDivergence("clean"), ReplayDivergence("own")),
    ),
    SeededBug(
        name="deadline_rounded_down",
        layer="core",
        title="an emergency deadline rounded down (floor for ceil)",
        patches=(
            Patch(
                "governance/config.py",
                "return max(1, math.ceil(span / (levels - 1)))",
                "return max(1, math.floor(span / (levels - 1)))",
            ),
        ),
        symptom="With a fractional emergency point (0.75 x 10 steps = 7.5) a level is "
        "forced on a step before the deadline the spec and the docs give.",
        rationale="Every shipped config has whole deadlines, where floor and ceil agree, so "
        "invariants, replay and the comparison at configs/small.yaml's 8 steps cannot see "
        "it; the test that pins a fractional deadline does, and so does the comparison at "
        "7 steps, whose deadline (5.25) does not divide: the spec's CeilDiv activates the "
        "level at 6, the patched code at 5.",
        detectors=(
            _tests("test_hierarchy.py::test_a_fractional_deadline_rounds_up"),
            FormalCheck("conform:GovernedTraining_UnevenDeadline"),
        ),
        blind_to=(_tests(SMALL_INVARIANTS), FormalCheck("conform:GovernedTraining")),
    ),
    SeededBug(
        name="need_grid_truncated",
        layer="core",
        title="learning needs truncated onto the need grid instead of rounded",
        patches=(
            Patch(
                "governance/budget.py",
                "return tuple(None if n is None else round(Fraction(n) * scale) for n in needs)",
                "return tuple(None if n is None else int(Fraction(n) * scale) for n in needs)",
            ),
        ),
        symptom="A need whose grid value has a fractional part of a half or more loses one "
        "unit in 65536, so where two quotients nearly tie the budget goes to the other "
        "group than the docs' rounding (half to even) gives.",
        rationale="The core shares need_grid with replay, so a run trained by the patched "
        "core replays under its own core, and TLC reads the grid values the trace carries; "
        "a fresh run's needs rarely tie that closely. The test pinning the rounding of a "
        "fractional grid value catches it.",
        detectors=(_tests("test_budget.py::test_the_need_grid_rounds_to_nearest_not_down"),),
        blind_to=(_tests(SMALL_INVARIANTS),),
    ),
    SeededBug(
        name="shadow_applies_decided_quota",
        layer="core",
        title="shadow mode applies the decided quota instead of the whole batch",
        patches=(
            Patch(
                "governance/routing.py",
                "    if not enforced:\n        return batch\n",
                "    if not enforced:\n        return min(decided, batch)\n",
            ),
        ),
        symptom="`train.mode: observe` is meant to apply nothing, but each group's "
        "backward is cut to the quota the decision holds, so the shadow run trains "
        "differently from the plain loop it is compared with.",
        rationale="Replay reads the applied quota through the same function, and no "
        "shipped run, comparison or model checks shadow mode; the test pinning "
        "applied_quota in shadow mode for every phase and quota catches it.",
        detectors=(
            _tests(
                "test_routing.py::test_shadow_mode_applies_the_whole_batch_whatever_was_decided"
            ),
        ),
        blind_to=(_tests(SMALL_INVARIANTS),),
    ),
    SeededBug(
        name="horizon_ignores_warmup",
        layer="core",
        title="the clock's horizon ignores the router's warmup",
        patches=(
            Patch(
                "governance/config.py",
                "return max(self.router.warmup_steps, self.deadline(self.hierarchy.levels - 1))",
                "return self.deadline(self.hierarchy.levels - 1)",
            ),
        ),
        symptom="With a warmup longer than the last level deadline the clock saturates "
        "before the warmup ends, so the router never leaves its warmup: every sample "
        "reaches every group for the whole run.",
        rationale="Every shipped config's warmup ends before its last deadline, where both "
        "horizons agree, so invariants, replay and the comparisons cannot see it; the "
        "test stepping the core past a warmup longer than the deadlines catches it.",
        detectors=(_tests("test_routing.py::test_a_warmup_past_the_last_deadline_still_ends"),),
        blind_to=(_tests(SMALL_INVARIANTS),),
    ),
    SeededBug(
        name="replay_forgets_finish",
        layer="pipeline",
        title="replay accepts steps recorded after the run finished",
        patches=(
            Patch(
                "govtrain/formal/replay.py",
                "        if completion.finished(state, cfg):\n",
                "        if False:\n",
            ),
        ),
        symptom="A log with steps appended after its Finish (training that went on while "
        "the record says nothing was left to train) replays as conforming.",
        rationale="Only a run that finishes early exercises the check; the completion "
        "test trains one to its Finish, then forges a step after it and expects replay "
        "to name it.",
        detectors=(
            FailingTests(
                (
                    "tests/integration/test_completion.py::"
                    "test_a_converged_run_ends_early_sealed_replayable_and_not_resumable",
                )
            ),
        ),
    ),
    SeededBug(
        name="lows_counted_under_dormant",
        layer="core",
        title="a low counted under a dormant level (only the Converge held back)",
        patches=(
            Patch(
                "governance/convergence.py",
                "            if not upper_active:\n",
                "            if not upper_active and patience_reached(group.lows + 1, cfg.patience)"
                ":\n",
            ),
        ),
        symptom="With hierarchy.converge_after_upper a cooling group counts the lows it reads "
        "in the shallower model and only waits one low short: the moment the last level "
        "above activates, it converges on its next low, on evidence from a model that no "
        "longer exists.",
        rationale="The clean core counts no low before top is active (clean replay); the "
        "run's own core breaks ConvergeAfterUpper, which reads the lows (own replay); TLC's "
        "trace validation sees a Cool the spec does not take; the unit test asserts the "
        "lows stay put.",
        detectors=(
            _tests(
                "test_converge_after_upper.py::test_under_a_dormant_level_a_low_is_no_evidence",
            ),
            ReplayDivergence("clean", "recorded transitions", AFTER_UPPER),
            ReplayDivergence("own", "ConvergeAfterUpper", AFTER_UPPER),
            FormalCheck("trace", "Cool(block0)", AFTER_UPPER),
        ),
    ),
)

# the trainer's update, which optimizer_step_after_commit moves after the driver's end
UPDATE = (
    "                self.optimizer.step()\n"
    "                self.changed_since_eval = True\n"
    "                # router.scorer learned: the batch's loss drop trains the scorer (a forward,\n"
    "                # on learn steps only; not in the backward FLOPs, in the step's wall-clock)\n"
    "                self.gov.learn_router(lambda: per_sample_loss(self.model, ids))\n"
)
END_STEP = (
    '        outcome = self.driver.end(loss, self.optimizer.param_groups[0]["lr"], **measured)\n'
)

GAPS: tuple[SeededBug, ...] = (
    SeededBug(
        name="freezing_keeps_grad",
        layer="pipeline",
        title="freezing forgets `.grad = None`",
        patches=(
            Patch(
                "pipeline/governor.py",
                "                if frozen:\n                    p.grad = None\n",
                "",
            ),
        ),
        symptom="In a loop that zeroes gradients in place (`zero_grad(set_to_none=False)`), "
        "a frozen group keeps a zero .grad tensor, so SGD momentum, weight decay and AdamW "
        "moments keep moving its 'frozen' weights.",
        rationale="Every test loop and the trainer zero with set_to_none=True, which hides "
        "the missing line; replay never sees weights.",
        detectors=(),
        blind_to=(
            _tests(
                "test_governor.py::test_converged_group_stays_bit_identical[adamw]",
                "test_governor.py::test_converged_group_stays_bit_identical[sgd]",
            ),
            ReplayDivergence("clean"),
            FormalCheck("trace"),
        ),
        suggested_test="test_governor: the bit-identity test with "
        "`opt.zero_grad(set_to_none=False)`, asserting p.grad is None after Converge.",
    ),
    SeededBug(
        name="optimizer_step_after_commit",
        layer="pipeline",
        title="decisions applied a step early (commit before optimizer.step)",
        patches=(
            Patch("pipeline/trainer.py", UPDATE, ""),
            Patch(
                "pipeline/trainer.py",
                END_STEP,
                END_STEP
                + "        if local.requires_grad and not outcome.skipped:\n"
                + "".join(line[4:] + "\n" for line in UPDATE.splitlines()),
            ),
        ),
        symptom="Step t's freezing is applied before step t's update: a group that "
        "converges at step t loses that step's update (the rule: step t's update "
        "completes unchanged).",
        rationale="The log and the decisions are unchanged, so replay is blind; the resume "
        "test compares two runs with the same bug.",
        detectors=(),
        blind_to=(
            _tests(
                "test_trainer.py::test_resume_reproduces_the_uninterrupted_run[default]",
                "test_trainer.py::test_hierarchy_advances_and_decisions_apply_next_step",
            ),
            ReplayDivergence("clean"),
            FormalCheck("trace"),
        ),
        suggested_test="test_trainer: in the step whose record has Converge(g), g's weights "
        "still change (compare a snapshot before train_step with the weights after).",
    ),
)

ALL: tuple[SeededBug, ...] = CATALOGUE + GAPS
# the bounded default: one of each kind (core caught by tests and both replays, core that
# only the clean core catches, pipeline caught by replay, pipeline only tests catch)
DEFAULT = ("cooling_from_cold", "cool_renamed", "forgotten_step_record", "converged_not_frozen")


def by_name(names: Iterable[str]) -> list[SeededBug]:
    table = {b.name: b for b in ALL}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SeededBugError(f"no seeded bug named {unknown}; known: {sorted(table)}")
    return [table[n] for n in names]


# --------------------------------------------------------------------------- copy and patch


def make_copy(dest: Path, repo: Path = ROOT) -> Path:
    """Copy the code, configs, specs and tests of `repo` into `dest` (outside the repo)."""
    dest = Path(dest).resolve()
    if dest.is_relative_to(repo.resolve()):
        raise SeededBugError(f"{dest}: the copy must live outside the repository {repo}")
    if dest.exists():
        raise SeededBugError(f"{dest} already exists")
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", ".pytest_cache")
    for name in COPIED:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)
    for name in MAPPED:
        shutil.copytree(repo / name, dest / "govtrain" / name, ignore=ignore)
    return dest


def in_copy(copy: Path, file: str) -> Path:
    """Where a repository file (`pipeline/governor.py`) lives in the copy."""
    return copy / "govtrain" / file if file.split("/")[0] in MAPPED else copy / file


def apply_bug(bug: SeededBug, copy: Path) -> None:
    """Apply every patch of `bug` to the copy; each `old` must occur exactly once."""
    copy = Path(copy).resolve()
    for patch in bug.patches:
        target = in_copy(copy, patch.file).resolve()
        if target.is_relative_to(ROOT):
            raise SeededBugError(f"{bug.name}: refusing to patch {target} in the repository")
        text = target.read_text()
        count = text.count(patch.old)
        if count != 1:
            raise SeededBugError(
                f"{bug.name}: the text to replace occurs {count} times in {patch.file} "
                f"(expected once); the code moved, so update the catalogue:\n{patch.old}"
            )
        target.write_text(text.replace(patch.old, patch.new))


def stale_patches(bugs: Iterable[SeededBug] = ALL, repo: Path = ROOT) -> list[str]:
    """Every patch whose text does not occur exactly once in `repo` (nothing is written)."""
    out = []
    for bug in bugs:
        for patch in bug.patches:
            count = (repo / patch.file).read_text().count(patch.old)
            if count != 1:
                out.append(f"{bug.name}: {patch.file}: old text occurs {count} times")
    return out


def _env(copy: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != REPORT_ENV}
    env.update(PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1", **extra)
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return env


def _python(copy: Path, args: Sequence[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=copy,
        env=_env(copy, **extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def check_isolation(copy: Path) -> None:
    """Every package the copy runs must be imported from the copy, not from the checkout."""
    code = "import json, importlib\n"
    code += f"mods = [importlib.import_module(m) for m in {list(PACKAGES)!r}]\n"
    code += "print(json.dumps([m.__file__ for m in mods]))\n"
    proc = _python(copy, ["-c", code])
    if proc.returncode != 0:
        raise SeededBugError(f"the copy {copy} does not import:\n{proc.stderr}")
    files = [Path(f).resolve() for f in json.loads(proc.stdout.strip().splitlines()[-1])]
    outside = [str(f) for f in files if not f.is_relative_to(Path(copy).resolve())]
    if outside:
        raise SeededBugError(f"packages imported from outside the copy {copy}: {outside}")


# --------------------------------------------------------------------------- detectors


def run_tests(copy: Path, nodeids: Sequence[str], report: Path) -> dict[str, str]:
    """Run the node ids with pytest in the copy: each one's outcome (failed wins)."""
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tools.seeded_bugs"]
    args += ["--hypothesis-seed=0", f"--basetemp={report.parent / 'pytest-tmp'}", *nodeids]
    proc = _python(copy, args, **{REPORT_ENV: str(report)})
    outcomes: dict[str, str] = {}
    if report.exists():
        for line in report.read_text().splitlines():
            row = json.loads(line)
            if outcomes.get(row["nodeid"]) != "failed":
                outcomes[row["nodeid"]] = row["outcome"]
    missing = [n for n in nodeids if n not in outcomes]
    if missing:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise SeededBugError(f"tests not run (renamed or removed?): {missing}\n{tail}")
    return outcomes


TRAIN = """\
import json, sys, traceback
from pathlib import Path
from govtrain.audit.provenance import read_records
from govtrain.formal.replay import replay
from tools.tiny import train_tiny
run, overrides, resume_at = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
crash = None
try:
    train_tiny(run, stop_after=resume_at, **overrides)
    if resume_at is not None:
        from govtrain.pipeline.trainer import GovernedTrainer
        GovernedTrainer.resume(run).train(progress=False)
except Exception as exc:
    crash = f"{type(exc).__name__}: {exc}"
    traceback.print_exc()
report = replay(read_records(run / "audit.jsonl"))
own = None if report.ok else str(report.divergence)
(run / "outcome.json").write_text(json.dumps({"crash": crash, "own_replay": own}))
"""


@dataclass(frozen=True)
class TrainedRun:
    log: Path
    crash: str | None  # the exception that stopped training early, if any
    own_replay: str | None  # the divergence replay found with the copy's own core


def train_run(copy: Path, run_dir: Path, detector: ReplayDivergence) -> TrainedRun:
    """Train the tiny run (the detector's overrides / resume) with the copy's code.

    The same process then replays the log with the copy's own core, which saves a
    second interpreter and torch import per run. A run the bug crashes is replayed
    as far as it was recorded (the crash is reported with the finding).
    """
    overrides = json.dumps(dict(detector.overrides))
    proc = _python(copy, ["-c", TRAIN, str(run_dir), overrides, json.dumps(detector.resume_at)])
    outcome = run_dir / "outcome.json"
    if proc.returncode != 0 or not outcome.exists():
        raise SeededBugError(f"training with {copy} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(outcome.read_text())
    return TrainedRun(run_dir / "audit.jsonl", result["crash"], result["own_replay"])


def clean_replay(log: Path) -> str | None:
    """Replay with this repository's core; the divergence as text, or None."""
    from govtrain.audit.provenance import read_records
    from govtrain.formal import replay

    if not Path(replay.__file__).resolve().is_relative_to(ROOT):
        raise SeededBugError(f"the clean core is not this repository's: {replay.__file__}")
    report = replay.replay(read_records(log))
    return None if report.ok else str(report.divergence)


def tlc_trace(log: Path) -> str | None:
    """TLC trace validation of the run with this repository's specs: the rejection, or None."""
    from govtrain.audit.provenance import read_records
    from govtrain.formal.trace import trace_lines, validate_trace

    validation = validate_trace(list(trace_lines(read_records(log))))
    if validation.problem is not None:
        raise SeededBugError(f"TLC gave no verdict on {log}: {validation.problem}")
    return None if validation.ok else str(validation.mismatch)


def spec_comparison(copy: Path, name: str) -> str | None:
    """`govtrain specs check NAME` (a conform:* comparison) on the copy's code: the
    difference it reports, or None when spec and code agree."""
    proc = _python(copy, ["-m", "govtrain", "specs", "check", name, "--json"])
    if proc.returncode not in (0, 1):
        raise SeededBugError(
            f"{name} did not run on {copy} (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    if proc.returncode == 0:
        return None
    diff = json.loads(proc.stdout)["results"][0]["difference"]
    return f"{diff['kind']}: {diff['detail']} at {diff['state']}"


@dataclass(frozen=True)
class Finding:
    """What one detector said about one copy."""

    detector: Detector
    caught: bool  # it reported the problem it is expected to report
    clean: bool  # it reported no problem at all
    evidence: str
    crashed: bool = False  # the run a replay read was cut short by an exception


@dataclass
class Verification:
    bug: SeededBug | None  # None: the unpatched copy
    findings: list[Finding] = field(default_factory=list)
    blind: list[Finding] = field(default_factory=list)
    error: str | None = None  # the harness could not run (stale catalogue, broken copy)

    @property
    def name(self) -> str:
        return self.bug.name if self.bug else "unpatched"

    @property
    def ok(self) -> bool:
        if self.error is not None:
            return False
        if self.bug is None:
            return all(f.clean and not f.crashed for f in self.findings)
        return all(f.caught for f in self.findings) and all(f.clean for f in self.blind)

    def describe(self) -> str:
        lines = [f"{self.name}: {'as documented' if self.ok else 'NOT as documented'}"]
        if self.error is not None:
            lines.append(f"  error: {self.error}")
        for tag, group in (("detects", self.findings), ("blind", self.blind)):
            for f in group:
                verdict = "caught" if f.caught else "clean" if f.clean else "other"
                lines.append(f"  [{tag}] {f.detector.describe()} -> {verdict}: {f.evidence}")
        return "\n".join(lines)


def _evaluate(detectors: Sequence[Detector], copy: Path, work: Path) -> list[Finding]:
    findings: list[Finding] = []
    nodeids = [n for d in detectors if isinstance(d, FailingTests) for n in d.nodeids]
    outcomes = (
        run_tests(copy, list(dict.fromkeys(nodeids)), work / "tests.jsonl") if nodeids else {}
    )
    runs: dict[str, TrainedRun] = {}
    for d in detectors:
        if isinstance(d, FailingTests):
            got = {n: outcomes[n] for n in d.nodeids}
            failed = [n for n, o in got.items() if o == "failed"]
            caught, clean = len(failed) == len(got), all(o == "passed" for o in got.values())
            evidence = ", ".join(f"{n.split('::', 1)[1]}={o}" for n, o in got.items())
            findings.append(Finding(d, caught, clean, evidence))
            continue
        if isinstance(d, FormalCheck) and d.check != "trace":
            rejected = spec_comparison(copy, d.check)
            caught = rejected is not None and d.needle in rejected
            findings.append(Finding(d, caught, rejected is None, rejected or "equal"))
            continue
        if d.run_key not in runs:
            runs[d.run_key] = train_run(copy, work / f"run{len(runs)}", d)
        run = runs[d.run_key]
        if isinstance(d, FormalCheck):
            divergence = tlc_trace(run.log)
        else:
            divergence = clean_replay(run.log) if d.core == "clean" else run.own_replay
        caught = divergence is not None and d.needle in divergence
        evidence = divergence or "replays exactly"
        if run.crash:
            evidence += f" (training crashed: {run.crash})"
        findings.append(Finding(d, caught, divergence is None, evidence, run.crash is not None))
    return findings


def tlc_found() -> bool:
    """Whether the formal detectors can run (they need TLC)."""
    from govtrain.formal.toolchain import TLCNotFound, find_toolchain

    try:
        find_toolchain()
    except TLCNotFound:
        return False
    return True


def runnable(detectors: Iterable[Detector], formal: bool) -> list[Detector]:
    """The detectors to run: without TLC (`formal` False) the formal ones are left out."""
    return [d for d in detectors if formal or not isinstance(d, FormalCheck)]


def verify(
    bug: SeededBug | None, work: Path, detectors: Sequence[Detector] = (), formal: bool = True
) -> Verification:
    """Copy the repository into `work`, apply `bug` (None: nothing), run its detectors.

    For the unpatched copy, `detectors` are the ones to run (they must all be clean).
    """
    work = Path(work)
    copy = make_copy(work / "repo")
    if bug is not None:
        apply_bug(bug, copy)
    check_isolation(copy)
    if bug is None:
        return Verification(None, _evaluate(runnable(detectors, formal), copy, work))
    found, blind = runnable(bug.detectors, formal), runnable(bug.blind_to, formal)
    both = _evaluate([*found, *blind], copy, work)
    return Verification(bug, both[: len(found)], both[len(found) :])


def baseline_detectors(bugs: Iterable[SeededBug]) -> list[Detector]:
    """Every detector the bugs name (documented or blind), once each, for the unpatched copy.

    A replay is clean or not whatever its needle, so replays differ only by core and run.
    """
    out: dict[str, Detector] = {}
    for bug in bugs:
        for d in (*bug.detectors, *bug.blind_to):
            if isinstance(d, ReplayDivergence):
                d = ReplayDivergence(d.core, "", d.overrides, d.resume_at)
            if isinstance(d, FormalCheck):
                d = FormalCheck(d.check, "", d.overrides, d.resume_at)
            out.setdefault(repr(d), d)
    return list(out.values())


def verify_all(
    bugs: Sequence[SeededBug], work: Path, workers: int = 2, formal: bool = True
) -> tuple[Verification, list[Verification]]:
    """The unpatched copy over every named detector, then each bug; `workers` in parallel.

    A bug the harness cannot verify comes back with its `error` instead of stopping the rest.
    """
    work = Path(work)

    def guarded(bug: SeededBug | None, detectors: Sequence[Detector] = ()) -> Verification:
        try:
            where = work / (bug.name if bug else "unpatched")
            return verify(bug, where, detectors, formal)
        except (SeededBugError, subprocess.TimeoutExpired) as exc:
            return Verification(bug, error=str(exc))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        base = pool.submit(guarded, None, baseline_detectors(bugs))
        each = [pool.submit(guarded, b) for b in bugs]
        return base.result(), [f.result() for f in each]


# --------------------------------------------------------------------------- documentation


def markdown_table(bugs: Iterable[SeededBug] = CATALOGUE) -> str:
    """The catalogue as the table in docs/seeded-bugs.md (kept in sync by a test)."""
    rows = [
        "| bug | patch location | what a user would see | caught by | not seen by | verified by |",
        "|---|---|---|---|---|---|",
    ]
    for b in bugs:
        caught = "<br>".join(_cell(d) for d in b.detectors) or "nothing (gap)"
        blind = "<br>".join(_cell(d) for d in b.blind_to) or "-"
        when = "default" if b.name in DEFAULT else "GOVTRAIN_SLOW=1"
        test = f"`test_seeded_bug_is_caught_by_its_detectors[{b.name}]` ({when})"
        rows.append(
            f"| `{b.name}` ({b.layer}): {b.title} | `{b.location}` | {b.symptom} "
            f"| {caught} | {blind} | {test} |"
        )
    return "\n".join(rows)


def markdown_notes(bugs: Iterable[SeededBug] = CATALOGUE) -> str:
    """Per bug: why its detectors see it, and the missing test."""
    lines = []
    for b in bugs:
        line = f"- `{b.name}`: {b.rationale}"
        if b.suggested_test:
            line += f" **Missing test:** {b.suggested_test}"
        lines.append(line)
    return "\n".join(lines)


def _cell(d: Detector) -> str:
    if isinstance(d, FailingTests):
        return "<br>".join(f"`{n.split('/', 2)[-1]}`" for n in d.nodeids)  # tests/unit/: off
    return d.describe(quote="`")


# --------------------------------------------------------------------------- pytest plugin


def pytest_runtest_logreport(report: Any) -> None:
    """With `-p tools.seeded_bugs`: append each test phase's outcome to $SEEDED_BUGS_REPORT."""
    path = os.environ.get(REPORT_ENV)
    if path and (report.when == "call" or report.outcome != "passed"):
        row = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome}
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.seeded_bugs", description=__doc__)
    parser.add_argument("names", nargs="*", help="bugs to verify (default: the bounded set)")
    parser.add_argument("--all", action="store_true", help="verify every bug and gap")
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument("--markdown", action="store_true", help="print the docs' tables")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.markdown:
        for bugs in (CATALOGUE, GAPS):
            print(f"{markdown_table(bugs)}\n\n{markdown_notes(bugs)}\n")
        return 0
    if args.list:
        for b in ALL:
            dets = "; ".join(d.describe() for d in b.detectors) or "GAP: nothing catches it"
            print(f"{b.name} [{b.layer}, {b.location}]: {b.title}\n  caught by: {dets}")
        return 0
    bugs = list(ALL) if args.all else by_name(args.names or DEFAULT)
    formal = tlc_found()
    if not formal:
        print("TLC not found: the formal detectors are SKIPPED", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="seeded-bugs-") as tmp:
        base, results = verify_all(bugs, Path(tmp), args.workers, formal)
    for v in (base, *results):
        print(v.describe())
    return 0 if all(v.ok for v in (base, *results)) else 1


if __name__ == "__main__":
    sys.exit(main())
