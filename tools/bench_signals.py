"""Convergence signals side by side: one governed arm per `train.signal`, in one race.

1. Calibration (alone, first): a shadow-mode run (`train.mode: observe`, so the
   model trains exactly as the baseline does) records every probe measure
   (`train.measure`) with a signal threshold nothing reaches, so every group
   stays trainable. From its log, each geometry signal's readings (the relative
   change of the measure between consecutive probes, per group) and the
   spectral readings; a signal's threshold is the `--percentile` of its
   readings over every group and probe: a group reads low once its
   representation changes less than it typically does over the run. `drift` and
   `grad_norm` keep the config's threshold (drift's was chosen on this
   benchmark, BENCHMARKS.md).
2. The race: the plain baseline loop and one GovernedTrainer per signal (and
   drift with the effective-rank guards), from the same initial weights on the
   same batches, stepped alternately (tools/bench_training.race), so machine
   load slows them alike; evals are not timed.

Reported per arm: final eval loss, whole-run wall-clock and backward FLOPs
against the baseline, the wall-clock and FLOPs at which it first reached the
baseline's final eval loss +1% (equal-quality compute), the step each group
converged at, and the cost of its probes (seconds per probe: the measurement
forward and power iterations, or the gradient wake probe). `--plot` writes the
calibration readings per group. The last line is one JSON object.

    python -m tools.bench_signals                     # configs/bench_shakespeare.yaml, 900 steps
    python -m tools.bench_signals --quick             # smoke run, seconds
    python -m tools.bench_signals --signals drift,effective_rank --plot signals.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from govtrain.audit.provenance import read_records
from govtrain.governance.readings import SPECTRAL, relative_change
from govtrain.pipeline.config import RunConfig, apply_overrides, load_config, parse_config
from govtrain.pipeline.signals import MEASURES, SIGNALS
from govtrain.pipeline.trainer import resolve_device
from tools.bench_training import (
    TOLERANCE,
    GovernedArm,
    PlainArm,
    quick_config,
    race,
    reach,
    with_steps,
)

ROOT = Path(__file__).resolve().parent.parent
GUARDED = "drift+guard"
GUARD = {"collapse": 0.1, "wake": 0.1}


def variant(cfg: RunConfig, **fields: Any) -> RunConfig:
    """`cfg` with dotted fields set, validated like any config."""
    raw = cfg.model_dump(mode="json")
    return parse_config(apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in fields.items()]))


def logged(run_dir: Path) -> Iterator[tuple[int, Mapping[str, Mapping[str, float]]]]:
    """(step, measurements) of every probe step a run recorded."""
    for rec in read_records(run_dir / "audit.jsonl"):
        if rec.kind == "step" and "measurements" in rec.body:
            yield rec.body["step"], rec.body["measurements"]


def readings(
    probes: Iterable[tuple[int, Mapping[str, Mapping[str, float]]]],
) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per signal, per group: (step, reading): a geometry measure's relative change since
    the group's previous probe, the spectral reading as measured."""
    last: dict[tuple[str, str], float] = {}
    out: dict[str, dict[str, list[tuple[int, float]]]] = {m: {} for m in MEASURES}
    for step, measured in probes:
        for group, values in measured.items():
            for measure, value in values.items():
                if measure == SPECTRAL:
                    out[measure].setdefault(group, []).append((step, value))
                elif (group, measure) in last:
                    change = relative_change(last[group, measure], value)
                    out[measure].setdefault(group, []).append((step, change))
                last[group, measure] = value
    return out


def thresholds(seen: dict[str, dict[str, list]], percentile: float) -> dict[str, float]:
    """Per signal, the `percentile` of its readings over every group and probe."""
    out = {}
    for measure, groups in seen.items():
        values = sorted(v for points in groups.values() for _, v in points)
        if len(values) < 2:  # too short a run to read a spread: keep the config's
            continue
        cut = statistics.quantiles(values, n=100, method="inclusive")[int(percentile) - 1]
        out[measure] = max(cut, 1e-9)
    return out


# the shadow run's settings: every measure recorded, no group ever reads low
SHADOW = {
    "train.mode": "observe",
    "train.measure": list(MEASURES),
    "governance.governor.signal_threshold": 1e-12,
}


def calibrate(
    cfg: RunConfig, run_dir: Path, percentile: float
) -> tuple[dict[str, float], dict, float]:
    """Thresholds per probe-read signal from a shadow run, its readings, its seconds."""
    arm = GovernedArm(variant(cfg, **SHADOW), run_dir)
    start = time.perf_counter()
    for _ in range(cfg.governance.total_steps):
        arm.train_step()
    seconds = time.perf_counter() - start
    arm.close()
    seen = readings(logged(run_dir))
    return thresholds(seen, percentile), seen, seconds


