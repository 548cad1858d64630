"""Plain DDP vs. governed training on 2 processes: bytes communicated, step time, eval loss.

One torchrun job (gloo, 2 ranks; this script launches it when run plainly). On
every rank two arms train the same model from the same initial weights on the
same global batches, stepped alternately (one step of each in turn), so
whatever else runs on the machine slows them alike:

* ddp: torch's DistributedDataParallel around the plain model; a plain loop
  (forward, mean loss, backward, clip, AdamW step). Its gradient bytes are
  counted by a DDP communication hook around the default all-reduce.
* governed: the GovernedTrainer on the same ranks (govtrain's own all-reduce of
  the trainable gradients, freezing, routing, agreement digests, rank-0 audit log).

Reported: gradient bytes all-reduced (governed / ddp, over the run), wall-clock
of the training steps (governed / ddp; evaluations excluded), final eval loss of
each. The last line is one JSON object.

    python -m tools.bench_distributed                 # configs/bench_shakespeare.yaml
    python -m tools.bench_distributed --quick         # smoke run, seconds
    python -m tools.bench_distributed --steps 300
    python -m tools.bench_distributed --steps 100 --profile   # + rank 0's governed-step profile
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench_shakespeare.yaml")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument(
        "--engine", choices=["ddp", "fsdp2"], default="ddp", help="the governed arm's engine"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile rank 0's governed steps (govtrain's own functions)",
    )
    return parser.parse_args(argv)


def launch(argv: list[str], nproc: int) -> int:
    """Run this script under torchrun (gloo, OMP_NUM_THREADS=1) and relay its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "tools.bench_distributed", *argv,
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, cwd=ROOT, check=False).returncode


def bench_config(args: argparse.Namespace):
    from govtrain.pipeline.config import load_config
    from tools.bench_training import quick_config, with_steps

    cfg = load_config(args.config)
    if args.quick:
        cfg = quick_config(cfg)
        governor = cfg.governance.governor.model_copy(update={"window": 3, "patience": 3})
        gov = cfg.governance.model_copy(update={"governor": governor})
        cfg = cfg.model_copy(update={"governance": gov})
        args.steps = args.steps or 40
    if args.engine == "fsdp2":  # FSDP2 runs the grad_norm signal only (pipeline/config.py)
        train = cfg.train.model_copy(update={"engine": "fsdp2", "signal": "grad_norm"})
        cfg = cfg.model_copy(update={"train": train})
    if args.steps:
        cfg = with_steps(cfg, args.steps)
    return cfg


class DDPArm:
    """torch's DistributedDataParallel and a plain loop, counting the bytes DDP all-reduces."""

    def __init__(self, cfg, corpus, world) -> None:
        import torch
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
        from torch.nn.parallel import DistributedDataParallel

        from govtrain.pipeline.models import build_model
        from govtrain.pipeline.schedule import build_optimizer, seed_everything

        self.cfg, self.corpus, self.world = cfg, corpus, world
        seed_everything(cfg.seed)
        model = build_model(cfg.model, corpus.vocab_size, cfg.data.seq_len).train()
        self.ddp = DistributedDataParallel(model)
        self.opt = build_optimizer(model, cfg.train)
        self.bytes, self.seconds, self.step = 0, 0.0, 0

        def counting(state, bucket):
            buffer = bucket.buffer()
            self.bytes += buffer.numel() * buffer.element_size()
            return default_hooks.allreduce_hook(None, bucket)

        self.ddp.register_comm_hook(None, counting)
        self.torch = torch

    def train_step(self) -> None:
        from govtrain.pipeline.distributed import split
        from govtrain.pipeline.models import per_sample_loss
        from govtrain.pipeline.schedule import scheduled_lr, set_lr

        cfg = self.cfg
        ids = split(self.corpus.batch(self.step, cfg.governance.router.batch_size, cfg.seed),
                    self.world)  # fmt: skip
        t0 = time.perf_counter()
        per_sample_loss(self.ddp, ids).mean().backward()
        self.torch.nn.utils.clip_grad_norm_(self.ddp.parameters(), cfg.train.grad_clip or math.inf)
        set_lr(self.opt, scheduled_lr(cfg.train, self.step, cfg.governance.total_steps))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.seconds += time.perf_counter() - t0
        self.step += 1


