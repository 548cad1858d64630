"""Resume trusts nothing it has not verified, writes nothing when it refuses, and no
writer follows a link planted in a run (issue: holes found from outside)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from govtrain.audit.keys import run_key
from govtrain.audit.provenance import file_sha256
from govtrain.audit.records import Record
from govtrain.cli import main
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.trainer import GovernedTrainer
from tests.audit_support import join, rechain, sign_sizes, write_notes
from tests.conftest import train_tiny

pytestmark = pytest.mark.torch


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under `root`: a file's bytes, a link's target, a directory's mark."""
    out: dict[str, object] = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(here) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A run stopped at step 10 (checkpoints at 0 and 10), copied afresh by each test."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    train_tiny(run, stop_after=10)
    return run


@pytest.fixture
def run(stopped: Path, tmp_path: Path, monkeypatch) -> Path:
    """A copy of `stopped`, with a trust anchor store of its own (copies share an origin)."""
    import shutil

    monkeypatch.setenv("GOVTRAIN_ANCHORS", str(tmp_path / "anchors"))
    copy = tmp_path / "run"
    shutil.copytree(stopped, copy, symlinks=True)
    return copy


def forge_checkpoint(run: Path, state: dict, *, sign: bool) -> None:
    """Replace the last checkpoint with `state`, put its hash into the log and re-chain;
    re-sign with the run's own key when `sign` (what a forger with the key can do)."""
    ckpt = run / "checkpoints" / "step_000010.pt"
    torch.save(state, ckpt)
    lines = (run / "audit.jsonl").read_bytes().splitlines()
    records = [Record.from_line(line) for line in lines]
    at = max(r.seq for r in records if r.kind == "checkpoint")
    body = {**records[at].body, "sha256": file_sha256(ckpt)}
    lines[at] = Record.build(at, "checkpoint", records[at].prev, body).line
    lines = rechain(lines, at)
    (run / "audit.jsonl").write_bytes(join(lines))
    if sign:
        write_notes(run, sign_sizes(lines, [len(lines)], run_key(run)))


def resume_cli(run: Path):
    return CliRunner().invoke(main, ["run", "--resume", str(run), "--no-progress"])


def test_resume_verifies_the_log_before_reading_any_checkpoint(run: Path) -> None:
    """A checkpoint whose hash was put into the re-chained (not re-signed) log: the
    verification error, before the checkpoint is read, and nothing written."""
    forge_checkpoint(run, {"step": 5}, sign=False)
    before = snapshot(run)
    result = resume_cli(run)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "record seq" in lines[0] and "checkpoint" in lines[0], lines[0]
    assert snapshot(run) == before


def test_a_signed_malformed_checkpoint_is_one_line(run: Path, monkeypatch) -> None:
    """Re-signed with the run's key and the anchors wiped, the log verifies: the
    checkpoint's own structure is then checked, one line, nothing written."""
    monkeypatch.setenv("GOVTRAIN_ANCHORS", "off")
    for state, why in (
        ({"step": 5}, "not a govtrain checkpoint (no 'model')"),
        ({"format": 9, "step": 5}, "format 9"),
        ([1, 2], "not a govtrain checkpoint"),
        ({"format": 2, "step": "5"}, "'step' is a str"),
    ):
        forge_checkpoint(run, state, sign=True)
        before = snapshot(run)
        result = resume_cli(run)
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and why in result.output, result.output
        assert snapshot(run) == before


def test_a_checkpoint_that_does_not_fit_the_model_is_one_line(run: Path, monkeypatch) -> None:
    monkeypatch.setenv("GOVTRAIN_ANCHORS", "off")
    state = torch.load(run / "checkpoints" / "step_000010.pt", weights_only=True)
    state["model"] = {"nonsense.weight": torch.zeros(2)}
    forge_checkpoint(run, state, sign=True)
    before = snapshot(run)
    with pytest.raises(GovtrainError, match="its state does not fit this run"):
        GovernedTrainer.resume(run)
    assert snapshot(run) == before


@pytest.mark.parametrize("removed", [["checkpoints.note"], ["checkpoints.note", "checkpoint"]])
def test_a_refused_resume_creates_no_file(run: Path, removed: list[str]) -> None:
    for name in removed:
        (run / name).unlink()
    before = snapshot(run)
    result = resume_cli(run)
    assert result.exit_code != 0 and "a history no crash can leave" in result.output
    assert snapshot(run) == before


def test_checkpoint_staging_never_writes_through_a_planted_link(run: Path, tmp_path) -> None:
    """Links planted at every name the next checkpoint could use are replaced, never
    written through: the victims keep their bytes."""
    victims = {}
    for name in ("step_000020.tmp", "step_000020.pt.tmp", "step_000020.pt"):
        victim = tmp_path / f"victim-{name}"
        victim.write_bytes(b"precious")
        (run / "checkpoints" / name).symlink_to(victim)
        victims[name] = victim
    GovernedTrainer.resume(run).train(stop_after=20, progress=False)
    assert all(v.read_bytes() == b"precious" for v in victims.values())
    assert not (run / "checkpoints" / "step_000020.pt").is_symlink()
    assert (run / "checkpoints" / "step_000020.pt").stat().st_size > 1000


def test_a_checkpoints_directory_linked_elsewhere_is_refused(run: Path, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (run / "checkpoints").rename(elsewhere)
    (run / "checkpoints").symlink_to(elsewhere)
    before, outside = snapshot(run), snapshot(elsewhere)
    result = resume_cli(run)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "checkpoints: a symbolic link, not a directory" in result.output
    assert snapshot(run) == before and snapshot(elsewhere) == outside


def test_resume_after_two_crashes_each_repaired(run: Path) -> None:
    """Crash (torn tail), repair, resume, crash again with another torn tail, repair:
    no manual step, and the run then resumes and verifies."""
    for tail in (b'{"body":{"st', b'{"bo'):
        with open(run / "audit.jsonl", "ab") as fh:
            fh.write(tail)
        repaired = CliRunner().invoke(main, ["audit", "repair", str(run)])
        assert repaired.exit_code in (0, 4), repaired.output
        trainer = GovernedTrainer.resume(run)
        trainer.audit._release()  # killed again, before it closes the log
    assert sorted(p.name for p in run.iterdir() if ".broken" in p.name) == [
        "audit.jsonl.broken",
        "audit.jsonl.broken.2",
    ]
    GovernedTrainer.resume(run).train(stop_after=12, progress=False)
    assert CliRunner().invoke(main, ["audit", "verify", str(run)]).exit_code == 0
