"""`audit check-proof` on proofs damaged or made up outside: each is refused with one line
that names the file and the field (JSON) or line (tlog-proof), exit 1, nothing written,
and no altered field of a valid proof passes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from govtrain.audit.keys import generate_signer
from govtrain.audit.proofs import MAX_PROOF_BYTES, prove, prove_consistency, tlog_proof
from govtrain.audit.verify import NOTES_FILE
from govtrain.cli import main
from tests.audit_support import make_run

DEEP = "[" * 100_000 + "]" * 100_000


@dataclass(frozen=True)
class Proofs:
    """Valid proofs of one run: of record 5 (JSON and tlog-proof) and from size 8 to 30."""

    run: Path
    inclusion: dict[str, Any]
    consistency: dict[str, Any]
    tlog: str


def valid_proofs(directory: Path) -> Proofs:
    """A run of 30 records in DIRECTORY/run, signed every 8, and its proofs."""
    run = directory / "run"
    make_run(run, 30, checkpoint_every=8, keep_key=True)
    inclusion = prove(run, 5)
    return Proofs(run, inclusion, prove_consistency(run, 8), tlog_proof(inclusion))


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> Proofs:
    return valid_proofs(tmp_path_factory.mktemp("proofs"))


def check_proof(proofs: Proofs, path: Path) -> tuple[int, str]:
    """check-proof's exit code and output for PATH, against the run's notes and key."""
    args = ["--checkpoint", proofs.run / NOTES_FILE, "--pubkey", proofs.run / "keys/audit.pub"]
    result = CliRunner().invoke(
        main, ["audit", "check-proof", str(path), *map(str, args)], catch_exceptions=False
    )
    return result.exit_code, result.output


def refused(proofs: Proofs, path: Path, content: str | bytes | None = None) -> str:
    """The one line check-proof refuses PATH with (once `content` is written there); it
    writes nothing."""
    if content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    before = sorted(path.parent.rglob("*"))
    code, output = check_proof(proofs, path)
    assert code == 1 and output.count("\n") == 1 and output.startswith("error: "), output
    assert sorted(path.parent.rglob("*")) == before
    return output.removeprefix("error: ").removesuffix("\n")


def _with(bundle: dict[str, Any], field: str, raw: str) -> str:
    """The bundle as JSON text with `field`'s value written as `raw`."""
    return json.dumps({**bundle, field: "<raw>"}).replace('"<raw>"', raw)


def test_valid_proofs_pass(proofs: Proofs, tmp_path: Path) -> None:
    for name, text in (
        ("inclusion.json", json.dumps(proofs.inclusion)),
        ("consistency.json", json.dumps(proofs.consistency)),
        ("record.tlog-proof", proofs.tlog),
    ):
        (tmp_path / name).write_text(text)
        code, output = check_proof(proofs, tmp_path / name)
        assert code == 0 and output.startswith("ok: "), output


@pytest.mark.parametrize(
    ("bundle", "field", "raw", "shown"),
    [
        ("inclusion", "seq", '"7"', '"7"'),
        ("inclusion", "seq", "1e40", "1e+40"),
        ("inclusion", "seq", "NaN", "NaN"),
        ("inclusion", "seq", "true", "true"),
        ("inclusion", "index", "5.0", "5.0"),
        ("inclusion", "index", "-1", "-1"),
        ("inclusion", "tree_size", "Infinity", "Infinity"),
        ("inclusion", "tree_size", '{"n": 30}', "an object"),
        ("consistency", "old_size", '"8"', '"8"'),
        ("consistency", "tree_size", "false", "false"),
    ],
)
def test_an_integer_field_must_be_a_json_integer(
    proofs: Proofs, tmp_path: Path, bundle: str, field: str, raw: str, shown: str
) -> None:
    path = tmp_path / "proof.json"
    text = _with(getattr(proofs, bundle), field, raw)
    assert refused(proofs, path, text) == (
        f'{path}: field "{field}" must be a non-negative integer, got {shown}'
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: json.dumps(b)[:-1] + ', "seq": 5}', 'field "seq" appears twice'),
        (lambda b: json.dumps({**b, "note": "x"}), 'unknown field "note"'),
        (
            lambda b: json.dumps({k: v for k, v in b.items() if k != "leaf_hash"}),
            ('field "leaf_hash" is missing'),
        ),
        (
            lambda b: json.dumps({**b, "root": "AB" * 32}),
            ('field "root" must be 64 lowercase hex digits, got "' + "AB" * 32 + '"'),
        ),
        (
            lambda b: _with(b, "proof", '["' + "ab" * 32 + '", 7]'),
            ('field "proof" item 1 must be 64 lowercase hex digits, got 7'),
        ),
        (
            lambda b: _with(b, "record", '"\\ud800"'),
            ('field "record" must be UTF-8 text, got "\\ud800"'),
        ),
        (
            lambda b: json.dumps({**b, "format": "v2"}),
            (
                "not a govtrain.audit.inclusion/v1 bundle nor a govtrain.audit.consistency/v1 one "
                '(format "v2")'
            ),
        ),
    ],
)
def test_a_json_proof_is_exactly_the_fields_prove_writes(
    proofs: Proofs, tmp_path: Path, damage: Callable[[dict], str], message: str
) -> None:
    path = tmp_path / "proof.json"
    assert refused(proofs, path, damage(proofs.inclusion)) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("bundle", "field", "message"),
    [
        ("inclusion", "seq", "the record has seq 5, the proof is for seq 8 index 5"),
        ("inclusion", "key", "the proof names key "),
        ("inclusion", "checkpoint", "the bundle's signed checkpoint is not the one it is"),
        ("consistency", "old_root", "your checkpoint signs "),
        ("consistency", "origin", "your checkpoint signs "),
        ("consistency", "key", "the proof names key "),
    ],
)
def test_no_field_of_a_valid_proof_can_be_changed(
    proofs: Proofs, tmp_path: Path, bundle: str, field: str, message: str
) -> None:
    """Each of these fields was read by nothing: a bundle with it changed passed."""
    other = {
        "seq": 8,
        "key": generate_signer().verifier.vkey,
        "checkpoint": prove(proofs.run, 5, size=8)["checkpoint"],
        "old_root": "00" * 32,
        "origin": "another log",
    }[field]
    altered = json.dumps({**getattr(proofs, bundle), field: other})
    assert refused(proofs, tmp_path / "proof.json", altered).startswith(message)


