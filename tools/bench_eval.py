"""Evaluation time avoided by `train.eval: on_change`, against evaluating every time.

The same config is trained twice per repeat, once per arm, the arms alternating:
`every` evaluates every `train.eval_every` steps, `on_change` only when an optimizer
step changed the weights since the last evaluation (and at the end). Evaluation
never changes training, so both arms must record the same steps (checked); what
differs is the evaluations run, the seconds spent in them and the wall-clock.

    python -m tools.bench_eval              # configs/quickstart.yaml to step 500, 2 repeats
    python -m tools.bench_eval --quick      # configs/smoke.yaml frozen early, 1 repeat
    python -m tools.bench_eval --config C.yaml train.eval_batches=32   # any FIELD=VALUE

The quickstart's `governance.finish_window` is set to 0 here (never end early): with
Finish the run stops 25 steps after its last group converges, leaving at most one
evaluation to skip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from govtrain.audit.provenance import read_records
from govtrain.pipeline.config import load_config
from govtrain.pipeline.trainer import GovernedTrainer
from govtrain.resources import config_path

ARMS = ("every", "on_change")
# --quick: the smoke config, made to freeze every group early and stay frozen
QUICK = [
    "governance.total_steps=120",
    "governance.hierarchy.emergency_fraction=0.1",
    "governance.governor.signal_threshold=0.2",
    "governance.governor.max_awakenings=0",
]


def train_arm(config: Path, overrides: list[str], arm: str, run_dir: Path) -> dict:
    cfg = load_config(config, [*overrides, f"train.eval={arm}"])
    trainer = GovernedTrainer(cfg, run_dir)
    trainer.start()
    start = time.perf_counter()
    summary = trainer.train(progress=False)
    wall = time.perf_counter() - start
    steps = [
        {k: v for k, v in r.body.items() if k != "step_time_ms"}
        for r in read_records(run_dir / "audit.jsonl")
        if r.kind == "step"
    ]
    return {
        "wall_s": wall,
        "eval_s": trainer.eval_seconds,
        "evals": summary.evals,
        "skipped": summary.evals_skipped,
        "steps": summary.steps,
        "eval_loss": summary.eval_loss,
        "records": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", metavar="FIELD=VALUE")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    config = args.config or config_path("smoke.yaml" if args.quick else "quickstart.yaml")
    overrides = ["governance.finish_window=0", *(QUICK if args.quick else []), *args.overrides]
    repeats = 1 if args.quick else args.repeats
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for arm in ARMS:
                out = train_arm(config, overrides, arm, Path(tmp) / f"{arm}-{r}")
                runs[arm].append(out)
                print(
                    f"repeat {r} {arm:>9}: {out['evals']} evaluations ({out['skipped']} skipped) "
                    f"in {out['eval_s']:.2f} s; run {out['wall_s']:.1f} s; "
                    f"final eval loss {out['eval_loss']:.4f}"
                )
    every, lazy = runs["every"], runs["on_change"]
    same = all(e["records"] == z["records"] for e, z in zip(every, lazy, strict=True))
    same_eval = all(e["eval_loss"] == z["eval_loss"] for e, z in zip(every, lazy, strict=True))
    if not (same and same_eval):
        raise SystemExit("the arms trained differently: evaluation changed training")

    def med(arm: list[dict], key: str) -> float:
        return statistics.median(o[key] for o in arm)

    saved = med(every, "eval_s") - med(lazy, "eval_s")
    result = {
        "config": str(config.name),
        "overrides": overrides,
        "repeats": repeats,
        "steps": every[0]["steps"],
        "evals_every": every[0]["evals"],
        "evals_on_change": lazy[0]["evals"],
        "skipped_on_change": lazy[0]["skipped"],
        "eval_s_every": round(med(every, "eval_s"), 3),
        "eval_s_on_change": round(med(lazy, "eval_s"), 3),
        "eval_s_saved": round(saved, 3),
        "eval_share_of_wall_every": round(med(every, "eval_s") / med(every, "wall_s"), 4),
        "wall_ratio_on_change_over_every": round(med(lazy, "wall_s") / med(every, "wall_s"), 3),
        "same_training_and_final_eval": same and same_eval,
    }
    print(
        f"on_change ran {result['evals_on_change']} of {result['evals_every']} evaluations: "
        f"{saved:.2f} s of evaluation avoided (median), wall-clock "
        f"{result['wall_ratio_on_change_over_every']:.3f}x"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
