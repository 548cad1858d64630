"""Governed vs. baseline training, and governance overhead, side by side in one run.

The arms train the same model from the same initial weights on the same batches
with the same optimiser:

* baseline: a plain PyTorch loop (no govtrain in the step at all);
* governed: the GovernedTrainer on the config as written. The benchmark config's
            recipe (configs/bench_shakespeare.yaml): dormant levels bypassed
            (not computed) and grown by stacking the trained blocks below when
            they activate, no group converging before the groups below it, every
            level active by half the run; `--grow` swaps the growth operator;
* frozen:   the same config with round 2's hierarchy (`ROUND2`: dormant levels
            frozen but computed, nothing grown, deadlines at a tenth of the
            run), the recipe growth replaced; `--without-frozen` leaves
            it out (long horizons);
* observe:  (`--observe`) the GovernedTrainer in shadow mode (`train.mode:
            observe`): signals, decisions and the audit log, nothing applied, so
            observe / baseline is the cost of governing itself.

The arms are stepped alternately in one process (one step of each in turn, the
order reversed every step), so whatever else runs on the machine slows them
alike. Reported per arm: final eval loss, wall-clock of the training steps
(evals excluded), forward and backward FLOPs (torch.utils.flop_counter, of what
really ran); per governed arm, the wall-clock it took to first reach the
baseline's final eval loss within +1%, and its equal-quality speed-up: the
wall-clock the baseline needed to first reach the arm's own final eval loss,
divided by the arm's whole wall-clock (> 1: the arm got there sooner; below the
baseline's curve the baseline's whole run counts, a lower bound). The last line
is one JSON object.

    python -m tools.bench_training                    # configs/bench_shakespeare.yaml
    python -m tools.bench_training --quick            # smoke run, seconds
    python -m tools.bench_training --corpus pycode --steps 1800 --without-frozen
    python -m tools.bench_training --config FILE --steps N --plot curve.png
    python -m tools.bench_training --overhead-only --steps 100   # baseline vs observe
"""

from __future__ import annotations

