"""run_start provenance and the signed in-toto/SLSA export."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from govtrain.audit.dsse import INTOTO_PAYLOAD_TYPE, open_envelope
from govtrain.audit.errors import AuditError, Reason, SignatureError, VerificationError
from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog, key_commitment
from govtrain.audit.provenance import (
    SLSA_PREDICATE_TYPE,
    STATEMENT_TYPE,
    build_run_start,
    check_artifacts,
    code_version,
    export_provenance,
    read_records,
    recorded_artifacts,
)
from govtrain.audit.records import canonical_json
from govtrain.audit.verify import LOG_FILE

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@needs_git
def test_code_version_reads_commit_and_dirty_flag(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(tmp_path, "rev-parse", "HEAD").strip()
    assert code_version(tmp_path) == {"git_commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == {"git_commit": head, "dirty": True}


def test_code_version_outside_git_is_unknown(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert code_version(tmp_path) == {"git_commit": "unknown", "dirty": "unknown"}


def test_run_start_commits_to_everything_it_is_given(tmp_path: Path) -> None:
    data = [tmp_path / "b.txt", tmp_path / "a.txt"]
    for i, path in enumerate(data):
        path.write_bytes(b"data %d" % i)
    key = generate_signer().verifier
    config = {"name": "r", "lr": 3e-4, "groups": [{"name": "g", "level": 0}]}
    body = build_run_start(
        config=config,
        seed=11,
        data_files=data,
        model_structure_digest="sha256:aa",
        initial_params_digest="sha256:bb",
        key=key,
        packages=["rfc8785", "surely-not-installed-pkg"],
        repo_dir=tmp_path,
        run_id="run-1",
    )
    assert body["config"] == config
    assert body["config_sha256"] == hashlib.sha256(canonical_json(config)).hexdigest()
    assert body["seed"] == 11 and body["run_id"] == "run-1"
    assert body["packages"] == {
        "rfc8785": metadata.version("rfc8785"),
        "surely-not-installed-pkg": None,
    }
    assert [entry["path"] for entry in body["data"]] == sorted(str(p) for p in data)
    for entry in body["data"]:
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()
    assert body["model"] == {"structure_digest": "sha256:aa", "init_params_digest": "sha256:bb"}
    assert body["key"] == key_commitment(key)
    assert body["python"]["version"].count(".") == 2
    with pytest.raises(AuditError, match="cannot hash"):
        build_run_start(
            config={},
            seed=0,
            data_files=[tmp_path / "missing"],
            model_structure_digest="s",
            initial_params_digest="p",
        )


def finished_run(run_dir: Path):
    """A closed run with two model checkpoint files, one saved twice."""
    signer = generate_signer()
    start = build_run_start(
        config={"name": "p"},
        seed=1,
        data_files=[],
        model_structure_digest="sha256:s",
        initial_params_digest="sha256:i",
    )
    log = AuditLog.create(run_dir, signer=signer, run_start=start, checkpoint_every=4)
    (run_dir / "ckpt").mkdir()
    for step, payload in ((10, b"first"), (20, b"second"), (20, b"second, saved again")):
        path = run_dir / "ckpt" / f"step_{step}.pt"
        path.write_bytes(payload)
        log.append("step", {"step": step})
        log.append(
            "checkpoint",
            {"path": f"ckpt/step_{step}.pt", "sha256": hashlib.sha256(payload).hexdigest()},
        )
    log.close()
    return signer


def test_provenance_is_a_signed_statement_about_the_recorded_checkpoints(tmp_path: Path) -> None:
    signer = finished_run(tmp_path)
    envelope, report = export_provenance(tmp_path, signer)
    assert report.closed
    payload_type, payload = open_envelope(envelope, signer.verifier)
    assert payload_type == INTOTO_PAYLOAD_TYPE
    statement = json.loads(payload)
    assert payload == canonical_json(statement)
    assert (
        statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == SLSA_PREDICATE_TYPE
    )
    assert statement["subject"] == [
        {"name": "ckpt/step_10.pt", "digest": {"sha256": hashlib.sha256(b"first").hexdigest()}},
        {
            "name": "ckpt/step_20.pt",
            "digest": {"sha256": hashlib.sha256(b"second, saved again").hexdigest()},
        },
    ]
    predicate = statement["predicate"]
    start = read_records(tmp_path)[0].body
    assert (
        predicate["buildDefinition"]["externalParameters"]["config_sha256"]
        == start["config_sha256"]
    )
    assert predicate["runDetails"]["metadata"]["invocationId"] == start["run_id"]
    log_entry = predicate["runDetails"]["byproducts"][0]
    assert (
        log_entry["digest"]["sha256"]
        == hashlib.sha256((tmp_path / LOG_FILE).read_bytes()).hexdigest()
    )
    assert log_entry["annotations"]["merkle_root"] == report.root.hex()
    check_artifacts(tmp_path, recorded_artifacts(read_records(tmp_path)))


def test_provenance_signatures_do_not_survive_changes(tmp_path: Path) -> None:
    signer = finished_run(tmp_path)
    envelope, _ = export_provenance(tmp_path, signer)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "00" * 32
    forged = {**envelope, "payload": base64.b64encode(canonical_json(statement)).decode()}
    with pytest.raises(SignatureError):
        open_envelope(forged, signer.verifier)
    with pytest.raises(SignatureError):
        open_envelope(envelope, generate_signer().verifier)


def test_provenance_refuses_a_tampered_log_or_a_foreign_key(tmp_path: Path) -> None:
    signer = finished_run(tmp_path)
    with pytest.raises(VerificationError) as info:
        export_provenance(tmp_path, generate_signer())
    assert info.value.reason is Reason.KEY_MISMATCH
    log = (tmp_path / LOG_FILE).read_bytes()
    (tmp_path / LOG_FILE).write_bytes(log.replace(b'"step":10', b'"step":11'))
    with pytest.raises(VerificationError):
        export_provenance(tmp_path, signer)


def test_changed_checkpoint_files_are_caught(tmp_path: Path) -> None:
    finished_run(tmp_path)
    artifacts = recorded_artifacts(read_records(tmp_path))
    (tmp_path / "ckpt" / "step_10.pt").write_bytes(b"swapped weights")
    with pytest.raises(AuditError, match=r"step_10\.pt has SHA-256"):
        check_artifacts(tmp_path, artifacts)
    (tmp_path / "ckpt" / "step_10.pt").unlink()
    with pytest.raises(AuditError, match="cannot be read"):
        check_artifacts(tmp_path, artifacts)


@pytest.mark.parametrize(
    "path", ["../outside.pt", "/etc/hostname", "ckpt/../../outside.pt", "link.pt"]
)
def test_a_checkpoint_path_out_of_the_run_is_refused_unread(tmp_path: Path, path: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"weights elsewhere")
    (run / "link.pt").symlink_to(outside)
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    with pytest.raises(AuditError, match=r"leads out of the run directory|a symbolic link, not a"):
        check_artifacts(run, {path: digest})
