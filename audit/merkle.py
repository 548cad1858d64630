"""RFC 6962 / RFC 9162 Merkle tree: roots, inclusion proofs and consistency proofs.

leaf = SHA-256(0x00 || record bytes), node = SHA-256(0x01 || left || right); the
empty tree hashes to SHA-256(""); a tree of n > 1 leaves splits at the largest power
of two below n, with no padding. Every function here takes and returns *leaf hashes*
and raw 32-byte digests, so the tree never needs the records themselves.

`CompactRange` keeps only the O(log n) perfect-subtree roots (enough for a writer and
a verifier); `MerkleTree` keeps every aligned subtree so proofs cost O(log n) lookups.
The verifiers follow RFC 9162 2.1.3.2 and 2.1.4.2 and raise `ProofError` saying which
check failed, instead of returning a bare False.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from govtrain.audit.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of one record's bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """Roots of the perfect subtrees covering leaves [0, size): append and root in O(log n)."""

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, merging completed subtrees."""
        node, n = leaf, self.size
        while n & 1:
            node = node_hash(self._stack.pop(), node)
            n >>= 1
        self._stack.append(node)
        self.size += 1

    def root(self) -> bytes:
        """Root of the tree of all leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def root_of(leaves: Iterable[bytes]) -> bytes:
    """Root of the tree over the given leaf hashes."""
    compact = CompactRange()
    for leaf in leaves:
        compact.append(leaf)
    return compact.root()


class MerkleTree:
    """Every aligned perfect subtree hash, so a root or proof at any size is O(log n)."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash and every perfect subtree it completes."""
        self._levels[0].append(leaf)
        index, level, node = self.size - 1, 0, leaf
        while index & 1:
            node = node_hash(self._levels[level][index - 1], node)
            level, index = level + 1, index >> 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(node)

    def _hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start < end <= size."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self._levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self._hash(start, start + k), self._hash(start + k, end))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside 0..{self.size}")

    def root(self, size: int | None = None) -> bytes:
        """Root of the first `size` leaves (all of them by default)."""
        size = self.size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._hash(0, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 2.1.3.1 PATH(index, D[0:size])."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf index {index} is outside a tree of size {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self._hash(start + k, end))
                end = start + k
            else:
                path.append(self._hash(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 2.1.4.1 PROOF(old_size, D[0:new_size]); empty when old is 0 or equal."""
        self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ProofError(f"old size {old_size} is outside 0..{new_size}")
        if old_size in (0, new_size):
            return []
        path: list[bytes] = []
        start, end, m, whole = 0, new_size, old_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                path.append(self._hash(start + k, end))
                end = start + k
            else:
                path.append(self._hash(start, start + k))
                start, m, whole = start + k, m - k, False
        if not whole:
            path.append(self._hash(start, end))
        path.reverse()
        return path


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(node)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` is leaf `index` of the tree (`size`, `root`) (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes(proof)
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes: too many for leaf {index} of {size}")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes: too few for leaf {index} of {size}")
    if node != root:
        raise ProofError(
            f"proof leads to root {node.hex()}, not {root.hex()} (leaf {index} of {size})"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (new_size, new_root) extends (old_size, old_root) (RFC 9162 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is outside 0..{new_size}")
    _check_hashes(proof)
    if old_size in (0, new_size):
        if proof:
            raise ProofError(f"a proof from size {old_size} to {new_size} must be empty")
        expected = EMPTY_ROOT if old_size == 0 else new_root
        if old_root != expected:
            raise ProofError(f"old root {old_root.hex()} is not {expected.hex()}")
        return
    if not proof:
        raise ProofError(f"empty proof from size {old_size} to {new_size}")
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes: too many for {old_size}->{new_size}")
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes: too few for {old_size}->{new_size}")
    if first != old_root:
        raise ProofError(f"proof leads to old root {first.hex()}, not {old_root.hex()}")
    if second != new_root:
        raise ProofError(f"proof leads to new root {second.hex()}, not {new_root.hex()}")
