"""Decisions really applied: freezing, dormancy, awakening policy, quotas, FLOP meter."""

from __future__ import annotations

import pytest
import torch

from govtrain.governance.state import GroupObservation, Phase
from govtrain.pipeline.config import GovernOptions, parse_config
from govtrain.pipeline.data import load_corpus
from govtrain.pipeline.flops import FlopMeter
from govtrain.pipeline.governor import Governor
from govtrain.pipeline.models import build_model, per_sample_loss
from govtrain.pipeline.observe import Observer
from tests.conftest import tiny_run

pytestmark = pytest.mark.torch

HIGH, LOW = GroupObservation(1.0), GroupObservation(0.0)
WAKE = GroupObservation(0.0, wake=10.0)


class Scripted(Observer):
    """Observations from a script: the decisions are under test, not the measurements.
    A step with none scripted observes nothing (every signal low, no wake), as the
    tiny run's own signals read in its first steps."""

    def __init__(self, groups: int) -> None:
        self.groups = groups
        self.script: list[tuple[GroupObservation, ...]] = []

    def observe(self, step, phases) -> list[GroupObservation]:
        return list(self.script.pop(0)) if self.script else [LOW] * self.groups


def setup(optimizer: str, awaken="reset", scripted=False, options=None, **overrides):
    cfg = parse_config(tiny_run(**overrides))
    torch.manual_seed(cfg.seed)
    corpus = load_corpus(cfg.data, cfg.seed)
    model = build_model(cfg.model, corpus.vocab_size, cfg.data.seq_len)
    params = model.parameters()
    opt = (
        torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1)
        if optimizer == "adamw"
        else torch.optim.SGD(params, lr=1e-2, momentum=0.9, weight_decay=0.1)
    )
    gov = Governor(
        model,
        opt,
        cfg.governance,
        GovernOptions(awaken_optimizer_state=awaken, **(options or {})),
        probe=lambda m: per_sample_loss(m, corpus.train[:4]).mean(),
        observer=Scripted(len(cfg.governance.groups)) if scripted else None,
    )
    return cfg, corpus, model, opt, gov


def train(gov, model, opt, corpus, steps: int, script=None) -> None:
    """Real steps; with a scripted observer, `script` (per-group observations, one per
    step) is what the core sees."""
    if script:
        gov.observer.script.extend(script)
    for _ in range(steps):
        ids = corpus.batch(gov.step, 8, 0)
        losses = per_sample_loss(model, ids)
        gov.route(losses)
        if losses.requires_grad:
            losses.mean().backward()
            opt.step()
        gov.commit(loss=losses.mean().item(), lr=1e-2)
        opt.zero_grad(set_to_none=True)


