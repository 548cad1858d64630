"""GovernedTrainer end to end: audited steps, resume equivalence, bad input."""

from __future__ import annotations

import base64
import itertools
import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from govtrain.audit.provenance import read_records
from govtrain.audit.records import Record
from govtrain.audit.verify import verify_run
from govtrain.cli import main
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.config import parse_config
from govtrain.pipeline.trainer import GovernedTrainer
from tests.conftest import tiny_run, train_tiny

pytestmark = pytest.mark.torch

TIMING = {"step_time_ms"}


def step_records(run_dir: Path) -> list[dict]:
    out = []
    for r in read_records(run_dir / "audit.jsonl"):
        if r.kind in ("step", "eval"):
            out.append({"kind": r.kind, **{k: v for k, v in r.body.items() if k not in TIMING}})
    return out


def test_every_step_is_audited_and_the_log_verifies(tiny_full_run) -> None:
    run_dir, _trainer = tiny_full_run
    report = verify_run(run_dir)
    assert report.closed and report.checkpoint_size == report.records
    records = read_records(run_dir / "audit.jsonl")
    steps = [r.body for r in records if r.kind == "step"]
    assert [s["step"] for s in steps] == list(range(40))
    first = steps[0]
    assert set(first) >= {
        "loss",
        "lr",
        "routed",
        "observations",
        "transitions",
        "state",
        "decision",
        "step_time_ms",
    }
    assert set(first["routed"]["embed"]) == {"quota", "digest"}
    assert records[0].kind == "run_start"
    start = records[0].body
    assert start["config"]["name"] == "tiny" and start["seed"] == 3
    assert start["model"]["structure_digest"].startswith("sha256:")
    ckpts = [r.body for r in records if r.kind == "checkpoint"]
    assert [c["step"] for c in ckpts] == [0, 10, 20, 30, 40]  # 0: the initial weights
    evals = [r.body for r in records if r.kind == "eval"]
    assert [e["step"] for e in evals] == [10, 20, 30, 40]
    assert all(math.isfinite(e["loss"]) for e in evals)


