"""examples/hf_llama.py, the README's Llama-family example, run as a user runs it: a
LlamaForCausalLM under the HF Trainer, its upper layers bypassed and grown by stacking;
the log verifies, replays and is a behaviour of the spec (TLC, where installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from govtrain.audit.provenance import read_records
from govtrain.formal.conform import conform_records
from tests.conftest import ROOT, needs_tlc, tlc_toolchain


def run_example(run_dir: Path, steps: int) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "examples" / "hf_llama.py"), "--run-dir", str(run_dir)]
    done = subprocess.run(
        [*cmd, "--steps", str(steps)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@needs_tlc
def test_the_llama_example_grows_its_upper_layers_and_conforms(tmp_path: Path) -> None:
    out = run_example(tmp_path / "run", 40)
    assert "audit log         ok: closed" in out
    records = read_records(tmp_path / "run" / "audit.jsonl")
    steps = [r.body for r in records if r.kind == "step"]
    assert steps[0]["bypassed"] == ["model.layers.2", "model.layers.3"]
    grown = [s["growth"] for s in steps if s.get("growth")]
    assert len(grown) == 1 and grown[0]["operator"] == "stack"
    assert grown[0]["target_groups"] == ["upper"]
    assert grown[0]["source_sha256"] == grown[0]["result_sha256"]  # copies of the lower layers
    report = conform_records(records, toolchain=tlc_toolchain())
    assert report.ok and report.tlc_status == "ok", report.tlc_summary()
