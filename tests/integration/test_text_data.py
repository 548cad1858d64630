"""Text data: a governed `govtrain run` on configs/shakespeare.yaml, narrowed to a small
width and the first ~50 KB of Tiny Shakespeare (the config and `pipeline.data.text_corpus`
on their own: tests/unit/test_text_data.py, which says where the corpus comes from)."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from govtrain.audit.provenance import file_sha256, read_records
from govtrain.audit.verify import LOG_FILE, verify_run
from govtrain.cli import main
from tests.unit import test_text_data as text_data

pytestmark = pytest.mark.torch

CONFIG = text_data.CONFIG
shakespeare_slice = text_data.shakespeare_slice  # the fixture, shared


def test_govtrain_run_trains_on_the_text_config(tmp_path, shakespeare_slice):
    """`govtrain run` on configs/shakespeare.yaml, narrowed to a small width and the slice."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"].update({"path": str(shakespeare_slice), "seq_len": 32, "vocab_size": 384})
    raw["model"].update({"n_embd": 32, "n_head": 2})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    run_dir = tmp_path / "run"
    args = ["run", str(tmp_path / "run.yaml"), "--stop-after", "3", "--run-dir", str(run_dir)]
    result = CliRunner().invoke(main, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output

    assert verify_run(run_dir).closed
    records = read_records(run_dir / LOG_FILE)
    start = records[0].body
    assert start["data"] == [
        {
            "path": str(shakespeare_slice),
            "sha256": file_sha256(shakespeare_slice),
            "bytes": shakespeare_slice.stat().st_size,
        }
    ]
    assert start["config"]["data"]["source"] == "text"
    steps = [r.body for r in records if r.kind == "step"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    assert all(s["loss"] < 7.0 for s in steps)  # ln(384) ~ 5.95 at initialisation
    ckpt = [r.body for r in records if r.kind == "checkpoint"]
    assert ckpt and file_sha256(run_dir / ckpt[-1]["path"]) == ckpt[-1]["sha256"]
