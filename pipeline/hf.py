"""Governance and auditing for an unmodified Hugging Face `transformers.Trainer`: one callback.

    log = start_audit(run_dir, model, cfg.governance, training_args=args)   # optional
    callback = GovernanceCallback(cfg.governance, audit=log, probe_batch=probe)
    Trainer(model=model, args=args, train_dataset=ds, callbacks=[callback]).train()

The callback drives the same `Governor` as `GovernedTrainer`, at the same
points of a step. Where each call sits in transformers 5.23's
`Trainer._inner_training_loop` / `_run_epoch`:

* build the Governor, freeze DORMANT groups -> `on_train_begin`: the optimizer
  is already built (`_prepare_for_training`, from the parameters with
  requires_grad then, i.e. all of them) and no forward has run yet;
* `route(per_sample_loss)` -> a forward hook on the model: `training_step`
  runs forward then backward with no event between; the hook ends the
  forward, and the routed backward reads the slots it set;
* `commit(loss, lr)` -> `on_optimizer_step`: after clipping and
  `optimizer.step()`, before `lr_scheduler.step()` and `model.zero_grad()`,
  GovernedTrainer's order; `lr` is the rate the step used;
* `eval` record -> `on_evaluate` (the evaluation's metrics);
* `checkpoint` record -> `on_save` (SHA-256 of each saved model weight file);
* close the log (run_end record, final signed checkpoint) -> `on_train_end`.

Gradient norms reach the Governor through its post-accumulate-grad hooks,
during the backward and before clipping, exactly as in `GovernedTrainer`.

Per-sample losses (the router's scores) are computed in the forward hook
from `output.logits` and the `labels` the Trainer passed, without gradient:

* causal LM heads (`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`, e.g. GPT2LMHeadModel):
  next-token cross-entropy, labels shifted by one, `-100` ignored, averaged
  over each sample's counted tokens;
* sequence and image classification heads (`MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES`,
  `MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES`, e.g. BertForSequenceClassification,
  ViTForImageClassification): the loss the head itself uses, per
  sample: cross-entropy, MSE (`num_labels == 1`) or mean BCE (multi-label);
* anything else: pass `per_sample_loss=fn(logits, labels) -> [B]`.

Position ids. GPT-2 and BERT look their position embeddings up with ids of
shape [1, T] and let broadcasting add them to every sample; the routed
embedding routes by dim 0, so it would see one "sample" instead of B. A
forward pre-hook on every embedding therefore expands ids with batch dim 1 to
the model's batch [B, ...] (the same values the broadcast produced), so the
position table's gradient comes from the routed samples only. Any other batch
dim (a relative-position table indexed by [T, T], say) cannot be routed per
sample and is refused with the module's name.

Several processes (torchrun + the Trainer's DistributedDataParallel): the
Trainer wraps the model before `on_train_begin`, so every governed parameter is
in DDP's construction-time set and the callback only ever freezes and unfreezes
parameters of that set; with `ddp_find_unused_parameters` (the Trainer's
default for a PreTrainedModel) DDP tolerates the frozen ones, still
all-reducing them as zeros (no communication saved: GovernedTrainer's own
all-reduce is what saves it). Each rank routes its own batch (`router.batch_size`
is the per-device batch). The gradient-norm hooks see each rank's local
gradient, so the observations the core sees are rank 0's, broadcast as float64:
every rank takes the same decisions, by construction. Only rank 0 may hold the
audit log.

What the callback refuses (HFGovernanceError, at `on_train_begin`), and why:
gradient accumulation > 1 and DataParallel over several GPUs (one route per
optimizer step of one batch is what the Governor's quota means);
`ddp_find_unused_parameters=False` (freezing after DDP wraps the model would
fail the next backward); an audit log on a rank other than 0; a per-device
batch other than `router.batch_size` (quotas are samples of that batch);
`max_steps` other than `total_steps` (the hierarchy's emergency deadlines are
fractions of it); label smoothing (the Trainer then hides `labels` from the
model); fp16 loss scaling (a skipped overflow step would feed infinite norms
to the core); torch_compile; resuming from an HF checkpoint (the governor's
state is not in it); parameters that are frozen or missing from the optimizer
before governance starts (the Trainer would never update them once their
group activates).

The loop policy is the `Driver`'s (pipeline/driver.py), as in GovernedTrainer and
the Lightning callback: a step whose per-sample losses are not all finite, on any
rank, is skipped on every rank (its gradients dropped in `on_pre_optimizer_step`,
so the Trainer's optimizer step changes nothing, and recorded `nonfinite`);
`max_nonfinite` (3) of them in a row stop training with an error, the log sealed.
A batch of another size than `router.batch_size` (a short last batch: set
`dataloader_drop_last=True`) is refused in one line. Training stops at Finish; a
step with every group frozen still runs (its loss tied to the driver's anchor, so
the Trainer's backward runs and updates nothing) and the core observes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from govtrain.audit.log import AuditLog
from govtrain.audit.provenance import file_sha256
from govtrain.governance.config import GovernanceConfig
from govtrain.governance.errors import GovtrainError
from govtrain.pipeline.config import parse_options
from govtrain.pipeline.distributed import current_world
from govtrain.pipeline.driver import Driven, Driver
from govtrain.pipeline.routed import runs_natively
from govtrain.pipeline.runlog import create_run_log

log = structlog.get_logger("govtrain")

PerSampleLoss = Callable[[Tensor, Tensor], Tensor]
MODEL_FILE_PREFIXES = ("model", "pytorch_model")
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".index.json")


class HFGovernanceError(GovtrainError):
    """A Trainer setup or model the callback cannot govern as the Governor would."""


# -- per-sample losses ---------------------------------------------------------------------


def causal_lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """[B, T, V] logits, [B, T] labels -> [B]: mean next-token CE over each sample's tokens."""
    logits, targets = logits[:, :-1].float(), labels[:, 1:]
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=-100,
        reduction="none",
    ).view(targets.shape)
    counted = (targets != -100).sum(1)
    return ce.sum(1) / counted.clamp(min=1)


