"""Governed vs. baseline training, and governance overhead, side by side in one run.

Three arms train the same model from the same initial weights on the same
batches with the same optimiser:

* baseline: a plain PyTorch loop (no govtrain in the step at all);
* governed: the GovernedTrainer (routing, freezing, budget, audit log);
* observe:  the GovernedTrainer in shadow mode (`train.mode: observe`):
            signals, decisions and the audit log, but nothing applied, so
            observe / baseline is the cost of governing itself.

The arms are stepped alternately in one process (one step of each in turn), so
whatever else runs on the machine slows them alike. Reported per arm: final
eval loss, wall-clock of the training steps (evals excluded), backward FLOPs
(torch.utils.flop_counter); for governed, the wall-clock and backward FLOPs it
took to first reach the baseline's final eval loss within +1%. The last line is
one JSON object.

    python tools/bench_training.py                    # configs/bench_shakespeare.yaml
    python tools/bench_training.py --quick            # smoke run, seconds
    python tools/bench_training.py --config FILE --steps N --plot curve.png
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
from govtrain.pipeline.models import build_model, per_sample_loss
from govtrain.pipeline.schedule import build_optimizer, scheduled_lr, seed_everything, set_lr
from govtrain.pipeline.trainer import GovernedTrainer, resolve_device
from tools.curves import plot_curves

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


class PlainArm:
    """The plain loop: forward, mean loss, backward, clip, step. Nothing else."""

    def __init__(self, cfg: RunConfig, corpus) -> None:
        self.cfg, self.corpus = cfg, corpus
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.seed)
        model = build_model(cfg.model, corpus.vocab_size, cfg.data.seq_len)
        self.model = model.to(self.device).train()
        self.opt = build_optimizer(self.model, cfg.train)
        self.batch = cfg.governance.router.batch_size
        loss = per_sample_loss(self.model, corpus.train[: self.batch].to(self.device)).mean()
        with FlopCounterMode(display=False) as counter:  # the backward only, as for the others
            loss.backward()
        self.model.zero_grad(set_to_none=True)
        self.step_flops = counter.get_total_flops()  # every plain step: the same dense backward
        self.step, self.seconds = 0, 0.0

    def train_step(self) -> None:
        cfg = self.cfg
        ids = self.corpus.batch(self.step, self.batch, cfg.seed).to(self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        loss = per_sample_loss(self.model, ids).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip or math.inf)
        set_lr(self.opt, scheduled_lr(cfg.train, self.step, cfg.governance.total_steps))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        _sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.step += 1

    @property
    def flops(self) -> int:
        return self.step_flops * self.step

    def evaluate(self) -> float:
        return evaluate(self.model, self.corpus, self.cfg, self.device)

    def close(self) -> dict:
        return {}


class GovernedArm:
    """The GovernedTrainer (governed, or shadow mode with `train.mode: observe`)."""

    def __init__(self, cfg: RunConfig, run_dir: Path) -> None:
        self.trainer = GovernedTrainer(cfg, run_dir)
        self.trainer.start()
        # FLOP accounting is instrumentation (the plain arm counts its FLOPs outside the
        # timed loop), so the time the meter spends inside the loop is left out.
        self._metered = self.trainer.flops.seconds
        self.seconds = 0.0

    def train_step(self) -> None:
        device = self.trainer.device
        _sync(device)
        t0 = time.perf_counter()
        self.trainer.train_step()
        _sync(device)
        metered = self.trainer.flops.seconds - self._metered
        self._metered = self.trainer.flops.seconds
        self.seconds += time.perf_counter() - t0 - metered

    @property
    def flops(self) -> int:
        return self.trainer.backward_flops

    def evaluate(self) -> float:
        return self.trainer.evaluate()

    def close(self) -> dict:
        self.trainer.audit.close()
        s = self.trainer.summary()
        return {
            "skipped_share": s.skipped_share,
            "final_state": s.final_state,
            "transitions": dict(s.transitions),
        }


def race(arms: dict[str, PlainArm | GovernedArm], cfg: RunConfig) -> dict[str, dict]:
    """Step every arm once per step, in alternating order, so whatever else the machine
    does slows them alike; evaluate every `eval_every` steps (evals are not timed)."""
    steps, curves = cfg.governance.total_steps, {name: [] for name in arms}
    order = list(arms)
    for step in range(steps):
        for name in order if step % 2 == 0 else reversed(order):
            arms[name].train_step()
        if (step + 1) % cfg.train.eval_every == 0 or step + 1 == steps:
            for name, arm in arms.items():
                curves[name].append((step + 1, arm.seconds, arm.flops, arm.evaluate()))
    return {
        name: {
            "curve": curves[name],
            "seconds": arm.seconds,
            "flops": arm.flops,
            "eval": curves[name][-1][3],
            **arm.close(),
        }
        for name, arm in arms.items()
    }


def overhead(cfg: RunConfig, observe_cfg: RunConfig, corpus, run_dir: Path) -> None:
    """Plain loop and shadow-mode governance stepped alternately: the cost of governing."""
    out = race({"plain": PlainArm(cfg, corpus), "observe": GovernedArm(observe_cfg, run_dir)}, cfg)
    plain, governed = out["plain"]["seconds"], out["observe"]["seconds"]
    ratio = governed / plain
    steps = cfg.governance.total_steps
    print(
        f"{steps} steps interleaved: plain loop {plain:.1f}s, shadow-mode governance "
        f"{governed:.1f}s, overhead {ratio - 1:+.1%}"
    )
    print(
        json.dumps(
            {
                "steps": steps,
                "device": resolve_device(cfg.train.device).type,
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


def quick_config(cfg: RunConfig) -> RunConfig:
    """The benchmark's config shrunk to a smoke run: a tiny model on a synthetic corpus."""
    return cfg.model_copy(
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


def with_steps(cfg: RunConfig, steps: int) -> RunConfig:
    """`cfg` run for `steps` steps (the router's warmup kept inside them)."""
    router = cfg.governance.router
    gov = cfg.governance.model_copy(
        update={
            "total_steps": steps,
            "router": router.model_copy(
                update={"warmup_steps": min(router.warmup_steps, steps - 1)}
            ),
        }
    )
    return cfg.model_copy(update={"governance": gov})


def bench_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every training benchmark takes: --config, --steps, --quick."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_shakespeare.yaml")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    return parser


