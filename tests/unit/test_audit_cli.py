"""`govtrain keys` and `govtrain audit` through click's CliRunner: output and exit codes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from govtrain.audit.dsse import INTOTO_PAYLOAD_TYPE, open_envelope, sign_envelope
from govtrain.audit.keys import generate_signer, load_signing_key, load_verifier_key
from govtrain.audit.records import Record, canonical_json
from govtrain.audit.verify import LOG_FILE, NOTES_FILE
from govtrain.cli import main
from tests.audit_support import join, make_run, rechain, sign_sizes, write_notes


def govtrain(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    make_run(run_dir, 30, checkpoint_every=8, keep_key=True)
    return run_dir


def test_keys_generate_writes_a_private_key_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = govtrain("keys", "generate", tmp_path / "k", "--name", "lab-key")
    assert result.exit_code == 0 and "fingerprint sha256:" in result.output
    assert stat.S_IMODE((tmp_path / "k" / "audit.key").stat().st_mode) == 0o600
    assert load_verifier_key(tmp_path / "k" / "audit.pub").name == "lab-key"
    again = govtrain("keys", "generate", tmp_path / "k")
    assert again.exit_code == 1 and "refusing to overwrite" in again.output


def test_verify_prints_one_summary_line(run: Path) -> None:
    for path in (run, run / LOG_FILE):
        result = govtrain("audit", "verify", path, "--pubkey", run / "keys" / "audit.pub")
        assert result.exit_code == 0
        assert result.output.count("\n") == 1
        assert result.output.startswith(
            "ok: closed; records 30, tree size 30, last signed checkpoint 30"
        )


def test_verify_names_the_first_bad_record(run: Path) -> None:
    log = (run / LOG_FILE).read_bytes()
    (run / LOG_FILE).write_bytes(log.replace(b'"step":4', b'"step":5', 1))
    result = govtrain("audit", "verify", run)
    assert result.exit_code == 1
    assert "record seq 6 (line 7): bad hash link" in result.output


def test_verify_with_another_trusted_key_fails(run: Path, tmp_path: Path) -> None:
    result = govtrain("audit", "verify", run, "--pubkey", generate_signer().verifier.vkey)
    assert result.exit_code == 1 and "key mismatch" in result.output


def test_verify_of_a_path_that_is_no_run_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    for path, why in (
        (tmp_path / "empty", "not a govtrain run (no audit.jsonl)"),
        (tmp_path / "other", "not a govtrain run (no audit.jsonl)"),
        (tmp_path / "absent", "no such file or directory"),
    ):
        result = govtrain("audit", "verify", path)
        assert result.exit_code == 1 and result.output == f"error: {path}: {why}\n"


def _pem(public_key) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_verify_takes_a_pem_ed25519_key_by_its_bytes(tmp_path: Path) -> None:
    """A PEM key has no name: it is named as the run's key, and only its bytes decide."""
    signer = generate_signer("lab-key")
    make_run(tmp_path / "run", 12, checkpoint_every=4, signer=signer)
    pem = tmp_path / "lab.pem"
    pem.write_text(_pem(signer.private.public_key()))
    for key in (pem, pem.read_text()):  # the file or its text
        result = govtrain("audit", "verify", tmp_path / "run", "--pubkey", key)
        assert result.exit_code == 0 and result.output.startswith("ok: closed"), result.output
    other = tmp_path / "other.pem"
    other.write_text(_pem(generate_signer("lab-key").private.public_key()))
    result = govtrain("audit", "verify", tmp_path / "run", "--pubkey", other)
    assert result.exit_code == 1 and "key mismatch" in result.output