def sequence_classification_loss(
    logits: Tensor, labels: Tensor, problem_type: str | None = None
) -> Tensor:
    """[B, C] logits -> [B]: the loss BERT-style heads use, one value per sample.

    `problem_type` as in the model config; when unset it is inferred the way
    the heads infer it (one label: regression; integer labels: single-label).
    """
    logits = logits.float()
    if problem_type is None:
        if logits.shape[-1] == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    if problem_type == "regression":
        return (
            (logits.view(labels.shape[0], -1) - labels.float().view(labels.shape[0], -1))
            .pow(2)
            .mean(1)
        )
    if problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), reduction="none")
    return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").mean(1)


def per_sample_loss_for(model: nn.Module) -> PerSampleLoss:
    """The per-sample loss matching `model`'s head, or HFGovernanceError for other heads
    (a PEFT wrapper's: its base model's)."""
    base = getattr(model, "get_base_model", None)
    if callable(base) and isinstance(inner := base(), nn.Module):
        model = inner
    name = type(model).__name__
    if name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return causal_lm_loss
    classifiers = (
        *MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values(),
        *MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.values(),  # ViT's: the same losses
    )
    if name in classifiers:
        problem = getattr(getattr(model, "config", None), "problem_type", None)
        return lambda logits, labels: sequence_classification_loss(logits, labels, problem)
    raise HFGovernanceError(
        f"no per-sample loss known for {name}: supported are causal LM, sequence and "
        f"image classification heads; pass per_sample_loss=fn(logits, labels) -> [batch]"
    )


# -- the audit log of an HF run ------------------------------------------------------------


def start_audit(
    run_dir: Path,
    model: nn.Module,
    cfg: GovernanceConfig,
    *,
    training_args: TrainingArguments | None = None,
    **options: Any,
) -> AuditLog:
    """Create `run_dir`'s audit log, committing to the governance config, the Trainer's
    arguments, the model's architecture and initial weights, and the data files.

    Call it before `trainer.train()`, on the model as it will start training;
    `options` are `create_run_log`'s (seed, data_files, signer, checkpoint_every, fsync).
    """
    loop: dict[str, Any] = {"trainer": "transformers.Trainer"}
    model_config = getattr(model, "config", None)
    if model_config is not None and hasattr(model_config, "to_json_string"):
        loop["model_config"] = json.loads(model_config.to_json_string())
    if training_args is not None:
        loop["training_args"] = json.loads(training_args.to_json_string())
    return create_run_log(run_dir, model, cfg, loop, **options)


# -- the callback --------------------------------------------------------------------------


