"""Router scorers side by side: `loss`, `random` and `learned` at the same quotas, in one race.

The training benchmark's config with a budget that really routes: every trainable
group gets `--quota` of the batch's samples per step (master = groups x quota,
ceiling = quota), and freezing is off (a patience longer than the run), so the
hierarchy activates its levels at their deadlines and the arms differ in which
samples each group is routed and nothing else. Four arms from the same initial
weights on the same batches, stepped alternately (tools/bench_training.race): the
plain baseline loop (dense: every sample, every group) and one GovernedTrainer
per scorer. Evals are not timed.

Reported per arm: final eval loss, whole-run wall-clock and backward FLOPs against
the baseline, the wall-clock and FLOPs at which it first reached the baseline's
final eval loss +1% (equal-quality compute), and the same against the `loss`
arm's final eval +1% (how the scorers compare among themselves at equal quotas);
the mean routed quota of the trainable groups after the warmup (equal across
arms by construction: printed to show it); for `learned`, the seconds its extra
forward took (in its wall-clock; not in the backward FLOPs, like every forward).
The last line is one JSON object.

    python -m tools.bench_router                   # configs/bench_shakespeare.yaml, 900 steps
    python -m tools.bench_router --quick           # smoke run, seconds
    python -m tools.bench_router --steps 600 --quota 8
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from govtrain.audit.provenance import read_records
from govtrain.pipeline.config import RunConfig
from govtrain.pipeline.trainer import resolve_device
from tools.bench_signals import variant
from tools.bench_training import (
    TOLERANCE,
    GovernedArm,
    PlainArm,
    bench_arguments,
    bench_config,
    race,
    reach,
)

SCORERS = ("loss", "random", "learned")


def routed_config(cfg: RunConfig, quota: int) -> RunConfig:
    """`cfg` with every trainable group routed `quota` samples a step and nothing frozen: a
    group needs `patience` low signals in a row to converge (the drift signal can read 0,
    so no threshold alone keeps it from it), and the run is shorter than that."""
    gov = cfg.governance
    return variant(
        cfg,
        **{
            "governance.budget.master": len(gov.groups) * quota,
            "governance.budget.floor": min(gov.budget.floor, quota),
            "governance.budget.ceiling": quota,
            "governance.governor.signal_threshold": 1e-12,
            "governance.governor.patience": gov.total_steps + 1,
        },
    )


def mean_quota(run_dir: Path, warmup: int) -> float:
    """The mean routed quota of the groups that were routed anything, after the warmup."""
    quotas = [
        r["quota"]
        for rec in read_records(run_dir / "audit.jsonl")
        if rec.kind == "step" and rec.body["step"] >= warmup
        for r in rec.body["routed"].values()
        if r["quota"] > 0
    ]
    return statistics.fmean(quotas) if quotas else 0.0


def timed_learning(arm: GovernedArm) -> dict[str, float]:
    """Count the seconds the governor's learn_router takes (the learned scorer's forward)."""
    gov, spent = arm.trainer.gov, {"seconds": 0.0}
    original = gov.learn_router

    def wrapper(losses_after):
        t0 = time.perf_counter()
        try:
            return original(losses_after)
        finally:
            spent["seconds"] += time.perf_counter() - t0

    gov.learn_router = wrapper
    return spent


def ratios_to(curve: list, target: float, base: dict) -> dict[str, float] | None:
    """The step, and the wall-clock and FLOPs against `base`, of the first eval at or below
    `target`; None when the arm never got there."""
    reached = reach(curve, target)
    if reached is None:
        return None
    return {
        "step": reached[0],
        "wall": reached[1] / base["seconds"],
        "flops": reached[2] / base["flops"],
    }


def shown(r: dict[str, float] | None) -> str:
    return "never" if r is None else f"{r['wall']:.3f}/{r['flops']:.3f} @{r['step']}"


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--quota", type=int, help="samples per group and step (default batch/2)")
    args = parser.parse_args()
    cfg = bench_config(args)
    batch = cfg.governance.router.batch_size
    quota = args.quota or batch // 2
    if not 0 < quota < batch:
        parser.error(f"--quota must be in 1..{batch - 1} (the batch is {batch})")
    cfg = routed_config(cfg, quota)
    from govtrain.pipeline.data import load_corpus

    corpus = load_corpus(cfg.data, cfg.seed)
    warmup = cfg.governance.router.warmup_steps
    with tempfile.TemporaryDirectory() as tmp:
        racers: dict[str, Any] = {"baseline": PlainArm(cfg, corpus)}
        for name in SCORERS:
            scored = variant(cfg, **{"governance.router.scorer": name})
            racers[name] = GovernedArm(scored, Path(tmp) / name)
        learning = timed_learning(racers["learned"])
        results = race(racers, cfg)
        quotas = {name: mean_quota(Path(tmp) / name, warmup) for name in SCORERS}
    base, loss_arm = results["baseline"], results["loss"]
    target, loss_target = base["eval"] * TOLERANCE, loss_arm["eval"] * TOLERANCE
    device = resolve_device(cfg.train.device)
    learned_cfg = cfg.governance.router.learned
    print(
        f"device {device.type}, {cfg.governance.total_steps} steps, model {cfg.model.n_layer}x"
        f"{cfg.model.n_embd}, batch {batch}, quota {quota} per trainable group after "
        f"{warmup} warmup steps, freezing off; learned: hidden {learned_cfg.hidden}, lr "
        f"{learned_cfg.lr:g}, entropy {learned_cfg.entropy:g}, temperature "
        f"{learned_cfg.temperature:g}, learn every {learned_cfg.learn_every}"
    )
    print(
        f"baseline (dense) eval {base['eval']:.4f}, train {base['seconds']:.1f}s; targets: "
        f"baseline +1% {target:.4f}, loss arm +1% {loss_target:.4f}"
    )
    print("arm      eval   ratio  wall  flops   to baseline+1% wall/flops  to loss+1% wall/flops k")
    table = {}
    for name in SCORERS:
        arm = results[name]
        to_base = ratios_to(arm["curve"], target, base)
        to_loss = ratios_to(arm["curve"], loss_target, base)
        row = {
            "eval": arm["eval"],
            "eval_ratio": arm["eval"] / base["eval"],
            "wallclock_ratio": arm["seconds"] / base["seconds"],
            "flops_ratio": arm["flops"] / base["flops"],
            "to_baseline": to_base,
            "to_loss_arm": to_loss,
            "mean_quota": quotas[name],
            "converged": arm["transitions"].get("Converge", 0),
        }
        table[name] = row
        print(
            f"{name:8s} {row['eval']:.4f} {row['eval_ratio']:.4f} {row['wallclock_ratio']:.3f} "
            f"{row['flops_ratio']:.3f}  {shown(to_base):>24s}  {shown(to_loss):>21s}  "
            f"{row['mean_quota']:.2f}  converged {row['converged']}"
        )
    table["learned"]["learn_seconds"] = learning["seconds"]
    print(
        f"learned: its learn steps (extra forward and Adam step) took {learning['seconds']:.1f}s "
        f"({learning['seconds'] / max(1e-9, results['learned']['seconds']):.1%} of its wall-clock)"
    )
    print(
        json.dumps(
            {
                "device": device.type,
                "steps": cfg.governance.total_steps,
                "batch": batch,
                "quota": quota,
                "learned": learned_cfg.model_dump(),
                "baseline": {k: base[k] for k in ("eval", "seconds", "flops")},
                "arms": table,
            }
        )
    )


if __name__ == "__main__":
    main()
