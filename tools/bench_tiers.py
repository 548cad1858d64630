"""Tiered vs. uniform sampling side by side in one race (`data.tiers`, `data.dedup`).

Four arms from the same initial weights, stepped alternately (tools/bench_training.race):
the plain baseline loop (uniform: seeded epoch permutations); `dense_tiered`, the same
dense training drawing its batches from the governed data tiers after near-duplicate
removal (GovernedTrainer in shadow mode, `train.mode: observe`: every group trains on
every sample, so only the sampling differs from the baseline); and the governed
trainer (freezing, budget) drawing uniform batches and tiered ones. Evals are not timed.

Reported per arm: final eval loss, whole-run wall-clock and backward FLOPs against the
baseline, and the wall-clock and FLOPs at which it first reached the baseline's final
eval loss +1% (equal-quality compute). For the tiered arm: the near-duplicates removed,
the seconds its re-scorings took, and its tier counts at the first, middle and last
re-scoring. The last line is one JSON object.

    python -m tools.bench_tiers                    # configs/bench_shakespeare.yaml, 900 steps
    python -m tools.bench_tiers --quick            # smoke run, seconds
    python -m tools.bench_tiers --rescore-every 50 --max-wait 16
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from govtrain.audit.provenance import read_records
from govtrain.governance import tiers
from govtrain.pipeline.trainer import resolve_device
from tools.bench_router import ratios_to, shown
from tools.bench_signals import variant
from tools.bench_training import TOLERANCE, GovernedArm, PlainArm, bench_arguments, bench_config


def timed_rescoring() -> tuple[dict[str, float], Any]:
    """Count the seconds tiers.Rescore takes (the pure re-scoring and the next plan)."""
    spent, original = {"seconds": 0.0}, tiers.Rescore

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["seconds"] += time.perf_counter() - t0

    tiers.Rescore = wrapper
    return spent, original


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--rescore-every", type=int, help="steps per period (default 50; quick 5)")
    parser.add_argument("--max-wait", type=int, help="periods (default 16; quick 8)")
    args = parser.parse_args()
    cfg = bench_config(args)
    every = args.rescore_every or (5 if args.quick else 50)
    max_wait = args.max_wait or (8 if args.quick else 16)
    tiered_cfg = variant(
        cfg,
        **{
            "data.tiers": {"rescore_every": every, "max_wait": max_wait},
            "data.dedup": {},
        },
    )
    dense_tiered_cfg = variant(tiered_cfg, **{"train.mode": "observe"})
    from govtrain.pipeline.data import load_corpus
    from tools.bench_training import race

    corpus = load_corpus(cfg.data, cfg.seed)
    spent, original = timed_rescoring()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            arms: dict[str, Any] = {
                "baseline": PlainArm(cfg, corpus),
                "dense_tiered": GovernedArm(dense_tiered_cfg, Path(tmp) / "dense_tiered"),
                "uniform": GovernedArm(cfg, Path(tmp) / "uniform"),
                "tiered": GovernedArm(tiered_cfg, Path(tmp) / "tiered"),
            }
            dedup = arms["tiered"].trainer.dedup_report
            samples = arms["tiered"].trainer.corpus.train.shape[0]
            results = race(arms, cfg)
            rescores = [
                r.body
                for r in read_records(Path(tmp) / "tiered" / "audit.jsonl")
                if r.kind == "rescore"
            ]
    finally:
        tiers.Rescore = original
    base = results["baseline"]
    target = base["eval"] * TOLERANCE
    device = resolve_device(cfg.train.device)
    tcfg, batch = tiered_cfg.data.tiers, cfg.governance.router.batch_size
    print(
        f"device {device.type}, {cfg.governance.total_steps} steps, model {cfg.model.n_layer}x"
        f"{cfg.model.n_embd}, batch {batch}; tiers: re-score every {every} steps, max_wait "
        f"{max_wait}, reserve {tiers.reserve_size(samples, tcfg)} of {tiers.slots(tcfg, batch)} "
        f"slots, {samples} sequences"
    )
    print(
        f"dedup: {dedup['removed']} of {dedup['examined']} training sequences removed "
        f"({', '.join(f'{n} {why}' for why, n in dedup['why'].items())})"
    )
    print(f"baseline (uniform, plain loop) eval {base['eval']:.4f}; target +1% {target:.4f}")
    print("arm           eval    ratio   wall   flops   to baseline+1% wall/flops  final states")
    table = {}
    for name in ("dense_tiered", "uniform", "tiered"):
        arm = results[name]
        row = {
            "eval": arm["eval"],
            "eval_ratio": arm["eval"] / base["eval"],
            "wallclock_ratio": arm["seconds"] / base["seconds"],
            "flops_ratio": arm["flops"] / base["flops"],
            "to_baseline": ratios_to(arm["curve"], target, base),
            "final_state": arm["final_state"],
        }
        table[name] = row
        print(
            f"{name:13s} {row['eval']:.4f} {row['eval_ratio']:.4f} {row['wallclock_ratio']:.3f} "
            f"{row['flops_ratio']:.3f}  {shown(row['to_baseline']):>24s}  "
            + " ".join(f"{g}:{p[:4]}" for g, p in arm["final_state"].items())
        )
    picked = [rescores[i] for i in sorted({0, len(rescores) // 2, len(rescores) - 1})]
    for r in picked:
        print(f"  tiers at step {r['step']}: {r['counts']} (median loss {r['median_loss']:.3f})")
    print(
        f"re-scoring: {len(rescores)} times, {spent['seconds']:.2f}s in all "
        f"({spent['seconds'] / max(1e-9, results['tiered']['seconds']):.2%} of the tiered arm)"
    )
    print(
        json.dumps(
            {
                "device": device.type,
                "steps": cfg.governance.total_steps,
                "rescore_every": every,
                "max_wait": max_wait,
                "baseline": {k: base[k] for k in ("eval", "seconds", "flops")},
                "arms": table,
                "dedup_removed": dedup["removed"],
                "rescorings": len(rescores),
                "rescore_seconds": spent["seconds"],
                "tiers_last": rescores[-1]["counts"] if rescores else None,
            }
        )
    )


if __name__ == "__main__":
    main()
