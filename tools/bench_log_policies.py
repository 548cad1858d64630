"""Audit log: append throughput per fsync policy, and Merkle proofs at a million records.

* append: records/s through `AuditLog.append` under each `FsyncPolicy`
  (`always`: fsync every record; `every_n`: every 100; `checkpoint`: only at
  the signed checkpoint every 1,000 records, the default), side by side on
  the same step-shaped records;
* proofs: a `MerkleTree` of 10^6 leaves; time to build it, and per proof the
  time to generate and to check an RFC 9162 inclusion proof (random leaves) and
  a consistency proof (random old sizes) against the full tree's root.

    python -m tools.bench_log_policies            # from the repository root; 10^6 leaves
    python -m tools.bench_log_policies --quick    # smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from tools.bench_audit import step_body

GROUPS = ["embed", "block0", "block1", "final_norm", "block2", "block3"]


def append_rate(policy: FsyncPolicy, count: int) -> float:
    rng = random.Random(0)
    bodies = [step_body(rng, i, GROUPS) for i in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog.create(
            Path(tmp),
            signer=generate_signer(),
            run_start={"bench": True},
            fsync=policy,
            fsync_every=100,
        )
        start = time.perf_counter()
        for body in bodies:
            log.append("step", body)
        elapsed = time.perf_counter() - start
        log.close()
    return count / elapsed


def proofs(leaves: int, samples: int) -> dict[str, float]:
    rng = random.Random(1)
    start = time.perf_counter()
    tree = MerkleTree(leaf_hash(i.to_bytes(8, "big")) for i in range(leaves))
    built = time.perf_counter() - start
    root = tree.root()
    gen = check = 0.0
    for _ in range(samples):
        index = rng.randrange(leaves)
        t0 = time.perf_counter()
        path = tree.inclusion_proof(index, leaves)
        t1 = time.perf_counter()
        verify_inclusion(leaf_hash(index.to_bytes(8, "big")), index, leaves, path, root)
        gen, check = gen + t1 - t0, check + time.perf_counter() - t1
    cgen = ccheck = 0.0
    for _ in range(samples):
        old = rng.randrange(1, leaves)
        t0 = time.perf_counter()
        path = tree.consistency_proof(old, leaves)
        old_root = tree.root(old)
        t1 = time.perf_counter()
        verify_consistency(old, leaves, old_root, root, path)
        cgen, ccheck = cgen + t1 - t0, ccheck + time.perf_counter() - t1
    return {
        "leaves": leaves,
        "build_s": built,
        "inclusion_generate_us": gen / samples * 1e6,
        "inclusion_check_us": check / samples * 1e6,
        "consistency_generate_us": cgen / samples * 1e6,
        "consistency_check_us": ccheck / samples * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    counts = {FsyncPolicy.ALWAYS: 200, FsyncPolicy.EVERY_N: 2000, FsyncPolicy.CHECKPOINT: 2000}
    if not args.quick:
        counts = {
            FsyncPolicy.ALWAYS: 2000,
            FsyncPolicy.EVERY_N: 20000,
            FsyncPolicy.CHECKPOINT: 20000,
        }
    rates = {p.value: append_rate(p, n) for p, n in counts.items()}
    for policy, rate in rates.items():
        print(
            f"append, fsync={policy:10s} {rate:10,.0f} records/s  "
            f"({rate / rates['checkpoint']:.3f}x the default)"
        )
    result = proofs(10_000 if args.quick else 1_000_000, 200 if args.quick else 1000)
    print(f"Merkle tree of {result['leaves']:,} leaves built in {result['build_s']:.1f} s")
    for kind in ("inclusion", "consistency"):
        print(
            f"{kind:11s} proof: generate {result[kind + '_generate_us']:.0f} µs, "
            f"check {result[kind + '_check_us']:.0f} µs"
        )
    print(json.dumps({"append_records_per_s": rates, "proofs": result}))


if __name__ == "__main__":
    main()
