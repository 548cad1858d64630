"""What a dormant level costs: frozen (its blocks run without gradients) against bypassed
(its blocks do not run), per active level, forward and backward timed apart.

For each active level of the benchmark config, two governors over two copies of the
same model hold the same governance state (levels up to it ACTIVE, the rest DORMANT);
one freezes the dormant levels (`hierarchy.dormant: frozen`), the other bypasses them.
Their forward and backward on the same batch are timed interleaved (frozen, bypass,
bypass, frozen, ...), so machine load slows both alike; the median of the repeats is
reported. `--profile` adds torch.profiler's top operators for level 0 under each mode.
The last line is one JSON object.

    python -m tools.bench_dormant                  # configs/bench_shakespeare.yaml's model
    python -m tools.bench_dormant --quick          # tiny model, seconds
    python -m tools.bench_dormant --profile
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from govtrain.governance.state import GovernanceState, GroupState, Phase
from govtrain.pipeline.config import GovernOptions, RunConfig
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.models import build_model, per_sample_loss
from govtrain.pipeline.schedule import build_optimizer
from tools.bench_training import bench_arguments, bench_config, with_hierarchy

MODES = ("frozen", "bypass")


def governed(cfg: RunConfig, vocab: int) -> tuple[torch.nn.Module, Governor]:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, vocab, cfg.data.seq_len).train()
    options = GovernOptions(signal=cfg.train.signal)
    return model, Governor(model, build_optimizer(model, cfg.train), cfg.governance, options)


def hold(gov: Governor, level: int) -> None:
    """Put `gov` at `level`: the groups up to it ACTIVE, the others DORMANT."""
    cfg = gov.cfg
    groups = tuple(
        GroupState(Phase.ACTIVE if cfg.level_of(i) <= level else Phase.DORMANT)
        for i in range(len(cfg.groups))
    )
    gov.state = GovernanceState(0, level, groups)
    gov._apply_freezing()


def timed(model: torch.nn.Module, ids: torch.Tensor) -> tuple[float, float]:
    t0 = time.perf_counter()
    loss = per_sample_loss(model, ids).mean()
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    model.zero_grad(set_to_none=True)
    return t1 - t0, t2 - t1


def profile(model: torch.nn.Module, ids: torch.Tensor, mode: str) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            timed(model, ids)
    print(f"--- profile, level 0, dormant {mode} (3 steps)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    parser = bench_arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    cfg = bench_config(args)
    repeats = 3 if args.quick else args.repeats
    vocab, batch = cfg.data.vocab_size, cfg.governance.router.batch_size
    arms = {
        "frozen": governed(with_hierarchy(cfg, dormant="frozen", grow="none"), vocab),
        "bypass": governed(with_hierarchy(cfg, dormant="bypass", grow="none"), vocab),
    }
    arms["bypass"][0].load_state_dict(arms["frozen"][0].state_dict())
    ids = torch.randint(
        0, vocab, (batch, cfg.data.seq_len), generator=torch.Generator().manual_seed(0)
    )
    rows: list[dict] = []
    for level in range(cfg.governance.hierarchy.levels):
        for _, gov in arms.values():
            hold(gov, level)
        times: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
        for r in range(repeats + 1):
            for mode in MODES if r % 2 == 0 else reversed(MODES):
                t = timed(arms[mode][0], ids)
                if r:  # the first round warms up
                    times[mode].append(t)
        row: dict = {"level": level}
        for mode in MODES:
            row[f"{mode}_forward_ms"] = 1e3 * statistics.median(f for f, _ in times[mode])
            row[f"{mode}_backward_ms"] = 1e3 * statistics.median(b for _, b in times[mode])
        whole = {m: row[f"{m}_forward_ms"] + row[f"{m}_backward_ms"] for m in MODES}
        row["bypass_over_frozen"] = whole["bypass"] / whole["frozen"]
        rows.append(row)
        print(
            f"active level {level}: frozen fwd {row['frozen_forward_ms']:.1f} ms bwd "
            f"{row['frozen_backward_ms']:.1f} ms | bypass fwd {row['bypass_forward_ms']:.1f} "
            f"ms bwd {row['bypass_backward_ms']:.1f} ms | "
            f"bypass/frozen {row['bypass_over_frozen']:.3f}"
        )
    if args.profile:
        for mode in MODES:
            hold(arms[mode][1], 0)
            profile(arms[mode][0], ids, mode)
    print(json.dumps({"device": "cpu", "threads": torch.get_num_threads(), "levels": rows}))


if __name__ == "__main__":
    main()