def timed_probes(arm: GovernedArm) -> dict[str, float]:
    """Count the seconds and calls of the governor's probes (measurements, gradient probe)."""
    gov, spent = arm.trainer.gov.observer, {"seconds": 0.0, "probes": 0}
    for name in ("_measure", "_probe"):
        original = getattr(gov, name)

        def wrapper(*args, _original=original, **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent["seconds"] += time.perf_counter() - t0
                spent["probes"] += 1

        setattr(gov, name, wrapper)
    return spent


def converged_at(run_dir: Path) -> dict[str, int]:
    """The step at which each group first converged in a run."""
    out: dict[str, int] = {}
    for rec in read_records(run_dir / "audit.jsonl"):
        if rec.kind == "step":
            for t in rec.body["transitions"]:
                if t["action"] == "Converge":
                    out.setdefault(t["group"], rec.body["step"])
    return out


def plot_readings(seen: dict, cuts: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(seen), 1, figsize=(8, 2.4 * len(seen)), sharex=True)
    for ax, (measure, groups) in zip(axes, seen.items(), strict=True):
        for group, points in groups.items():
            ax.plot([s for s, _ in points], [v for _, v in points], label=group, lw=1)
        ax.axhline(cuts[measure], color="grey", ls="--", label="threshold")
        ax.set_yscale("log")
        ax.set_ylabel(measure.replace("_", " "), fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=6, loc="upper right")
    axes[0].set_title("shadow-run readings per group (geometry: relative change between probes)")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_shakespeare.yaml")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--signals",
        default=",".join([*SIGNALS, GUARDED]),
        help=f"comma-separated arms from {', '.join([*SIGNALS, GUARDED])}",
    )
    parser.add_argument("--percentile", type=float, default=50, help="of the shadow readings")
    parser.add_argument("--plot", type=Path, help="write the calibration readings here (PNG)")
    args = parser.parse_args()
    arms = args.signals.split(",")
    unknown = set(arms) - {*SIGNALS, GUARDED}
    if unknown or not 1 <= args.percentile <= 99:
        parser.error(f"unknown signals {sorted(unknown)}" if unknown else "percentile in 1..99")
    cfg = load_config(args.config)
    if args.quick:
        cfg, args.steps = quick_config(cfg), args.steps or 30
    if args.steps:
        cfg = with_steps(cfg, args.steps)
    from govtrain.pipeline.data import load_corpus

    corpus = load_corpus(cfg.data, cfg.seed)
    configured = cfg.governance.governor.signal_threshold
    with tempfile.TemporaryDirectory() as tmp:
        cuts, seen, shadow_s = calibrate(cfg, Path(tmp) / "shadow", args.percentile)
        if args.plot is not None:
            plot_readings(seen, cuts, args.plot)
            print(f"wrote {args.plot}")
        racers: dict[str, Any] = {"baseline": PlainArm(cfg, corpus)}
        costs = {}
        for name in arms:
            signal = "drift" if name == GUARDED else name
            fields: dict[str, Any] = {
                "train.signal": signal,
                "governance.governor.signal_threshold": cuts.get(signal, configured),
            }
            if name == GUARDED:
                fields["train.geometry_guard"] = GUARD
            racers[name] = GovernedArm(variant(cfg, **fields), Path(tmp) / name)
            costs[name] = timed_probes(racers[name])
        results = race(racers, cfg)
        frozen = {name: converged_at(Path(tmp) / name) for name in arms}
    base = results["baseline"]
    target = base["eval"] * TOLERANCE
    device = resolve_device(cfg.train.device)
    print(
        f"device {device.type}, {cfg.governance.total_steps} steps, model {cfg.model.n_layer}x"
        f"{cfg.model.n_embd}; shadow calibration run {shadow_s:.1f}s; thresholds at the "
        f"{args.percentile:g}th percentile: " + ", ".join(f"{m} {v:.4g}" for m, v in cuts.items())
    )
    print(f"baseline eval {base['eval']:.4f}, train {base['seconds']:.1f}s; target {target:.4f}")
    header = "arm                 thresh   eval   ratio  wall  flops  to-target wall/flops probe ms"
    print(header)
    table = {}
    for name in arms:
        arm = results[name]
        reached = reach(arm["curve"], target)
        cost = costs[name]
        row = {
            "threshold": cuts.get("drift" if name == GUARDED else name, configured),
            "eval": arm["eval"],
            "eval_ratio": arm["eval"] / base["eval"],
            "wallclock_ratio": arm["seconds"] / base["seconds"],
            "flops_ratio": arm["flops"] / base["flops"],
            "reached_at_step": None if reached is None else reached[0],
            "wallclock_to_target_ratio": None if reached is None else reached[1] / base["seconds"],
            "flops_to_target_ratio": None if reached is None else reached[2] / base["flops"],
            "probe_ms": 1000 * cost["seconds"] / max(1, cost["probes"]),
            "probes": cost["probes"],
            "converged_at": frozen[name],
        }
        table[name] = row
        to_target = (
            "never"
            if reached is None
            else f"{row['wallclock_to_target_ratio']:.3f}/{row['flops_to_target_ratio']:.3f}"
        )
        print(
            f"{name:19s} {row['threshold']:<8.4g} {row['eval']:.4f} {row['eval_ratio']:.4f} "
            f"{row['wallclock_ratio']:.3f} {row['flops_ratio']:.3f}  {to_target:>11s}  "
            f"{row['probe_ms']:.1f} x{row['probes']}  converged {row['converged_at']}"
        )
    print(
        json.dumps(
            {
                "device": device.type,
                "steps": cfg.governance.total_steps,
                "percentile": args.percentile,
                "thresholds": cuts,
                "baseline": {k: base[k] for k in ("eval", "seconds", "flops")},
                "arms": table,
            }
        )
    )


if __name__ == "__main__":
    main()
