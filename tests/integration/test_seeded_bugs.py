"""Seeded bugs: every bug of tools/seeded_bugs.py is caught by the detectors it names.

Each bug is applied to a copy of the code in a temporary directory (never to
this checkout) and its detectors run there: the named tests must fail, a tiny
run trained by the copy must diverge on replay. The unpatched copy must pass
every one of those detectors, so a catch means the bug. The documented blind
spots are verified too: a detector said not to see a bug must stay clean.

Bounded by default (`DEFAULT`: four bugs, one of each kind); GOVTRAIN_SLOW=1
verifies every bug of the catalogue and every known gap.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from tools import seeded_bugs as sb
from tools.seeded_bugs import FailingTests, Patch, SeededBug, SeededBugError

pytestmark = [pytest.mark.torch, pytest.mark.slow]

SLOW = bool(os.environ.get("GOVTRAIN_SLOW"))
SELECTED = sb.ALL if SLOW else tuple(sb.by_name(sb.DEFAULT))
DOC = sb.ROOT / "docs" / "seeded-bugs.md"


def _defined_tests(path: Path) -> set[str]:
    """Test functions and classes defined at the top level of a test module."""
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    names |= {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    return names


# --------------------------------------------------------------------------- fast checks


def test_catalogue_is_well_formed() -> None:
    names = [b.name for b in sb.ALL]
    assert len(sb.CATALOGUE) >= 8 and len(set(names)) == len(names)
    assert set(sb.DEFAULT) <= {b.name for b in sb.CATALOGUE}
    for bug in sb.CATALOGUE:
        assert bug.detectors and bug.symptom and bug.rationale, bug.name
    for bug in sb.GAPS:
        assert not bug.detectors and bug.blind_to and bug.suggested_test, bug.name
    for bug in sb.ALL:
        assert bug.patches and all(p.old != p.new for p in bug.patches), bug.name
        for d in (*bug.detectors, *bug.blind_to):
            if isinstance(d, FailingTests):
                for nodeid in d.nodeids:
                    file, test = nodeid.split("::")[:2]
                    assert test.split("[")[0] in _defined_tests(sb.ROOT / file), nodeid


def test_every_patch_applies_to_this_checkout() -> None:
    """Each bug's old text occurs exactly once in today's code (nothing is written)."""
    assert sb.stale_patches() == []


def test_a_stale_or_ambiguous_patch_fails_loudly(tmp_path: Path) -> None:
    target = sb.in_copy(tmp_path, "governance/m.py")  # the copy's installed layout
    target.parent.mkdir(parents=True)
    target.write_text("x = 1\nx = 1\n")
    for old, count in (("x = 1\n", 2), ("y = 2\n", 0)):
        bug = SeededBug("b", "core", "t", (Patch("governance/m.py", old, "z\n"),), "", "", ())
        with pytest.raises(SeededBugError, match=f"occurs {count} times"):
            sb.apply_bug(bug, tmp_path)
    assert target.read_text() == "x = 1\nx = 1\n"


def test_the_repository_itself_is_never_patched() -> None:
    with pytest.raises(SeededBugError, match="refusing to patch"):
        sb.apply_bug(sb.CATALOGUE[0], sb.ROOT)
    with pytest.raises(SeededBugError, match="outside the repository"):
        sb.make_copy(sb.ROOT / "seeded-copy")
    assert not (sb.ROOT / "seeded-copy").exists()


def test_a_patched_copy_runs_its_own_code(tmp_path: Path) -> None:
    (bug,) = sb.by_name(["cool_renamed"])
    copy = sb.make_copy(tmp_path / "repo")
    sb.apply_bug(bug, copy)
    patched = bug.patches[0]
    assert patched.new in sb.in_copy(copy, patched.file).read_text()
    assert patched.new not in (sb.ROOT / patched.file).read_text()
    sb.check_isolation(copy)  # every package resolves inside the copy


def test_docs_table_is_the_catalogue() -> None:
    text = DOC.read_text()
    for bugs in (sb.CATALOGUE, sb.GAPS):
        assert sb.markdown_table(bugs) in text
        assert sb.markdown_notes(bugs) in text


# --------------------------------------------------------------------------- the verification


FORMAL = sb.tlc_found()  # without TLC the formal detectors are left out, never passed


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> tuple[sb.Verification, dict[str, sb.Verification]]:
    base, results = sb.verify_all(SELECTED, tmp_path_factory.mktemp("seeded"), formal=FORMAL)
    return base, {v.name: v for v in results}


@pytest.mark.slow
def test_unpatched_copy_passes_every_named_detector(verified) -> None:
    base, _ = verified
    expected = sb.runnable(sb.baseline_detectors(SELECTED), FORMAL)
    assert [f.detector for f in base.findings] == expected
    assert base.ok, base.describe()


@pytest.mark.slow
@pytest.mark.parametrize("name", [b.name for b in SELECTED])
def test_seeded_bug_is_caught_by_its_detectors(verified, name: str) -> None:
    _, results = verified
    v = results[name]
    assert [f.detector for f in v.findings] == sb.runnable(v.bug.detectors, FORMAL)
    assert [f.detector for f in v.blind] == sb.runnable(v.bug.blind_to, FORMAL)
    assert v.ok, v.describe()