class GovernanceCallback(Driven, TrainerCallback):
    """Governs an HF Trainer's model through a `Driver`; one instance per training run.

    `probe_batch`: model inputs with `labels` for the Governor's probe (wake signals
    for converged groups, geometry measures); without it no group ever awakens.
    `options`: how it governs (`GovernOptions`: signal, measure, mode, probe_every,
    max_nonfinite, ...), as `govtrain run`'s `train:` section says it. After
    `on_train_begin`, `gov` is the Governor and `transitions` every transition of the
    run in order.
    """

    def __init__(
        self,
        cfg: GovernanceConfig,
        *,
        audit: AuditLog | None = None,
        probe_batch: Mapping[str, Tensor] | None = None,
        seed: int = 0,
        per_sample_loss: PerSampleLoss | None = None,
        **options: Any,
    ) -> None:
        self.cfg, self.audit, self.seed = cfg, audit, seed
        self.options = parse_options(options, "GovernanceCallback")
        self.probe_batch = dict(probe_batch) if probe_batch is not None else None
        self.loss_fn = per_sample_loss
        self.driver: Driver | None = None
        self.last_routed: dict[str, tuple[int, ...] | None] = {}
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._batch: int | None = None
        self._loss: Tensor | None = None
        self._routed = False

    # -- events ----------------------------------------------------------------------------

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        if self.driver is not None:
            raise HFGovernanceError("a GovernanceCallback governs one training run; make a new one")
        if model is None or optimizer is None:
            raise HFGovernanceError("on_train_begin needs the Trainer's model and optimizer")
        self._check_setup(args, state, model, optimizer)
        if self.loss_fn is None:
            self.loss_fn = per_sample_loss_for(model)
        self.driver = Driver(
            model,
            optimizer,
            self.cfg,
            self.options,
            probe=self._probe_fn(model),
            audit=self.audit,
            seed=self.seed,
            world=current_world(),
        )
        self._hooks.append(model.register_forward_pre_hook(self._before_forward, with_kwargs=True))
        self._hooks.append(model.register_forward_hook(self._after_forward, with_kwargs=True))
        for name, module in model.named_modules():
            if isinstance(module, nn.Embedding):
                self._hooks.append(module.register_forward_pre_hook(self._expander(name)))
        gov = self.driver.gov
        log.info(
            "governance_start",
            groups=gov.names,
            frozen=[n for n, g in zip(gov.names, gov.state.groups, strict=True) if g.phase.frozen],
            audited=self.audit is not None,
        )

    def on_optimizer_step(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        optimizer: torch.optim.Optimizer | None = None,
        **kwargs: Any,
    ) -> None:
        driver = self._driver()
        if not self._routed:
            raise HFGovernanceError(
                f"optimizer step {state.global_step} had no routed training forward: the "
                f"model was called outside the governed module, or without grad"
            )
        if driver.gov.step != state.global_step:
            raise HFGovernanceError(
                f"governor at step {driver.gov.step} but the Trainer at {state.global_step}"
            )
        assert self._loss is not None and optimizer is not None
        self._routed = False
        outcome = driver.end(float(self._loss), float(optimizer.param_groups[0]["lr"]))
        if outcome.stop:
            control.should_training_stop = True

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._driver().before_update()  # a skipped step's gradients are dropped

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.driver is None or metrics is None:
            return
        numbers = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.driver.evaluated(state.global_step, numbers.get("eval_loss"), numbers)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.audit is None or self.driver is None or self.driver.closed:
            return
        assert args.output_dir is not None  # the Trainer saves only into its output_dir
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        files = sorted(
            p
            for p in folder.glob("*")
            if p.is_file()
            and p.name.startswith(MODEL_FILE_PREFIXES)
            and p.name.endswith(MODEL_FILE_SUFFIXES)
        )
        if not files:
            raise HFGovernanceError(f"on_save: no model weight file in {folder} to record")
        for path in files:
            self.driver.saved(state.global_step, self._relative(path), file_sha256(path))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        if self.driver is not None:  # the model, used afterwards, is the user's again
            self.driver.close()

    # -- hooks -----------------------------------------------------------------------------

    def _before_forward(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        ref = kwargs.get("input_ids", args[0] if args else None)
        if ref is None:
            ref = kwargs.get("inputs_embeds")
        self._batch = int(ref.shape[0]) if isinstance(ref, Tensor) and ref.dim() > 0 else None

    def _expander(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], Any]:
        """A pre-hook giving embedding `name`, looked up with batch dim 1, the model's batch."""

        def expand(module: nn.Module, args: tuple[Any, ...]) -> tuple[Tensor] | None:
            (ids,) = args
            batch = self._batch
            if not (module.training and torch.is_grad_enabled()) or batch is None:
                return None
            if ids.dim() == 0 or ids.shape[0] == batch or runs_natively(module):
                return None  # per-sample rows, or nothing routed (freezing needs none)
            if ids.shape[0] == 1:  # positions shared by every sample, e.g. GPT-2's wpe
                return (ids.expand(batch, *ids.shape[1:]),)
            raise HFGovernanceError(
                f"embedding {name} is looked up with ids of shape {tuple(ids.shape)} in a "
                f"batch of {batch}: its rows are not samples, so it cannot be routed per sample"
            )

        return expand

    def _after_forward(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        driver = self._driver()
        if not (module.training and torch.is_grad_enabled() and driver.gov.observing):
            return  # evaluation, prediction, or the Governor's own probe
        if self._routed:
            raise HFGovernanceError(
                "two training forwards before one optimizer step: gradient accumulation and "
                "multi-forward losses are not supported (one route per step)"
            )
        labels = kwargs.get("labels")
        if labels is None:
            raise HFGovernanceError(
                "a training forward got no `labels`: routing needs per-sample losses (label "
                "smoothing and compute_loss_func make the Trainer hide labels from the model)"
            )
        logits = output["logits"]
        assert self.loss_fn is not None
        with torch.no_grad():
            per_sample = self.loss_fn(logits.detach(), labels)
        if per_sample.shape != (logits.shape[0],):
            raise HFGovernanceError(
                f"per-sample loss has shape {tuple(per_sample.shape)}, expected "
                f"({logits.shape[0]},)"
            )
        loss = output.get("loss") if hasattr(output, "get") else None
        if loss is not None:  # the Trainer's backward runs on it, even with all frozen
            output["loss"] = driver.steppable(loss)
        self._loss = (loss if loss is not None else per_sample.mean()).detach()
        self._routed = True
        driver.forward(per_sample)
        self.last_routed = driver.routed

    # -- helpers ---------------------------------------------------------------------------

    def _check_setup(
        self,
        args: TrainingArguments,
        state: TrainerState,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        cfg = self.cfg
        problems = []
        if state.global_step != 0:
            problems.append(
                f"resuming at step {state.global_step}: the governor's state is not in HF "
                f"checkpoints; start a new run"
            )
        if args.gradient_accumulation_steps != 1:
            problems.append(
                f"gradient_accumulation_steps is {args.gradient_accumulation_steps}, must be 1"
            )
        if args.n_gpu > 1:
            problems.append(f"{args.n_gpu} GPUs in one process (DataParallel): use torchrun")
        world = current_world()
        if world is not None and args.ddp_find_unused_parameters is False:
            problems.append(
                "ddp_find_unused_parameters=False: DDP would fail the first backward after a "
                "group freezes; leave it unset (True for a PreTrainedModel) or set it True"
            )
        if args.per_device_train_batch_size != cfg.router.batch_size:
            problems.append(
                f"per_device_train_batch_size is {args.per_device_train_batch_size}, "
                f"router.batch_size is {cfg.router.batch_size}: they must be equal"
            )
        if state.max_steps != cfg.total_steps:
            problems.append(
                f"the Trainer runs {state.max_steps} steps, total_steps is {cfg.total_steps}: "
                f"set max_steps={cfg.total_steps}"
            )
        if args.label_smoothing_factor:
            problems.append("label_smoothing_factor must be 0 (the model must see `labels`)")
        if args.fp16:
            problems.append("fp16 loss scaling is not supported: use bf16 or fp32")
        if args.torch_compile:
            problems.append("torch_compile is not supported (routing slots are read eagerly)")
        problems += Driver.refusals(
            cfg, model, optimizer, loop="the HF callback", audit=self.audit, world=world
        )
        if problems:
            raise HFGovernanceError("cannot govern this Trainer run: " + "; ".join(problems))

    def _probe_fn(self, model: nn.Module) -> Callable[[nn.Module], Tensor] | None:
        if self.probe_batch is None:
            return None
        if "labels" not in self.probe_batch:
            raise HFGovernanceError("probe_batch needs `labels` for the probe loss")
        device = next(model.parameters()).device
        batch = {
            k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.probe_batch.items()
        }
        return lambda m: m(**batch).loss

    def _driver(self) -> Driver:
        if self.driver is None:
            raise HFGovernanceError("the GovernanceCallback has not seen on_train_begin")
        return self.driver

    def _relative(self, path: Path) -> str:
        """`path` relative to the audited run directory when inside it, else absolute."""
        assert self.audit is not None
        full, base = path.resolve(), Path(self.audit.run_dir).resolve()
        return full.relative_to(base).as_posix() if full.is_relative_to(base) else os.fspath(full)