def _tlog_line(proofs: Proofs, n: int) -> str:
    return proofs.tlog.split("\n")[n - 1]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t.replace("@v1", "@v2", 1), 'line 1 must be c2sp.org/tlog-proof@v1, got "c2sp'),
        (lambda t: t.replace("\n", "\r\n"), 'line 1 must be c2sp.org/tlog-proof@v1, got "c2sp'),
        (lambda t: "\ufeff" + t, 'line 1 must be c2sp.org/tlog-proof@v1, got "\\ufeffc2sp'),
        (lambda t: "hello\n", 'line 1 must be c2sp.org/tlog-proof@v1, got "hello"'),
        (lambda t: t.replace("\n\n", "\n"), "no blank line before the signed checkpoint"),
        (lambda t: t.replace("extra ", "", 1), "line 2 must be `extra` and the record in base64"),
        (lambda t: t.replace("extra ", "extra !", 1), "line 2 must be base64 (bad base64"),
        (lambda t: t.replace("index 5", "index 5 ", 1), "line 3 must be `index N`, N a decimal"),
        (lambda t: t.replace("index 5\n", "", 1), "line 3 must be `index N`, N a decimal"),
        (
            lambda t: t.replace(t.split("\n")[3], "!" + t.split("\n")[3][1:]),
            ("line 4 must be base64 (bad base64"),
        ),
        (
            lambda t: t.replace("index 5\n", "index 5\nAAAA\n", 1),
            ('line 4 must be a 32-byte hash in base64, got "AAAA"'),
        ),
    ],
)
def test_a_tlog_proof_error_names_its_line(
    proofs: Proofs, tmp_path: Path, damage: Callable[[str], str], message: str
) -> None:
    """Before, a file that did not start with the exact header got the JSON-proof message."""
    path = tmp_path / "proof.tlog-proof"
    assert refused(proofs, path, damage(proofs.tlog)).startswith(f"{path}: {message}")


def test_a_tlog_proof_hash_in_non_canonical_base64_is_refused(
    proofs: Proofs, tmp_path: Path
) -> None:
    """Base64 of 32 bytes has two spare bits: setting one decoded to the same hash and passed."""
    hash_line = _tlog_line(proofs, 4)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    slack = alphabet[alphabet.index(hash_line[-2]) ^ 1]
    altered = hash_line[:-2] + slack + "="
    assert base64.b64decode(altered) == base64.b64decode(hash_line)
    path = tmp_path / "proof.tlog-proof"
    assert refused(proofs, path, proofs.tlog.replace(hash_line, altered, 1)) == (
        f'{path}: line 4 must be base64 (non-canonical base64), got "{altered}"'
    )


def test_input_not_text_too_big_or_too_deep_is_one_line(proofs: Proofs, tmp_path: Path) -> None:
    path = tmp_path / "proof.json"
    deep_extra = base64.b64encode(DEEP.encode()).decode()
    for content, message in (
        (b'{"format": "\xff"}', f"{path} is not a JSON proof: not UTF-8 text (byte 12)"),
        ('{"a": ' * 100_000, f"{path} is not a JSON proof: it nests too deeply"),
        (
            _with(proofs.inclusion, "seq", "9" * 5000),
            (f"{path}: an integer of 5000 digits is out of range"),
        ),
        (
            json.dumps({**proofs.inclusion, "record": DEEP}),
            "the proof's record: nests too deeply to be a record",
        ),
        (
            proofs.tlog.replace(_tlog_line(proofs, 2), "extra " + deep_extra),
            "the proof's record: nests too deeply to be a record",
        ),
    ):
        assert refused(proofs, path, content) == message


def test_a_file_too_big_for_a_proof_is_refused_unread(proofs: Proofs, tmp_path: Path) -> None:
    path = tmp_path / "proof.json"
    with path.open("wb") as file:
        file.write(b"{")
        file.truncate(MAX_PROOF_BYTES + 1)  # sparse: cheap to make
    assert refused(proofs, path) == (f"{path} is not a proof: over {MAX_PROOF_BYTES} bytes")