import argparse
import json
import math
import sys
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
        with torch.no_grad(), FlopCounterMode(display=False) as forward:
            per_sample_loss(self.model, corpus.train[: self.batch].to(self.device))
        self.step_forward = forward.get_total_flops()
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

    @property
    def forward_flops(self) -> int:
        return self.step_forward * self.step

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
        self.forward_flops = 0

    def train_step(self) -> None:
        device = self.trainer.device
        # the blocks this step runs (the meter counts once per bypassed set, untimed)
        self.forward_flops += self.trainer.flops.forward_flops()
        self._metered = self.trainer.flops.seconds
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
            "active_level": s.active_level,
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
            progress = "  ".join(f"{n} {c[-1][3]:.4f} ({c[-1][1]:.0f}s)" for n, c in curves.items())
            print(f"step {step + 1}/{steps}: {progress}", file=sys.stderr, flush=True)
    return {
        name: {
            "curve": curves[name],
            "seconds": arm.seconds,
            "flops": arm.flops,
            "forward_flops": arm.forward_flops,
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


def speedup(base: dict, arm: dict) -> float:
    """Equal-quality speed-up: the baseline's wall-clock to first reach the arm's final
    eval loss over the arm's whole wall-clock (the baseline's whole run if it never did:
    then a lower bound)."""
    reached = reach(base["curve"], arm["eval"])
    return (base["seconds"] if reached is None else reached[1]) / arm["seconds"]


# Round 2's hierarchy: what the benchmark config's governance was before growth won
# (BENCHMARKS.md, "Growth"): dormant levels frozen, nothing grown, a level's emergency
# deadline at a tenth of the run, groups free to converge whatever the groups below do.
ROUND2 = {
    "dormant": "frozen",
    "grow": "none",
    "converge_after_lower": False,
    "emergency_fraction": 0.1,
}


def with_hierarchy(cfg: RunConfig, **update) -> RunConfig:
    """`cfg` with these `governance.hierarchy` fields replaced (validated again)."""
    gov = cfg.governance
    hierarchy = type(gov.hierarchy).model_validate({**gov.hierarchy.model_dump(), **update})
    return cfg.model_copy(update={"governance": gov.model_copy(update={"hierarchy": hierarchy})})


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
    parser.add_argument("--corpus", help="train on this corpus of tools/corpora.py instead")
    return parser


def bench_config(args: argparse.Namespace) -> RunConfig:
    """The config those options ask for (`--quick`: the smoke run, 30 steps by default)."""
    cfg = load_config(args.config)
    if getattr(args, "corpus", None):
        from tools.corpora import corpus_path

        data = cfg.data.model_copy(update={"source": "text", "path": corpus_path(args.corpus)})
        cfg = cfg.model_copy(update={"data": data})
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
    parser.add_argument(
        "--grow", choices=("stack", "identity", "none"), help="the governed arm's growth operator"
    )
    parser.add_argument("--observe", action="store_true", help="add the shadow-mode arm")
    parser.add_argument(
        "--without-frozen",
        action="store_true",
        help="leave out the frozen arm (round 2's recipe): long horizons",
    )
    args = parser.parse_args()
    cfg = bench_config(args)
    governed = with_hierarchy(cfg, grow=args.grow) if args.grow else cfg
    from govtrain.pipeline.data import load_corpus

    corpus = load_corpus(cfg.data, cfg.seed)
    observe_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"mode": "observe"})})
    with tempfile.TemporaryDirectory() as tmp:
        if args.overhead_only:
            overhead(cfg, observe_cfg, corpus, Path(tmp) / "observe")
            return
        arms: dict[str, PlainArm | GovernedArm] = {
            "baseline": PlainArm(cfg, corpus),
            "governed": GovernedArm(governed, Path(tmp) / "governed"),
            "frozen": GovernedArm(with_hierarchy(cfg, **ROUND2), Path(tmp) / "frozen"),
        }
        if args.without_frozen:
            del arms["frozen"]
        if args.observe:
            arms["observe"] = GovernedArm(observe_cfg, Path(tmp) / "observe")
        results = race(arms, cfg)
    base = results["baseline"]
    target = base["eval"] * TOLERANCE
    if args.plot is not None:
        curves = {n: [(c[1], c[3]) for c in a["curve"]] for n, a in results.items()}
        plot_curves(curves, target, "baseline final +1%", "eval loss", args.plot)
        print(f"wrote {args.plot}")
    device = resolve_device(cfg.train.device)
    print(
        f"device {device.type}, {cfg.governance.total_steps} steps, model {cfg.model.n_layer}x"
        f"{cfg.model.n_embd}, batch {cfg.governance.router.batch_size} x {cfg.data.seq_len}, "
        f"corpus {args.corpus or cfg.data.path or cfg.data.source}, "
        f"governed: dormant {governed.governance.hierarchy.dormant}, "
        f"grow {governed.governance.hierarchy.grow}"
    )
    for name, arm in results.items():
        print(
            f"{name:9s} eval {arm['eval']:.4f}  train {arm['seconds']:.1f}s  "
            f"forward {arm['forward_flops'] / 1e12:.3f}  backward {arm['flops'] / 1e12:.3f} TFLOP"
        )
    report: dict = {
        "device": device.type,
        "steps": cfg.governance.total_steps,
        "corpus": args.corpus,
        "grow": governed.governance.hierarchy.grow,
        "baseline": {k: base[k] for k in ("eval", "seconds", "flops", "forward_flops")},
    }
    for name in ("governed", "frozen", "observe"):
        if name not in results:
            continue
        arm = results[name]
        ratios = {
            "eval_over_baseline": arm["eval"] / base["eval"],
            "wallclock_over_baseline": arm["seconds"] / base["seconds"],
            "backward_flops_over_baseline": arm["flops"] / base["flops"],
            "forward_flops_over_baseline": arm["forward_flops"] / base["forward_flops"],
        }
        if name != "observe":
            ratios["equal_quality_speedup"] = speedup(base, arm)
            reached = reach(arm["curve"], target)
            if reached is not None:
                ratios["wallclock_to_baseline_plus_1pct"] = reached[1] / base["seconds"]
        print(f"{name}:")
        for k, v in ratios.items():
            print(f"  {k:36s} {v:.3f}")
        keep = ("eval", "seconds", "flops", "forward_flops", "skipped_share", "final_state")
        report[name] = {
            **{k: arm[k] for k in keep if k in arm},
            "transitions": arm.get("transitions"),
            **{k: round(v, 4) for k, v in ratios.items()},
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
