"""OpenSSF Model Signing: a run's checkpoint, signed by `govtrain audit sign-model`, is
accepted by the model-signing library's own CLI, and only as the log recorded it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from govtrain.audit.provenance import read_records, recorded_artifacts

pytestmark = pytest.mark.torch
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def govtrain(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "govtrain", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def model_signing_verify(signature: Path, public: Path, model: Path) -> int:
    cmd = [MODEL_SIGNING, "verify", "key", "--signature", signature, "--public_key", public, model]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode


def test_a_signed_checkpoint_verifies_with_model_signing_and_only_untampered(
    tiny_full_run, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_full_run[0], run)
    keys = tmp_path / "keys"
    made = govtrain("keys", "model-signing", keys)
    assert made.returncode == 0, made.stderr
    private, public = keys / "model-signing.pem", keys / "model-signing.pub.pem"
    assert private.stat().st_mode & 0o077 == 0

    signed = govtrain("audit", "sign-model", run, "--key", private)
    assert signed.returncode == 0, signed.stderr
    last = list(recorded_artifacts(read_records(run / "audit.jsonl")))[-1]
    checkpoint = run / last
    signature = checkpoint.with_name(checkpoint.name + ".sig")
    assert model_signing_verify(signature, public, checkpoint) == 0

    other = tmp_path / "other"  # a key that did not sign it
    assert govtrain("keys", "model-signing", other).returncode == 0
    assert model_signing_verify(signature, other / "model-signing.pub.pem", checkpoint) != 0

    checkpoint.write_bytes(checkpoint.read_bytes() + b"x")
    assert model_signing_verify(signature, public, checkpoint) != 0
    refused = govtrain("audit", "sign-model", run, "--key", private, "-o", tmp_path / "x.sig")
    assert refused.returncode != 0
    assert f"checkpoint {last} has SHA-256" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.sig").exists()


def test_keys_model_signing_cannot_sign_and_existing_keys_are_kept(
    tiny_full_run, tmp_path: Path
) -> None:
    run, _ = tiny_full_run
    assert govtrain("keys", "generate", tmp_path / "ed").returncode == 0
    wrong = govtrain("audit", "sign-model", run, "--key", tmp_path / "ed" / "audit.key")
    assert wrong.returncode != 0 and "cannot sign with" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert govtrain("keys", "model-signing", tmp_path / "k").returncode == 0
    again = govtrain("keys", "model-signing", tmp_path / "k")
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    unknown = govtrain(
        "audit", "sign-model", run, "--key", tmp_path / "k" / "model-signing.pem", "--path", "x"
    )
    assert unknown.returncode != 0 and "is not a checkpoint the log records" in unknown.stderr


def test_a_replaced_run_is_not_signed_and_a_link_is_never_followed(tmp_path: Path) -> None:
    import shutil

    from tools.tiny import train_tiny

    run, other = tmp_path / "run", tmp_path / "other"
    train_tiny(run)
    train_tiny(other, seed=4)
    assert govtrain("keys", "model-signing", tmp_path / "k").returncode == 0
    key = tmp_path / "k" / "model-signing.pem"

    last = list(recorded_artifacts(read_records(run / "audit.jsonl")))[-1]
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    (run / (last + ".sig")).symlink_to(victim)
    signed = govtrain("audit", "sign-model", run, "--key", key)
    assert signed.returncode == 0, signed.stderr
    assert victim.read_text() == "mine"  # the link was replaced, not written through
    assert not (run / (last + ".sig")).is_symlink()

    shutil.rmtree(run)  # someone who can write the run directory swaps in another run
    shutil.copytree(other, run)
    refused = govtrain("audit", "sign-model", run, "--key", key, "-o", tmp_path / "x.sig")
    assert refused.returncode != 0 and "trust anchor" in refused.stderr
    assert not (tmp_path / "x.sig").exists()
