"""Governed vs. baseline training, and governance overhead, side by side in one run.

Three arms train the same model from the same initial weights on the same
batches with the same optimiser:

* baseline: a plain PyTorch loop (no govtrain in the step at all);
* governed: the GovernedTrainer (routing, freezing, budget, audit log);
* observe:  the GovernedTrainer in shadow mode (`train.mode: observe`):
            signals, decisions and the audit log, but nothing applied, so
            observe / baseline is the cost of governing itself.

Reported per arm: final eval loss, wall-clock of the training steps (evals
excluded), backward FLOPs (torch.utils.flop_counter); for governed, the
wall-clock and backward FLOPs it took to first reach the baseline's final eval
loss within +1%. The last line is one JSON object.

    python tools/bench_training.py                    # configs/bench_shakespeare.yaml
    python tools/bench_training.py --quick            # smoke run, seconds
    python tools/bench_training.py --config FILE --steps N
    python tools/bench_training.py --overhead-only --steps 100   # baseline vs observe
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from govtrain.pipeline.config import RunConfig, load_config
from govtrain.pipeline.models import build_model
from govtrain.pipeline.trainer import (
    GovernedTrainer,
    build_optimizer,
    per_sample_loss,
    resolve_device,
    seed_everything,
)

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1.01


def evaluate(model, corpus, cfg: RunConfig, device) -> float:
    model.eval()
    with torch.no_grad():
        batches = corpus.eval_batches(cfg.governance.router.batch_size, cfg.train.eval_batches)
        loss = sum(float(per_sample_loss(model, b.to(device)).mean()) for b in batches)
    model.train()
    return loss / len(batches)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_baseline(cfg: RunConfig, corpus) -> dict:
    """The plain loop: forward, mean loss, backward, clip, step. Nothing else."""
    device = resolve_device(cfg.train.device)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, corpus.vocab_size, cfg.data.seq_len).to(device).train()
    opt = build_optimizer(model, cfg.train)
    batch, steps = cfg.governance.router.batch_size, cfg.governance.total_steps
    loss = per_sample_loss(model, corpus.train[:batch].to(device)).mean()
    with FlopCounterMode(display=False) as counter:  # the backward only, as for the others
        loss.backward()
    model.zero_grad(set_to_none=True)
    step_flops = counter.get_total_flops()  # every plain step is the same dense backward
    curve, elapsed = [], 0.0
    for step in range(steps):
        ids = corpus.batch(step, batch, cfg.seed).to(device)
        _sync(device)
        t0 = time.perf_counter()
        loss = per_sample_loss(model, ids).mean()
        loss.backward()
        if cfg.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        elapsed += time.perf_counter() - t0
        if (step + 1) % cfg.train.eval_every == 0 or step + 1 == steps:
            curve.append(
                (step + 1, elapsed, step_flops * (step + 1), evaluate(model, corpus, cfg, device))
            )
    return {
        "curve": curve,
        "seconds": elapsed,
        "flops": step_flops * steps,
        "eval": curve[-1][3],
        "dense_step_flops": step_flops,
    }


def run_governed(cfg: RunConfig, run_dir: Path) -> dict:
    trainer = GovernedTrainer(cfg, run_dir)
    trainer.start()
    # FLOP accounting is instrumentation (the baseline counts its FLOPs outside the
    # timed loop), so the time the meter spends inside the loop is left out.
    counted_before = trainer.flops.seconds
    curve, elapsed, steps = [], 0.0, cfg.governance.total_steps
    while trainer.step < steps:
        _sync(trainer.device)
        t0 = time.perf_counter()
        trainer.train_step()
        _sync(trainer.device)
        elapsed += time.perf_counter() - t0
        if trainer.step % cfg.train.eval_every == 0 or trainer.step == steps:
            seconds = elapsed - (trainer.flops.seconds - counted_before)
            curve.append((trainer.step, seconds, trainer.backward_flops, trainer.evaluate()))
    trainer.audit.close()
    s = trainer.summary()
    elapsed -= trainer.flops.seconds - counted_before
    return {
        "curve": curve,
        "seconds": elapsed,
        "flops": s.backward_flops,
        "eval": curve[-1][3],
        "skipped_share": s.skipped_share,
        "final_state": s.final_state,
        "transitions": dict(s.transitions),
    }


def overhead(observe_cfg: RunConfig, corpus, run_dir: Path) -> None:
    """Plain loop and shadow-mode governance stepped alternately, so both see the same machine.

    Whatever else runs on the machine slows both arms alike; the ratio of their
    summed step times is the cost of measuring, deciding and auditing.
    """
    device = resolve_device(observe_cfg.train.device)
    seed_everything(observe_cfg.seed)
    model = build_model(observe_cfg.model, corpus.vocab_size, observe_cfg.data.seq_len)
    model = model.to(device).train()
    opt = build_optimizer(model, observe_cfg.train)
    trainer = GovernedTrainer(observe_cfg, run_dir)
    trainer.start()
    counted_before = trainer.flops.seconds
    batch, steps = observe_cfg.governance.router.batch_size, observe_cfg.governance.total_steps
    plain = governed = 0.0
    for step in range(steps):
        ids = corpus.batch(step, batch, observe_cfg.seed).to(device)
        _sync(device)
        t0 = time.perf_counter()
        loss = per_sample_loss(model, ids).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), observe_cfg.train.grad_clip or math.inf)
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t1 = time.perf_counter()
        trainer.train_step()
        _sync(device)
        plain, governed = plain + t1 - t0, governed + time.perf_counter() - t1
    trainer.audit.close()
    governed -= trainer.flops.seconds - counted_before
    ratio = governed / plain
    print(
        f"{steps} steps interleaved: plain loop {plain:.1f}s, shadow-mode governance "
        f"{governed:.1f}s, overhead {ratio - 1:+.1%}"
    )
    print(
        json.dumps(
            {
                "steps": steps,
                "device": device.type,
                "plain_s": plain,
                "observe_s": governed,
                "overhead_observe_over_baseline": round(ratio, 4),
            }
        )
    )


def reach(curve: list, target: float) -> tuple[int, float, int] | None:
    """(step, seconds, flops) of the first eval at or below `target`."""
    for step, seconds, flops, loss in curve:
        if loss <= target:
            return step, seconds, flops
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_shakespeare.yaml")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--overhead-only", action="store_true", help="only the baseline and observe arms"
    )
    args = parser.parse_args()
    cfg = load_config(args.config)
    if args.quick:
        cfg = cfg.model_copy(
            update={
                "model": cfg.model.model_copy(update={"n_embd": 32, "n_head": 2}),
                "data": cfg.data.model_copy(
                    update={
                        "source": "synthetic",
                        "path": None,
                        "vocab_size": 32,
                        "seq_len": 16,
                        "sequences": 512,
                    }
                ),
                "train": cfg.train.model_copy(update={"eval_every": 10}),
            }
        )
        args.steps = args.steps or 30
    if args.steps:
        gov = cfg.governance.model_copy(
            update={
                "total_steps": args.steps,
                "router": cfg.governance.router.model_copy(
                    update={"warmup_steps": min(cfg.governance.router.warmup_steps, args.steps - 1)}
                ),
            }
        )
        cfg = cfg.model_copy(update={"governance": gov})
    from govtrain.pipeline.data import load_corpus

    corpus = load_corpus(cfg.data, cfg.seed)
    observe_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"mode": "observe"})})
    with tempfile.TemporaryDirectory() as tmp:
        if args.overhead_only:
            overhead(observe_cfg, corpus, Path(tmp) / "observe")
            return
        base = run_baseline(cfg, corpus)
        obs = run_governed(observe_cfg, Path(tmp) / "observe")
        gov = run_governed(cfg, Path(tmp) / "governed")
    target = base["eval"] * TOLERANCE
    reached = reach(gov["curve"], target)
    device = resolve_device(cfg.train.device)
    print(
        f"device {device.type}, {cfg.governance.total_steps} steps, model {cfg.model.n_layer}x"
        f"{cfg.model.n_embd}, batch {cfg.governance.router.batch_size} x {cfg.data.seq_len}"
    )
    for name, arm in (("baseline", base), ("governed", gov), ("observe", obs)):
        print(
            f"{name:9s} eval {arm['eval']:.4f}  train {arm['seconds']:.1f}s  "
            f"backward {arm['flops'] / 1e12:.3f} TFLOP"
        )
    ratios = {
        "eval_loss_governed_over_baseline": gov["eval"] / base["eval"],
        "wallclock_governed_over_baseline": gov["seconds"] / base["seconds"],
        "backward_flops_governed_over_baseline": gov["flops"] / base["flops"],
        "overhead_observe_over_baseline": obs["seconds"] / base["seconds"],
    }
    if reached is not None:
        ratios["wallclock_to_baseline_loss_ratio"] = reached[1] / base["seconds"]
        ratios["flops_to_baseline_loss_ratio"] = reached[2] / base["flops"]
    for k, v in ratios.items():
        print(f"{k:42s} {v:.3f}")
    if reached is None:
        print(f"governed never reached the baseline's final eval loss +1% ({target:.4f})")
    else:
        print(f"governed reached {target:.4f} (baseline final +1%) at step {reached[0]}")
    print(
        json.dumps(
            {
                "device": device.type,
                "steps": cfg.governance.total_steps,
                "baseline": {k: base[k] for k in ("eval", "seconds", "flops")},
                "governed": {
                    k: gov[k]
                    for k in (
                        "eval",
                        "seconds",
                        "flops",
                        "skipped_share",
                        "final_state",
                        "transitions",
                    )
                },
                "observe": {k: obs[k] for k in ("eval", "seconds", "flops")},
                "reached_baseline_at_step": None if reached is None else reached[0],
                **{k: round(v, 4) for k, v in ratios.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
