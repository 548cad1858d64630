"""Records: the fast canonical encoder must agree with rfc8785 byte for byte, and the
line checker must accept exactly the canonical lines."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from govtrain.audit.errors import NonCanonicalError, RecordError
from govtrain.audit.records import (
    FLOAT_TAG,
    GENESIS_PREV,
    Record,
    canonical_json,
    encode_record,
    parse_line,
)
from tests.conftest import examples

PREV = "ab" * 32
SAFE = 2**53 - 1

special_keys = st.sampled_from(["\ue000", "\U0001f600", "é", "a\nb", '"', "\\"])
keys = (st.text(max_size=6) | special_keys).filter(lambda key: key != FLOAT_TAG)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e-7, 1e-5, 9.9e-5, 1e-4, 5e-4, 1e15, 1e16, 1e20, 1e21, 2.0, -0.0, 0.1, 5e-324, 1.5e300]
)
scalars = st.none() | st.booleans() | st.integers(-SAFE, SAFE) | finite | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
any_floats = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf])
with_nonfinite = st.recursive(
    any_floats | st.integers(-SAFE, SAFE) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)


def same(a: object, b: object) -> bool:
    """Equality where NaN equals NaN and numbers compare by value."""
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


@settings(max_examples=examples(400), deadline=None)
@given(json_values)
def test_fast_canonical_json_equals_rfc8785(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"x": 2.0, "s": "a.0,b"},
        {"x": [0.0, -0.0, 1e15, 123.0], "y": {"z": 5.0}},
        {"s": "1.0}", "t": "v1.0"},
        {"signal": 0.0, "need": 0.0, "lr": 0.003},
        0.0,
        [1.0],
        {"k": (1.0, 2)},
    ],
)
def test_integral_floats_are_patched_without_touching_strings(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(keys, json_values, max_size=5))
def test_every_encoded_record_is_accepted_and_round_trips(body: dict) -> None:
    line = encode_record(7, "step", PREV, body)
    record = Record.from_line(line)
    assert (record.seq, record.kind, record.prev) == (7, "step", PREV)
    assert canonical_json(record.body) == canonical_json(body)


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(keys, json_values, max_size=5), st.booleans(), st.booleans(), st.booleans())
def test_any_other_serialisation_is_rejected(
    body: dict, sort: bool, ascii_: bool, spaced: bool
) -> None:
    canonical = encode_record(3, "step", PREV, body)
    record = {"body": body, "kind": "step", "prev": PREV, "seq": 3}
    separators = (", ", ": ") if spaced else (",", ":")
    other = json.dumps(record, sort_keys=sort, ensure_ascii=ascii_, separators=separators).encode()
    if other == canonical:
        assert parse_line(other)["seq"] == 3
    else:
        with pytest.raises(NonCanonicalError):
            parse_line(other)


@settings(max_examples=examples(300), deadline=None)
@given(st.dictionaries(keys, with_nonfinite, max_size=4))
def test_non_finite_floats_round_trip(body: dict) -> None:
    line = encode_record(0, "step", PREV, body)
    json.loads(line, parse_constant=refuse)  # no bare NaN/Infinity: plain JSON everywhere
    assert same(body, Record.from_line(line).body)


def refuse(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_nan_loss_is_a_tagged_object() -> None:
    line = encode_record(1, "step", PREV, {"loss": math.nan, "x": [math.inf, -math.inf]})
    assert b'{"loss":{"$float":"NaN"},"x":[{"$float":"Infinity"},{"$float":"-Infinity"}]}' in line
    body = Record.from_line(line).body
    assert math.isnan(body["loss"]) and body["x"] == [math.inf, -math.inf]


def test_genesis_prev_is_the_documented_domain_hash() -> None:
    assert hashlib.sha256(b"govtrain.audit/v1 genesis").hexdigest() == GENESIS_PREV


@pytest.mark.parametrize(
    "body",
    [
        {"n": 2**53},
        {"n": -(2**53)},
        {1: "int key"},
        {"d": {True: 1}},
        {"d": {None: 1}},
        {"d": {1.5: 1}},
        {"x": 1, 2: "mixed keys"},
        {"$float": "NaN"},
        {"nested": [{"$float": 1}]},
        {"s": "\ud800"},
        {"set": {1, 2}},
        {"bytes": b"x"},
        {"obj": object()},
    ],
)
def test_unencodable_bodies_are_refused(body: dict) -> None:
    with pytest.raises(RecordError):
        canonical_json(body)


def test_cycles_are_refused() -> None:
    body: dict = {}
    body["self"] = body
    with pytest.raises(RecordError):
        canonical_json(body)


@pytest.mark.parametrize(
    ("seq", "kind", "prev", "body"),
    [
        (-1, "k", PREV, {}),
        (True, "k", PREV, {}),
        (0, "", PREV, {}),
        (0, "1x", PREV, {}),
        (0, "k", PREV.upper(), {}),
        (0, "k", "ab", {}),
        (0, "k", PREV, []),
    ],
)
def test_bad_record_fields_are_refused(
    seq: object, kind: object, prev: object, body: object
) -> None:
    with pytest.raises(RecordError):
        encode_record(seq, kind, prev, body)  # type: ignore[arg-type]


def line_of(body_json: str, seq: str = "0", kind: str = '"k"', prev: str | None = None) -> bytes:
    prev = prev or f'"{PREV}"'
    return f'{{"body":{body_json},"kind":{kind},"prev":{prev},"seq":{seq}}}'.encode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-7, '{"x":1e-7}'),
        (1e-5, '{"x":0.00001}'),
        (9.9e-5, '{"x":0.000099}'),
        (1e21, '{"x":1e+21}'),
        (1e16, '{"x":10000000000000000}'),
        (5e-4, '{"x":0.0005}'),
        (-0.5, '{"x":-0.5}'),
        ("1e-5 and 2.0 and 0.0000", '{"x":"1e-5 and 2.0 and 0.0000"}'),
        ({"\ue000": 1, "\U0001f600": 2}, '{"x":{"\U0001f600":2,"\ue000":1}}'),
    ],
)
def test_canonical_lines_that_take_the_slow_path_are_accepted(value: object, text: str) -> None:
    assert canonical_json({"x": value}) == text.encode()
    assert parse_line(line_of(text))["body"] == json.loads(text)


@pytest.mark.parametrize(
    "line",
    [
        line_of('{"x":2.0}'),
        line_of('{"x":1e-07}'),
        line_of('{"x":1E5}'),
        line_of('{"x":100000.0}'),
        line_of('{"x":-0}'),
        line_of('{"x":9007199254740993}'),
        line_of('{"x":NaN}'),
        line_of('{"x":"\\u0041"}'),
        line_of('{"x":"\\/"}'),
        line_of('{"x":1,"x":1}'),
        line_of('{"b":1,"a":2}'),
        line_of('{"\ue000":1,"\U0001f600":2}'),
        line_of('{"x": 1}'),
        line_of('{"x":"\\ud800"}'),
        line_of("{}") + b" ",
    ],
)
def test_non_canonical_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(NonCanonicalError):
        parse_line(line)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"\xef\xbb\xbf" + line_of("{}"),  # a byte order mark
        b"[]",
        line_of("{}")[:-1],
        line_of("{}", seq='"0"'),
        line_of("{}", seq="true"),
        line_of("{}", seq="-1"),
        line_of("{}", seq="1.5"),
        line_of("{}", kind='""'),
        line_of("{}", kind="1"),
        line_of("{}", prev='"AB"'),
        line_of("[]"),
        b'{"body":{},"extra":1,"kind":"k","prev":"' + PREV.encode() + b'","seq":0}',
        b'{"body":{},"kind":"k","seq":0}',
        line_of('{"x":{"$float":"nan"}}'),
        line_of('{"x":{"$float":"NaN","y":1}}'),
    ],
)
def test_malformed_lines_are_rejected(line: bytes) -> None:
    with pytest.raises(RecordError) as info:
        parse_line(line)
    assert type(info.value) is RecordError


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"[" * 100_000, "nests too deeply"),
        (
            b'{"body":'
            + b"[" * 5000
            + b"]" * 5000
            + b',"kind":"x","prev":"'
            + b"0" * 64
            + b'","seq":1}',
            "nests too deeply",
        ),
        (b'{"seq":' + b"9" * 5000 + b"}", "not JSON"),
    ],
)
def test_a_line_too_deep_or_too_long_is_a_record_error(line: bytes, why: str) -> None:
    """No RecursionError or int-conversion ValueError escapes: verify names the record."""
    with pytest.raises(RecordError, match=why):
        parse_line(line)
