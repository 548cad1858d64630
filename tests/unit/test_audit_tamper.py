"""Attack a closed 500-record log with random tamperings: every one must be detected.

The attacker can edit both files freely but has no private key. Verification uses the
true public key as the trust anchor (`--pubkey`). "Detected" means verification fails
(any VerificationError, a torn tail included), except for tamperings confined to the
unsigned end of the log, where the strongest possible verdict is "not closed": those
are listed in `MAY_ONLY_UNSEAL`. Nothing else may escape the verifier (no IndexError,
no UnicodeDecodeError): a crash would be a bug too. Dropping an intermediate note on
its own is not in the list: it changes nothing a verifier relies on, since the final
checkpoint still covers every record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govtrain.audit.errors import VerificationError
from govtrain.audit.keys import Signer, VerifierKey, generate_signer
from govtrain.audit.log import key_commitment
from govtrain.audit.notes import split_notes
from govtrain.audit.records import Record
from govtrain.audit.verify import read_run, verify_bytes
from tests.audit_support import join, make_run, rechain, sign_sizes
from tests.conftest import examples

RECORDS, EVERY = 500, 50
SIZES = [1, *range(EVERY, RECORDS + 1, EVERY)]


@dataclass(frozen=True)
class Log:
    lines: list[bytes]
    notes: bytes
    key: VerifierKey
    attacker: Signer

    @property
    def log(self) -> bytes:
        return join(self.lines)


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Log:
    run = tmp_path_factory.mktemp("target")
    signer = make_run(run, RECORDS, checkpoint_every=EVERY)
    log, notes = read_run(run)
    lines = log.split(b"\n")[:-1]
    assert len(lines) == RECORDS and len(split_notes(notes)[0]) == len(SIZES)
    assert verify_bytes(log, notes, pubkey=signer.verifier).closed
    return Log(lines, notes, signer.verifier, generate_signer(signer.name))


Tamper = Callable[[Log, random.Random], tuple[bytes, bytes]]


def flip_log_byte(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    data = bytearray(t.log)
    data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
    return bytes(data), t.notes


def flip_note_byte(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    data = bytearray(t.notes)
    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return t.log, bytes(data)


def delete_records(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randrange(len(t.lines))
    return join(t.lines[:i] + t.lines[i + rng.randint(1, 5) :]), t.notes


def duplicate_record(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randrange(len(t.lines))
    return join([*t.lines[: i + 1], t.lines[i], *t.lines[i + 1 :]]), t.notes


def swap_records(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i, j = sorted(rng.sample(range(len(t.lines)), 2))
    lines = list(t.lines)
    lines[i], lines[j] = lines[j], lines[i]
    return join(lines), t.notes


def forged(t: Log, rng: random.Random, seq: int) -> bytes:
    prev = Record.from_line(t.lines[seq - 1]).hash if 0 < seq <= len(t.lines) else "00" * 32
    return Record.build(
        seq, "step", prev, {"step": rng.randrange(10**6), "loss": rng.random()}
    ).line


def insert_record(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randint(1, len(t.lines) - 1)
    return join([*t.lines[:i], forged(t, rng, i), *t.lines[i:]]), t.notes


def insert_and_rechain(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randint(1, len(t.lines) - 1)
    return join(rechain([*t.lines[:i], forged(t, rng, i), *t.lines[i:]], i)), t.notes


def modify_and_rechain(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randint(1, len(t.lines) - 1)
    lines = list(t.lines)
    old = Record.from_line(lines[i])
    lines[i] = Record.build(i, old.kind, old.prev, {**old.body, "forged": rng.random()}).line
    return join(rechain(lines, i)), t.notes


def delete_and_rechain(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    i = rng.randint(1, len(t.lines) - 1)
    return join(rechain(t.lines[:i] + t.lines[i + 1 :], i)), t.notes


def truncate(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    return join(t.lines[: rng.randint(1, len(t.lines) - 1)]), t.notes


def truncate_with_its_notes(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    """A rollback: cut records and the notes that cover them (only an outside anchor sees it)."""
    keep = rng.randint(1, len(t.lines) - 1)
    texts, _ = split_notes(t.notes)
    kept = [text for size, text in zip(SIZES, texts, strict=True) if size <= keep]
    return join(t.lines[:keep]), "".join(kept).encode()


def append_rechained(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    extra = [forged(t, rng, len(t.lines))]
    for _ in range(rng.randint(0, 3)):
        extra.append(
            forged(
                Log([*t.lines, *extra], t.notes, t.key, t.attacker), rng, len(t.lines) + len(extra)
            )
        )
    return join([*t.lines, *extra]), t.notes


def drop_last_note(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    texts, _ = split_notes(t.notes)
    return t.log, "".join(texts[: -rng.randint(1, 3)]).encode()


def drop_inner_note_and_last(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    texts, _ = split_notes(t.notes)
    drop = rng.randrange(len(texts) - 1)
    return t.log, "".join(texts[:drop] + texts[drop + 1 : -1]).encode()


def alter_checkpoint(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    texts, _ = split_notes(t.notes)
    i = rng.randrange(len(texts))
    origin, size, rest = texts[i].split("\n", 2)
    texts[i] = "\n".join([origin, str(int(size) + rng.choice([-1, 1, EVERY])), rest])
    return t.log, "".join(texts).encode()


def alter_signature(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    texts, _ = split_notes(t.notes)
    i = rng.randrange(len(texts))
    head, sig = texts[i].rsplit(" ", 1)
    pos = rng.randrange(len(sig) - 2)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    texts[i] = f"{head} {sig[:pos]}{rng.choice(alphabet.replace(sig[pos], ''))}{sig[pos + 1 :]}"
    return t.log, "".join(texts).encode()


def reorder_notes(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    texts, _ = split_notes(t.notes)
    i, j = rng.sample(range(len(texts)), 2)
    texts[i], texts[j] = texts[j], texts[i]
    return t.log, "".join(texts).encode()


def resign_with_another_key(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    lines = t.lines
    if rng.random() < 0.5:  # and change a record first, which the new notes then cover
        lines = rechain([*lines[:5], forged(t, rng, 5), *lines[6:]], 5)
    return join(lines), sign_sizes(lines, SIZES, t.attacker)


def rewrite_with_another_key(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    start = Record.from_line(t.lines[0])
    body = {**start.body, "key": key_commitment(t.attacker.verifier)}
    lines = [Record.build(0, "run_start", start.prev, body).line, *t.lines[1:]]
    if rng.random() < 0.5:
        lines[7] = forged(t, rng, 7)
    lines = rechain(lines)
    return join(lines), sign_sizes(lines, SIZES, t.attacker)


def tear_mid_record(t: Log, rng: random.Random) -> tuple[bytes, bytes]:
    log = t.log
    return log[: rng.randrange(1, len(log) - 1)], t.notes


TAMPERS: list[Tamper] = [
    flip_log_byte,
    flip_note_byte,
    delete_records,
    duplicate_record,
    swap_records,
    insert_record,
    insert_and_rechain,
    modify_and_rechain,
    delete_and_rechain,
    truncate,
    truncate_with_its_notes,
    append_rechained,
    drop_last_note,
    drop_inner_note_and_last,
    alter_checkpoint,
    alter_signature,
    reorder_notes,
    resign_with_another_key,
    rewrite_with_another_key,
    tear_mid_record,
]
MAY_ONLY_UNSEAL = {
    truncate_with_its_notes,
    append_rechained,
    drop_last_note,
    drop_inner_note_and_last,
}


def check_detected(t: Log, tamper: Tamper, seed: int) -> None:
    log, notes = tamper(t, random.Random(seed))
    assert (log, notes) != (t.log, t.notes), "a tampering must change something"
    try:
        report = verify_bytes(log, notes, pubkey=t.key)
    except VerificationError:
        return
    assert tamper in MAY_ONLY_UNSEAL, (
        f"{tamper.__name__} (seed {seed}) verified: {report.summary()}"
    )
    assert not report.closed, f"{tamper.__name__} (seed {seed}) verified as closed"


@settings(max_examples=examples(1000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tamper=st.sampled_from(TAMPERS), seed=st.integers(0, 2**32 - 1))
def test_every_random_tampering_is_detected(target: Log, tamper: Tamper, seed: int) -> None:
    check_detected(target, tamper, seed)


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda f: f.__name__)
def test_each_kind_of_tampering_is_detected(target: Log, tamper: Tamper) -> None:
    for seed in range(10):
        check_detected(target, tamper, seed)
