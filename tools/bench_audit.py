"""Audit log throughput, measured side by side in one run.

    python tools/bench_audit.py [--quick] [--records N] [--groups 0,2,6] [--repeats R]

Records are shaped like the governed trainer's step records (G parameter groups:
decision, observations with some zero signals, routed digests, governor state); 0
groups gives a ~300-byte record, 6 groups a ~1.9 kB one like the quick-start run's.
For each size it prints, best of R repeats:

* append: records/s through `AuditLog.append` with the default fsync policy
  (``checkpoint``, a signed checkpoint every 1000 records), so no per-record fsync;
* canonical encoding: microseconds per record for `audit.records.canonical_json`
  against pure-Python ``rfc8785.dumps`` on the same bodies;
* verify: `verify_bytes` throughput as a ratio to raw ``hashlib.sha256`` over the same
  bytes, both as one call over the whole file and as one call per line, plus the same
  ratio for a naive checker that only re-canonicalises every line with ``rfc8785``,
  and for the hashing alone that no verifier can skip (chain link, Merkle leaf and
  node: the bytes are hashed twice, so this is below 0.5 by construction).

The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc8785

from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.merkle import CompactRange, leaf_hash
from govtrain.audit.records import canonical_json
from govtrain.audit.verify import read_run, verify_bytes

TARGET_APPEND_PER_S = 20_000
TARGET_VERIFY_RATIO = 0.5


def step_body(rng: random.Random, step: int, groups: list[str]) -> dict[str, Any]:
    """A body shaped like pipeline.governor's step record."""
    active = {g for g in groups if rng.random() < 0.6}
    digest = hashlib.sha256(str(step).encode()).hexdigest()

    def signal(g: str) -> float:
        return rng.random() if g in active else 0.0

    return {
        "step": step,
        "loss": rng.uniform(0.5, 4.0),
        "lr": 3e-3,
        "step_time_ms": round(rng.uniform(20, 90), 3),
        "routed": {g: {"digest": digest, "quota": 32 if g in active else 0} for g in groups},
        "observations": {g: {"signal": signal(g), "wake": 0, "need": signal(g)} for g in groups},
        "transitions": [],
        "state": {
            "active_level": 0,
            "clock": step,
            "groups": {
                g: {
                    "awakenings": 0,
                    "lows": rng.randrange(3),
                    "phase": "ACTIVE" if g in active else "DORMANT",
                    "seen_high": g in active,
                }
                for g in groups
            },
        },
        "decision": {
            "allocations": {g: 32 if g in active else 0 for g in groups},
            "quotas": {g: 32 if g in active else 0 for g in groups},
            "budget_action": "Allocate",
            "warmup": False,
        },
    }


