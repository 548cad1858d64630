"""The abstraction's soundness, checked on code with real bugs in it.

`govtrain explore` trusts the abstract explorer (governance/abstraction.py), which is
sound only while the rules read no more than it assumes. Here each core bug of the
seeded-bugs catalogue is applied to a copy of the code, and the copy's own concrete and
abstract explorers run side by side on the same random small configs
(tools/side_by_side.py): a config on which only the concrete explorer finds a violation
is a rule change the abstraction cannot see, and fails the test. A bug of the kind the
abstraction documents as invisible (a run end that reads a COOLING group's lows) shows
that the comparison can fail.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tools import seeded_bugs as sb
from tools.seeded_bugs import Patch, SeededBug

pytestmark = [pytest.mark.slow]

# the bounded form CI runs; GOVTRAIN_SLOW=1 draws four times as many configs
COUNT = 24 if os.environ.get("GOVTRAIN_SLOW") else 6
CORE = [b for b in sb.CATALOGUE if b.layer == "core"]

# A blind spot abstraction.py names: the run's end reading a COOLING group's lows, which
# the abstraction does not keep (a group is seen by its phase alone).
READS_LOWS = SeededBug(
    name="finish_reads_lows",
    layer="core",
    title="the run's end counts a patient COOLING group as done",
    patches=(
        Patch(
            "governance/completion.py",
            "        g.phase is Phase.CONVERGED for g in state.groups\n",
            "        g.phase is Phase.CONVERGED\n"
            "        or (g.phase is Phase.COOLING and g.lows >= cfg.governor.patience - 1)\n"
            "        for g in state.groups\n",
        ),
    ),
    symptom="",
    rationale="",
    detectors=(),
)


def side_by_side(bug: SeededBug | None, work: Path) -> list[dict]:
    """The side-by-side rows of a copy of the code with `bug` applied (None: clean)."""
    copy = sb.make_copy(work / (bug.name if bug else "clean"))
    if bug is not None:
        sb.apply_bug(bug, copy)
    proc = sb._python(copy, ["-m", "tools.side_by_side", "--seed", "0", "--count", str(COUNT)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows[-1]["configs"] == COUNT
    return rows[:-1]


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str | None, list[dict]]:
    """Every copy's rows, two copies at a time (each run is one process)."""
    work = tmp_path_factory.mktemp("copies")
    bugs: list[SeededBug | None] = [None, READS_LOWS, *CORE]
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = pool.map(lambda b: side_by_side(b, work), bugs)
        return {b.name if b else None: r for b, r in zip(bugs, found, strict=True)}


def test_the_clean_code_violates_nothing_either_way(rows) -> None:
    clean = rows[None]
    assert all(r["concrete"] is None and r["abstract"] is None for r in clean), clean


@pytest.mark.parametrize("bug", CORE, ids=lambda b: b.name)
def test_no_core_bug_is_seen_by_the_concrete_explorer_alone(bug, rows) -> None:
    blind = [r for r in rows[bug.name] if r["only_concrete"]]
    assert not blind, f"{bug.name}: the abstract explorer missed what the concrete one found"


def test_a_rule_reading_lows_across_groups_is_caught_by_the_comparison(rows) -> None:
    """The comparison can fail: the documented blind spot is found concrete-only."""
    assert any(
        r["only_concrete"] and r["concrete"] == "FinishOnlyWhenAllConverged"
        for r in rows[READS_LOWS.name]
    ), rows[READS_LOWS.name]
