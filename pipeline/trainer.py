"""GovernedTrainer: the recipe for the common case, a thin loop over the components.

One step reads top to bottom: batch -> forward -> per-sample loss -> route ->
routed backward -> clip -> optimiser step -> govern (takes effect next step)
-> audit. Evaluations and model checkpoints are audited too; a checkpoint is a
file whose SHA-256 goes into the log, and resuming verifies log and file first.

Under torchrun (`world`) every rank trains its share of each global batch and
runs the same loop; only rank 0 holds the key, writes the log and checkpoints,
and evaluates (pipeline/distributed.py says what is identical across ranks).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from govtrain.audit.anchors import AnchorStore
from govtrain.audit.keys import (
    PRIVATE_KEY_FILE,
    RUN_KEY_DIR,
    load_signing_key,
    run_key,
)
from govtrain.audit.log import AuditLog, FsyncPolicy
from govtrain.audit.provenance import build_run_start, read_records, records_of
from govtrain.audit.records import canonical_json
from govtrain.audit.repair import repair_torn_tail
from govtrain.audit.verify import LOG_FILE
from govtrain.governance import tiers
from govtrain.governance.errors import GovtrainError
from govtrain.governance.record import decision_to_dict
from govtrain.governance.state import state_to_dict
from govtrain.pipeline import checkpoints
from govtrain.pipeline.config import RunConfig, parse_config
from govtrain.pipeline.data import Corpus, dedup, load_corpus
from govtrain.pipeline.distributed import (
    DistributedError,
    World,
    agree,
    all_reduce_gradients,
    check_all,
    full,
    gather,
    shard,
    sharded_bytes,
    split,
    trainable_digest,
)
from govtrain.pipeline.driver import Driver, Outcome, RunLog
from govtrain.pipeline.flops import FlopMeter
from govtrain.pipeline.models import (
    build_model,
    parameter_digest,
    per_sample_loss,
    structure_digest,
)
from govtrain.pipeline.runlog import new_log
from govtrain.pipeline.schedule import build_optimizer, scheduled_lr, seed_everything, set_lr
from govtrain.pipeline.trackers import sinks_for, track

log = structlog.get_logger("govtrain")

# Checkpoints hold whole tensors keyed by parameter name, whatever the engine: a run
# resumes at any world size, sharded or not (torch.distributed.checkpoint's state dicts).
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)
# a group never stepped yet (dormant until now) has no optimizer state to restore
FULL_OPTIMIZER_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True, strict=False)

PROBE_SAMPLES = 8


class RunError(GovtrainError):
    """A run cannot start or continue (existing directory, bad checkpoint, NaN storm)."""


@dataclass
class RunSummary:
    run_dir: Path
    steps: int
    train_loss: float
    eval_loss: float
    backward_flops: int
    dense_backward_flops: int
    transitions: Counter = field(default_factory=Counter)
    final_state: dict[str, str] = field(default_factory=dict)
    active_level: int = 0
    total_steps: int = 0
    finished: bool = False  # ended by Finish: nothing was left to train
    world_size: int = 1
    grad_bytes: int = 0  # gradient bytes all-reduced across ranks (world_size > 1)
    evals: int = 0  # evaluations run, and skipped because the weights had not changed
    evals_skipped: int = 0
    eval_seconds_each: float = 0.0  # mean time of the evaluations this process ran
    tiers: dict[str, int] | None = None  # samples per data tier now (data.tiers)
    rescorings: int = 0
    deduplicated: int | None = None  # near-duplicates removed before training (data.dedup)

    @property
    def skipped_share(self) -> float:
        if not self.dense_backward_flops:
            return 0.0
        return 1.0 - self.backward_flops / self.dense_backward_flops


class GovernedTrainer:
    """Builds model, data, optimiser, governor and audit log from a RunConfig, then trains."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        *,
        key_path: Path | None = None,
        world: World | None = None,
    ) -> None:
        self.cfg = cfg = config.trainable()
        self.run_dir = Path(run_dir)
        self.key_path, self.world = key_path, world
        gcfg, tcfg = cfg.governance, cfg.train
        seed_everything(cfg.seed)
        if tcfg.deterministic:
            # process-wide by torch's design; cuBLAS reads this before its first use
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        self.corpus: Corpus = load_corpus(cfg.data, cfg.seed)
        self.dedup_report: dict[str, Any] | None = None
        if cfg.data.dedup is not None:
            self.corpus, self.dedup_report = dedup(self.corpus, cfg.data.dedup)
        # governed data tiers: the plan batches are drawn from (governance/tiers.py)
        self.tiers: tiers.TierState | None = None
        if cfg.data.tiers is not None:
            self.tiers = tiers.initial(
                self.corpus.train.shape[0], cfg.data.tiers, gcfg.router.batch_size, cfg.seed
            )
        self.rows: list[int] = []  # the tiered batch's sample indices
        self.device = resolve_device(tcfg.device, world)
        self.model = build_model(cfg.model, self.corpus.vocab_size, cfg.data.seq_len)
        self.model.to(self.device).train()
        self.sharded = world is not None and tcfg.engine == "fsdp2"
        if self.sharded:
            shard(self.model)
        self.optimizer = build_optimizer(self.model, tcfg)
        probe_ids = self.corpus.train[:PROBE_SAMPLES].to(self.device)
        self.driver = Driver(
            self.model,
            self.optimizer,
            gcfg,
            tcfg,
            probe=lambda m: per_sample_loss(m, probe_ids).mean(),
            seed=cfg.seed,
            world=world,
            synced=world is not None,
            on_stop=self._checkpoint,
        )
        self.gov = self.driver.gov
        flop_ids = self.corpus.train[: gcfg.router.batch_size].to(self.device)
        self.flops = FlopMeter(self.gov, lambda m: per_sample_loss(m, flop_ids))
        self.audit: RunLog | None = None
        self.step = 0
        self.grad_bytes = 0  # gradient bytes all-reduced across ranks, over the run
        self.backward_flops = 0
        self.transitions: Counter = Counter()
        self.last_loss = math.nan
        self.last_eval = math.nan
        self.evals = Counter()  # "run", "skipped"
        self.eval_seconds, self.timed_evals = 0.0, 0  # in this process (not checkpointed)
        self.evaluated_at: int | None = None  # the step of the last evaluation ...
        self.changed_since_eval = True  # ... and whether an optimizer step ran since

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Create the run directory and the audit log, committing to what this run is, and
        checkpoint the initial weights, so a crash at any later step can be resumed."""
        params = f"sha256:{parameter_digest(self.model)}"  # every rank: gathers shards
        self.audit = on_leader(lambda: self._create_log(params), self.world)
        self.driver.attach(self.audit)
        self._checkpoint()
        log.info("run_start", run_dir=str(self.run_dir), groups=self.gov.names)

    def _create_log(self, params_digest: str) -> RunLog:
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunError(f"run directory {self.run_dir} exists; pass --resume to continue it")
        sinks = sinks_for(self.cfg, self.run_dir)
        run_start = build_run_start(
            config=self.cfg.model_dump(mode="json"),
            seed=self.cfg.seed,
            data_files=self.corpus.files,
            model_structure_digest=f"sha256:{structure_digest(self.model)}",
            initial_params_digest=params_digest,
            distributed=None if self.world is None else self.world.describe(self.cfg.train.engine),
            data_pipeline=self._data_pipeline(),
        )
        log = new_log(
            self.run_dir,
            run_start,
            signer=None if self.key_path is None else load_signing_key(self.key_path),
            checkpoint_every=self.cfg.audit.checkpoint_every,
            fsync=FsyncPolicy(self.cfg.audit.fsync),
        )
        return track(log, sinks, self.cfg, self.run_dir)

    def _data_pipeline(self) -> dict[str, Any] | None:
        """What run_start records of the data before training: the training sequences
        tiers index (after near-duplicate removal) and the removal's report."""
        data = self.cfg.data
        if data.dedup is None and data.tiers is None:
            return None
        out: dict[str, Any] = {"train_sequences": self.corpus.train.shape[0]}
        if self.dedup_report is not None:
            out["dedup"] = self.dedup_report
        return out

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        *,
        key_path: Path | None = None,
        world: World | None = None,
        after_crash: bool = False,
    ) -> GovernedTrainer:
        """Verify the log, then the last checkpoint against it, then restore everything.

        The log is locked and verified (chain, signatures, the key, trust anchors)
        before anything in it is trusted or any checkpoint read; the checkpoint's
        bytes must then hash to what the verified log recorded. A refused resume
        writes nothing. The config comes from the log's run_start record, so a
        resumed run is the run that was committed to, whatever the YAML file says
        today; the world size may differ from the one it ran at. `after_crash`
        (torchrun restarting a failed group) first cuts a torn tail a killed writer
        left, and only that (audit/repair.py).
        """
        run_dir = Path(run_dir)
        if not (run_dir / LOG_FILE).is_file():
            raise RunError(f"{run_dir}: no {LOG_FILE} to resume")
        if key_path is None and not (run_dir / RUN_KEY_DIR / PRIVATE_KEY_FILE).is_file():
            # the run was signed with a key kept elsewhere: never mint a new one here
            raise RunError(
                f"{run_dir}: no run key in {RUN_KEY_DIR}/; the run was signed with an "
                "external key: pass --key KEY"
            )

        def held() -> AuditLog:
            signer = run_key(run_dir) if key_path is None else load_signing_key(key_path)
            anchors = AnchorStore.default()
            if after_crash:
                trusted = [] if anchors is None else anchors.notes(run_dir)
                _cut_torn_tail(run_dir, signer, trusted)
            return AuditLog.hold(run_dir, signer=signer, anchors=anchors)

        audit = on_leader(held, world)
        try:
            trainer, facts = cls._restore(run_dir, audit, key_path, world)

            def resumed():  # trackers first: one that cannot start leaves the log untouched
                assert isinstance(audit, AuditLog)  # on rank 0, which holds the log
                sinks = sinks_for(trainer.cfg, run_dir)
                log = audit.resume(
                    facts,
                    checkpoint_every=trainer.cfg.audit.checkpoint_every,
                    fsync=FsyncPolicy(trainer.cfg.audit.fsync),
                )
                return track(log, sinks, trainer.cfg, run_dir)

            trainer.audit = on_leader(resumed, world)
            trainer.driver.attach(trainer.audit)
        except BaseException:
            audit.close()  # a held log is let go unwritten
            raise
        log.info("resume", run_dir=str(run_dir), from_step=trainer.step)
        return trainer

    @classmethod
    def _restore(
        cls, run_dir: Path, audit: AuditLog | _Unlogged, key_path: Path | None, world
    ) -> tuple[GovernedTrainer, dict[str, Any]]:
        """The trainer the verified log's last checkpoint holds, and the resume's facts."""
        # rank 0 reads the very bytes it verified under the lock; the others read after it
        records = (
            records_of(audit.log_bytes)
            if isinstance(audit, AuditLog)
            else read_records(run_dir / LOG_FILE)
        )
        config = committed_config(run_dir, records)
        trainer = cls(config, run_dir, key_path=key_path, world=world)
        trainer._check_data_pipeline(records[0].body)
        ckpts = [r.body for r in records if r.kind == "checkpoint"]
        if not ckpts:  # a crash before the initial checkpoint: start again, as committed
            trainer._check_initial_weights(records[0].body)
            facts: dict[str, Any] = {"from_step": 0, "checkpoint": None}
        else:
            trainer._load(checkpoints.read(run_dir, ckpts[-1]), ckpts[-1]["path"])
            if trainer.finished:
                raise RunError(
                    f"{run_dir}: the run finished at step {trainer.step} (nothing left to "
                    "train); there is nothing to resume"
                )
            facts = {
                "from_step": trainer.step,
                "checkpoint": ckpts[-1]["path"],
                "sha256": ckpts[-1]["sha256"],
            }
        if world is not None:
            facts["distributed"] = world.describe(trainer.cfg.train.engine)
        return trainer, facts

    def train(self, stop_after: int | None = None, progress: bool = True) -> RunSummary:
        """Train to the end (or to `stop_after` steps, or to a Finish), checkpoint, seal the log."""
        assert self.audit is not None, "call start() or resume() first"
        total = self.cfg.governance.total_steps
        end = total if stop_after is None else min(total, stop_after)
        with _progress(progress, total, self.step) as bar:
            while self.step < end and not self.finished:
                changed = bool(self.train_step().transitions)
                done = self.step == total or self.finished
                if self.step % self.cfg.train.eval_every == 0 or done:
                    self._evaluate_if_changed(last=done)
                save = self.step % self.cfg.train.checkpoint_every == 0 or done or self.step == end
                if self.world is not None and (save or changed or self._agree_due()):
                    self._agree()
                if save:
                    self._checkpoint()
                bar(self.step, self.last_loss, self.gov.state.active_level)
        self.driver.close(release=False)
        return self.summary()

    @property
    def leader(self) -> bool:
        """Rank 0, or the only process: the one that logs, checkpoints and reports."""
        return self.world is None or self.world.leader

    @property
    def finished(self) -> bool:
        """The core took Finish: every group converged and stayed so (completion.py)."""
        return self.driver.finished

    # -- one step ---------------------------------------------------------------------

    def train_step(self) -> Outcome:
        """One governed step (a non-finite loss or gradient: skipped, as the driver says)."""
        assert self.audit is not None
        ids = self._batch()
        if self.world is not None:
            ids = split(ids, self.world)
        ids = ids.to(self.device, non_blocking=True)
        losses = per_sample_loss(self.model, ids)
        shard = None if self.world is None else gather(losses, self.world)
        # the global batch's mean loss; the backward runs on this rank's share
        loss = (losses if shard is None else shard.losses).mean().item()
        grad_bytes, step_flops = None, 0
        local = losses.mean()
        # False once every group is frozen: nothing to learn, no backward
        if self.driver.forward(losses, shard) and local.requires_grad:
            local.backward()
            # counted after the backward: the meter's own forward and backward must not run
            # between this step's (FSDP2 keeps unsharded weights from one to the other)
            step_flops = self.flops.step_flops(self._frozen(), self._quotas())
            self.backward_flops += step_flops
            if self.world is not None:
                grad_bytes = self._reduce_gradients()
            clip = self.cfg.train.grad_clip or math.inf
            norm = full(nn.utils.clip_grad_norm_(self.model.parameters(), clip))
            if self.driver.before_update(norm.item()):
                set_lr(
                    self.optimizer,
                    scheduled_lr(self.cfg.train, self.step, self.cfg.governance.total_steps),
                )
                self.optimizer.step()
                self.changed_since_eval = True
                # router.scorer learned: the batch's loss drop trains the scorer (a forward,
                # on learn steps only; not in the backward FLOPs, in the step's wall-clock)
                self.gov.learn_router(lambda: per_sample_loss(self.model, ids))
        measured = (
            {}
            if self.driver.skipping
            else {
                "grad_bytes": grad_bytes,
                "flops": (step_flops, self.flops.dense),
                "samples": self._observe_samples(losses if shard is None else shard.losses),
            }
        )
        outcome = self.driver.end(loss, self.optimizer.param_groups[0]["lr"], **measured)
        self.optimizer.zero_grad(set_to_none=True)
        self.transitions.update(t.action for t in outcome.transitions)
        self.step += 1
        self.last_loss = loss
        return outcome

    def _reduce_gradients(self) -> int:
        """Average the trainable gradients across ranks; the bytes it took."""
        assert self.world is not None
        trainable = self.gov.trainable()
        if self.sharded:  # FSDP2 reduce-scattered them during the backward
            grad_bytes = sharded_bytes(trainable)
        else:
            grad_bytes = all_reduce_gradients(trainable, self.world)
        self.grad_bytes += grad_bytes
        self.gov.record_gradients()
        return grad_bytes

    def _batch(self) -> Tensor:
        """This step's global batch: a seeded permutation's slice, or with data tiers the
        plan's, after the re-scoring that starts a period (audited: replay redoes it)."""
        assert self.audit is not None
        batch, seed = self.cfg.governance.router.batch_size, self.cfg.seed
        if self.tiers is None:
            return self.corpus.batch(self.step, batch, seed)
        tcfg = self.cfg.data.tiers
        assert tcfg is not None  # self.tiers exists only with data.tiers
        if tiers.due(self.step, tcfg) and self.tiers.period < self.step // tcfg.rescore_every:
            event = tiers.Rescore(self.tiers, tcfg, batch, seed)
            self.audit.append("rescore", {"step": self.step, **event})
            log.info("rescore", step=self.step, tiers=event["counts"])
        self.rows = tiers.rows(self.tiers, self.step, tcfg, batch)
        return self.corpus.rows(self.rows)

    def _observe_samples(self, losses: Tensor) -> dict[str, list] | None:
        """The step's per-sample losses join the tiers' history; the step record carries
        them with the rows, so replay can redo every re-scoring."""
        if self.tiers is None:
            return None
        values = losses.detach().float().tolist()
        assert self.cfg.data.tiers is not None  # self.tiers exists only with data.tiers
        tiers.Observe(self.tiers, self.rows, values, self.cfg.data.tiers)
        return {"rows": list(self.rows), "losses": values}

    def _evaluate_if_changed(self, last: bool) -> None:
        """Evaluate, or under `train.eval: on_change` record why not: no optimizer step
        has changed the weights since the last evaluation, so its loss still holds."""
        assert self.audit is not None
        if self.cfg.train.eval == "on_change" and not self.changed_since_eval and not last:
            self.evals["skipped"] += 1
            reason = f"weights unchanged since the evaluation at step {self.evaluated_at}"
            self.audit.append(
                "eval_skipped", {"step": self.step, "since": self.evaluated_at, "reason": reason}
            )
            return
        start = time.perf_counter()
        self.evaluate()
        self.eval_seconds += time.perf_counter() - start
        self.timed_evals += 1
        self.evals["run"] += 1
        self.evaluated_at, self.changed_since_eval = self.step, False

    @torch.no_grad()
    def evaluate(self) -> float:
        """The eval loss (on rank 0 only when every rank holds the same weights; under FSDP2
        every rank runs the forward, whose all-gathers need them all)."""
        assert self.audit is not None
        if self.world is not None and not self.world.leader and not self.sharded:
            return self.last_eval
        self.model.eval()
        batches = self.corpus.eval_batches(
            self.cfg.governance.router.batch_size, self.cfg.train.eval_batches
        )
        losses = [float(per_sample_loss(self.model, b.to(self.device)).mean()) for b in batches]
        self.model.train()
        self.last_eval = sum(losses) / len(losses)
        self.driver.evaluated(self.step, self.last_eval)
        return self.last_eval

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint(self) -> None:
        assert self.audit is not None
        if self.world is not None and not self.world.leader and not self.sharded:
            return
        state = self._state()  # under FSDP2 a collective: every rank gathers its shards
        if not self.leader:
            return
        self.driver.saved(self.step, *checkpoints.write(self.run_dir, self.step, state))

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": get_model_state_dict(self.model, options=FULL_STATE),
            # an optimizer with no state yet saves none: asked for its state dict, torch
            # would first create it with a zero-learning-rate step (AdamW's step count)
            "optimizer": self._optimizer_state() if self.optimizer.state else None,
            "governor": self.gov.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": random.getstate(),
            },
            "backward_flops": self.backward_flops,
            "grad_bytes": self.grad_bytes,
            "transitions": dict(self.transitions),
            "last_loss": self.last_loss,
            "last_eval": self.last_eval,
            "evals": dict(self.evals),
            "evaluated_at": self.evaluated_at,
            "changed_since_eval": self.changed_since_eval,
            "tiers": None if self.tiers is None else self.tiers.to_dict(),
        }

    def _load(self, sd: dict[str, Any], path: str) -> None:
        """Restore a checkpoint's state (checkpoints.read checked its format); a state
        this model, optimizer or governor cannot take is one line naming the file."""
        try:
            self.step = sd["step"]
            set_model_state_dict(self.model, sd["model"], options=FULL_STATE)
            self.gov.load_state_dict(sd["governor"])
            if sd["optimizer"] is not None:
                self._load_optimizer(sd["optimizer"])
            torch.set_rng_state(sd["rng"]["torch"])
            if sd["rng"]["cuda"]:
                torch.cuda.set_rng_state_all(sd["rng"]["cuda"])
            random.setstate(sd["rng"]["python"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RunError(
                f"checkpoint {path}: its state does not fit this run ({type(exc).__name__}: "
                f"{first}); cannot resume"
            ) from None
        self.backward_flops = sd["backward_flops"]
        self.grad_bytes = sd["grad_bytes"]
        self.transitions = Counter(sd["transitions"])
        self.last_loss, self.last_eval = sd["last_loss"], sd["last_eval"]
        self.evals = Counter(sd["evals"])
        self.evaluated_at = sd["evaluated_at"]
        self.changed_since_eval = sd["changed_since_eval"]
        if sd["tiers"] is not None:
            self.tiers = tiers.TierState.from_dict(sd["tiers"])

    def _optimizer_state(self) -> dict[str, Any]:
        with _all_trainable(self.gov.all_params):  # frozen groups keep their state too
            return get_optimizer_state_dict(self.model, self.optimizer, options=FULL_STATE)

    def _load_optimizer(self, saved: dict[str, Any]) -> None:
        """Restore the optimizer's state exactly: torch first creates state for every
        trainable parameter (a zero-learning-rate step on a fresh optimizer), so the state
        of parameters the checkpoint held none for (a group never stepped yet) is dropped."""
        with _all_trainable(self.gov.all_params):
            set_optimizer_state_dict(
                self.model, self.optimizer, saved, options=FULL_OPTIMIZER_STATE
            )
        names = {id(p): n for n, p in self.model.named_parameters()}
        for p in list(self.optimizer.state):
            if names.get(id(p)) not in saved["state"]:
                del self.optimizer.state[p]

    def _check_data_pipeline(self, run_start: dict[str, Any]) -> None:
        """The data pipeline, redone from the committed config, keeps the sequences
        run_start recorded (tiers index them): else the data changed under the run."""
        now, then = self._data_pipeline(), run_start.get("data_pipeline")
        if now == then:
            return
        have = "nothing" if now is None else f"{now['train_sequences']} training sequences"
        had = "nothing" if then is None else f"{then.get('train_sequences')} sequences"
        what = f"data pipeline now gives {have}, not the {had} that run_start committed to"
        if now is not None and then is not None and had == f"{now['train_sequences']} sequences":
            what = "near-duplicate removal now removes other rows than run_start recorded"
        raise RunError(f"{self.run_dir}: the {what} (did the data change?); cannot resume")

    def _check_initial_weights(self, run_start: dict[str, Any]) -> None:
        """The seeded initialisation reproduces the weights run_start committed to."""
        built = f"sha256:{parameter_digest(self.model)}"
        committed = run_start["model"]["init_params_digest"]
        if built != committed:
            raise RunError(
                f"{self.run_dir}: no checkpoint, and re-initialising from the committed seed "
                f"gives weights {built}, not the run_start's {committed}; cannot resume"
            )

    # -- agreement across ranks -------------------------------------------------------

    def _agree_due(self) -> bool:
        return self.step % self.cfg.train.agree_every == 0

    def _digest(self) -> str:
        """SHA-256 of what every rank must hold alike: the core's state and decision, and
        the trainable weights."""
        names = self.gov.names
        core = canonical_json(
            {
                "state": state_to_dict(self.gov.state, names),
                "decision": decision_to_dict(self.gov.decision, names),
            }
        )
        return hashlib.sha256(core + trainable_digest(self.gov.trainable()).encode()).hexdigest()

    def _agree(self) -> None:
        """All ranks compare digests; on a mismatch, checkpoint rank 0, seal the log, stop."""
        assert self.world is not None and self.audit is not None
        digests = agree(self._digest(), self.world)
        self.audit.append("agree", {"step": self.step, "digests": digests})
        odd = [r for r, d in enumerate(digests) if d != digests[0]]
        if odd:
            self._checkpoint()
            self.driver.close("ranks disagree", release=False, ranks=odd)
            raise DistributedError(
                f"rank(s) {odd} disagree with rank 0 at step {self.step} (governance state "
                "or weights differ); stopped: rank 0 checkpointed, log sealed"
            )

    # -- reporting --------------------------------------------------------------------

    def _frozen(self) -> frozenset[str]:
        if not self.gov.enforce:
            return frozenset()
        return frozenset(
            n for n, g in zip(self.gov.names, self.gov.state.groups, strict=True) if g.phase.frozen
        )

    def _quotas(self) -> dict[str, int]:
        return {n: r["quota"] for n, r in self.gov.routed.items()}

    def summary(self) -> RunSummary:
        return RunSummary(
            run_dir=self.run_dir,
            steps=self.step,
            train_loss=self.last_loss,
            eval_loss=self.last_eval,
            backward_flops=self.backward_flops,
            dense_backward_flops=self.flops.dense * self.step,
            transitions=self.transitions,
            final_state={
                n: g.phase.value for n, g in zip(self.gov.names, self.gov.state.groups, strict=True)
            },
            active_level=self.gov.state.active_level,
            total_steps=self.cfg.governance.total_steps,
            finished=self.finished,
            world_size=1 if self.world is None else self.world.size,
            grad_bytes=self.grad_bytes,
            evals=self.evals["run"],
            evals_skipped=self.evals["skipped"],
            eval_seconds_each=self.eval_seconds / max(1, self.timed_evals),
            tiers=None if self.tiers is None else dict(Counter(self.tiers.tiers)),
            rescorings=0 if self.tiers is None else self.tiers.period,
            deduplicated=None if self.dedup_report is None else self.dedup_report["removed"],
        )


def committed_config(run_dir: Path, records: list | None = None) -> RunConfig:
    """The config a run's log committed to in its run_start record."""
    if records is None:
        if not (run_dir / LOG_FILE).is_file():
            raise RunError(f"{run_dir}: no {LOG_FILE} to resume")
        records = read_records(run_dir / LOG_FILE)
    return parse_config(records[0].body["config"], f"{run_dir} run_start")


def resolve_device(choice: str, world: World | None = None) -> torch.device:
    """The device; under torchrun, the one the rank joined the job with (its own GPU)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RunError("train.device is 'cuda' but no CUDA device is available")
    if world is not None:
        return world.device
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def wants_cuda(choice: str) -> bool:
    """Whether `train.device` resolves to CUDA here (picks the collectives' backend)."""
    return choice == "cuda" or (choice == "auto" and torch.cuda.is_available())


def on_leader(make, world: World | None):
    """`make()` on rank 0 (in every process when not distributed); other ranks get a sink
    that writes nothing. Any failure on rank 0 stops every rank, not only rank 0."""
    if world is None:
        return make()
    error, made = None, _Unlogged()
    if world.leader:
        try:
            made = make()
        except Exception as exc:  # re-raised below, after telling the other ranks
            error = exc
    check_all(error, world)
    return made


def _cut_torn_tail(run_dir: Path, signer, anchors: list[str]) -> None:
    """After a crash: cut an incomplete last record a killed writer left (nothing else),
    in a log that verifies with the run's key and anchors."""
    _, cuts = repair_torn_tail(run_dir, pubkey=signer.verifier, anchors=anchors)
    if cuts:
        log.warning("repaired", cuts=[f"{c.file.name}@{c.offset}" for c in cuts])


@contextlib.contextmanager
def _all_trainable(params: list[nn.Parameter]):
    """Every parameter trainable for a moment: torch's optimizer state dicts skip frozen
    parameters, whose state (kept for `awaken_optimizer_state: keep`) must survive a resume."""
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, saved, strict=True):
            p.requires_grad_(flag)


class _Unlogged:
    """The audit sink of ranks other than 0: rank 0 writes the run's one log."""

    def append(self, kind: str, body: dict[str, Any]) -> None:
        pass

    def close(self, body: dict[str, Any] | None = None) -> None:
        pass


class _progress:
    """A rich progress bar (or nothing), updated with step, loss and active level."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled, self.total, self.done = enabled, total, done

    def __enter__(self):
        if not self.enabled:
            return lambda *a: None
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            transient=False,
        )
        self.progress.__enter__()
        task = self.progress.add_task("train", total=self.total, completed=self.done, info="")

        def update(step: int, loss: float, level: int) -> None:
            self.progress.update(task, completed=step, info=f"loss {loss:.3f} level {level}")

        return update

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.__exit__(*exc)