def worker(args: argparse.Namespace) -> None:
    from govtrain.pipeline import distributed
    from govtrain.pipeline.models import per_sample_loss
    from govtrain.pipeline.trainer import GovernedTrainer

    cfg = bench_config(args)
    world = distributed.join(cfg.train.collective_timeout_s, cuda=False)
    with tempfile.TemporaryDirectory() as tmp:
        # only rank 0 writes the run directory (the log and checkpoints)
        governed = GovernedTrainer(cfg, Path(tmp) / "governed", world=world)
        governed.start()
        plain = DDPArm(cfg, governed.corpus, world)
        governed_s = 0.0
        total = cfg.governance.total_steps
        profile = cProfile.Profile() if args.profile and world.leader else None
        for _ in range(total):
            plain.train_step()
            if governed.finished:
                continue
            t0, metered = time.perf_counter(), governed.flops.seconds
            if profile is not None:
                profile.enable()
            governed.train_step()
            if governed.step % cfg.train.agree_every == 0:
                governed._agree()
            if profile is not None:
                profile.disable()
            # FLOP accounting is instrumentation (as in bench_training): its time is left out
            governed_s += time.perf_counter() - t0 - (governed.flops.seconds - metered)
        gov_eval = governed.evaluate()  # on every rank under FSDP2 (its forward gathers)
        governed.audit.close()
        if not world.leader:
            distributed.finish()
        if profile is not None:
            stats = pstats.Stats(profile).sort_stats("cumulative")
            stats.print_stats(r"pipeline/(distributed|governor|trainer|flops)", 14)
        model = plain.ddp.module.eval()
        with plain.torch.no_grad():
            batches = governed.corpus.eval_batches(
                cfg.governance.router.batch_size, cfg.train.eval_batches
            )
            ddp_eval = sum(float(per_sample_loss(model, b).mean()) for b in batches) / len(batches)
        steps = governed.step
        # DDP reduces every step; the governed arm reduced only on the steps it trained
        result = {
            "bench": "distributed",
            "world_size": world.size,
            "engine": args.engine,
            "steps": total,
            "governed_steps": steps,
            "ddp_grad_bytes": plain.bytes,
            "governed_grad_bytes": governed.grad_bytes,
            "bytes_ratio": round(governed.grad_bytes / plain.bytes, 4),
            "ddp_step_s": round(plain.seconds, 3),
            "governed_step_s": round(governed_s, 3),
            "time_ratio": round(governed_s / plain.seconds, 4),
            "ddp_eval_loss": round(ddp_eval, 4),
            "governed_eval_loss": round(gov_eval, 4),
            "eval_loss_ratio": round(gov_eval / ddp_eval, 4),
            "transitions": dict(governed.transitions),
        }
        print(
            f"{world.size} ranks, {total} steps (governed: {steps}, engine {args.engine})\n"
            f"gradient bytes reduced      ddp {plain.bytes / 2**20:9.1f} MiB   "
            f"governed {governed.grad_bytes / 2**20:9.1f} MiB   ratio {result['bytes_ratio']:.3f}\n"
            f"training-step wall-clock    ddp {plain.seconds:9.1f} s     "
            f"governed {governed_s:9.1f} s     ratio {result['time_ratio']:.3f}\n"
            f"final eval loss             ddp {ddp_eval:9.4f}       "
            f"governed {gov_eval:9.4f}       ratio {result['eval_loss_ratio']:.4f}"
        )
        print(json.dumps(result), flush=True)
        distributed.finish()


def main() -> None:
    if "WORLD_SIZE" in os.environ:
        worker(parse_args())
        return
    args = parse_args()
    sys.exit(launch(sys.argv[1:], args.nproc))


if __name__ == "__main__":
    main()
