"""Backward time of routed layers against the routed-sample quota.

A stack of routed Linear layers (the GPT-2 Conv1D path), or with `--model llama`
Llama-style decoder layers (RMSNorm, SwiGLU MLP, rotary grouped-query attention:
the generic routed path of pipeline/routed.py for everything but the Linears), is
timed backward at several quotas, side by side with the same plain modules in the
same run. The weight-gradient matmuls shrink with the quota; the dense input
gradient does not, so the floor is about half the dense backward. A quota of 100%
here runs the routed path with every row routed, the worst case: in a governed run
a group known a step ahead to route every sample runs its plain modules instead.

    python tools/bench_routing.py            # default size, ~1 minute on 2 cores
    python tools/bench_routing.py --model llama
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


class LlamaStack(nn.Module):
    """Llama decoder layers over given hidden states (no embedding, no head)."""

    def __init__(self, width: int, depth: int) -> None:
        from transformers import LlamaConfig, LlamaModel

        super().__init__()
        config = LlamaConfig(
            hidden_size=width, intermediate_size=width * 8 // 3, num_hidden_layers=depth,
            num_attention_heads=8, num_key_value_heads=4, vocab_size=8,
            max_position_embeddings=64,
        )  # fmt: skip
        self.model = LlamaModel(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=x).last_hidden_state


QUOTAS = (1.0, 0.5, 0.25, 0.1)


def build(kind: str, width: int, depth: int, routed: bool) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    if kind == "llama":
        layers: nn.Module = LlamaStack(width, depth)
    else:
        layers = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])
    names = {n: "g" for n, p in layers.named_parameters() if p.requires_grad}
    plan = make_routable(layers, names) if routed else None
    return layers, plan


def time_backward(model: nn.Module, plan, x: torch.Tensor, quota: float | None) -> float:
    """One forward, then the timed backward (routing `quota` of the rows when routed)."""
    batch = x.shape[0]
    out = model(x)
    if plan is not None:
        k = batch if quota is None else max(1, int(batch * quota))
        plan.set("g", torch.arange(k, device=x.device), batch)
    loss = out.pow(2).mean()
    _sync(x.device)
    t0 = time.perf_counter()
    loss.backward()
    _sync(x.device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--model", choices=("linear", "llama"), default="linear")
    args = parser.parse_args()
    device = torch.device(args.device)
    batch, seq, width, depth, reps = (
        (8, 16, 64, 2, 2) if args.quick else (args.batch, 64, 1024, 4, 9)
    )
    if args.model == "llama" and not args.quick:
        width = 512  # a 4-layer Llama of width 512 (SwiGLU 1365, 8 heads, 4 KV heads)
    x = torch.randn(batch, seq, width, requires_grad=True, device=device)
    plain, _ = build(args.model, width, depth, routed=False)
    routed, plan = build(args.model, width, depth, routed=True)
    plain, routed = plain.to(device), routed.to(device)
    # interleaved: each round times the plain stack and every quota, in alternating
    # order, so load from other jobs slows them alike; the first round warms up
    arms = [("plain", None), *((f"{int(q * 100)}", q) for q in QUOTAS)]
    times: dict[str, list[float]] = {name: [] for name, _ in arms}
    for r in range(reps + 1):
        for name, quota in arms if r % 2 == 0 else reversed(arms):
            model, p = (plain, None) if quota is None else (routed, plan)
            t = time_backward(model, p, x, quota)
            if r:
                times[name].append(t)
    base = statistics.median(times["plain"])
    results = {
        "device": device.type,
        "model": args.model,
        "batch": batch,
        "seq": seq,
        "width": width,
        "depth": depth,
        "plain_backward_ms": round(base * 1e3, 2),
    }
    what = f"Llama layer({width})" if args.model == "llama" else f"Linear({width})"
    print(f"plain backward: {base * 1e3:.1f} ms  (batch {batch} x seq {seq}, {depth} x {what})")
    for quota in QUOTAS:
        t = statistics.median(times[f"{int(quota * 100)}"])
        results[f"routed_{int(quota * 100)}pct_ratio"] = round(t / base, 3)
        print(f"routed, quota {quota:>4.0%}: {t * 1e3:7.1f} ms  = {t / base:.2f}x plain")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
