"""Fuzz targets, bounded and derandomized so CI is deterministic and quick: the proof
parsers and the config loader take any input and either accept it or refuse it with the
project's own one-line error, never another exception, and an altered valid proof never
passes."""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from govtrain.audit.errors import AuditError
from govtrain.audit.keys import VerifierKey
from govtrain.audit.proofs import (
    CONSISTENCY_FORMAT,
    PROOF_FORMAT,
    TLOG_PROOF_HEADER,
    check_consistency,
    check_proof,
    check_tlog_proof,
    parse_proof,
)
from govtrain.audit.verify import NOTES_FILE
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.config import RunConfig, load_config
from govtrain.resources import config_path
from tests.conftest import examples
from tests.unit.test_proof_parsing import Proofs, valid_proofs

FUZZ = settings(
    max_examples=examples(200),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TEXT = st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1"))
Fuzzed = tuple[Proofs, str, VerifierKey]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    """Valid proofs, the run's checkpoints.note text and its key."""
    proofs = valid_proofs(tmp_path_factory.mktemp("fuzz"))
    notes = (proofs.run / NOTES_FILE).read_text()
    return proofs, notes, VerifierKey.parse((proofs.run / "keys/audit.pub").read_text())


def passes_json(text: str, notes: str, key: VerifierKey) -> dict[str, Any] | None:
    """The bundle check-proof accepts in `text`, or None when it refuses it with one line."""
    try:
        bundle = parse_proof(text)
        if bundle["format"] == CONSISTENCY_FORMAT:
            check_consistency(bundle, notes, key)
        else:
            check_proof(bundle, notes, key)
    except AuditError as exc:
        assert "\n" not in str(exc)
        return None
    return bundle


def passes_tlog(text: str, key: VerifierKey) -> bool:
    """Whether check-proof accepts the tlog-proof `text`; False when it refuses it with one line."""
    try:
        check_tlog_proof(text, key)
    except AuditError as exc:
        assert "\n" not in str(exc)
        return False
    return True


@FUZZ
@given(text=TEXT)
def test_any_text_is_refused_by_both_proof_parsers(fuzzed: Fuzzed, text: str) -> None:
    _, notes, key = fuzzed
    for json_text in (text, "{" + text, f'{{"format": "{PROOF_FORMAT}", ' + text):
        assert passes_json(json_text, notes, key) is None
    for tlog_text in (text, f"{TLOG_PROOF_HEADER}\n{text}", f"{TLOG_PROOF_HEADER}\nextra {text}"):
        assert not passes_tlog(tlog_text, key)


EDITS = st.text(max_size=2)
B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"


def nearby(value: Any) -> st.SearchStrategy:
    """Values close to a valid field's: integers a step away, text one character off or in
    capitals (the same hex), the audit path reordered or cut."""
    if type(value) is int:
        return st.integers(max(0, value - 2), value + 2)
    if type(value) is list:
        return st.permutations(value) | st.lists(st.sampled_from(value or [""]), max_size=6)
    # lone surrogates too: JSON spells them "\\ud800", UTF-8 has none
    other = EDITS | st.characters(categories=["Cs"])
    edited = st.tuples(st.integers(0, len(value)), other, st.integers(0, 2)).map(
        lambda edit: value[: edit[0]] + edit[1] + value[edit[0] + edit[2] :]
    )
    return edited | st.just(value.upper())


@FUZZ
@given(data=st.data())
def test_an_altered_json_proof_never_passes(fuzzed: Fuzzed, data: st.DataObject) -> None:
    """Fields replaced by near misses or other JSON, fields added: only the valid bundle
    itself passes."""
    proofs, notes, key = fuzzed
    bundle = data.draw(st.sampled_from([proofs.inclusion, proofs.consistency]))
    altered = dict(bundle)
    for name in data.draw(st.sets(st.sampled_from(sorted(bundle)), max_size=3), label="fields"):
        altered[name] = data.draw(nearby(bundle[name]) | JSON, label=name)
    altered |= data.draw(st.dictionaries(st.text(max_size=8), JSON, max_size=1), label="extra")
    text = json.dumps(altered, indent=data.draw(st.sampled_from([None, 2])))  # NaN as written
    accepted = passes_json(text, notes, key)
    assert accepted is None or accepted == bundle


def _mutated(text: str, data: st.DataObject) -> str:
    """`text` with one short span replaced, or one bit of a base64 character flipped
    (counted from its line's end, where base64 keeps its spare bits)."""
    lines = text.split("\n")
    n = data.draw(st.integers(0, len(lines) - 1), label="line")
    line = lines[n]
    if data.draw(st.booleans(), label="flip") and line:
        i = len(line) - data.draw(st.integers(1, len(line)), label="from end")
        assume(line[i] in B64)
        bit = data.draw(st.integers(0, 5), label="bit")
        lines[n] = line[:i] + B64[B64.index(line[i]) ^ (1 << bit)] + line[i + 1 :]
    else:
        start = data.draw(st.integers(0, len(line)), label="start")
        end = data.draw(st.integers(start, min(start + 3, len(line))), label="end")
        other = data.draw(EDITS | st.sampled_from(["\n", " ", "\\", '"', "0", "=", "\\ud800"]))
        lines[n] = line[:start] + other + line[end:]
    mutated = "\n".join(lines)
    assume(mutated != text)
    return mutated


@FUZZ
@given(data=st.data())
def test_a_valid_proof_with_a_character_changed_never_passes(
    fuzzed: Fuzzed, data: st.DataObject
) -> None:
    """A JSON proof may pass with its layout changed (whitespace), never its content; a
    tlog-proof passes only as it was written."""
    proofs, notes, key = fuzzed
    bundle = data.draw(st.sampled_from([proofs.inclusion, proofs.consistency]))
    accepted = passes_json(_mutated(json.dumps(bundle, indent=2), data), notes, key)
    assert accepted is None or accepted == bundle
    assert not passes_tlog(_mutated(proofs.tlog, data), key)


# The config loader: any YAML document and any FIELD=VALUE overrides load or are refused
# with one ConfigError line.

YAML_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=16,
)
SMOKE_TEXT = config_path("smoke.yaml").read_text()
SMOKE = yaml.safe_load(SMOKE_TEXT)
# a load parses YAML in pure Python: ~10 ms
CONFIG_FUZZ = settings(FUZZ, max_examples=examples(100))


