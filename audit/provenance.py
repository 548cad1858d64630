"""What a run commits to in run_start, and its export as signed SLSA provenance.

`build_run_start` assembles the first record's body from parts only the caller
knows (config, seed, input files, model digests) plus what can be read here (git
state, Python and package versions), so a run directory proves what produced it.
`export_provenance` verifies the log, then states it as an in-toto Statement v1
with an SLSA provenance v1 predicate whose subjects are the model checkpoint files
recorded in the log (records of kind ``checkpoint`` with body ``path`` and
``sha256``; the last record for a path wins), signed as a DSSE envelope with the
run key. `check_artifacts` re-hashes those files, for resuming a run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import re
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from govtrain.audit.dsse import INTOTO_PAYLOAD_TYPE, open_envelope, sign_envelope
from govtrain.audit.errors import AuditError, RecordError
from govtrain.audit.files import open_in_run
from govtrain.audit.keys import Signer, VerifierKey, load_verifier_key
from govtrain.audit.log import key_commitment
from govtrain.audit.merkle import MerkleTree, leaf_hash
from govtrain.audit.records import Record, canonical_json
from govtrain.audit.verify import LOG_FILE, VerifyReport, read_latest, read_run, verify_bytes

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:govtrain:build-type:training-run:v1"
BUILDER_ID = "urn:govtrain:builder:pipeline"
DEFAULT_PACKAGES = (
    "govtrain",
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "numpy",
    "pydantic",
)
UNKNOWN = "unknown"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def file_sha256(path: Path | int) -> str:
    """Hex SHA-256 of a file (a path, or a descriptor it closes), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(repo_dir: Path | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of `repo_dir` (cwd by default); "unknown" outside git."""
    repo_dir = Path.cwd() if repo_dir is None else Path(repo_dir)
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": UNKNOWN, "dirty": UNKNOWN}
    status = _git(repo_dir, "status", "--porcelain")
    return {
        "git_commit": commit.strip(),
        "dirty": UNKNOWN if status is None else bool(status.strip()),
    }


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution, None when it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def data_manifest(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """SHA-256 and size of every input file, sorted by path."""
    entries = []
    for path in sorted({str(p) for p in paths}):
        try:
            entries.append(
                {
                    "path": path,
                    "sha256": file_sha256(Path(path)),
                    "bytes": Path(path).stat().st_size,
                }
            )
        except OSError as exc:
            raise AuditError(f"cannot hash input file {path}: {exc.strerror}") from exc
    return entries


def build_run_start(
    *,
    config: Mapping[str, Any],
    seed: int,
    data_files: Iterable[Path],
    model_structure_digest: str,
    initial_params_digest: str,
    key: VerifierKey | None = None,
    packages: Iterable[str] = DEFAULT_PACKAGES,
    repo_dir: Path | None = None,
    run_id: str | None = None,
    distributed: Mapping[str, Any] | None = None,
    data_pipeline: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run_start body. `config` must be JSON data (e.g. a pydantic ``model_dump(mode="json")``).

    The digests are strings the caller computes from the model (e.g.
    "sha256:<hex>"); `key` may be left out, `AuditLog.create` adds the signer's.
    """
    for name, digest in (
        ("model_structure_digest", model_structure_digest),
        ("initial_params_digest", initial_params_digest),
    ):
        if not isinstance(digest, str) or not digest:
            raise RecordError(f"{name} must be a non-empty string")
    body: dict[str, Any] = {
        "run_id": run_id or uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": dict(config),
        "config_sha256": hashlib.sha256(canonical_json(config)).hexdigest(),
        "code": code_version(repo_dir),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
        "packages": package_versions(packages),
        "seed": seed,
        "data": data_manifest(data_files),
        "model": {
            "structure_digest": model_structure_digest,
            "init_params_digest": initial_params_digest,
        },
    }
    if key is not None:
        body["key"] = key_commitment(key)
    if distributed is not None:  # world size, backend, engine of a multi-process run
        body["distributed"] = dict(distributed)
    if data_pipeline is not None:  # what the data pipeline did before training (dedup)
        body["data_pipeline"] = dict(data_pipeline)
    return body


def recorded_artifacts(records: Iterable[Record]) -> dict[str, str]:
    """path -> sha256 of every model checkpoint the log records (the last record per path wins)."""
    artifacts: dict[str, str] = {}
    for record in records:
        if record.kind != "checkpoint":
            continue
        path, digest = record.body.get("path"), record.body.get("sha256")
        if (
            not isinstance(path, str)
            or not path
            or not isinstance(digest, str)
            or not _HEX64.fullmatch(digest)
        ):
            raise AuditError(f"checkpoint record seq {record.seq} needs a path and a hex sha256")
        artifacts[path] = digest
    return artifacts


def check_artifacts(
    run_dir: Path, artifacts: Mapping[str, str], source: str = "the log recorded"
) -> None:
    """Re-hash each recorded checkpoint file (relative to `run_dir`); AuditError on a mismatch.

    A path that leads out of the run directory (absolute, `..`) or through a link, or a
    file that is not a regular one, is refused unread: the paths come from a log or a
    statement, and a checker reads nothing they point at elsewhere."""
    for path, digest in artifacts.items():
        try:
            actual = file_sha256(open_in_run(Path(run_dir), path, "recorded checkpoint"))
        except OSError as exc:
            raise AuditError(f"recorded checkpoint {path} cannot be read: {exc.strerror}") from exc
        if actual != digest:
            raise AuditError(f"checkpoint {path} has SHA-256 {actual}, {source} {digest}")


def read_records(path: Path) -> list[Record]:
    """Every complete record of a run (no verification: use verify_run for that)."""
    return records_of(read_run(path)[0])


def records_of(log: bytes) -> list[Record]:
    """The complete records in a log's bytes (a torn tail is left out)."""
    return [Record.from_line(line) for line in log.split(b"\n")[:-1]]


def governance_summary(records: Iterable[Record]) -> dict[str, Any]:
    """What governance did over the run, from its step records: steps, transitions by
    action, each group's last phase, and the step a Finish ended the run at (if any)."""
    steps, actions, phases, finished = 0, Counter(), {}, None
    for record in records:
        if record.kind != "step":
            continue
        steps += 1
        for t in record.body.get("transitions", []):
            actions[t.get("action")] += 1
            if t.get("action") == "Finish":
                finished = record.body.get("step")
        phases = {
            g: s.get("phase") for g, s in record.body.get("state", {}).get("groups", {}).items()
        }
    return {
        "steps": steps,
        "transitions": dict(sorted(actions.items())),
        "final_phases": phases,
        "finished_at": finished,
    }


def provenance_statement(
    records: list[Record], report: VerifyReport, log_sha256: str
) -> dict[str, Any]:
    """The in-toto Statement v1 / SLSA provenance v1 for a verified run."""
    start = records[0].body
    code = start.get("code", {})
    dependencies: list[dict[str, Any]] = [
        {"name": entry["path"], "digest": {"sha256": entry["sha256"]}}
        for entry in start.get("data", [])
    ]
    model = start.get("model", {})
    initial = str(model.get("init_params_digest", ""))
    if initial.startswith("sha256:"):  # the base model's weights (or the seeded init)
        dependencies.append(
            {
                "name": "initial-weights",
                "digest": {"sha256": initial.removeprefix("sha256:")},
                "annotations": {"structure_digest": model.get("structure_digest")},
            }
        )
    summary = canonical_json(governance_summary(records))
    if code.get("git_commit", UNKNOWN) != UNKNOWN:
        dependencies.insert(
            0,
            {
                "name": "source",
                "digest": {"gitCommit": code["git_commit"]},
                "annotations": {"dirty": code.get("dirty")},
            },
        )
    subjects = [
        {"name": path, "digest": {"sha256": digest}}
        for path, digest in recorded_artifacts(records).items()
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "config": start.get("config"),
                    "config_sha256": start.get("config_sha256"),
                    "seed": start.get("seed"),
                },
                "internalParameters": {
                    "code": code,
                    "python": start.get("python"),
                    "packages": start.get("packages"),
                    "model": start.get("model"),
                    "distributed": start.get("distributed", {"world_size": 1}),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID},
                "metadata": {
                    "invocationId": start.get("run_id"),
                    "startedOn": start.get("created"),
                },
                "byproducts": [
                    {
                        "name": LOG_FILE,
                        "digest": {"sha256": log_sha256},
                        "annotations": {
                            "tree_size": report.records,
                            "merkle_root": report.root.hex(),
                            "closed": report.closed,
                            "key": report.key.vkey,
                            "checkpoint": report.last_note,
                        },
                    },
                    {
                        "name": "governance-summary.json",
                        "mediaType": "application/json",
                        "digest": {"sha256": hashlib.sha256(summary).hexdigest()},
                        "content": base64.b64encode(summary).decode(),
                    },
                ],
            },
        },
    }