def snapshot(gov, group: str) -> list[torch.Tensor]:
    return [p.detach().clone() for p in gov.params[group]]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_dormant_group_is_frozen_from_the_start(optimizer: str) -> None:
    _, corpus, model, opt, gov = setup(optimizer)
    before = snapshot(gov, "top")
    assert all(not p.requires_grad for p in gov.params["top"])
    train(gov, model, opt, corpus, 8)
    assert gov.state.groups[2].phase is Phase.DORMANT
    assert all(torch.equal(a, b) for a, b in zip(before, gov.params["top"], strict=True))
    assert all(opt.state.get(p) in (None, {}) for p in gov.params["top"])


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_converged_group_stays_bit_identical(optimizer: str) -> None:
    _, corpus, model, opt, gov = setup(optimizer, scripted=True)
    train(gov, model, opt, corpus, 3)  # build momentum / Adam moments for embed
    assert all(opt.state[p] for p in gov.params["embed"])
    script = [(HIGH, HIGH, LOW), (LOW, HIGH, LOW), (LOW, HIGH, LOW), (LOW, HIGH, LOW)]
    train(gov, model, opt, corpus, 4, script)
    assert gov.state.groups[0].phase is Phase.CONVERGED
    frozen = snapshot(gov, "embed")
    moving = snapshot(gov, "block0")
    train(gov, model, opt, corpus, 12, [(LOW, HIGH, LOW)] * 12)
    assert all(p.grad is None and not p.requires_grad for p in gov.params["embed"])
    assert all(torch.equal(a, b) for a, b in zip(frozen, gov.params["embed"], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(moving, gov.params["block0"], strict=True))


@pytest.mark.parametrize(("policy", "kept"), [("reset", False), ("keep", True)])
def test_awakening_optimizer_state_policy(policy: str, kept: bool) -> None:
    _, corpus, model, opt, gov = setup("adamw", awaken=policy, scripted=True)
    train(gov, model, opt, corpus, 2)
    script = [(HIGH, HIGH, LOW)] + [(LOW, HIGH, LOW)] * 3
    train(gov, model, opt, corpus, 4, script)
    assert gov.state.groups[0].phase is Phase.CONVERGED
    stale = [opt.state[p]["exp_avg"].clone() for p in gov.params["embed"]]
    train(gov, model, opt, corpus, 1, [(WAKE, HIGH, LOW)])
    assert gov.state.groups[0].phase is Phase.AWAKENED
    assert all(p.requires_grad for p in gov.params["embed"])
    if kept:
        assert all(
            torch.equal(opt.state[p]["exp_avg"], s)
            for p, s in zip(gov.params["embed"], stale, strict=True)
        )
    else:
        assert all(not opt.state.get(p) for p in gov.params["embed"])
    train(gov, model, opt, corpus, 1, [(HIGH, HIGH, LOW)])  # trains again, fresh or kept
    assert all(opt.state[p]["step"] > 0 for p in gov.params["embed"])


def format_1(sd: dict) -> dict:
    """A Governor state as format 1 laid it out (before signals were classes)."""
    observer, kept = sd["observer"], sd["observer"]["signals"]
    drift = kept.get("drift", {"own_steps": {}, "snapshots": {}, "drift": {}})
    spectral = kept.get("spectral", {"at_probe": {}, "vectors": {}})
    norms = kept.get("grad_norm", {"norms": {}})["norms"]
    return {
        **{k: sd[k] for k in ("step", "state", "decision")},
        "meter": {"norms": norms, "drift": drift["drift"], "baseline": observer["baseline"]},
        "own_steps": drift["own_steps"],
        "snapshots": drift["snapshots"],
        "readings": observer["readings"],
        "at_probe": spectral["at_probe"],
        "vectors": spectral["vectors"],
    }


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


@pytest.mark.parametrize("signal", ["grad_norm", "drift"])
def test_a_format_1_state_is_read_by_its_number(signal: str) -> None:
    from govtrain.governance.errors import GovtrainError

    options = {"signal": signal, "measure": ("spectral",), "probe_every": 2}
    _, corpus, model, opt, gov = setup("adamw", options=options, governance__governor__window=2)
    train(gov, model, opt, corpus, 8)
    saved = gov.state_dict()
    kept = saved["observer"]["signals"]
    held = kept["drift"]["snapshots"] if signal == "drift" else kept["grad_norm"]["norms"]["embed"]
    assert held and kept["spectral"]["at_probe"] and kept["spectral"]["vectors"]
    restored = setup("adamw", options=options, governance__governor__window=2)[-1]
    restored.load_state_dict(format_1(saved))
    assert same(restored.state_dict(), saved)
    with pytest.raises(GovtrainError, match="governor state format 3"):
        restored.load_state_dict({**saved, "format": 3})


def test_quota_routes_the_highest_loss_samples() -> None:
    _, corpus, model, opt, gov = setup("adamw")
    train(gov, model, opt, corpus, 3)  # past warmup
    losses = per_sample_loss(model, corpus.batch(gov.step, 8, 0))
    chosen = gov.route(losses)
    quotas = dict(zip(gov.names, gov.decision.quotas, strict=True))
    for name, index in chosen.items():
        if quotas[name] >= 8:
            assert index is None
            continue
        assert len(index) == quotas[name]
        threshold = sorted(losses.tolist(), reverse=True)[quotas[name] - 1]
        assert all(losses[i] >= threshold for i in index)
    assert gov.routed["top"]["quota"] == 0


def test_flop_meter_matches_a_direct_count() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    _, corpus, model, _opt, gov = setup("adamw")
    meter = FlopMeter(gov, lambda m: per_sample_loss(m, corpus.train[:8]))
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        quotas = {g: int(torch.randint(0, 9, (1,), generator=gen)) for g in gov.names}
        frozen = frozenset({"top"})
        for p in gov.params["top"]:
            p.requires_grad_(False)
        gov.plan.routed_forward()  # routed by hand after the forward, not by a decision
        losses = per_sample_loss(model, corpus.train[:8])
        for g, q in quotas.items():
            gov.plan.set(g, torch.arange(q), 8)
        with FlopCounterMode(display=False) as counter:
            losses.mean().backward()
        model.zero_grad(set_to_none=True)
        assert meter.step_flops(frozen, quotas) == counter.get_total_flops()
    assert meter.dense > meter.step_flops(frozenset({"top"}), dict.fromkeys(gov.names, 8))


def _graph_names(t: torch.Tensor) -> set[str]:
    seen, stack = set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    return {type(f).__name__ for f in seen}


def test_full_quota_runs_native_modules_with_the_same_gradients() -> None:
    _, corpus, model, _opt, gov = setup("adamw")
    ids = corpus.batch(0, 8, 0)
    # the warmup routes every sample to every group: plain PyTorch modules, no routed nodes
    assert all(slot.native for slot in gov.plan.slots.values())
    native_loss = per_sample_loss(model, ids).mean()
    assert not any("Routed" in n for n in _graph_names(native_loss))
    native_loss.backward()
    native = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    gov.plan.routed_forward()
    routed_loss = per_sample_loss(model, ids).mean()
    assert any("Routed" in n for n in _graph_names(routed_loss))
    routed_loss.backward()
    routed = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert len(native) == len(routed)
    for a, b in zip(native, routed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_quota_below_the_batch_runs_the_routed_modules() -> None:
    _, corpus, model, opt, gov = setup("adamw")
    train(gov, model, opt, corpus, steps=4)  # past the 2-step warmup; master 12 < 3 x 8
    routed = {n for n, q in zip(gov.names, gov.decision.quotas, strict=True) if 0 < q < 8}
    assert routed
    assert all(not gov.plan.slots[n].native for n in routed)
    loss = per_sample_loss(model, corpus.batch(gov.step, 8, 0)).mean()
    assert any("Routed" in n for n in _graph_names(loss))


@pytest.mark.parametrize("how", ["wrapped", "in_place"])
def test_a_compiled_model_is_refused_with_one_clear_error(how: str) -> None:
    from govtrain.governance.errors import GovtrainError

    cfg = parse_config(tiny_run())
    corpus = load_corpus(cfg.data, cfg.seed)
    model = build_model(cfg.model, corpus.vocab_size, cfg.data.seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    if how == "wrapped":
        model = torch.compile(model)
    else:
        model.compile()
    with pytest.raises(GovtrainError, match=r"torch\.compile'd model cannot be governed"):
        Governor(model, opt, cfg.governance)
