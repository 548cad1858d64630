"""What governing costs under the Hugging Face Trainer: a Llama-style model, the plain
Trainer against the same Trainer with the governance callback in shadow mode.

Shadow mode (`mode="observe"`) measures the signals, decides, routes through the
routed modules and appends every step to a signed audit log, but applies nothing, so
both arms train identically and the difference is the cost of governing itself. A
Trainer cannot be stepped alternately with another, so the arms alternate in rounds:
each round trains a fresh copy of the same initial model for `--steps` steps under
each arm, in alternating order, and a callback times every optimizer step (from
`on_step_begin` to `on_step_end`: forward, backward, clipping, optimizer, and the
governance callback's own hooks). The first step of each run (warm-up) is dropped.
Groups are `auto` (pipeline/autogroups.py). The last line is one JSON object.

    python -m tools.bench_hf_overhead              # 4 x 256 Llama, 6 rounds of 30 steps
    python -m tools.bench_hf_overhead --quick      # tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from govtrain.governance.config import parse_governance
from govtrain.pipeline.autogroups import auto_groups
from govtrain.pipeline.hf import GovernanceCallback, start_audit


class StepTimer(TrainerCallback):
    """Wall-clock of each optimizer step, as the Trainer runs it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t0)


def governance(model: torch.nn.Module, steps: int, batch: int) -> dict:
    groups = auto_groups(model, 2)
    return {
        "total_steps": steps,
        "groups": groups,
        "governor": {"signal_threshold": 0.05, "window": 5, "patience": 5,
                     "wake_threshold": 0.5, "max_awakenings": 1},
        "hierarchy": {"levels": 2, "emergency_fraction": 0.5},
        "budget": {"master": len(groups) * batch, "floor": 4, "ceiling": batch},
        "router": {"batch_size": batch, "warmup_steps": 2, "scorer": "loss"},
    }  # fmt: skip


def run_arm(state: dict, size: dict, rows: list, steps: int, batch: int, run_dir: Path | None):
    """One Trainer run of `steps` steps from `state`; governed in shadow mode when a run
    directory is given. Returns the per-step times, the first dropped."""
    model = LlamaForCausalLM(LlamaConfig(**size))
    model.load_state_dict(state)
    args = TrainingArguments(
        output_dir=str((run_dir or Path(tempfile.mkdtemp())) / "hf"), max_steps=steps,
        per_device_train_batch_size=batch, learning_rate=1e-3, lr_scheduler_type="constant",
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_drop_last=True, logging_strategy="no",
    )  # fmt: skip
    timer = StepTimer()
    callbacks: list[TrainerCallback] = [timer]
    if run_dir is not None:
        cfg = parse_governance(governance(model, steps, batch))
        audit = start_audit(run_dir, model, cfg, training_args=args)
        callbacks.append(GovernanceCallback(cfg, audit=audit, mode="observe"))
    Trainer(model=model, args=args, train_dataset=rows, callbacks=callbacks).train()
    return timer.times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    width, layers, seq, batch = (32, 2, 16, 8) if args.quick else (256, 4, 64, 16)
    rounds, steps = (2, 5) if args.quick else (args.rounds, args.steps)
    size = {"vocab_size": 512, "hidden_size": width, "intermediate_size": width * 8 // 3,
            "num_hidden_layers": layers, "num_attention_heads": 8 if width >= 64 else 2,
            "num_key_value_heads": 4 if width >= 64 else 1,
            "max_position_embeddings": seq}  # fmt: skip
    torch.manual_seed(0)
    state = LlamaForCausalLM(LlamaConfig(**size)).state_dict()
    ids = torch.randint(0, 512, (batch * steps, seq), generator=torch.Generator().manual_seed(1))
    rows = [{"input_ids": i, "labels": i} for i in ids]
    times: dict[str, list[float]] = {"plain": [], "observe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for arm in ("plain", "observe") if r % 2 == 0 else ("observe", "plain"):
                run_dir = Path(tmp) / f"observe-{r}" if arm == "observe" else None
                times[arm] += run_arm(state, size, rows, steps, batch, run_dir)
    plain, observe = sum(times["plain"]), sum(times["observe"])
    ratio = observe / plain
    print(
        f"Llama {layers}x{width}, batch {batch} x {seq}, {rounds} rounds x {steps} steps per "
        f"arm: plain Trainer {plain:.1f} s, shadow-mode governance {observe:.1f} s, "
        f"overhead {ratio - 1:+.1%}"
    )
    print(
        json.dumps(
            {
                "bench": "hf_overhead",
                "model": f"llama {layers}x{width}",
                "batch": batch,
                "seq": seq,
                "rounds": rounds,
                "steps": steps,
                "plain_s": round(plain, 3),
                "observe_s": round(observe, 3),
                "overhead_observe_over_plain": round(ratio, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
