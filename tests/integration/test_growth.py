"""Dormant levels that are not computed, and growth at activation (governance/growth.py,
pipeline/growth.py): the rule, what the model really runs, the audit record, replay of
it, and exact resume across a growth."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from govtrain.audit.provenance import read_records
from govtrain.formal.replay import replay
from govtrain.governance import growth
from govtrain.governance.config import parse_governance
from govtrain.governance.errors import ConfigError, GovtrainError
from govtrain.governance.state import GovernanceState, GroupState, Phase
from govtrain.governance.step import initial_state
from tests.conftest import tiny_run, train_tiny

pytestmark = pytest.mark.torch

BYPASS = {"governance__hierarchy": {"levels": 2, "emergency_fraction": 0.5, "dormant": "bypass"}}


def grown(grow: str, **more) -> dict:
    return {
        "governance__hierarchy": {
            "levels": 2,
            "emergency_fraction": 0.5,
            "dormant": "bypass",
            "grow": grow,
        },
        **more,
    }


def three_levels(**hierarchy) -> object:
    """Four blocks over three levels: b0 b1 at level 0, b2 at 1, b3 at 2."""
    raw = copy.deepcopy(tiny_run()["governance"])
    raw["groups"] = [
        {"name": "base", "patterns": ["transformer.h.0.*", "transformer.h.1.*"], "level": 0},
        {"name": "mid", "patterns": ["transformer.h.2.*"], "level": 1},
        {"name": "top", "patterns": ["transformer.h.3.*"], "level": 2},
    ]
    raw["hierarchy"] = {"levels": 3, "emergency_fraction": 0.5, **hierarchy}
    raw["budget"] = {"master": 12, "floor": 2, "ceiling": 6}
    return parse_governance(raw)


# ------------------------------------------------------------------------------ the rule


def test_only_a_bypassed_dormant_group_is_not_computed() -> None:
    frozen, bypass = three_levels(), three_levels(dormant="bypass")
    state = GovernanceState(
        0, 1, (GroupState(Phase.CONVERGED), GroupState(Phase.ACTIVE), GroupState(Phase.DORMANT))
    )
    assert growth.computed(state, frozen) == (True, True, True)
    assert growth.computed(state, bypass) == (True, True, False)
    assert growth.computed(initial_state(bypass), bypass) == (True, False, False)


def test_stack_copies_the_trained_blocks_bottom_up_and_repeats() -> None:
    cfg = three_levels(dormant="bypass", grow="stack")
    blocks = [("h.0", 0), ("h.1", 0), ("h.2", 1), ("h.3", 2), ("h.4", 2), ("h.5", 2), ("h.6", 2)]
    plan = growth.plan(2, blocks, cfg)
    assert plan.pairs == (("h.3", "h.0"), ("h.4", "h.1"), ("h.5", "h.2"), ("h.6", "h.0"))
    assert (plan.target_groups, plan.source_groups) == (("top",), ("base", "mid"))
    none = growth.plan(1, blocks, three_levels(dormant="bypass", grow="identity"))
    assert none.pairs == (("h.2", None),) and none.operator == "identity"


def test_grows_only_when_a_level_activates_under_bypass() -> None:
    cfg, frozen = three_levels(dormant="bypass"), three_levels()
    s0 = initial_state(cfg)
    s1 = GovernanceState(1, 1, s0.groups)
    assert growth.grows(s0, s1, cfg) and not growth.grows(s1, s1, cfg)
    assert not growth.grows(s0, s1, frozen)


def test_grow_without_bypass_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="hierarchy"):
        three_levels(grow="stack")


# ------------------------------------------------------------------- what the model runs


def _model_and_gov(tmp_path: Path, **overrides):
    trainer = train_tiny(tmp_path / "run", stop_after=0, **overrides)
    return trainer.model, trainer.gov


def test_a_bypassed_block_never_runs_and_the_model_is_as_deep_as_its_active_levels(
    tmp_path: Path,
) -> None:
    from transformers import GPT2LMHeadModel

    model, gov = _model_and_gov(tmp_path, **BYPASS)
    assert gov.blocks is not None and gov.blocks.bypassed() == {"transformer.h.1"}
    calls = []
    model.transformer.h[1].attn.register_forward_hook(lambda *a: calls.append(1))
    ids = torch.randint(0, 32, (4, 16))
    logits = model(input_ids=ids).logits
    assert calls == []
    # the same weights in a one-block model compute the same logits
    shallow = GPT2LMHeadModel(model.config.__class__(**{**model.config.to_dict(), "n_layer": 1}))
    state = {k: v for k, v in model.state_dict().items() if ".h.1." not in k}
    shallow.load_state_dict(state)
    torch.testing.assert_close(shallow(input_ids=ids).logits, logits)
    gov.release()  # the callbacks' end: every block runs again
    model(input_ids=ids)
    assert calls == [1]


def test_flops_count_what_ran(tmp_path: Path) -> None:
    t_frozen = train_tiny(tmp_path / "frozen", stop_after=0)
    t_bypass = train_tiny(tmp_path / "bypass", stop_after=0, **BYPASS)
    assert t_bypass.flops.dense == t_frozen.flops.dense  # the reference runs every block
    assert t_bypass.flops.dense_forward == t_frozen.flops.dense_forward
    assert t_bypass.flops.forward_flops() < t_frozen.flops.forward_flops()
    frozen = t_bypass._frozen()
    assert t_bypass.flops.step_flops(frozen, {}) < t_frozen.flops.step_flops(frozen, {})


def test_identity_growth_preserves_the_function_and_stack_copies(tmp_path: Path) -> None:
    from govtrain.pipeline.config import parse_config
    from govtrain.pipeline.trainer import GovernedTrainer

    ids = torch.randint(0, 32, (4, 16))
    for grow in ("identity", "stack"):
        trainer = GovernedTrainer(parse_config(tiny_run(**grown(grow))), tmp_path / grow)
        trainer.start()
        for _ in range(19):
            trainer.train_step()
        model, gov = trainer.model, trainer.gov
        assert gov.blocks is not None and gov.blocks.bypassed() == {"transformer.h.1"}
        trainer.train_step()  # step 19 activates level 1
        assert gov.blocks.bypassed() == frozenset()
        model.eval()
        with torch.no_grad():
            after = model(input_ids=ids).logits
            gov.blocks.set_computed((True, True, False))  # the same weights, h.1 skipped
            before = model(input_ids=ids).logits
            gov.blocks.set_computed((True, True, True))
        h = model.transformer.h
        if grow == "identity":
            torch.testing.assert_close(after, before)
            assert not h[1].attn.c_proj.weight.any() and not h[1].mlp.c_proj.bias.any()
        else:
            for (k, a), (_, b) in zip(
                h[1].state_dict().items(), h[0].state_dict().items(), strict=True
            ):
                assert torch.equal(a, b), k


def test_refusals_are_one_line(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    from govtrain.pipeline.growth import Blocks

    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, vocab_size=50))  # fmt: skip
    raw = copy.deepcopy(tiny_run()["governance"])
    raw["groups"] = [
        {"name": "low", "patterns": ["embeddings.*", "encoder.layer.0.*"], "level": 0},
        {"name": "high", "patterns": ["encoder.layer.1.*", "pooler.*"], "level": 1},
    ]
    raw["hierarchy"] = {"levels": 2, "emergency_fraction": 0.5, "dormant": "bypass"}
    names = [n for n, _ in bert.named_parameters()]
    from govtrain.governance import taxonomy

    cfg = parse_governance(raw)
    Blocks(bert, taxonomy.assign(names, cfg.groups), cfg)  # bypass and stack: fine for BERT
    raw["hierarchy"]["grow"] = "identity"
    cfg = parse_governance(raw)
    with pytest.raises(GovtrainError, match=r"encoder.layer.1 \(BertLayer\) has none"):
        Blocks(bert, taxonomy.assign(names, cfg.groups), cfg)
    raw["groups"][1]["patterns"] = ["encoder.layer.1.attention.*", "pooler.*"]
    raw["groups"][0]["patterns"] = ["embeddings.*", "encoder.layer.0.*", "encoder.layer.1.[io]*"]
    raw["hierarchy"]["grow"] = "none"
    cfg = parse_governance(raw)
    with pytest.raises(GovtrainError, match=r"block encoder\.layer\.1 holds parameters of groups"):
        Blocks(bert, taxonomy.assign(names, cfg.groups), cfg)
    with pytest.raises(GovtrainError, match="no block list"):
        Blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)), {}, cfg)


# ------------------------------------------------------------------- the record, replayed


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory) -> tuple[Path, object]:
    run_dir = tmp_path_factory.mktemp("runs") / "stacked"
    return run_dir, train_tiny(run_dir, **grown("stack"))


def _steps(run_dir: Path):
    return read_records(run_dir / "audit.jsonl")


def test_the_growth_is_recorded_once_at_activation_and_replays(stacked_run) -> None:
    run_dir, _ = stacked_run
    records = _steps(run_dir)
    steps = [r.body for r in records if r.kind == "step"]
    grown_at = [s["step"] for s in steps if "growth" in s]
    activated = [
        s["step"] for s in steps if any(t["action"] == "ActivateLevel" for t in s["transitions"])
    ]
    assert grown_at == activated == [19]
    g = steps[19]["growth"]
    assert g["operator"] == "stack" and g["pairs"] == [["transformer.h.1", "transformer.h.0"]]
    assert g["source_sha256"] == g["result_sha256"]
    assert steps[0]["blocks"] == [["transformer.h.0", 1], ["transformer.h.1", 2]]
    assert [s["bypassed"] for s in steps[:19]] == [["transformer.h.1"]] * 19
    assert all(s["bypassed"] == [] for s in steps[19:])
    report = replay(records)
    assert report.divergence is None and report.steps == len(steps)


def _forged(run_dir: Path, step: int, change) -> str | None:
    records = _steps(run_dir)
    for r in records:
        if r.kind == "step" and r.body["step"] == step:
            change(r.body)
    report = replay(records)
    return None if report.divergence is None else report.divergence.what


@pytest.mark.parametrize(
    ("step", "field", "value", "named"),
    [
        (19, "result_sha256", "0" * 64, "not copies"),
        (19, "pairs", [["transformer.h.1", "transformer.h.1"]], "growth.pairs"),
        (19, "operator", "identity", "growth.operator"),
        (19, "level", 0, "growth.level"),
        (19, "blocks", [["transformer.h.0", 2], ["transformer.h.1", 2]], "growth"),
    ],
)
def test_a_forged_growth_is_named(stacked_run, step, field, value, named) -> None:
    run_dir, _ = stacked_run
    what = _forged(run_dir, step, lambda b: b["growth"].__setitem__(field, value))
    assert what is not None and named in what


def test_a_dropped_or_moved_growth_or_bypass_is_named(stacked_run) -> None:
    run_dir, _ = stacked_run
    assert "no growth is recorded" in _forged(run_dir, 19, lambda b: b.pop("growth"))
    moved = {"operator": "stack"}
    assert "where no bypassed level activated" in _forged(
        run_dir, 5, lambda b: b.__setitem__("growth", moved)
    )
    assert "bypassed" in _forged(run_dir, 7, lambda b: b.__setitem__("bypassed", []))
    assert "bypassed" in _forged(run_dir, 25, lambda b: b.__setitem__("bypassed", ["x"]))
    assert "step 0 must record" in _forged(run_dir, 0, lambda b: b.pop("blocks"))


# ------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("stop", [10, 19, 20, 25])  # before, at (19 grows), after
def test_resume_across_a_growth_is_bit_exact(stacked_run, tmp_path: Path, stop: int) -> None:
    from govtrain.pipeline.trainer import GovernedTrainer

    _, full = stacked_run
    part = tmp_path / "part"
    train_tiny(part, stop_after=stop, **grown("stack", train__checkpoint_every=1))
    resumed = GovernedTrainer.resume(part)
    assert resumed.step == stop
    resumed.train(progress=False)
    assert resumed.gov.state == full.gov.state
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert replay(read_records(part / "audit.jsonl")).divergence is None