def export_provenance(run_dir: Path, signer: Signer) -> tuple[dict[str, Any], VerifyReport]:
    """Verify the run against the signer's key; its signed provenance envelope and the report."""
    log, notes = read_run(run_dir)
    report = verify_bytes(log, notes, pubkey=signer.verifier, latest=read_latest(run_dir))
    statement = provenance_statement(records_of(log), report, hashlib.sha256(log).hexdigest())
    return sign_envelope(canonical_json(statement), INTOTO_PAYLOAD_TYPE, signer), report


def statement_key(envelope: Mapping[str, Any]) -> VerifierKey:
    """The key an envelope's own statement names (unauthenticated: a hint, not a trust root)."""
    try:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        log = statement["predicate"]["runDetails"]["byproducts"][0]
        return load_verifier_key(log["annotations"]["key"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise AuditError("the envelope names no key; pass --pubkey") from exc


def check_provenance(
    envelope: Mapping[str, Any], key: VerifierKey, run_dir: Path | None = None
) -> dict[str, Any]:
    """The statement of a provenance envelope signed by `key`, checked for its types and,
    with `run_dir`, against that run: the log verifies with `key`, its first `tree_size`
    records have the stated Merkle root (a run that went on since still matches), the
    config and seed are run_start's, and every subject file has the stated SHA-256."""
    payload_type, payload = open_envelope(envelope, key)
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise AuditError(f"payload type {payload_type!r} is not {INTOTO_PAYLOAD_TYPE!r}")
    try:
        statement = json.loads(payload)
        predicate = statement["predicate"]
        log = predicate["runDetails"]["byproducts"][0]["annotations"]
        size, root = log["tree_size"], log["merkle_root"]
        subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
        if not all(
            isinstance(name, str) and name and "\0" not in name and isinstance(digest, str)
            for name, digest in subjects.items()
        ):
            raise ValueError("a subject's name and sha256 must be non-empty strings")
        external = predicate["buildDefinition"]["externalParameters"]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise AuditError(f"not a govtrain provenance statement ({exc!r})") from exc
    if (statement.get("_type"), statement.get("predicateType")) != (
        STATEMENT_TYPE,
        SLSA_PREDICATE_TYPE,
    ):
        raise AuditError(f"not an in-toto {STATEMENT_TYPE} with an SLSA v1 predicate")
    if run_dir is None:
        return statement
    log_bytes, notes = read_run(run_dir)
    report = verify_bytes(log_bytes, notes, pubkey=key, latest=read_latest(run_dir))
    if type(size) is not int or not 0 < size <= report.records:
        raise AuditError(f"the statement is for tree size {size}; the log holds {report.records}")
    lines = log_bytes.split(b"\n")[:size]
    actual = MerkleTree(leaf_hash(line) for line in lines).root(size).hex()
    if actual != root:
        raise AuditError(f"the log's first {size} records have root {actual}, the statement {root}")
    start = Record.from_line(lines[0]).body
    for name in ("config", "seed"):
        if canonical_json(start.get(name)) != canonical_json(external.get(name)):
            raise AuditError(f"the statement's {name} is not the one run_start commits to")
    check_artifacts(run_dir, subjects, source="the statement says")
    return statement
