"""The short last batch (issue: the HF Trainer's routed 10 rows where the decision
allowed 12, and Lightning answered the same batch with a traceback): under both
callbacks it is refused in the same one line, and the audit log left behind holds
only the full steps, sealed as a stopped run with that line as its reason, and
replays."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate")

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from govtrain.pipeline.driver import BatchSizeError
from tests.integration.test_growth_callbacks import (
    BATCH,
    STEPS,
    corpus,
    governance,
    lightning_gpt,
    tiny_gpt2,
    under_model,
)

pytestmark = pytest.mark.torch
ROWS = 2 * BATCH + BATCH // 2  # two full batches, then a half one


def frozen_config():
    """The growth test's governance with nothing bypassed (the refusal is the point)."""
    cfg = governance()
    hierarchy = cfg.hierarchy.model_copy(update={"dormant": "frozen", "grow": "none"})
    return cfg.model_copy(update={"hierarchy": hierarchy})


def hf_refusal(run_dir: Path) -> str:
    from transformers import Trainer, TrainingArguments

    from govtrain.pipeline.hf import GovernanceCallback, start_audit

    model, cfg = tiny_gpt2(), frozen_config()
    args = TrainingArguments(
        output_dir=str(run_dir / "hf"), max_steps=STEPS, per_device_train_batch_size=BATCH,
        learning_rate=1e-2, lr_scheduler_type="constant", save_strategy="no",
        report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_drop_last=False,
    )  # fmt: skip
    rows = [{"input_ids": ids, "labels": ids} for ids in corpus()[:ROWS]]
    callback = GovernanceCallback(cfg, audit=start_audit(run_dir, model, cfg, training_args=args))
    with pytest.raises(BatchSizeError) as refused:
        Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback]).train()
    return str(refused.value)


def lightning_refusal(run_dir: Path) -> str:
    import lightning as L

    from govtrain.pipeline.lightning import GovernanceCallback, start_audit

    module, cfg = lightning_gpt(), under_model(frozen_config())
    callback = GovernanceCallback(cfg, audit=start_audit(run_dir, module, cfg))
    data = DataLoader(TensorDataset(corpus()[:ROWS]), batch_size=BATCH, drop_last=False)
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[callback],
    )  # fmt: skip
    with pytest.raises(BatchSizeError) as refused:
        trainer.fit(module, data)
    return str(refused.value)


def test_the_short_last_batch_is_refused_alike_by_hf_and_lightning(tmp_path: Path) -> None:
    hf, lightning = hf_refusal(tmp_path / "hf"), lightning_refusal(tmp_path / "lightning")
    assert hf == lightning  # the driver's one line, whoever's loop
    assert "\n" not in hf and f"({BATCH // 2},)" in hf and "drop_last=True" in hf
    for run in (tmp_path / "hf", tmp_path / "lightning"):
        records = read_records(run / "audit.jsonl")
        assert [r.body["step"] for r in records if r.kind == "step"] == [0, 1]
        report = verify_run(run)  # raises on a broken chain or signature
        assert report.closed and report.summary().startswith("ok")
        end = records[-1] if records[-1].kind == "run_end" else None
        assert end is not None and end.body["status"] == "stopped" and end.body["reason"] == hf
        assert replay(records).ok