def test_a_pubkey_of_another_kind_is_one_line_naming_the_key_to_give(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    make_run(tmp_path / "run", 4, checkpoint_every=4)
    ecdsa = tmp_path / "model-signing.pub.pem"
    ecdsa.write_text(_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    prose = tmp_path / "README.md"
    prose.write_text("# a project\n\nnot a key at all, + and + inside\n" * 20)
    for key, why in (
        (ecdsa, "is not an Ed25519 public key"),
        (broken, "is not a PEM public key"),
        (prose, "is not a public key: give a verifier key NAME+HASH+BASE64"),
    ):
        result = govtrain("audit", "verify", tmp_path / "run", "--pubkey", key)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert f"{key} {why}" in result.output and "keys/audit.pub" in result.output


def test_verify_reports_a_torn_tail_with_exit_3_and_repair_cuts_it(run: Path) -> None:
    log = (run / LOG_FILE).read_bytes()
    make_torn = log + b'{"body":{"step":'
    (run / LOG_FILE).write_bytes(make_torn)
    torn = govtrain("audit", "verify", run)
    assert torn.exit_code == 3 and "torn tail" in torn.output
    repaired = govtrain("audit", "repair", run)
    assert repaired.exit_code == 0 and "cut 16 bytes" in repaired.output
    assert (run / LOG_FILE).read_bytes() == log
    assert (run / "audit.jsonl.broken").read_bytes() == make_torn
    assert govtrain("audit", "verify", run).exit_code == 0


def test_repair_refuses_tampering(run: Path) -> None:
    log = (run / LOG_FILE).read_bytes().replace(b'"step":4', b'"step":5', 1)
    (run / LOG_FILE).write_bytes(log + b"{")
    result = govtrain("audit", "repair", run)
    assert result.exit_code == 1 and "bad hash link" in result.output
    assert (run / LOG_FILE).read_bytes() == log + b"{"


def test_an_unclosed_run_exits_4(tmp_path: Path) -> None:
    make_run(tmp_path, 12, checkpoint_every=5, close=False)
    result = govtrain("audit", "verify", tmp_path)
    assert result.exit_code == 4
    assert result.output.startswith(
        "intact but not closed: 2 records after the last signed checkpoint"
    )


def test_show_selects_by_seq_or_kind(run: Path) -> None:
    one = govtrain("audit", "show", run, "--seq", 3)
    assert one.exit_code == 0 and json.loads(one.output)["seq"] == 3
    ends = govtrain("audit", "show", run, "--kind", "run_end").output.splitlines()
    assert [json.loads(line)["kind"] for line in ends] == ["run_end"]
    assert len(govtrain("audit", "show", run).output.splitlines()) == 30
    assert govtrain("audit", "show", run, "--seq", 30).exit_code == 1
    assert govtrain("audit", "show", run, "--seq", 1, "--kind", "step").exit_code == 2


def test_prove_and_check_proof_offline(run: Path, tmp_path: Path) -> None:
    proof = tmp_path / "proof.json"
    assert govtrain("audit", "prove", run, "--seq", 17, "-o", proof).exit_code == 0
    bundle = json.loads(proof.read_text())
    assert (bundle["seq"], bundle["tree_size"], bundle["index"]) == (17, 30, 17)
    checkpoint = tmp_path / "checkpoint.note"
    checkpoint.write_text(bundle["checkpoint"])
    pub = run / "keys" / "audit.pub"
    offline = tmp_path / "elsewhere"
    offline.mkdir()
    for name, path in (("proof.json", proof), ("checkpoint.note", checkpoint), ("audit.pub", pub)):
        (offline / name).write_bytes(path.read_bytes())
    result = govtrain(
        "audit",
        "check-proof",
        offline / "proof.json",
        "--checkpoint",
        offline / "checkpoint.note",
        "--pubkey",
        offline / "audit.pub",
    )
    assert result.exit_code == 0 and result.output.startswith(
        "ok: record seq 17 (kind step) is leaf 17"
    )
    unanchored = govtrain("audit", "check-proof", proof, "--checkpoint", checkpoint)
    assert (
        unanchored.exit_code == 0
        and "warning: checked against the key the proof names" in unanchored.output
    )


def test_check_proof_rejects_a_forged_record_an_old_checkpoint_or_another_key(
    run: Path, tmp_path: Path
) -> None:
    bundle = json.loads(govtrain("audit", "prove", run, "--seq", 5).output)
    checkpoint = tmp_path / "checkpoint.note"
    checkpoint.write_text(bundle["checkpoint"])
    pub = run / "keys" / "audit.pub"
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps({**bundle, "record": bundle["record"].replace('"step":4', '"step":9')})
    )
    result = govtrain("audit", "check-proof", forged, "--checkpoint", checkpoint, "--pubkey", pub)
    assert result.exit_code == 1 and "hashes to leaf" in result.output
    older = json.loads(govtrain("audit", "prove", run, "--seq", 5, "--size", 8).output)
    assert older["tree_size"] == 8
    stale = tmp_path / "stale.note"
    stale.write_text(older["checkpoint"])
    genuine = tmp_path / "proof.json"
    genuine.write_text(json.dumps(bundle))
    result = govtrain("audit", "check-proof", genuine, "--checkpoint", stale, "--pubkey", pub)
    assert result.exit_code == 1 and "signs sizes [8], the proof is for size 30" in result.output
    whole_file = govtrain(
        "audit", "check-proof", genuine, "--checkpoint", run / NOTES_FILE, "--pubkey", pub
    )
    assert whole_file.exit_code == 0, whole_file.output
    forged_root = tmp_path / "forged_root.json"
    forged_root.write_text(json.dumps({**bundle, "root": "00" * 32}))
    result = govtrain(
        "audit", "check-proof", forged_root, "--checkpoint", checkpoint, "--pubkey", pub
    )
    assert result.exit_code == 1 and "the checkpoint signs" in result.output
    result = govtrain(
        "audit",
        "check-proof",
        genuine,
        "--checkpoint",
        checkpoint,
        "--pubkey",
        generate_signer().verifier.vkey,
    )
    assert result.exit_code == 1 and "no signature by key" in result.output
    assert govtrain("audit", "prove", run, "--seq", 30).exit_code == 1


def test_a_tlog_proof_is_the_c2sp_text_format_and_checks_offline(run: Path, tmp_path: Path) -> None:
    proof = tmp_path / "record.tlog-proof"
    assert (
        govtrain(
            "audit", "prove", run, "--seq", 17, "--format", "tlog-proof", "-o", proof
        ).exit_code
        == 0
    )
    text = proof.read_text()
    head, _, note = text.partition("\n\n")
    lines = head.split("\n")
    bundle = json.loads(govtrain("audit", "prove", run, "--seq", 17).output)
    # c2sp.org/tlog-proof: header, extra (the record), index, the audit path in base64, a
    # blank line, the signed checkpoint verbatim
    assert lines[0] == "c2sp.org/tlog-proof@v1" and lines[2] == "index 17"
    assert base64.b64decode(lines[1].removeprefix("extra ")).decode() == bundle["record"]
    assert [base64.b64decode(x).hex() for x in lines[3:]] == bundle["proof"]
    assert note == bundle["checkpoint"] and note.split("\n")[1] == "30"
    pub = run / "keys" / "audit.pub"
    result = govtrain("audit", "check-proof", proof, "--pubkey", pub)
    assert result.exit_code == 0 and result.output.startswith(
        "ok: record seq 17 (kind step) is leaf 17 of the tree of size 30"
    )
    trusted = govtrain(
        "audit", "check-proof", proof, "--checkpoint", run / NOTES_FILE, "--pubkey", pub
    )
    assert trusted.exit_code == 0, trusted.output
    no_key = CliRunner().invoke(main, ["audit", "check-proof", str(proof)])
    assert no_key.exit_code == 2 and "pass --pubkey" in no_key.output
    other = json.loads(govtrain("audit", "prove", run, "--seq", 3).output)["record"]
    flipped = base64.b64encode(bytes(31) + b"\x01").decode()
    for forged, needle in (
        (text.replace(lines[3], flipped, 1), "proof leads to root"),
        (
            text.replace("index 17", "index 16", 1),
            "the record has seq 17, the proof is for index 16",
        ),
        (text.replace(lines[1], "extra " + base64.b64encode(other.encode()).decode()), "seq 3"),
        (text.replace("index 17", "index 017", 1), "without leading zeroes"),
        (text.replace("index 17", "index \u0661\u0667", 1), "without leading zeroes"),
        (text.replace("index 17", "index " + "9" * 5000, 1), "without leading zeroes"),
        (text.replace("\n30\n", "\n31\n", 1), "signature"),
    ):
        bad = tmp_path / "bad.tlog-proof"
        bad.write_text(forged)
        result = govtrain("audit", "check-proof", bad, "--pubkey", pub)
        assert result.exit_code == 1 and needle in result.output, (needle, result.output)
    stranger = generate_signer().verifier.vkey
    assert govtrain("audit", "check-proof", proof, "--pubkey", stranger).exit_code == 1
    older = tmp_path / "older.note"
    older.write_text(_note_of(run, 8))
    mismatch = govtrain("audit", "check-proof", proof, "--checkpoint", older, "--pubkey", pub)
    assert (
        mismatch.exit_code == 1 and "signs sizes [8], the proof is for size 30" in mismatch.output
    )


def test_files_that_are_not_text_or_nest_too_deep_are_one_line(run: Path, tmp_path: Path) -> None:
    pub = run / "keys" / "audit.pub"
    binary = tmp_path / "binary"
    binary.write_bytes(b"\x7fELF\xff\xfe" * 20)
    tlog = tmp_path / "binary.tlog-proof"
    tlog.write_bytes(b"c2sp.org/tlog-proof@v1\n\xff\xfe\n")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    proof = tmp_path / "proof.json"
    assert govtrain("audit", "prove", run, "--seq", 3, "-o", proof).exit_code == 0
    for args, needle in (
        (("check-proof", binary, "--checkpoint", run / NOTES_FILE, "--pubkey", pub), "UTF-8"),
        (("check-proof", tlog, "--pubkey", pub), "not a tlog-proof: not UTF-8 text"),
        (("check-proof", proof, "--checkpoint", binary, "--pubkey", pub), "not UTF-8 text"),
        (("check-proof", proof, "--checkpoint", run / NOTES_FILE, "--pubkey", binary), "UTF-8"),
        (("check-proof", deep, "--checkpoint", run / NOTES_FILE, "--pubkey", pub), "not a JSON"),
    ):
        result = govtrain("audit", *args)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert needle in result.output


def _note_of(run: Path, size: int) -> str:
    return json.loads(govtrain("audit", "prove", run, "--seq", 0, "--size", size).output)[
        "checkpoint"
    ]


def test_a_consistency_proof_shows_the_log_extends_a_kept_checkpoint(
    run: Path, tmp_path: Path
) -> None:
    """Whoever kept the signed checkpoint of size 8 checks, offline, that the signed tree
    of size 30 extends it."""
    kept = tmp_path / "kept.note"
    kept.write_text(_note_of(run, 8))
    proof = tmp_path / "consistency.json"
    assert govtrain("audit", "prove", run, "--consistency", 8, "-o", proof).exit_code == 0
    bundle = json.loads(proof.read_text())
    assert (bundle["old_size"], bundle["tree_size"]) == (8, 30) and bundle["proof"]
    pub = run / "keys" / "audit.pub"
    result = govtrain("audit", "check-proof", proof, "--checkpoint", kept, "--pubkey", pub)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"ok: the tree of size 30 with root {bundle['root']} extends your checkpoint of size 8"
    )
    # to an earlier signed size, and from the whole notes file
    mid = json.loads(govtrain("audit", "prove", run, "--consistency", 8, "--size", 24).output)
    assert mid["tree_size"] == 24
    kept24 = tmp_path / "kept24.note"
    kept24.write_text(_note_of(run, 24))  # not a power of two: the proof carries no old root
    from24 = tmp_path / "from24.json"
    assert govtrain("audit", "prove", run, "--consistency", 24, "-o", from24).exit_code == 0
    result = govtrain("audit", "check-proof", from24, "--checkpoint", kept24, "--pubkey", pub)
    assert result.exit_code == 0 and "extends your checkpoint of size 24" in result.output
    whole = govtrain("audit", "check-proof", proof, "--checkpoint", run / NOTES_FILE)
    assert whole.exit_code == 0 and "warning: checked against the key the proof names" in (
        whole.output
    )
    for args, needle in (
        (("--consistency", 9), "no signed checkpoint of size 9 up to size 30"),
        (("--consistency", 24, "--size", 16), "no signed checkpoint of size 24 up to size 16"),
        (("--seq", 3, "--consistency", 8), "give one of --seq and --consistency"),
        ((), "give one of --seq and --consistency"),
    ):
        refused = CliRunner().invoke(main, ["audit", "prove", str(run), *map(str, args)])
        assert refused.exit_code in (1, 2) and needle in refused.output, refused.output


