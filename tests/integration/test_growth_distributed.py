"""Bypassed dormant blocks and a stack growth under torchrun (2 gloo ranks, DDP and FSDP2):
the same decisions and the same growth as one process (the weights agree to float
rounding only: the gradients are summed in another order), every rank agreeing on the
grown weights right after the growth."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.formal.replay import replay
from tests.integration.test_distributed import SMOKE, assert_same_decisions, govtrain, steps

pytestmark = pytest.mark.torch


def grown_config(tmp_path: Path, engine: str | None) -> Path:
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["governance"]["hierarchy"].update(dormant="bypass", grow="stack")
    if engine is not None:
        cfg["train"]["engine"] = engine
    path = tmp_path / f"grown-{engine}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("grown")
    run = tmp / "run"
    done = govtrain("run", str(grown_config(tmp, None)), "--run-dir", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    return run


@pytest.mark.parametrize("engine", ["ddp", "fsdp2"])
def test_a_growth_is_identical_on_every_rank(tmp_path: Path, one_process: Path, engine: str):
    run = tmp_path / "run"
    config = grown_config(tmp_path, engine)
    done = govtrain("run", str(config), "--run-dir", str(run), "--no-progress", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    two, one = steps(run), steps(one_process)
    assert_same_decisions(two, one)
    grown = [s for s in two.values() if "growth" in s]
    assert len(grown) == 1
    step = grown[0]["step"]
    plan = {k: v for k, v in grown[0]["growth"].items() if not k.endswith("sha256")}
    assert plan == {k: v for k, v in one[step]["growth"].items() if not k.endswith("sha256")}
    assert grown[0]["growth"]["source_sha256"] == grown[0]["growth"]["result_sha256"]
    assert [s["bypassed"] for s in two.values()] == [s["bypassed"] for s in one.values()]
    records = read_records(run / "audit.jsonl")
    agreed = {r.body["step"]: r.body["digests"] for r in records if r.kind == "agree"}
    assert step in agreed and len(set(agreed[step])) == 1  # every rank, right after it
    assert verify_run(run).closed
    assert replay(records).divergence is None