def _leaf_fields(data: Any, prefix: str = "") -> list[str]:
    """The dotted FIELD names of a config's values, as overrides spell them."""
    if isinstance(data, dict | list):
        items = data.items() if isinstance(data, dict) else enumerate(data)
        return [f for k, v in items for f in _leaf_fields(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def loads_or_one_line(path: Path, overrides: Sequence[str] = ()) -> None:
    """Load PATH with `overrides`: a RunConfig, or a GovtrainError of one line."""
    try:
        assert isinstance(load_config(path, overrides), RunConfig)
    except GovtrainError as exc:
        assert "\n" not in str(exc), str(exc)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config") / "config.yaml"


@CONFIG_FUZZ
@given(document=YAML_DATA.map(yaml.safe_dump) | st.text(max_size=300))
def test_any_yaml_document_is_a_config_or_one_error(config_file: Path, document: str) -> None:
    config_file.write_text(document)
    loads_or_one_line(config_file)


@CONFIG_FUZZ
@given(data=st.data())
def test_any_override_of_a_valid_config_loads_or_is_one_error(
    config_file: Path, data: st.DataObject
) -> None:
    """The smoke config with its fields overridden by fuzzed values, or sections of it
    replaced by fuzzed YAML data."""
    config = dict(SMOKE)
    for section in data.draw(st.lists(st.sampled_from(sorted(SMOKE)), max_size=2)):
        config[section] = data.draw(YAML_DATA, label=section)
    config_file.write_text(yaml.safe_dump(config))
    field = st.sampled_from(_leaf_fields(SMOKE)) | st.text(max_size=12)
    value = (
        st.text(max_size=20)
        | SCALARS.map(str)
        | YAML_DATA.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip())
    )
    overrides = data.draw(st.lists(st.builds("{}={}".format, field, value), max_size=3))
    loads_or_one_line(config_file, overrides)


@pytest.mark.parametrize(
    "document",
    [
        "name: deep\ngovernance: " + "[" * 5000 + "]" * 5000,
        "name: deep\ngovernance: " + "{a: " * 5000 + "1" + "}" * 5000,
        SMOKE_TEXT.replace("seed: 3", "seed: " + "9" * 5000),
        SMOKE_TEXT.replace("source: synthetic", 'source: text, path: "corpus\\0.txt"'),
    ],
    ids=["5000-nested-lists", "5000-nested-maps", "5000-digit-seed", "nul-in-data-path"],
)
def test_a_config_past_what_the_loader_takes_is_one_error(config_file: Path, document: str) -> None:
    """What the fuzzing above found, or could: each was a traceback, not a ConfigError."""
    config_file.write_text(document)
    with pytest.raises(GovtrainError) as refused:
        load_config(config_file)
    assert "\n" not in str(refused.value)