def test_hierarchy_advances_and_decisions_apply_next_step(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    steps = [r.body for r in read_records(run_dir / "audit.jsonl") if r.kind == "step"]
    levels = [s["state"]["active_level"] for s in steps]
    assert levels[0] == 0 and levels[-1] == 1 and levels == sorted(levels)
    for before, after in itertools.pairwise(steps):
        for group, routed in after["routed"].items():
            phase = before["state"]["groups"][group]["phase"]
            expected = (
                0 if phase in ("DORMANT", "CONVERGED") else before["decision"]["quotas"][group]
            )
            assert routed["quota"] == min(expected, 8), (after["step"], group)


RESUME_VARIANTS = {
    "default": {},
    # dropout draws from the RNG: the FLOP meter's counting forwards, which a resumed
    # process runs anew, must not
    "dropout": {"model__dropout": 0.1},
    "drift_cosine": {
        "train__signal": "drift",
        "train__lr_schedule": "cosine",
        "train__warmup_steps": 5,
        "governance__governor__window": 4,
    },
    "rank_guarded": {
        "train__signal": "effective_rank",
        "train__geometry_guard": {"collapse": 0.05, "wake": 0.05},
    },
    "spectral": {
        "train__signal": "spectral",
        "train__geometry_guard": {"collapse": 0.05, "wake": 0.05},
        "governance__governor__signal_threshold": 0.3,
    },
}


@pytest.mark.parametrize("variant", list(RESUME_VARIANTS))
def test_resume_reproduces_the_uninterrupted_run(tiny_full_run, tmp_path: Path, variant) -> None:
    extra = RESUME_VARIANTS[variant]
    if extra:
        full_dir = tmp_path / "full"
        full = train_tiny(full_dir, **extra)
        if variant == "drift_cosine":
            assert any(full.gov.observer.signal.drift.values())  # drift was really read
        elif variant == "dropout":
            assert full.model.config.resid_pdrop == 0.1  # dropout really on
        else:  # readings were taken, and some group converged on them
            assert full.gov.observer.readings.converged_on
    else:
        full_dir, full = tiny_full_run
    part = tmp_path / "part"
    first = train_tiny(part, stop_after=20, **extra)
    assert first.step == 20
    resumed = GovernedTrainer.resume(part)
    assert resumed.step == 20
    resumed.train(progress=False)
    assert resumed.gov.state == full.gov.state
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert step_records(part) == step_records(full_dir)
    records = read_records(part / "audit.jsonl")
    kinds = [r.kind for r in records]
    resumes = [r for r in records if r.kind == "run_resume"]
    assert len(resumes) == 1 and "resume" not in kinds
    assert resumes[0].body["from_step"] == 20 and resumes[0].body["previous"] == "closed"
    assert verify_run(part).closed


def test_resume_refuses_a_tampered_checkpoint(tmp_path: Path) -> None:
    from govtrain.governance.errors import GovtrainError

    part = tmp_path / "part"
    train_tiny(part, stop_after=10)
    ckpt = part / "checkpoints" / "step_000010.pt"
    ckpt.write_bytes(ckpt.read_bytes() + b"x")
    log_before = (part / "audit.jsonl").read_bytes()
    with pytest.raises(GovtrainError, match="does not match the log"):
        GovernedTrainer.resume(part)
    assert (part / "audit.jsonl").read_bytes() == log_before  # a refused resume writes nothing


class _Planted:
    """A pickle that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_executes_a_planted_checkpoint(tmp_path: Path, monkeypatch) -> None:
    """Even with the log rewritten and re-signed to match it (the run's own key is in the
    run directory, the trust anchors wiped), a checkpoint that is not plain data is
    refused and never run."""
    from govtrain.audit.keys import run_key
    from govtrain.audit.provenance import file_sha256
    from govtrain.governance.errors import GovtrainError
    from tests.audit_support import join, rechain, sign_sizes, write_notes

    part, marker = tmp_path / "part", tmp_path / "pwned"
    train_tiny(part, stop_after=10)
    monkeypatch.setenv("GOVTRAIN_ANCHORS", "off")
    ckpt = part / "checkpoints" / "step_000010.pt"
    torch.save({"step": 10, "model": _Planted(marker)}, ckpt)
    lines = (part / "audit.jsonl").read_bytes().splitlines()
    records = [Record.from_line(line) for line in lines]
    at = next(r.seq for r in records if r.kind == "checkpoint" and r.body["path"].endswith("10.pt"))
    body = {**records[at].body, "sha256": file_sha256(ckpt)}
    lines[at] = Record.build(at, "checkpoint", records[at].prev, body).line
    lines = rechain(lines, at)
    (part / "audit.jsonl").write_bytes(join(lines))
    write_notes(part, sign_sizes(lines, [len(lines)], run_key(part)))
    assert verify_run(part).closed  # the forgery verifies: only the loader stands in the way
    with pytest.raises(GovtrainError, match="refused, not plain tensors"):
        GovernedTrainer.resume(part)
    assert not marker.exists()


def _write_cfg(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_cli_run_then_verify(tmp_path: Path) -> None:
    cfg = _write_cfg(tmp_path, tiny_run(**{"governance__total_steps": 12}))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(run_dir), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"govtrain audit verify {run_dir}" in result.output.replace("\n", "")
    verified = CliRunner().invoke(main, ["audit", "verify", str(run_dir)])
    assert verified.exit_code == 0, verified.output


def test_cli_overrides_are_what_the_run_commits_to(tmp_path: Path) -> None:
    cfg = _write_cfg(tmp_path, tiny_run(**{"governance__total_steps": 6}))
    run_dir = tmp_path / "run"
    args = ["governance.governor.patience=3", "train.lr=2e-3", "governance.groups.0.level=0"]
    result = CliRunner().invoke(
        main, ["run", str(cfg), *args, "--run-dir", str(run_dir), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    committed = read_records(run_dir / "audit.jsonl")[0].body["config"]
    assert committed["governance"]["governor"]["patience"] == 3
    assert committed["train"]["lr"] == 0.002
    refused = CliRunner().invoke(main, ["run", "--resume", str(run_dir), "train.lr=1.0"])
    assert refused.exit_code == 2 and "--resume takes the config" in refused.output


def test_a_bad_override_of_the_default_config_is_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["run", "governance.governor.patiense=3", "--run-dir", str(run_dir)]
    )
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "quickstart.yaml with governance.governor.patiense=3" in result.output
    assert "governance.governor.patiense: Extra inputs are not permitted" in result.output
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"model__name": "llama"}, "model.name"),
        ({"data__source": "text", "data__path": "/nonexistent/corpus.txt"}, "data.path"),
        (
            {
                "governance__groups": [
                    {"name": "everything", "patterns": ["transformer.*"], "level": 0},
                    {"name": "ghost", "patterns": ["nothing.*"], "level": 1},
                ]
            },
            "matching no parameter: ghost",
        ),
        (
            {
                "governance__groups": [
                    {"name": "blocks", "patterns": ["transformer.h.*"], "level": 0},
                    {"name": "emb", "patterns": ["transformer.wte.*"], "level": 1},
                ]
            },
            "match no group pattern: transformer.wpe.weight",
        ),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, overrides, needle) -> None:
    cfg = _write_cfg(tmp_path, tiny_run(**overrides))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(run_dir), "--no-progress"])
    assert result.exit_code == 1
    assert needle in result.output and result.output.startswith("error: ")
    assert result.output.strip().count("\n") == 0
    assert not run_dir.exists()


def test_empty_data_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cfg = _write_cfg(tmp_path, tiny_run(data__source="text", data__path=str(empty)))
    result = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 1 and "is empty" in result.output


def test_existing_run_directory_is_refused(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    before = (run_dir / "audit.jsonl").read_bytes()
    cfg = parse_config(tiny_run())
    from govtrain.governance.errors import GovtrainError

    with pytest.raises(GovtrainError, match="exists; pass --resume"):
        GovernedTrainer(cfg, run_dir).start()
    assert (run_dir / "audit.jsonl").read_bytes() == before


def test_nonfinite_losses_skip_updates_then_stop(tmp_path: Path, monkeypatch) -> None:
    import govtrain.pipeline.trainer as trainer_mod
    from govtrain.governance.errors import GovtrainError

    real = trainer_mod.per_sample_loss
    calls = {"n": 0}

    def flaky(model, ids):
        calls["n"] += 1
        out = real(model, ids)
        return out * float("nan") if model.training and calls["n"] > 14 else out

    trainer = GovernedTrainer(parse_config(tiny_run()), tmp_path / "nan")
    trainer.start()
    monkeypatch.setattr(trainer_mod, "per_sample_loss", flaky)
    with pytest.raises(GovtrainError, match="3 non-finite losses in a row"):
        trainer.train(progress=False)
    records = read_records(tmp_path / "nan" / "audit.jsonl")
    nonfinite = [r.body for r in records if r.kind == "nonfinite"]
    assert len(nonfinite) == 3 and all(math.isnan(r["loss"]) for r in nonfinite)
    assert verify_run(tmp_path / "nan").closed


def test_nonfinite_gradient_skips_the_update(tmp_path: Path) -> None:
    trainer = GovernedTrainer(parse_config(tiny_run()), tmp_path / "inf")
    trainer.start()
    for _ in range(3):
        trainer.train_step()
    param = trainer.model.transformer.wte.weight
    handle = param.register_hook(lambda g: torch.full_like(g, float("inf")))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.train_step().skipped
    handle.remove()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not trainer.train_step().skipped
    trainer.audit.close()
    records = read_records(tmp_path / "inf" / "audit.jsonl")
    bad = [r.body for r in records if r.kind == "nonfinite"]
    assert len(bad) == 1 and bad[0]["step"] == 3 and math.isinf(bad[0]["grad_norm"])


def test_a_trainable_group_with_no_samples_trains_nothing(tmp_path: Path) -> None:
    """A budget of one unit leaves some trainable group at quota 0: an empty routing."""
    trainer = train_tiny(
        tmp_path / "empty",
        **{
            "governance__budget": {"master": 1, "floor": 0, "ceiling": 6},
            "governance__total_steps": 8,
        },
    )
    steps = [r.body for r in read_records(tmp_path / "empty" / "audit.jsonl") if r.kind == "step"]
    assert trainer.step == 8
    assert any(v["quota"] == 0 for s in steps[2:] for g, v in s["routed"].items() if g != "top")


def external_key_run(tmp_path: Path, stop_after: int) -> tuple[Path, Path]:
    """A tiny run signed with a key generated outside it: (run dir, key dir)."""
    from govtrain.audit.keys import generate_signer, write_key_pair

    keys, part = tmp_path / "mykeys", tmp_path / "part"
    write_key_pair(keys, generate_signer())
    trainer = GovernedTrainer(parse_config(tiny_run()), part, key_path=keys / "audit.key")
    trainer.start()
    trainer.train(stop_after=stop_after, progress=False)
    return part, keys


def test_resume_of_an_external_key_run_without_the_key_mints_nothing(tmp_path: Path) -> None:
    from govtrain.governance.errors import GovtrainError

    part, keys = external_key_run(tmp_path, stop_after=10)
    before = sorted(p.relative_to(part) for p in part.rglob("*"))
    with pytest.raises(GovtrainError, match="external key: pass --key"):
        GovernedTrainer.resume(part)
    assert sorted(p.relative_to(part) for p in part.rglob("*")) == before  # no key written
    GovernedTrainer.resume(part, key_path=keys / "audit.key").train(progress=False)
    assert verify_run(part).closed


def test_path_errors_are_one_line(tmp_path: Path) -> None:
    """A run directory under a regular file, or in a read-only directory: one line naming
    the path, exit 1, nothing written."""
    cfg = _write_cfg(tmp_path, tiny_run())
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(blocker / "r")])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"error: {blocker / 'r'}: Not a directory"]
    if os.geteuid() == 0:
        return  # root writes into read-only directories
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    result = CliRunner().invoke(main, ["run", str(cfg), "--run-dir", str(locked / "r")])
    assert result.exit_code == 1 and "Permission denied" in result.output
    assert list(locked.iterdir()) == []


def test_a_crash_before_the_initial_checkpoint_resumes(tiny_full_run, tmp_path, monkeypatch):
    """Killed between creating the log and saving the step-0 weights: resume re-initialises
    from the committed seed (checked against run_start's digest) and reproduces the run."""
    full_dir, full = tiny_full_run
    cfg = parse_config(tiny_run())
    trainer = GovernedTrainer(cfg, tmp_path / "r")

    def crash(self) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(GovernedTrainer, "_checkpoint", crash)
        with pytest.raises(KeyboardInterrupt):
            trainer.start()
    trainer.audit._release()  # the process is gone: its lock with it
    assert [r.kind for r in read_records(tmp_path / "r" / "audit.jsonl")] == ["run_start"]
    resumed = GovernedTrainer.resume(tmp_path / "r")
    assert resumed.step == 0
    resumed.train(progress=False)
    assert resumed.gov.state == full.gov.state
    assert step_records(tmp_path / "r") == step_records(full_dir)
    start = [r.body for r in read_records(tmp_path / "r" / "audit.jsonl") if r.kind == "run_resume"]
    assert start[0]["from_step"] == 0 and start[0]["checkpoint"] is None


def test_resume_with_an_external_key_refuses_a_tail_forged_to_pass_for_a_crash(tmp_path):
    """The issue's laundering, done by a forger who knows the crash rules: drop the newest
    note, rewrite the unsealed records after the one before (eval loss 0.42, re-chained).
    Verify alone calls it a crash (exit 4); the trust anchor outside the run makes the
    operator's routine `govtrain run --resume RUN --key KEY` refuse it, writing nothing."""
    from tests.unit.test_audit_anchors import forge_tail, unchanged

    part, keys = external_key_run(tmp_path, stop_after=20)
    forge_tail(part)
    verify = CliRunner().invoke(
        main, ["audit", "verify", str(part), "--pubkey", keys / "audit.pub"]
    )
    same = unchanged(part)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("GOVTRAIN_ANCHORS", "off")  # what the forger counts on: no anchor
        assert CliRunner().invoke(main, ["audit", "verify", str(part)]).exit_code == 4
    assert verify.exit_code == 1, verify.output  # with the user's store: refused
    result = CliRunner().invoke(
        main, ["run", "--resume", str(part), "--key", str(keys / "audit.key"), "--no-progress"]
    )
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "checkpoint not consistent with the log" in result.output
    assert same(), "a refused resume writes nothing"


def test_provenance_of_a_real_run_is_checked_against_its_checkpoint_files(
    tiny_full_run, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_full_run[0], run)
    out = tmp_path / "provenance.json"
    assert (
        CliRunner().invoke(main, ["audit", "provenance", str(run), "-o", str(out)]).exit_code == 0
    )
    pub = str(run / "keys" / "audit.pub")
    check = ["audit", "provenance", "--verify", str(out), str(run), "--pubkey", pub]
    result = CliRunner().invoke(main, check)
    assert result.exit_code == 0 and "config, seed and 5 checkpoint file(s)" in result.output
    statement = json.loads(base64.b64decode(json.loads(out.read_text())["payload"]))
    records = read_records(run / "audit.jsonl")
    start = records[0].body
    build = statement["predicate"]["buildDefinition"]
    initial = next(d for d in build["resolvedDependencies"] if d["name"] == "initial-weights")
    assert "sha256:" + initial["digest"]["sha256"] == start["model"]["init_params_digest"]
    assert build["internalParameters"]["distributed"] == {"world_size": 1}
    summary_entry = statement["predicate"]["runDetails"]["byproducts"][1]
    summary = json.loads(base64.b64decode(summary_entry["content"]))
    steps = [r.body for r in records if r.kind == "step"]
    assert summary["steps"] == len(steps) == 40
    assert summary["final_phases"] == {
        g: s["phase"] for g, s in steps[-1]["state"]["groups"].items()
    }
    assert sum(summary["transitions"].values()) == sum(len(s["transitions"]) for s in steps)
    ckpt = run / "checkpoints" / "step_000020.pt"
    data = bytearray(ckpt.read_bytes())
    data[-1] ^= 1
    ckpt.write_bytes(bytes(data))
    result = CliRunner().invoke(main, check)
    assert result.exit_code == 1
    assert "checkpoint checkpoints/step_000020.pt has SHA-256" in result.output


def test_resume_refuses_a_checkpoint_path_out_of_the_run(tmp_path: Path, monkeypatch) -> None:
    """A key holder points the last checkpoint record outside the run (the file there has
    the recorded SHA-256, the log is re-chained and re-signed): resume refuses it unread."""
    import shutil

    from govtrain.audit.keys import run_key
    from govtrain.audit.notes import Checkpoint, split_notes, unverified_text
    from tests.audit_support import join, rechain, sign_sizes, write_notes

    monkeypatch.setenv("GOVTRAIN_ANCHORS", "off")  # the forger's own rewrite, not a rollback
    run = tmp_path / "run"
    train_tiny(run, stop_after=20)
    lines = (run / "audit.jsonl").read_bytes().split(b"\n")[:-1]
    seq = max(i for i, x in enumerate(lines) if Record.from_line(x).kind == "checkpoint")
    ckpt = Record.from_line(lines[seq])
    shutil.copy(run / ckpt.body["path"], tmp_path / "outside.pt")
    lines[seq] = Record.build(
        seq, "checkpoint", ckpt.prev, {**ckpt.body, "path": "../outside.pt"}
    ).line
    lines = rechain(lines, seq)
    sizes = [
        Checkpoint.parse(unverified_text(t)).size
        for t in split_notes((run / "checkpoints.note").read_bytes())[0]
    ]
    (run / "audit.jsonl").write_bytes(join(lines))
    write_notes(run, sign_sizes(lines, sizes, run_key(run)))
    assert verify_run(run).records == len(lines)  # the forged log verifies on its own
    with pytest.raises(GovtrainError, match=r"checkpoint \.\./outside\.pt leads out of the run"):
        GovernedTrainer.resume(run)
