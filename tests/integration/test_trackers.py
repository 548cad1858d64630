"""`train.trackers`: TensorBoard and MLflow, checked with the real libraries (local files,
no server) against the audit log they are fed from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from govtrain.audit.provenance import read_records
from govtrain.audit.verify import verify_run
from govtrain.governance.errors import ConfigError
from govtrain.governance.state import Phase
from tests.conftest import train_tiny

pytestmark = pytest.mark.torch


def _steps(run: Path) -> list[dict]:
    return [r.body for r in read_records(run / "audit.jsonl") if r.kind == "step"]


def test_tensorboard_gets_every_step_eval_and_transition(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train_tiny(run, train__trackers=["tensorboard"])
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    steps = _steps(run)
    loss = events.Scalars("loss/train")
    assert [e.step for e in loss] == [s["step"] for s in steps]
    assert [round(e.value, 5) for e in loss] == [round(s["loss"], 5) for s in steps]
    phases = [Phase(s["state"]["groups"]["top"]["phase"]) for s in steps]
    assert [int(e.value) for e in events.Scalars("phase/top")] == [
        list(Phase).index(p) for p in phases
    ]
    units = [s["decision"]["allocations"]["embed"] for s in steps]
    assert [int(e.value) for e in events.Scalars("units/embed")] == units
    evals = [r.body for r in read_records(run / "audit.jsonl") if r.kind == "eval"]
    assert [(e.step, round(e.value, 5)) for e in events.Scalars("loss/eval")] == [
        (b["step"], round(b["loss"], 5)) for b in evals
    ]
    assert 0 < events.Scalars("flops/saved_share")[-1].value < 1
    texts = events.Tags()["tensors"]
    assert "transitions/text_summary" in texts and "audit/text_summary" in texts
    audit = events.Tensors("audit/text_summary")[0].tensor_proto.string_val[0].decode()
    assert verify_run(run).root.hex() in audit


def test_tensorboard_gets_the_data_tiers_at_each_rescoring(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    tiers = {"rescore_every": 5, "max_wait": 10, "mastered": 0.97, "struggling": 1.03}
    train_tiny(run, train__trackers=["tensorboard"], data__tiers=tiers)
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    rescores = [r.body for r in read_records(run / "audit.jsonl") if r.kind == "rescore"]
    assert len(rescores) == 7
    for tier in ("Mastered", "Learning", "Struggling", "Failing"):
        assert [(e.step, int(e.value)) for e in events.Scalars(f"tiers/{tier}")] == [
            (r["step"], r["counts"][tier]) for r in rescores
        ]


def test_mlflow_gets_metrics_tags_and_the_log_as_artifacts(tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, no server
    uri = (tmp_path / "mlruns").as_uri()
    run = tmp_path / "run"
    train_tiny(run, train__trackers=["mlflow"], train__mlflow_uri=uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("govtrain")
    (found,) = client.search_runs([experiment.experiment_id])
    steps = _steps(run)
    history = client.get_metric_history(found.info.run_id, "loss/train")
    assert [m.step for m in history] == [s["step"] for s in steps]
    quota = client.get_metric_history(found.info.run_id, "quota/block0")
    assert [int(m.value) for m in quota] == [s["decision"]["quotas"]["block0"] for s in steps]
    report = verify_run(run)
    assert found.data.tags["govtrain.merkle_root"] == report.root.hex()
    assert found.data.tags["govtrain.run_id"] == read_records(run / "audit.jsonl")[0].body["run_id"]
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "audit")}
    assert artifacts == {"audit/audit.jsonl", "audit/checkpoints.note", "audit/checkpoint"}
    local = Path(client.download_artifacts(found.info.run_id, "audit/audit.jsonl", str(tmp_path)))
    assert local.read_bytes() == (run / "audit.jsonl").read_bytes()
    assert "report/report.html" in {
        a.path for a in client.list_artifacts(found.info.run_id, "report")
    }
    assert found.info.status == "FINISHED"


def test_mlflow_works_out_of_the_box_in_a_store_beside_the_run(tmp_path: Path, monkeypatch) -> None:
    """No URI set: a file store in RUN/../mlruns, allowed for that store only."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    run = tmp_path / "run"
    train_tiny(run, train__trackers=["mlflow"])
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # set only while the sink used it
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the store here
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("govtrain").experiment_id])
    assert found.data.tags["govtrain.run_dir"] == str(run) and found.info.status == "FINISHED"
    assert found.data.tags["govtrain.merkle_root"] == verify_run(run).root.hex()


def test_a_file_store_mlflow_refuses_is_one_line_naming_the_fix(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = (tmp_path / "mine").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ConfigError) as err:
        train_tiny(tmp_path / "run", train__trackers=["mlflow"])
    message = str(err.value)
    assert message.startswith(
        f"train.trackers: mlflow cannot start with MLFLOW_TRACKING_URI={uri}: "
    )
    assert message.endswith("; to use a file store, set MLFLOW_ALLOW_FILE_STORE=true")
    assert "\n" not in message and len(message.replace(uri, "URI")) < 250, message
    assert not (tmp_path / "run").exists()


def test_a_missing_tracker_is_one_line_and_leaves_no_run(tmp_path: Path, monkeypatch) -> None:
    for name in ("mlflow", "mlflow.tracking", "mlflow.entities"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    with pytest.raises(ConfigError, match=r"train.trackers: mlflow needs .*govtrain\[trackers\]"):
        train_tiny(tmp_path / "run", train__trackers=["mlflow"])
    assert not (tmp_path / "run").exists()


def test_a_tracker_that_cannot_start_is_one_line_and_leaves_no_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.trackers: mlflow cannot start") as err:
        train_tiny(tmp_path / "run", train__trackers=["mlflow"], train__mlflow_uri="nope://x")
    assert "\n" not in str(err.value) and len(str(err.value)) < 300
    assert str(err.value).endswith(
        "; point train.mlflow_uri at a store MLflow can open, or unset it"
    )
    assert not (tmp_path / "run").exists()
