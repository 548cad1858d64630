"""`govtrain keys ...` and `govtrain audit ...`: thin click commands over `audit/`.

Exit codes: 0 success (for verify and repair: the log is intact and closed);
1 tampering or any other error, naming the first bad record and why; 2 usage;
3 torn tail (a crash mid-write: `govtrain audit repair` cuts it); 4 intact but not
closed as a crash leaves it (at most checkpoint_every records after the last signed
checkpoint, protected by the hash chain only); a history no crash can leave is 1.
Errors are raised as `audit.errors.AuditError`; `pipeline.cli` turns them into one
line on stderr and their exit code. Nothing here imports torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from govtrain.audit import openssf
from govtrain.audit.anchors import AnchorStore
from govtrain.audit.errors import AuditError, NoteError, ProofError
from govtrain.audit.keys import (
    DEFAULT_KEY_NAME,
    PRIVATE_KEY_FILE,
    RUN_KEY_DIR,
    VerifierKey,
    generate_signer,
    load_signing_key,
    load_verifier_key,
    write_key_pair,
)
from govtrain.audit.notes import split_notes
from govtrain.audit.proofs import (
    CONSISTENCY_FORMAT,
    MAX_PROOF_BYTES,
    check_consistency,
    check_proof,
    check_proof_checkpoint,
    check_tlog_proof,
    parse_proof,
    prove,
    prove_consistency,
    tlog_proof,
)
from govtrain.audit.provenance import (
    check_provenance,
    export_provenance,
    read_records,
    statement_key,
)
from govtrain.audit.records import Record
from govtrain.audit.repair import repair_torn_tail
from govtrain.audit.verify import LOG_FILE, VerifyReport, run_files, verify_run

EXIT_NOT_CLOSED = 4

_run_path = click.argument("path", type=click.Path(exists=True, path_type=Path))
_pubkey = click.option(
    "--pubkey",
    help="Trusted public key (.pub file, vkey text, or a PEM Ed25519 public key). Default: the "
    "key run_start commits, which cannot catch a log re-signed end to end with another key.",
)
_output = click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file."
)


def _key(pubkey: str | None, run: Path | None = None) -> VerifierKey | None:
    """--pubkey's key; a PEM key, which has no name, is named as the key RUN commits."""
    if pubkey is None:
        return None
    return load_verifier_key(pubkey, DEFAULT_KEY_NAME if run is None else _committed_name(run))


def _committed_name(run: Path) -> str:
    """The name of the key RUN's run_start commits (unverified: the trusted key's bytes must
    still equal that key's); the default where there is none (verification says why)."""
    try:
        with run_files(run)[0].open("rb") as log:
            return VerifierKey.parse(json.loads(log.readline())["body"]["key"]["vkey"]).name
    except (OSError, ValueError, KeyError, TypeError, AuditError):
        return DEFAULT_KEY_NAME


def _run(path: Path) -> Path:
    """PATH, a run directory or its audit.jsonl; one line where it is neither."""
    if not path.exists():
        raise AuditError(f"{path}: no such file or directory")
    if path.is_dir() and not (path / LOG_FILE).is_file():
        raise AuditError(f"{path}: not a govtrain run (no {LOG_FILE})")
    return path


def _text(path: Path, what: str) -> str:
    """A file's text, or one line saying it is not UTF-8 text."""
    return _decoded(path.read_bytes(), path, what)


