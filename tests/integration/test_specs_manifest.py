"""A few models of the manifest run with TLC give the manifest's result (the specs, models
and manifest against each other and the Python core, without TLC:
tests/unit/test_specs_manifest.py)."""

from __future__ import annotations

import pytest

from govtrain.formal.manifest import check_model
from govtrain.formal.toolchain import find_toolchain
from tests.conftest import needs_tlc
from tests.unit.test_specs_manifest import MANIFEST


@needs_tlc
@pytest.mark.parametrize("name", ["ConvergenceGovernor", "GovernedTraining_NoColdGuard"])
def test_models_give_the_manifests_result(name):
    (entry,) = [m for m in MANIFEST.models if m.name == name]
    verdict = check_model(entry, MANIFEST, toolchain=find_toolchain(), timeout=120)
    assert verdict.ok, verdict.problems