def test_a_consistency_proof_fails_for_a_rewritten_history(run: Path, tmp_path: Path) -> None:
    """The key holder rewrites record 5 (below the kept checkpoint), re-chains and re-signs
    every checkpoint: the new log verifies on its own, but not as an extension of what the
    checker kept."""
    kept = tmp_path / "kept.note"
    kept.write_text(_note_of(run, 8))
    pub = run / "keys" / "audit.pub"
    signer = load_signing_key(run / "keys" / "audit.key")
    lines = (run / LOG_FILE).read_bytes().split(b"\n")[:-1]
    five = Record.from_line(lines[5])
    lines[5] = Record.build(5, five.kind, five.prev, {**five.body, "loss": 0.42}).line
    lines = rechain(lines, 5)
    (run / LOG_FILE).write_bytes(join(lines))
    write_notes(run, sign_sizes(lines, [8, 16, 24, 30], signer))
    assert govtrain("audit", "verify", run, "--pubkey", pub).exit_code == 0
    proof = tmp_path / "consistency.json"
    assert govtrain("audit", "prove", run, "--consistency", 8, "-o", proof).exit_code == 0
    result = govtrain("audit", "check-proof", proof, "--checkpoint", kept, "--pubkey", pub)
    assert result.exit_code == 1 and "proof leads to" in result.output
    # nor can a forger make a bundle pass with its own old root or another tree
    bundle = json.loads(proof.read_text())
    for forged, needle in (
        ({"proof": ["00" * 32, *bundle["proof"][1:]]}, "proof leads to"),
        ({"root": "11" * 32}, "the bundle's checkpoint signs size 30"),
        ({"old_size": 16}, "signs sizes [8], the proof is for size 16"),
        ({"format": "x"}, "not a govtrain.audit.inclusion/v1 bundle"),
    ):
        path = tmp_path / "forged.json"
        path.write_text(json.dumps({**bundle, **forged}))
        result = govtrain("audit", "check-proof", path, "--checkpoint", kept, "--pubkey", pub)
        assert result.exit_code == 1 and needle in result.output, (forged, result.output)