def best(repeats: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """Fastest wall time of `repeats` runs (the least disturbed by the rest of the machine)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def append_all(bodies: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    """Append every body to a fresh log (default fsync policy); the log's bytes and notes."""
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog.create(
            Path(tmp),
            signer=generate_signer(),
            run_start={"bench": True},
            fsync=FsyncPolicy.CHECKPOINT,
        )
        for body in bodies:
            log.append("step", body)
        log.close()
        return read_run(Path(tmp))


def hash_work(lines: list[bytes]) -> bytes:
    """Only the hashing a verifier cannot skip: chain link, Merkle leaf and nodes per record."""
    frontier = CompactRange()
    for line in lines:
        hashlib.sha256(line).hexdigest()
        frontier.append(leaf_hash(line))
    return frontier.root()


def measure(count: int, group_count: int, repeats: int) -> dict[str, Any]:
    """Every number for one record shape, measured side by side."""
    rng = random.Random(group_count)
    names = ["embed", *(f"block{i}" for i in range(max(group_count - 2, 0))), "final_norm"]
    bodies = [step_body(rng, step, names[:group_count]) for step in range(count)]
    append_s, (data, notes) = best(repeats, lambda: append_all(bodies))
    sample = bodies[: min(count, 2_000)]
    fast_s, _ = best(repeats, lambda: [canonical_json(b) for b in sample])
    slow_s, _ = best(repeats, lambda: [rfc8785.dumps(b) for b in sample])
    lines = data.split(b"\n")[:-1]
    verify_s, report = best(repeats, lambda: verify_bytes(data, notes))
    assert report.closed and report.records == len(lines)
    sha_s, _ = best(repeats, lambda: hashlib.sha256(data).digest())
    sha_lines_s, _ = best(repeats, lambda: [hashlib.sha256(line).digest() for line in lines])
    naive_s, _ = best(repeats, lambda: [rfc8785.dumps(json.loads(line)) == line for line in lines])
    hashing_s, _ = best(repeats, lambda: hash_work(lines))
    return {
        "groups": group_count,
        "record_bytes": round(len(data) / len(lines)),
        "append_records_per_s": round(count / append_s),
        "canonical_json_us": round(fast_s / len(sample) * 1e6, 1),
        "rfc8785_dumps_us": round(slow_s / len(sample) * 1e6, 1),
        "verify_mb_per_s": round(len(data) / 1e6 / verify_s, 1),
        "verify_records_per_s": round(len(lines) / verify_s),
        "sha256_mb_per_s": round(len(data) / 1e6 / sha_s, 1),
        "verify_vs_sha256": round(sha_s / verify_s, 4),
        "verify_vs_sha256_per_line": round(sha_lines_s / verify_s, 4),
        "naive_rfc8785_check_vs_sha256": round(sha_s / naive_s, 4),
        "hashing_only_vs_sha256": round(sha_s / hashing_s, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 records, 2 repeats")
    parser.add_argument("--records", type=int, help="records per log (default 20,000)")
    parser.add_argument(
        "--groups", default="0,2,6", help="comma-separated parameter-group counts (record sizes)"
    )
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3)")
    args = parser.parse_args()
    count = args.records or (3_000 if args.quick else 20_000)
    repeats = args.repeats or (2 if args.quick else 3)
    print(f"{count} step records per log, best of {repeats}, Python {sys.version.split()[0]}")
    print(
        "groups bytes  append rec/s  canonical us  rfc8785 us  verify MB/s  sha256 MB/s  "
        "verify/sha256  (per line)  naive/sha256  hashing-only/sha256"
    )
    sizes = []
    for group_count in (int(g) for g in args.groups.split(",")):
        r = measure(count, group_count, repeats)
        sizes.append(r)
        print(
            f"{r['groups']:>6} {r['record_bytes']:>5} {r['append_records_per_s']:>13,} "
            f"{r['canonical_json_us']:>13} {r['rfc8785_dumps_us']:>11} {r['verify_mb_per_s']:>12} "
            f"{r['sha256_mb_per_s']:>12} {r['verify_vs_sha256']:>14} "
            f"{r['verify_vs_sha256_per_line']:>11} {r['naive_rfc8785_check_vs_sha256']:>13} "
            f"{r['hashing_only_vs_sha256']:>20}"
        )
    worst_append = min(r["append_records_per_s"] for r in sizes)
    worst_verify = min(r["verify_vs_sha256"] for r in sizes)
    print(
        f"append target {TARGET_APPEND_PER_S:,} records/s: "
        f"{'met' if worst_append >= TARGET_APPEND_PER_S else 'NOT met'} for every size "
        f"(slowest {worst_append:,}); verify target {TARGET_VERIFY_RATIO} x sha256: "
        f"{'met' if worst_verify >= TARGET_VERIFY_RATIO else 'NOT met'} (lowest {worst_verify})"
    )
    print(
        json.dumps(
            {
                "records": count,
                "repeats": repeats,
                "python": sys.version.split()[0],
                "append_target_records_per_s": TARGET_APPEND_PER_S,
                "verify_target_vs_sha256": TARGET_VERIFY_RATIO,
                "sizes": sizes,
            }
        )
    )


if __name__ == "__main__":
    main()
