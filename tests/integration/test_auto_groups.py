"""`governance.groups: auto` (pipeline/autogroups.py): groups read off the structure of
the model families govtrain governs, built from configs on the meta device (no
download, no memory), and a governed run whose groups nobody wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
    ViTConfig,
    ViTForImageClassification,
)

from govtrain.audit.provenance import read_records
from govtrain.cli import main
from govtrain.governance.errors import ConfigError
from govtrain.governance.taxonomy import assign
from govtrain.pipeline.autogroups import auto_groups
from govtrain.pipeline.config import load_config, parse_config
from tests.conftest import ROOT

DECODER = {"vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 5,
           "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8}  # fmt: skip
DECODER_PARTS = ("model.layers", "model.embed_tokens.*", ["model.norm.*", "lm_head.*"])
BERT = {"vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 5,
        "num_attention_heads": 2}  # fmt: skip
VIT = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 5,
       "num_attention_heads": 2, "image_size": 8, "patch_size": 4}  # fmt: skip
FAMILIES = {
    "llama": (lambda: LlamaForCausalLM(LlamaConfig(**DECODER)), *DECODER_PARTS),
    "qwen2": (lambda: Qwen2ForCausalLM(Qwen2Config(**DECODER)), *DECODER_PARTS),
    "mistral": (lambda: MistralForCausalLM(MistralConfig(**DECODER)), *DECODER_PARTS),
    # Gemma ties its head to the embedding: one tensor, in `embed`
    "gemma": (lambda: GemmaForCausalLM(GemmaConfig(**DECODER)), *DECODER_PARTS[:2],
              ["model.norm.*"]),
    "bert": (lambda: BertForSequenceClassification(BertConfig(**BERT)), "bert.encoder.layer",
             "bert.embeddings.word_embeddings.*", ["bert.pooler.dense.*", "classifier.*"]),
    "vit": (lambda: ViTForImageClassification(ViTConfig(**VIT)), "vit.layers",
            "vit.embeddings.*", ["vit.layernorm.*", "classifier.*"]),
}  # fmt: skip


def build(family: str) -> nn.Module:
    with torch.device("meta"):
        return FAMILIES[family][0]()


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_splits_into_embed_block_runs_and_head(family: str) -> None:
    _, stack, embed, head = FAMILIES[family]
    model = build(family)
    groups = auto_groups(model, 3)
    names = [g["name"] for g in groups]
    assert names == ["embed", "blocks_0", "blocks_1", "blocks_2", "head"]
    by_name = {g["name"]: g for g in groups}
    assert embed in by_name["embed"]["patterns"] and by_name["head"]["patterns"] == head
    # 5 blocks over 3 levels: the lower runs one longer, in order, nothing skipped
    runs = [by_name[f"blocks_{k}"]["patterns"] for k in range(3)]
    assert runs == [[f"{stack}.{i}.*" for i in r] for r in ([0, 1], [2, 3], [4])]
    assert [g["level"] for g in groups] == [0, 0, 1, 2, 0]
    # every trainable tensor lands in exactly one group, and every pattern matches one
    cfg = parse_config(governance_config(groups, levels=3))
    mapping = assign((n for n, _ in model.named_parameters()), cfg.governance.groups)
    assert set(mapping.values()) == set(names)


def test_an_encoder_decoder_is_refused_naming_both_stacks() -> None:
    with torch.device("meta"):
        model = T5ForConditionalGeneration(
            T5Config(vocab_size=32, d_model=16, d_ff=32, num_layers=2, num_heads=2, d_kv=8)
        )
    with pytest.raises(ConfigError, match=r"2 stacks of blocks.*encoder\.block, decoder\.block"):
        auto_groups(model, 2)


class Flat(nn.Module):
    """No stack at all: two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)


class OwnParameter(nn.Module):
    """A parameter of the stack's own parent module: `trunk.*` would reach into the stack."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Module()
        self.trunk.scale = nn.Parameter(torch.ones(4))
        self.trunk.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.out = nn.Linear(4, 2)


def test_no_stack_and_too_many_levels_are_one_line() -> None:
    with pytest.raises(ConfigError, match="Flat has none: write the groups' patterns"):
        auto_groups(Flat(), 1)
    with pytest.raises(ConfigError, match=r"2 blocks of trunk\.layers into hierarchy\.levels 3"):
        auto_groups(OwnParameter(), 3)


def test_a_parameter_beside_the_stack_is_named_exactly_not_by_its_module() -> None:
    groups = auto_groups(OwnParameter(), 2)
    assert groups[0] == {"name": "embed", "patterns": ["trunk.scale"], "level": 0}
    cfg = parse_config(governance_config(groups, levels=2))
    mapping = assign((n for n, _ in OwnParameter().named_parameters()), cfg.governance.groups)
    assert mapping["trunk.layers.0.weight"] == "blocks_0" and mapping["trunk.scale"] == "embed"


def test_frozen_parameters_are_left_out_and_an_empty_side_has_no_group() -> None:
    model = build("llama")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("model.layers."))  # adapters-only style
    assert [g["name"] for g in auto_groups(model, 2)] == ["blocks_0", "blocks_1"]


def governance_config(groups: list[dict], levels: int) -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["governance"]["groups"] = groups
    raw["governance"]["hierarchy"]["levels"] = levels
    return raw


def auto_file(tmp_path: Path, **model) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    raw["governance"]["groups"] = "auto"
    raw["model"].update(model)
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_run_config_with_auto_groups_trains_verifies_and_replays(tmp_path: Path) -> None:
    path = auto_file(tmp_path)
    cfg = load_config(path)
    levels = cfg.governance.hierarchy.levels
    assert [g.name for g in cfg.governance.groups][-1] == "head"
    assert len(cfg.governance.groups) == levels + 2
    shown = CliRunner().invoke(main, ["explore", str(path), "--groups"])
    assert shown.exit_code == 0, shown.output
    assert "group blocks_0 (level 0): transformer.h.0.*" in shown.output
    run = CliRunner().invoke(
        main, ["run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress"]
    )
    assert run.exit_code == 0, run.output
    conform = CliRunner().invoke(main, ["specs", "conform", str(tmp_path / "run")])
    assert conform.exit_code == 0, conform.output
    start = read_records(tmp_path / "run" / "audit.jsonl")[0].body["config"]
    assert start["governance"]["groups"][0]["name"] == "embed"  # written out, not "auto"


def test_auto_groups_with_the_callers_model(tmp_path: Path) -> None:
    raw = governance_config("auto", levels=2)  # type: ignore[arg-type]
    del raw["model"], raw["data"], raw["train"]
    path = tmp_path / "govern.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path, model=build("qwen2"))
    assert cfg.governance.groups[1].patterns[0] == "model.layers.0.*"
    with pytest.raises(ConfigError, match="needs the model"):
        load_config(path)