def bench_config(args: argparse.Namespace) -> RunConfig:
    """The config those options ask for (`--quick`: the smoke run, 30 steps by default)."""
    cfg = load_config(args.config)
    if args.quick:
        cfg = quick_config(cfg)
        args.steps = args.steps or 30
    if args.steps:
        cfg = with_steps(cfg, args.steps)
    return cfg


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--plot", type=Path, help="write eval loss vs wall-clock here (PNG)")
    parser.add_argument(
        "--overhead-only", action="store_true", help="only the baseline and observe arms"
    )
    args = parser.parse_args()
    cfg = bench_config(args)
    from govtrain.pipeline.data import load_corpus

    corpus = load_corpus(cfg.data, cfg.seed)
    observe_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"mode": "observe"})})
    with tempfile.TemporaryDirectory() as tmp:
        if args.overhead_only:
            overhead(cfg, observe_cfg, corpus, Path(tmp) / "observe")
            return
        results = race(
            {
                "baseline": PlainArm(cfg, corpus),
                "governed": GovernedArm(cfg, Path(tmp) / "governed"),
                "observe": GovernedArm(observe_cfg, Path(tmp) / "observe"),
            },
            cfg,
        )
    base, gov, obs = results["baseline"], results["governed"], results["observe"]
    target = base["eval"] * TOLERANCE
    reached = reach(gov["curve"], target)
    if args.plot is not None:
        curves = {
            n: [(c[1], c[3]) for c in a["curve"]]
            for n, a in (("baseline", base), ("governed", gov))
        }
        plot_curves(curves, target, "baseline final +1%", "eval loss", args.plot)
        print(f"wrote {args.plot}")
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
