"""Taxonomy: every trainable name lands in exactly one group; first match wins."""

from __future__ import annotations

import pytest

from govtrain.governance.config import GroupConfig
from govtrain.governance.errors import TaxonomyError
from govtrain.governance.taxonomy import assign, group_of

GROUPS = (
    GroupConfig(name="embed", patterns=("wte.*", "wpe.*"), level=0),
    GroupConfig(name="early", patterns=("h.0.*", "h.1.*"), level=1),
    GroupConfig(name="rest", patterns=("h.*", "ln_f.*"), level=2),
)


def test_first_matching_group_wins() -> None:
    assert group_of("h.1.attn.c_attn.weight", GROUPS) == "early"
    assert group_of("h.5.mlp.c_fc.weight", GROUPS) == "rest"
    assert group_of("wpe.weight", GROUPS) == "embed"


def test_assign_maps_every_name() -> None:
    names = [
        "wte.weight",
        "wpe.weight",
        "h.0.ln_1.weight",
        "h.1.ln_1.weight",
        "h.3.ln_1.bias",
        "ln_f.weight",
    ]
    assert assign(names, GROUPS) == {
        "wte.weight": "embed",
        "wpe.weight": "embed",
        "h.0.ln_1.weight": "early",
        "h.1.ln_1.weight": "early",
        "h.3.ln_1.bias": "rest",
        "ln_f.weight": "rest",
    }


def test_a_pattern_matching_nothing_beside_ones_that_match_is_an_error() -> None:
    names = ["wte.weight", "wpe.weight", "h.0.x", "h.3.x", "ln_f.weight"]
    with pytest.raises(
        TaxonomyError, match=r"^governance\.groups\.early: pattern 'h\.1\.\*' matches no trainable"
    ):
        assign(names, GROUPS)


def test_unassigned_names_are_listed() -> None:
    with pytest.raises(
        TaxonomyError, match=r"2 trainable parameter\(s\).*lm_head.weight, score.bias"
    ):
        assign(["wte.weight", "h.0.x", "lm_head.weight", "score.bias", "ln_f.b"], GROUPS)


def test_group_matching_nothing_is_an_error() -> None:
    with pytest.raises(TaxonomyError, match="group\\(s\\) matching no parameter: early"):
        assign(["wte.weight", "h.7.x"], GROUPS)


def test_matching_is_case_sensitive() -> None:
    assert group_of("WTE.weight", GROUPS) is None
