"""The Lightning callback: the Governor at the right points of a Lightning fit, bit-exact
resume from a Lightning checkpoint, one-line refusals, and 2-process DDP on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from govtrain.audit.provenance import read_records  # noqa: E402
from govtrain.audit.verify import verify_run  # noqa: E402
from govtrain.formal.replay import replay  # noqa: E402
from govtrain.governance.errors import GovtrainError  # noqa: E402
from govtrain.pipeline.config import GovernOptions  # noqa: E402
from govtrain.pipeline.governor import Governor  # noqa: E402
from govtrain.pipeline.lightning import (  # noqa: E402
    GovernanceCallback,
    LightningGovernanceError,
    start_audit,
)
from tests.lightning_worker import Tiny, data, digest, governance, probe, trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def governed(steps: int, model: Tiny | None = None, audit=None, ckpt: Path | None = None, **kw):
    """Fit `model` (a new Tiny) for `steps` steps under a new callback."""
    model = model or Tiny()
    callback = GovernanceCallback(governance(), probe=probe, probe_every=4, audit=audit)
    fit = trainer(steps, callbacks=[callback, *kw.pop("callbacks", [])], **kw)
    fit.fit(model, data(), ckpt_path=ckpt)
    return model, callback, fit


def test_a_lightning_fit_is_governed_as_the_governors_own_loop(tmp_path: Path) -> None:
    model = Tiny()
    audit = start_audit(tmp_path / "run", model, governance())
    _, callback, _ = governed(24, model, audit=audit)
    records = read_records(tmp_path / "run" / "audit.jsonl")
    assert verify_run(tmp_path / "run").closed
    assert replay(records).ok
    steps = [r.body for r in records if r.kind == "step"]
    assert len(steps) == 24
    actions = {t["action"] for s in steps for t in s["transitions"]}
    assert {"Converge", "ActivateLevel"} <= actions  # it really governed
    assert records[0].body["config"]["trainer"] == "lightning.Trainer"

    # the same model, data and optimizer in the loop governor.py documents
    ref = Tiny()
    opt = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    gov = Governor(ref, opt, governance(), GovernOptions(probe_every=4), probe=probe)
    for _ in range(3):
        for x, y in data():
            per = torch.nn.functional.cross_entropy(ref(x), y, reduction="none")
            gov.route(per)
            per.mean().backward()
            opt.step()
            gov.commit(loss=per.mean().item(), lr=1e-2)
            opt.zero_grad(set_to_none=True)
    assert callback.gov is not None
    assert (callback.gov.state, callback.gov.decision) == (gov.state, gov.decision)
    assert digest(model) == digest(ref)
    # after the fit the module is the user's again: its own training_step, every parameter
    # trainable, no governor hooks (a later backward leaves the governor's norms alone)
    assert "training_step" not in vars(model)
    assert all(p.requires_grad for p in model.parameters())
    x, y = next(iter(data()))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert not any(callback.gov.observer.signal.pending.values())


def test_resume_from_a_lightning_checkpoint_is_bit_exact(tmp_path: Path) -> None:
    # Lightning's own ModelCheckpoint, at the end of the first of three epochs (a plain
    # DataLoader resumes exactly only at an epoch's end: Lightning warns otherwise)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=8, save_top_k=-1)
    whole, whole_cb, _ = governed(24, callbacks=[saver], enable_checkpointing=True)
    resumed, resumed_cb, _ = governed(24, ckpt=tmp_path / "epoch=0-step=8.ckpt")
    assert resumed_cb.gov is not None and whole_cb.gov is not None
    assert resumed_cb.gov.step == 24
    assert (resumed_cb.gov.state, resumed_cb.gov.decision) == (
        whole_cb.gov.state,
        whole_cb.gov.decision,
    )
    assert resumed_cb.gov.observer.state_dict() == whole_cb.gov.observer.state_dict()
    assert digest(resumed) == digest(whole)
    assert any(g.phase.frozen for g in whole_cb.gov.state.groups)  # something was frozen


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accumulate_grad_batches": 2}, "accumulate_grad_batches is 2, must be 1"),
        ({"steps": 40}, "max_steps is 40: set it to total_steps (24) or fewer"),
        ({"model": Tiny(per_sample=False)}, "training_step must return"),
    ],
)
def test_what_cannot_be_governed_is_one_line(change, message) -> None:
    steps = change.pop("steps", 24)
    model = change.pop("model", None)
    with pytest.raises(LightningGovernanceError) as err:
        governed(steps, model, **change)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_learned_scorer_is_refused_by_name() -> None:
    cfg = governance()
    cfg = cfg.model_copy(update={"router": cfg.router.model_copy(update={"scorer": "learned"})})
    fit = trainer(24, callbacks=[GovernanceCallback(cfg, probe=probe)])
    with pytest.raises(LightningGovernanceError, match=r"router\.scorer 'learned' is not"):
        fit.fit(Tiny(), data())


def test_a_nonfinite_loss_updates_nothing_and_too_many_stop_the_fit(tmp_path: Path) -> None:
    model = Tiny()
    audit = start_audit(tmp_path / "run", model, governance())
    callback = GovernanceCallback(governance(), probe=probe, probe_every=4, audit=audit)
    trainer(24, callbacks=[callback]).fit(model, data(poisoned=(42,)))  # batch 5 of each epoch
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    records = read_records(tmp_path / "run" / "audit.jsonl")
    assert [r.body["step"] for r in records if r.kind == "nonfinite"] == [5, 13, 21]
    assert verify_run(tmp_path / "run").closed and replay(records).ok

    model = Tiny()
    audit = start_audit(tmp_path / "bad", model, governance())
    callback = GovernanceCallback(governance(), audit=audit, max_nonfinite=3)
    with pytest.raises(GovtrainError, match="3 non-finite losses in a row"):
        trainer(24, callbacks=[callback]).fit(model, data(poisoned=range(16, 64)))
    assert verify_run(tmp_path / "bad").closed  # stopped, and sealed saying why
    end = read_records(tmp_path / "bad" / "audit.jsonl")[-1]
    assert end.body["status"] == "stopped" and "non-finite" in end.body["reason"]


def test_an_audit_log_on_a_resumed_fit_is_refused(tmp_path: Path) -> None:
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=8, save_top_k=-1)
    governed(8, callbacks=[saver], enable_checkpointing=True)
    model = Tiny()
    audit = start_audit(tmp_path / "run", model, governance())
    with pytest.raises(LightningGovernanceError, match="a Lightning checkpoint does not carry"):
        governed(24, model, audit=audit, ckpt=tmp_path / "epoch=0-step=8.ckpt")


def ddp(out: Path, *args: str) -> None:
    """The worker on 2 CPU processes under torchrun (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "tests" / "lightning_worker.py"), str(out), *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_without_find_unused_parameters_is_refused_on_every_rank(tmp_path) -> None:
    ddp(tmp_path, "--strict")
    for rank in (0, 1):
        assert (
            "use DDPStrategy(find_unused_parameters=True)"
            in (tmp_path / f"refused{rank}.txt").read_text()
        )


def test_two_ddp_processes_take_the_same_decisions_and_keep_the_same_weights(tmp_path) -> None:
    ddp(tmp_path)
    views = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert views[0]["step"] == views[1]["step"] == 24
    assert views[0]["state"] == views[1]["state"]
    assert views[0]["frozen"] == views[1]["frozen"] and views[0]["frozen"]  # some group froze
    assert views[0]["weights"] == views[1]["weights"]  # no drift between the ranks
    assert views[0]["finite"] and views[1]["finite"]  # the poisoned steps updated nothing
    records = read_records(tmp_path / "run" / "audit.jsonl")
    assert verify_run(tmp_path / "run").closed and replay(records).ok
    # once per epoch, wherever Lightning's sampler put it (both ranks skipped it alike)
    assert len([r for r in records if r.kind == "nonfinite"]) == 3


def test_the_example_fits_audits_and_replays(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = ROOT / "examples" / "lightning_fit.py"
    cmd = [sys.executable, str(script), "--run-dir", str(tmp_path / "run"), "--steps", "30"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "audit log         ok: closed" in done.stdout
    assert "transitions, ok=True" in done.stdout
