"""ConvergeAfterUpper in the specs and in a real run's trace (its TLC models, the
conformance graph and check-config with the flag are in test_growth_spec.py).

`hierarchy.converge_after_upper` (governance/hierarchy.py) is the constant `AfterUpper`
of specs/GovernedTraining.tla and its guard `UpperActive`: a COOLING group's low counts,
and it converges, only while no level above it is DORMANT; otherwise the step is a wait.
The property ConvergeAfterUpper is written out, so a broken guard
(UpperAlwaysActive_UpperActive) is refuted by it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.formal.conform import conform_records
from govtrain.formal.manifest import load_manifest
from govtrain.formal.output import Outcome
from govtrain.formal.trace import export_trace
from govtrain.formal.vocabulary import training_constants
from govtrain.governance.config import parse_governance
from tests.audit_support import forge_step, rejected_only_with
from tests.conftest import ROOT, needs_tlc, train_tiny
from tests.conftest import tlc_toolchain as toolchain

SPECS = ROOT / "specs"
MANIFEST = load_manifest(SPECS / "manifest.yaml")
# block0 cools from step 16 while top (level 1) is DORMANT until its deadline (19)
AFTER_UPPER = {
    "governance__hierarchy": {"levels": 2, "emergency_fraction": 0.5, "converge_after_upper": True},
    "governance__governor__signal_threshold": 0.2,
}


def test_the_rule_has_its_names_in_the_composition() -> None:
    text = (SPECS / "GovernedTraining.tla").read_text()
    assert re.search(r"(?m)^UpperActive\(g\) ==", text)
    assert "Governed(g, Gov(g)!Current, high[g], wake[g], SettledBelow(g),\n" in text
    prop = text[text.index("ConvergeAfterUpper ==") :].split("\n\n")[0]
    assert "UpperActive" not in prop  # written out: a broken guard cannot change it
    broken = (SPECS / "MCGovernedTrainingBroken.tla").read_text()
    assert "UpperAlwaysActive_UpperActive(g) == TRUE" in broken


def test_the_flag_is_a_constant_of_every_model(small_cfg) -> None:
    assert training_constants(small_cfg)["AfterUpper"] is False
    hierarchy = small_cfg.hierarchy.model_copy(update={"converge_after_upper": True})
    flagged = small_cfg.model_copy(update={"hierarchy": hierarchy})
    assert training_constants(flagged)["AfterUpper"] is True
    held = set()
    for m in MANIFEST.models:
        if "GovernedTraining" not in m.module:
            continue
        cfg = (SPECS / m.config).read_text()
        set_to = re.search(r"(?m)^\s*AfterUpper (?:= (TRUE|FALSE)|<- (\w+))$", cfg)
        assert set_to, f"{m.config} does not set AfterUpper"
        if m.expect.outcome is Outcome.HOLDS:
            held.add(set_to.group(1) or "FALSE")  # MC_AfterUpper, Deep_AfterUpper: FALSE
    assert held == {"TRUE", "FALSE"}


@pytest.fixture(scope="module")
def upper_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "after_upper"
    train_tiny(run_dir, **AFTER_UPPER)
    return run_dir


def _waits(recs: list[Record]) -> list[tuple[Record, str]]:
    """The step records (and the group) where a COOLING group read a low signal under a
    DORMANT level and neither counted it nor converged."""
    cfg = parse_governance(recs[0].body["config"]["governance"])
    names = [g.name for g in cfg.groups]
    out, before = [], None
    for rec in (r for r in recs if r.kind == "step"):
        after = rec.body["state"]["groups"]
        if before is not None and any(b["phase"] == "DORMANT" for b in before.values()):
            for n in names:
                low = rec.body["observations"][n]["signal"] < cfg.governor.signal_threshold
                if low and before[n]["phase"] == after[n]["phase"] == "COOLING":
                    assert after[n]["lows"] == before[n]["lows"] == 0
                    out.append((rec, n))
        before = after
    return out


@pytest.mark.torch
def test_a_run_with_the_flag_waits_under_the_dormant_level(upper_run) -> None:
    init = json.loads(export_trace(upper_run).splitlines()[0])
    assert init["constants"]["AfterUpper"] is True
    recs = read_records(upper_run / "audit.jsonl")
    waits = _waits(recs)
    assert waits, "the tiny run with the flag never made a cooling group wait"
    assert all(t["group"] != n for r, n in waits for t in r.body["transitions"])


@needs_tlc
@pytest.mark.torch
def test_an_early_low_is_rejected_by_tlc_alone_and_by_replay(upper_run, tmp_path) -> None:
    """The first wait is edited into the step without the flag (block0 counts its low:
    Cool, lows 1, the decision as the core makes it), the chain recomputed. Replay and
    TLC's trace validation each reject it at that record; the unedited run is accepted by
    both, and the edited lines up to it are a step of the spec without the flag."""
    recs = read_records(upper_run / "audit.jsonl")
    report = conform_records(recs, toolchain=toolchain())
    assert report.ok, (report.replay_summary(), report.tlc_summary())

    target, waiting = _waits(recs)[0]

    def count_the_low(body: dict) -> None:
        body["state"]["groups"][waiting]["lows"] = 1
        body["transitions"].append(
            {"action": "Cool", "after": "COOLING", "before": "COOLING", "group": waiting}
        )

    log = forge_step(upper_run, tmp_path / "run", target.seq, count_the_low)
    rejected_only_with(log, target.seq, f"Cool({waiting})", "AfterUpper", toolchain())
