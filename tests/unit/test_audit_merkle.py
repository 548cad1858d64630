"""Merkle trees: roots and proofs against an independent transcription of the RFC 9162
definitions for every tree size 1..64, the Certificate Transparency test vectors, and
rejection of every corruption of a proof."""

from __future__ import annotations

import hashlib
import os
from functools import cache

import pytest

from govtrain.audit.errors import ProofError
from govtrain.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

MAX = 64
# Certificate Transparency's reference leaves and roots for sizes 0..8 (RFC 6962 test data).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
DATA = [f"record {i}".encode() for i in range(MAX)]


# --- the RFC, transcribed literally (recursive, on the data, no shared code) ---------


def rfc_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return rfc_hash(b"")
    if n == 1:
        return rfc_hash(b"\x00" + d[0])
    k = rfc_k(n)
    return rfc_hash(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:]))


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = rfc_k(n)
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = rfc_k(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


@cache
def ref_root(n: int) -> bytes:
    return rfc_mth(DATA[:n])


@cache
def ref_path(m: int, n: int) -> tuple[bytes, ...]:
    return tuple(rfc_path(m, DATA[:n]))


@cache
def ref_proof(m: int, n: int) -> tuple[bytes, ...]:
    return tuple(rfc_subproof(m, DATA[:n], True)) if 0 < m < n else ()


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    return MerkleTree(leaf_hash(d) for d in DATA)


def flips(nodes: list[bytes]):
    """Every single-bit corruption of every node."""
    for i, node in enumerate(nodes):
        for bit in range(len(node) * 8):
            corrupt = bytearray(node)
            corrupt[bit // 8] ^= 1 << (bit % 8)
            yield [*nodes[:i], bytes(corrupt), *nodes[i + 1 :]]


# --- roots ----------------------------------------------------------------------------


def test_certificate_transparency_roots() -> None:
    leaves = [leaf_hash(d) for d in CT_LEAVES]
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    for n in range(len(CT_LEAVES) + 1):
        assert root_of(leaves[:n]).hex() == CT_ROOTS[n]
        assert MerkleTree(leaves).root(n).hex() == CT_ROOTS[n]


def test_roots_match_the_rfc_for_every_size(tree: MerkleTree) -> None:
    compact = CompactRange()
    for n in range(1, MAX + 1):
        compact.append(leaf_hash(DATA[n - 1]))
        assert tree.root(n) == ref_root(n) == compact.root()


def test_tree_sizes_outside_the_tree_are_refused(tree: MerkleTree) -> None:
    for bad in (-1, MAX + 1):
        with pytest.raises(ProofError):
            tree.root(bad)


# --- inclusion -------------------------------------------------------------------------


def test_inclusion_proofs_match_the_rfc_and_verify(tree: MerkleTree) -> None:
    for n in range(1, MAX + 1):
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert tuple(proof) == ref_path(m, n)
            verify_inclusion(leaf_hash(DATA[m]), m, n, proof, ref_root(n))


def true_root(n: int) -> bytes:
    return ref_root(n) if 0 < n <= MAX else EMPTY_ROOT


def inclusion_rejected(leaf: bytes, m: int, n: int, proof: list[bytes]) -> bool:
    """Whether verification against the true root of size n fails."""
    try:
        verify_inclusion(leaf, m, n, proof, true_root(n))
    except ProofError:
        return True
    return False


def flip_cases(first: int):
    """(m, n) pairs whose proofs get every bit flipped: all of them under GOVTRAIN_SLOW=1,
    else every pair up to size 16 and five leaves of a few larger, ragged sizes."""
    for n in range(first, MAX + 1):
        if os.environ.get("GOVTRAIN_SLOW") or n <= 16:
            yield from ((m, n) for m in range(first - 1, n))
        elif n in (31, 32, 33, 63, 64):
            yield from ((m, n) for m in sorted({first - 1, first, n // 2, n - 2, n - 1}))


@pytest.mark.slow
def test_every_bit_flip_of_an_inclusion_proof_is_rejected(tree: MerkleTree) -> None:
    for m, n in flip_cases(1):
        proof = tree.inclusion_proof(m, n)
        leaf = leaf_hash(DATA[m])
        assert all(inclusion_rejected(leaf, m, n, bad) for bad in flips(proof))
        assert all(inclusion_rejected(bad[0], m, n, proof) for bad in flips([leaf]))


def test_wrong_index_size_extra_or_missing_node_is_rejected(tree: MerkleTree) -> None:
    for n in range(1, MAX + 1):
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            leaf = leaf_hash(DATA[m])
            for other_m, other_n in ((m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (m, 2 * n)):
                assert inclusion_rejected(leaf, other_m, other_n, proof)
            assert inclusion_rejected(leaf, m, n, [*proof, proof[-1] if proof else leaf])
            assert inclusion_rejected(leaf, m, n, [*proof, EMPTY_ROOT])
            for i in range(len(proof)):
                assert inclusion_rejected(leaf, m, n, proof[:i] + proof[i + 1 :])


def test_inclusion_proof_of_a_short_hash_is_rejected() -> None:
    with pytest.raises(ProofError, match="not 32"):
        verify_inclusion(leaf_hash(DATA[0]), 0, 2, [b"short"], ref_root(2))


# --- consistency -----------------------------------------------------------------------


def test_consistency_proofs_match_the_rfc_and_verify(tree: MerkleTree) -> None:
    for n in range(1, MAX + 1):
        for m in range(0, n + 1):
            proof = tree.consistency_proof(m, n)
            assert tuple(proof) == ref_proof(m, n)
            old_root = ref_root(m) if m else EMPTY_ROOT
            verify_consistency(m, n, old_root, ref_root(n), proof)


def consistency_rejected(m: int, n: int, proof: list[bytes], old: bytes | None = None) -> bool:
    try:
        verify_consistency(m, n, true_root(m) if old is None else old, true_root(n), proof)
    except ProofError:
        return True
    return False


@pytest.mark.slow
def test_every_bit_flip_of_a_consistency_proof_is_rejected(tree: MerkleTree) -> None:
    for m, n in flip_cases(2):
        proof = tree.consistency_proof(m, n)
        assert all(consistency_rejected(m, n, bad) for bad in flips(proof))
        assert all(consistency_rejected(m, n, proof, bad[0]) for bad in flips([ref_root(m)]))


def test_consistency_with_wrong_sizes_or_nodes_is_rejected(tree: MerkleTree) -> None:
    for n in range(2, MAX + 1):
        for m in range(1, n):
            proof = tree.consistency_proof(m, n)
            for other_m, other_n in ((m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1)):
                assert consistency_rejected(other_m, other_n, proof)
            assert consistency_rejected(m, n, [*proof, proof[-1]])
            for i in range(len(proof)):
                assert consistency_rejected(m, n, proof[:i] + proof[i + 1 :])


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, ref_root(5), [])
    verify_consistency(5, 5, ref_root(5), ref_root(5), [])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, ref_root(5), ref_root(5), [ref_root(1)])
    with pytest.raises(ProofError):
        verify_consistency(5, 5, ref_root(4), ref_root(5), [])
    with pytest.raises(ProofError):
        verify_consistency(0, 5, EMPTY_ROOT, ref_root(5), [ref_root(1)])
    with pytest.raises(ProofError):
        verify_consistency(6, 5, ref_root(5), ref_root(5), [])
    with pytest.raises(ProofError):
        verify_consistency(3, 5, ref_root(3), ref_root(5), [])
