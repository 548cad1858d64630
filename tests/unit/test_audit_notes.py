"""Keys, C2SP signed notes, checkpoints and DSSE: interoperable formats, precise refusals."""

from __future__ import annotations

import base64
import hashlib
import os
import stat

import pytest

from govtrain.audit.dsse import INTOTO_PAYLOAD_TYPE, open_envelope, pae, sign_envelope
from govtrain.audit.errors import KeyFileError, NoteError, SignatureError
from govtrain.audit.keys import (
    Signer,
    VerifierKey,
    generate_signer,
    load_signing_key,
    load_verifier_key,
    run_key,
    write_key_pair,
)
from govtrain.audit.log import AuditLog
from govtrain.audit.notes import (
    Checkpoint,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_notes,
)

# The example key and note of Go's golang.org/x/mod/sumdb/note documentation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNX"
    "gKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_note_vector_signs_and_verifies_identically() -> None:
    signer = Signer.parse(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert signer.to_text() == GO_SKEY
    assert sign_note(GO_TEXT, signer) == GO_NOTE  # Ed25519 is deterministic
    assert open_note(GO_NOTE, VerifierKey.parse(GO_VKEY)) == GO_TEXT
    with pytest.raises(SignatureError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), VerifierKey.parse(GO_VKEY))


def test_key_id_is_the_documented_hash_prefix() -> None:
    key = generate_signer("run-7").verifier
    digest = hashlib.sha256(b"run-7\n\x01" + key.public).digest()
    assert key.key_id == digest[:4]
    assert key.fingerprint == "sha256:" + digest.hex()
    assert VerifierKey.parse(key.vkey) == key


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong algorithm
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(KeyFileError):
        VerifierKey.parse(vkey)


def test_key_files_are_private_and_never_overwritten(tmp_path) -> None:
    signer = generate_signer()
    private, public = write_key_pair(tmp_path / "keys", signer)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_signing_key(private).verifier == signer.verifier
    assert load_verifier_key(public) == signer.verifier
    assert load_verifier_key(signer.verifier.vkey) == signer.verifier
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_key_pair(tmp_path / "keys", generate_signer())
    os.chmod(private, 0o644)
    with pytest.raises(KeyFileError, match="0600"):
        load_signing_key(private)
    with pytest.raises(KeyFileError):
        load_verifier_key(str(tmp_path / "absent.pub"))


def test_the_run_key_is_written_with_the_run_and_read_back(tmp_path) -> None:
    signer = generate_signer()
    AuditLog.create(tmp_path / "run", signer=signer, run_start={}, keep_key=True).close()
    keys = tmp_path / "run" / "keys"
    assert stat.S_IMODE((keys / "audit.key").stat().st_mode) == 0o600
    assert load_verifier_key(keys / "audit.pub") == signer.verifier
    assert run_key(tmp_path / "run").verifier == signer.verifier


def test_checkpoint_text_round_trips() -> None:
    checkpoint = Checkpoint("example.com/log", 42, bytes(range(32)))
    text = checkpoint.text()
    assert text == f"example.com/log\n42\n{base64.b64encode(bytes(range(32))).decode()}\n"
    assert Checkpoint.parse(text) == checkpoint
    assert Checkpoint.parse(text + "extension line\n") == checkpoint


@pytest.mark.parametrize(
    "text",
    [
        "log\n42\nAAAA\n",
        "log\n042\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n1\n" + base64.b64encode(bytes(32)).decode(),
        "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "log\n1\n" + base64.b64encode(bytes(32)).decode()[:-2] + "B=\n",  # non-canonical padding
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_checkpoint_notes_need_the_right_key() -> None:
    signer, other = generate_signer(), generate_signer()
    note = sign_checkpoint(Checkpoint("log", 3, bytes(32)), signer)
    assert open_checkpoint(note, signer.verifier).size == 3
    with pytest.raises(SignatureError, match="no signature by key"):
        open_checkpoint(note, other.verifier)
    cosigned = note + sign_note(Checkpoint("log", 3, bytes(32)).text(), other).split("\n\n")[1]
    assert open_checkpoint(cosigned, other.verifier) == open_checkpoint(cosigned, signer.verifier)


def test_every_corruption_of_a_signature_is_refused() -> None:
    signer = generate_signer()
    note = sign_checkpoint(Checkpoint("log", 3, bytes(32)), signer)
    sig_start = note.index("\u2014")
    for i in range(sig_start, len(note) - 1):
        for replacement in {"A", "z", "+", " "} - {note[i]}:
            with pytest.raises(NoteError):
                open_checkpoint(note[:i] + replacement + note[i + 1 :], signer.verifier)


@pytest.mark.parametrize(
    "text", ["", "no newline", "a\n\nb\n", "\u2014 looks like a signature\n", "tab\there\n"]
)
def test_malformed_note_texts_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        sign_note(text, generate_signer())


def test_split_notes_finds_a_torn_final_note_at_every_cut() -> None:
    signer = generate_signer()
    notes = [sign_checkpoint(Checkpoint("log", n, bytes(32)), signer).encode() for n in (1, 2, 3)]
    whole = b"".join(notes)
    assert split_notes(whole) == ([n.decode() for n in notes], len(whole))
    last = len(whole) - len(notes[-1])
    for cut in range(last, len(whole)):
        texts, torn_at = split_notes(whole[:cut])
        assert texts == [n.decode() for n in notes[:2]] and torn_at == last
    with pytest.raises(NoteError):
        split_notes(notes[0].split(b"\n\n")[0] + b"\n\n" + notes[1])


def test_dsse_pae_matches_the_specification_example() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_dsse_envelope_round_trip_and_refusals() -> None:
    signer, other = generate_signer(), generate_signer()
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    envelope = sign_envelope(payload, INTOTO_PAYLOAD_TYPE, signer)
    assert open_envelope(envelope, signer.verifier) == (INTOTO_PAYLOAD_TYPE, payload)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    assert signer.verifier.verify(signature, pae(INTOTO_PAYLOAD_TYPE, payload))
    with pytest.raises(SignatureError):
        open_envelope(envelope, other.verifier)
    with pytest.raises(SignatureError):
        open_envelope({**envelope, "payloadType": "text/plain"}, signer.verifier)
    forged = base64.b64encode(payload.replace(b"v1", b"v2")).decode()
    with pytest.raises(SignatureError):
        open_envelope({**envelope, "payload": forged}, signer.verifier)
    with pytest.raises(NoteError):
        open_envelope({**envelope, "signatures": []}, signer.verifier)
    with pytest.raises(NoteError):
        open_envelope({**envelope, "payload": "not base64!"}, signer.verifier)