def _decoded(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuditError(f"{path} is not a {what}: not UTF-8 text (byte {exc.start})") from None


def _json_object(path: Path, what: str) -> dict:
    try:
        data = json.loads(_text(path, f"JSON {what}"))
    except (ValueError, RecursionError) as exc:
        raise AuditError(f"{path} is not a JSON {what}: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise AuditError(f"{path} is not a JSON {what} object")
    return data


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n")
        click.echo(f"wrote {output}", err=True)


def _finish(report: VerifyReport) -> None:
    click.echo(report.summary())
    if not report.closed:
        sys.exit(EXIT_NOT_CLOSED)


@click.group()
def keys() -> None:
    """Ed25519 keys that sign audit checkpoints and provenance."""


@keys.command("generate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=DEFAULT_KEY_NAME, show_default=True, help="Key name in notes.")
def keys_generate(directory: Path, name: str) -> None:
    """Write DIRECTORY/audit.key (mode 0600) and DIRECTORY/audit.pub."""
    signer = generate_signer(name)
    private, public = write_key_pair(directory, signer)
    click.echo(f"private key {private} (mode 0600: keep it secret)")
    click.echo(f"public key  {public} (give it to verifiers: --pubkey)")
    click.echo(f"fingerprint {signer.verifier.fingerprint}")


@keys.command("model-signing")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def keys_model_signing(directory: Path) -> None:
    """Write an ECDSA P-256 pair for OpenSSF model signing (`audit sign-model`):
    DIRECTORY/model-signing.pem (mode 0600) and DIRECTORY/model-signing.pub.pem."""
    private, public = openssf.generate_key(directory)
    click.echo(f"private key {private} (mode 0600: keep it secret)")
    click.echo(f"public key  {public} (model_signing verify key --public_key ...)")


@click.group()
def audit() -> None:
    """Verify, inspect, prove and repair a run's audit log; export its provenance."""


_anchors = click.option(
    "--checkpoint",
    "anchors",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signed checkpoints kept outside the run (a note or a saved checkpoints.note): "
    "the log must reproduce each of them (repeatable).",
)


def _trusted_notes(path: Path, anchors: tuple[Path, ...]) -> list[str]:
    """The notes the log at PATH must reproduce: --checkpoint files and the anchor store's."""
    notes = [note for anchor in anchors for note in split_notes(anchor.read_bytes())[0]]
    if anchors and not notes:
        raise AuditError("--checkpoint holds no complete signed note")
    store = AnchorStore.default()
    if store is not None:
        notes += store.notes(run_files(path)[0].parent)
    return notes


@audit.command()
@click.argument("path", type=click.Path(path_type=Path))
@_pubkey
@_anchors
def verify(path: Path, pubkey: str | None, anchors: tuple[Path, ...]) -> None:
    """Verify PATH (a run directory or its audit.jsonl) and print a one-line summary.

    The log must also reproduce the trust anchors your anchor store holds for it
    ($GOVTRAIN_ANCHORS, default ~/.local/state/govtrain/anchors; "off" skips them).
    """
    path = _run(path)
    _finish(verify_run(path, pubkey=_key(pubkey, path), anchors=_trusted_notes(path, anchors)))


@audit.command()
@_run_path
@click.option("--seq", type=click.IntRange(min=0), help="Only the record with this seq.")
@click.option("--kind", help="Only records of this kind.")
def show(path: Path, seq: int | None, kind: str | None) -> None:
    """Print records of PATH as canonical JSON lines (no verification: use verify)."""
    if seq is not None and kind is not None:
        raise click.UsageError("--seq and --kind exclude each other")
    records = read_records(path)
    if seq is not None:
        if seq >= len(records):
            raise AuditError(f"no record with seq {seq}: the log holds {len(records)}")
        records = [records[seq]]
    for record in records:
        if kind is None or record.kind == kind:
            click.echo(record.line.decode())


@audit.command("prove")
@_run_path
@click.option("--seq", type=click.IntRange(min=0), help="The record to prove included.")
@click.option(
    "--consistency",
    "old_size",
    type=click.IntRange(min=1),
    help="Prove the log extends its signed checkpoint of this size.",
)
@click.option("--size", type=click.IntRange(min=1), help="Signed checkpoint size (default: last).")
@click.option(
    "--format",
    "form",
    type=click.Choice(["json", "tlog-proof"]),
    default="json",
    show_default=True,
    help="tlog-proof: the C2SP text format (.tlog-proof) for an inclusion proof.",
)
@_pubkey
@_output
def prove_command(
    path: Path,
    seq: int | None,
    old_size: int | None,
    size: int | None,
    form: str,
    pubkey: str | None,
    output: Path | None,
) -> None:
    """Print, with the signed checkpoint it is for, the inclusion proof of record SEQ
    (JSON or C2SP tlog-proof) or the consistency proof from the signed checkpoint of size
    OLD_SIZE (JSON)."""
    if seq is None and old_size is not None:
        if form != "json":
            raise click.UsageError("a consistency proof is written as JSON only")
        bundle = prove_consistency(path, old_size, pubkey=_key(pubkey), size=size)
        _emit(json.dumps(bundle, indent=2), output)
        return
    if seq is None or old_size is not None:
        raise click.UsageError("give one of --seq and --consistency")
    bundle = prove(path, seq, pubkey=_key(pubkey), size=size)
    if form == "tlog-proof":
        text = tlog_proof(bundle)
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text)
        return
    _emit(json.dumps(bundle, indent=2), output)


@audit.command("check-proof")
@click.argument("proof", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The signed checkpoint note you trust (for a consistency proof: the earlier one; "
    "a tlog-proof carries its own, which must then agree with it).",
)
@_pubkey
def check_proof_command(proof: Path, checkpoint: Path | None, pubkey: str | None) -> None:
    """Check PROOF offline: the checkpoint's signature, the record and its audit path; or,
    for a consistency proof, that the proof's signed tree extends your earlier checkpoint.

    A proof that starts with `{` (or `[`) is read as JSON, anything else as a C2SP
    tlog-proof, and errors name its field or line."""
    data = _proof_bytes(proof)
    if data.lstrip()[:1] not in (b"{", b"["):
        _check_tlog_proof(proof, _decoded(data, proof, "tlog-proof"), checkpoint, pubkey)
        return
    if checkpoint is None:
        raise click.UsageError("a JSON proof is checked against --checkpoint, a note you trust")
    bundle = parse_proof(_decoded(data, proof, "JSON proof"), str(proof))
    key = _key(pubkey)
    if key is None:
        key = VerifierKey.parse(bundle["key"])
        click.echo(
            "warning: checked against the key the proof names; pass --pubkey to use one you trust",
            err=True,
        )
    if bundle["format"] == CONSISTENCY_FORMAT:
        old, new = check_consistency(bundle, _text(checkpoint, "checkpoint note"), key)
        click.echo(
            f"ok: the tree of size {new.size} with root {new.root.hex()} extends your "
            f"checkpoint of size {old.size} with root {old.root.hex()}, both signed by "
            f"{key.name} ({key.key_id.hex()})"
        )
        return
    record = check_proof(bundle, _text(checkpoint, "checkpoint note"), key)
    _proved(record, bundle["tree_size"], bundle["root"], key)


def _proof_bytes(path: Path) -> bytes:
    """PATH's bytes, refused past MAX_PROOF_BYTES before they fill memory."""
    with path.open("rb") as file:
        data = file.read(MAX_PROOF_BYTES + 1)
    if len(data) > MAX_PROOF_BYTES:
        raise ProofError(f"{path} is not a proof: over {MAX_PROOF_BYTES} bytes")
    return data


def _check_tlog_proof(proof: Path, text: str, checkpoint: Path | None, pubkey: str | None) -> None:
    key = _key(pubkey)
    if key is None:
        raise click.UsageError("a tlog-proof names no key: pass --pubkey")
    record, signed = check_tlog_proof(text, key, str(proof))
    if checkpoint is not None:
        trusted = check_proof_checkpoint(_text(checkpoint, "checkpoint note"), signed.size, key)
        if trusted != signed:
            raise NoteError(
                f"the proof's checkpoint (size {signed.size}, root {signed.root.hex()}) is not "
                f"the one you trust (root {trusted.root.hex()})"
            )
    _proved(record, signed.size, signed.root.hex(), key)


def _proved(record: Record, size: int, root: str, key: VerifierKey) -> None:
    click.echo(
        f"ok: record seq {record.seq} (kind {record.kind}) is leaf {record.seq} of the tree of "
        f"size {size} with root {root}, signed by {key.name} ({key.key_id.hex()})"
    )


@audit.command()
@_run_path
def repair(path: Path) -> None:
    """Cut a torn tail off PATH, keeping the original as .broken; refuse anything else."""
    report, cuts = repair_torn_tail(path)
    for cut in cuts:
        click.echo(
            f"cut {cut.removed} bytes off {cut.file} at offset {cut.offset}; original kept as "
            f"{cut.backup}"
        )
    if not cuts:
        click.echo("nothing to repair")
    _finish(report)


@audit.command()
@click.argument(
    "run", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"The run's private key (default: RUN/{RUN_KEY_DIR}/{PRIVATE_KEY_FILE}).",
)
@click.option(
    "--verify",
    "envelope_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check this envelope instead (against RUN too, when given).",
)
@_pubkey
@_output
def provenance(
    run: Path | None,
    key_path: Path | None,
    envelope_file: Path | None,
    pubkey: str | None,
    output: Path | None,
) -> None:
    """Export RUN's in-toto/SLSA provenance as a DSSE envelope signed with the run key,
    or, with --verify FILE, check an envelope: its signature and statement, and with RUN
    that the run's log, config and checkpoint files are the ones it states."""
    if envelope_file is not None:
        _check_provenance(envelope_file, run, _key(pubkey))
        return
    if run is None:
        raise click.UsageError("give RUN to export, or --verify FILE to check an envelope")
    signer = load_signing_key(key_path or run / RUN_KEY_DIR / PRIVATE_KEY_FILE)
    envelope, report = export_provenance(run, signer)
    if not report.closed:
        click.echo(f"warning: the run is not closed ({report.summary()})", err=True)
    _emit(json.dumps(envelope, indent=2), output)


def _check_provenance(path: Path, run: Path | None, key: VerifierKey | None) -> None:
    envelope = _json_object(path, "envelope")
    if key is None:
        key = statement_key(envelope)
        click.echo(
            "warning: checked against the key the statement names; pass --pubkey to use one "
            "you trust",
            err=True,
        )
    statement = check_provenance(envelope, key, run)
    log = statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]
    against = (
        f"; matches {run}: log root at size {log['tree_size']}, config, seed and "
        f"{len(statement['subject'])} checkpoint file(s)"
        if run is not None
        else " (pass RUN to check it against the run's files)"
    )
    click.echo(
        f"ok: in-toto SLSA provenance signed by {key.name} ({key.key_id.hex()}), "
        f"{len(statement['subject'])} subject(s){against}"
    )


@audit.command("sign-model")
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="ECDSA private key, PEM (govtrain keys model-signing DIR makes one).",
)
@click.option("--path", "recorded", help="The recorded checkpoint (default: the last).")
@_pubkey
@_anchors
@_output
def sign_model(
    run: Path,
    key_path: Path,
    recorded: str | None,
    pubkey: str | None,
    anchors: tuple[Path, ...],
    output: Path | None,
) -> None:
    """Sign one of RUN's checkpoints in the OpenSSF Model Signing format (a Sigstore
    bundle `model_signing verify key` checks), once the log verifies as `audit verify`
    verifies it (--pubkey, --checkpoint, the anchor store) and the file's SHA-256
    matches the log's record of it. Writes CHECKPOINT.sig unless -o."""
    path, signature = openssf.sign_checkpoint(
        run,
        key_path,
        recorded,
        output,
        pubkey=_key(pubkey),
        anchors=_trusted_notes(run, anchors),
    )
    click.echo(f"signed {path} (SHA-256 as the log records it): {signature}")
    click.echo(
        f"verify: model_signing verify key --signature {signature} "
        f"--public_key PUBLIC.pem {run / path}"
    )


@audit.command("export-trace")
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@_output
def export_trace_command(run: Path, output: Path | None) -> None:
    """Export RUN's governance steps (a run directory or its audit.jsonl) as an ND-JSON trace
    in the vocabulary of specs/GovernedTraining.tla: an Init line with the constants, one
    GovernanceStep line per step, a Rewind line per resume (no verification: use verify)."""
    from govtrain.formal.trace import export_trace

    text = export_trace(run, output)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output} ({text.count(chr(10))} lines)", err=True)