def test_provenance_export_is_a_verifiable_envelope(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "provenance.json"
    result = govtrain("audit", "provenance", run, "-o", out)
    assert result.exit_code == 0
    envelope = json.loads(out.read_text())
    payload_type, payload = open_envelope(envelope, load_verifier_key(run / "keys" / "audit.pub"))
    assert payload_type == "application/vnd.in-toto+json" and b"slsa.dev/provenance/v1" in payload


def test_provenance_verify_checks_the_envelope_and_the_run(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "provenance.json"
    assert govtrain("audit", "provenance", run, "-o", out).exit_code == 0
    pub = run / "keys" / "audit.pub"
    result = govtrain("audit", "provenance", "--verify", out, run, "--pubkey", pub)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: in-toto SLSA provenance signed by")
    assert "matches" in result.output and "log root at size 30" in result.output
    alone = govtrain("audit", "provenance", "--verify", out)
    assert alone.exit_code == 0 and "warning: checked against the key the statement names" in (
        alone.output
    )
    stranger = generate_signer().verifier.vkey
    result = govtrain("audit", "provenance", "--verify", out, run, "--pubkey", stranger)
    assert result.exit_code == 1 and "no envelope signature verifies" in result.output
    # re-signed by the run key but stating another seed: the signature holds, the run does not
    envelope = json.loads(out.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["buildDefinition"]["externalParameters"]["seed"] = 7
    signer = load_signing_key(run / "keys" / "audit.key")
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps(sign_envelope(canonical_json(statement), INTOTO_PAYLOAD_TYPE, signer))
    )
    assert govtrain("audit", "provenance", "--verify", forged, "--pubkey", pub).exit_code == 0
    result = govtrain("audit", "provenance", "--verify", forged, run, "--pubkey", pub)
    assert result.exit_code == 1 and "seed is not the one run_start commits to" in result.output
    statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["merkle_root"] = "ab" * 32
    forged.write_text(
        json.dumps(sign_envelope(canonical_json(statement), INTOTO_PAYLOAD_TYPE, signer))
    )
    result = govtrain("audit", "provenance", "--verify", forged, run, "--pubkey", pub)
    assert result.exit_code == 1 and "the log's first 30 records have root" in result.output
    for subjects, needle in (
        ([{"name": 5, "digest": {"sha256": "00" * 32}}], "must be non-empty strings"),
        ([{"name": "a\u0000b", "digest": {"sha256": "00" * 32}}], "must be non-empty strings"),
        ([{"name": "fifo", "digest": {"sha256": "00" * 32}}], "fifo: a FIFO, not a regular file"),
    ):
        statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["merkle_root"] = (
            json.loads(base64.b64decode(envelope["payload"]))["predicate"]["runDetails"][
                "byproducts"
            ][0]["annotations"]["merkle_root"]
        )
        statement["subject"] = subjects
        statement["predicate"]["buildDefinition"]["externalParameters"]["seed"] = 0
        forged.write_text(
            json.dumps(sign_envelope(canonical_json(statement), INTOTO_PAYLOAD_TYPE, signer))
        )
        if not (run / "fifo").exists():
            os.mkfifo(run / "fifo")
        result = govtrain("audit", "provenance", "--verify", forged, run, "--pubkey", pub)
        assert result.exit_code == 1 and needle in result.output, result.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("[1, 2]")
    result = govtrain("audit", "provenance", "--verify", garbage, "--pubkey", pub)
    assert result.exit_code == 1 and "not a JSON envelope object" in result.output
    assert govtrain("audit", "provenance").exit_code == 2


def test_a_saved_checkpoint_file_catches_a_rollback(run: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved.note"
    saved.write_bytes((run / NOTES_FILE).read_bytes())
    assert govtrain("audit", "verify", run, "--checkpoint", saved).exit_code == 0
    lines = (run / LOG_FILE).read_bytes().split(b"\n")[:-1]
    (run / LOG_FILE).write_bytes(b"".join(line + b"\n" for line in lines[:24]))
    notes = (run / NOTES_FILE).read_bytes()
    write_notes(run, notes[: notes.index(b"\n30\n")].rsplit(b"govtrain.audit/", 1)[0])
    rolled = govtrain("audit", "verify", run)  # cut back to a signed size: all the inside can see
    assert rolled.exit_code == 4 and "no run_end record" in rolled.output
    anchored = govtrain("audit", "verify", run, "--checkpoint", saved)
    assert anchored.exit_code == 1 and "trusted checkpoint" in anchored.output
    empty = tmp_path / "empty.note"
    empty.write_text("")
    assert govtrain("audit", "verify", run, "--checkpoint", empty).exit_code == 1


def test_a_missing_notes_file_is_not_a_crash(run: Path) -> None:
    """The writer signs run_start first: records without any note were not left by a crash."""
    (run / NOTES_FILE).unlink()
    result = govtrain("audit", "verify", run)
    assert result.exit_code == 1 and "no signed checkpoint" in result.output
