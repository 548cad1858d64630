"""Backward time of routed layers against the routed-sample quota.

A stack of routed Linear layers (the GPT-2 Conv1D path) is timed forward+backward
at several quotas, side by side with plain `nn.Linear` in the same run. The
weight-gradient matmul shrinks with the quota; the dense input gradient does
not, so the floor is about half the dense backward.

    python tools/bench_routing.py            # default size, ~1 minute on 2 cores
    python tools/bench_routing.py --quick    # smoke run (correctness only)
    python tools/bench_routing.py --device cuda --batch 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from govtrain.pipeline.routed import make_routable


def build(width: int, depth: int, routed: bool) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
    plan = make_routable(layers, {n: "g" for n, _ in layers.named_parameters()}) if routed else None
    return layers, plan


def time_backward(model: nn.Module, plan, x: torch.Tensor, quota: float | None, reps: int) -> float:
    batch = x.shape[0]
    times = []
    for _ in range(reps + 1):
        out = model(x)
        if plan is not None:
            k = batch if quota is None else max(1, int(batch * quota))
            plan.set("g", torch.arange(k, device=x.device), batch)
        loss = out.pow(2).mean()
        _sync(x.device)
        t0 = time.perf_counter()
        loss.backward()
        _sync(x.device)
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch, seq, width, depth, reps = (
        (8, 16, 64, 2, 2) if args.quick else (args.batch, 64, 1024, 4, 9)
    )
    x = torch.randn(batch, seq, width, requires_grad=True, device=device)
    plain, _ = build(width, depth, routed=False)
    routed, plan = build(width, depth, routed=True)
    plain, routed = plain.to(device), routed.to(device)
    base = time_backward(plain, None, x, None, reps)
    results = {
        "device": device.type,
        "batch": batch,
        "seq": seq,
        "width": width,
        "depth": depth,
        "plain_backward_ms": round(base * 1e3, 2),
    }
    print(
        f"plain nn.Linear backward: {base * 1e3:.1f} ms  (batch {batch} x seq {seq}, "
        f"{depth} x Linear({width}))"
    )
    for quota in (1.0, 0.5, 0.25, 0.1):
        t = time_backward(routed, plan, x, quota, reps)
        results[f"routed_{int(quota * 100)}pct_ratio"] = round(t / base, 3)
        print(f"routed, quota {quota:>4.0%}: {t * 1e3:7.1f} ms  = {t / base:.2f}x plain")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
