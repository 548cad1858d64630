"""Experiment trackers fed from the audit log: TensorBoard and MLflow (`train.trackers`).

A tracker sees what the log records, when it is recorded: rank 0's audit sink is
wrapped (`Tracked`), so each step, evaluation and skipped evaluation reaches the
trackers after it is in the log, and nothing else does. Per step: train loss, learning
rate, and per group its phase (the index in `Phase`), budget units, quota and signal,
and the share of backward FLOPs saved so far; each transition as a text event. At the
end: the log's Merkle root and the run id as tags, and (MLflow) the log, its signed
checkpoints and the report as artifacts.

MLflow writes to `train.mlflow_uri`, else $MLFLOW_TRACKING_URI, else a file store
beside the run directory (RUN/../mlruns: inside RUN it would exist before the run,
which appears whole). MLflow's own default, sqlite:///mlflow.db in the working
directory, needs SQLAlchemy, which the `trackers` extra's mlflow-skinny lacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from govtrain.audit.files import run_subdir
from govtrain.audit.provenance import read_records
from govtrain.audit.verify import LATEST_FILE, LOG_FILE, NOTES_FILE, verify_run
from govtrain.governance.errors import ConfigError
from govtrain.governance.record import StepRecord
from govtrain.governance.state import Phase

PHASES = list(Phase)
MLFLOW_STORE = "mlruns"  # the default MLflow store, beside the run directory
# MLflow 3 opens a file store only when this is true (it wants a database instead)
ALLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"
CAUSE_CHARS = 120  # of a tracker's own error, in ours


def metrics_of(step: StepRecord, names: Sequence[str], flops: list[int]) -> dict[str, float]:
    """The step's metrics; `flops` accumulates (backward, dense) over the run."""
    out = {"loss/train": step.loss, "lr": step.lr}
    for name, group, obs, units, quota in step.per_group(names):
        out[f"phase/{name}"] = PHASES.index(group.phase)
        out[f"units/{name}"] = units
        out[f"quota/{name}"] = quota
        out[f"signal/{name}"] = obs.signal
    if step.backward_flops is not None and step.dense_backward_flops is not None:
        flops[0] += step.backward_flops
        flops[1] += step.dense_backward_flops
        out["flops/saved_share"] = 1 - flops[0] / flops[1] if flops[1] else 0.0
    return out


def run_facts(run_dir: Path) -> dict[str, str]:
    """What identifies the sealed run: its id and the Merkle root of its whole log."""
    report = verify_run(run_dir)
    start = read_records(run_dir)[0].body
    return {
        "govtrain.run_id": str(start.get("run_id")),
        "govtrain.merkle_root": report.root.hex(),
        "govtrain.tree_size": str(report.records),
    }


class TensorBoardSink:
    """Event files in RUN/tensorboard, opened at the first record: the run directory
    appears whole when its log is created, so nothing may write into it before."""

    def __init__(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir, self.make, self.writer = run_dir / "tensorboard", SummaryWriter, None

    def _writer(self):
        if self.writer is None:
            # a real directory of the run: one planted as a link elsewhere is refused
            with run_subdir(self.log_dir.parent, self.log_dir.name, create=True):
                self.writer = self.make(log_dir=str(self.log_dir))
        return self.writer

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._writer().add_scalar(name, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self._writer().add_text(tag, text, step)

    def close(self, run_dir: Path, facts: dict[str, str]) -> None:
        self._writer().add_text("audit", "  \n".join(f"{k}: {v}" for k, v in facts.items()))
        self._writer().close()


@contextmanager
def _file_store_allowed(allowed: bool) -> Iterator[None]:
    """MLFLOW_ALLOW_FILE_STORE=true while the sink uses its default file store, and only
    then: a store the user chose stays under the user's own setting."""
    if not allowed or ALLOW_FILE_STORE in os.environ:
        yield
        return
    os.environ[ALLOW_FILE_STORE] = "true"
    try:
        yield
    finally:
        os.environ.pop(ALLOW_FILE_STORE, None)


class MLflowSink:
    """One MLflow run at `uri`; `default_store`: `uri` is govtrain's default file store."""

    def __init__(
        self, run_dir: Path, uri: str, experiment: str, name: str, default_store: bool
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.default_store = default_store
        with _file_store_allowed(self.default_store):
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id if found else self.client.create_experiment(experiment)
            )
            self.run_id = self.client.create_run(
                experiment_id, run_name=name, tags={"govtrain.run_dir": str(run_dir)}
            ).info.run_id

    def metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        stamp = 0  # no wall-clock: a resumed run's metrics match the uninterrupted run's
        metrics = [Metric(k, float(v), stamp, step) for k, v in values.items()]
        with _file_store_allowed(self.default_store):
            self.client.log_batch(self.run_id, metrics=metrics)

    def text(self, tag: str, text: str, step: int) -> None:
        with _file_store_allowed(self.default_store):
            self.client.log_text(self.run_id, text, f"{tag}/step_{step:06d}.txt")

    def close(self, run_dir: Path, facts: dict[str, str]) -> None:
        with _file_store_allowed(self.default_store):
            for key, value in facts.items():
                self.client.set_tag(self.run_id, key, value)
            for name in (LOG_FILE, NOTES_FILE, LATEST_FILE):
                self.client.log_artifact(self.run_id, str(run_dir / name), "audit")
            try:
                from govtrain.report import write_report
            except ModuleNotFoundError:  # no report extra: the log is the record anyway
                pass
            else:
                write_report(run_dir)
                self.client.log_artifacts(self.run_id, str(run_dir / "report"), "report")
            self.client.set_terminated(self.run_id)


class Tracked:
    """Rank 0's audit log, with every appended record also sent to the trackers."""

    def __init__(self, log, sinks: Sequence[Any], names: Sequence[str], run_dir: Path) -> None:
        self.log, self.sinks, self.names, self.run_dir = log, list(sinks), list(names), run_dir
        self.flops = [0, 0]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)

    def append(self, kind: str, body: dict[str, Any]) -> None:
        self.log.append(kind, body)
        if kind == "step":
            step = StepRecord.from_dict(body, self.names)
            values = metrics_of(step, self.names, self.flops)
            labels = ", ".join(t.label for t in step.transitions)
            for sink in self.sinks:
                sink.metrics(step.step, values)
                if labels:
                    sink.text("transitions", labels, step.step)
        elif kind == "eval":
            for sink in self.sinks:
                sink.metrics(body["step"], {"loss/eval": body["loss"]})
        elif kind == "rescore":  # data tiers: samples per tier after each re-scoring
            for sink in self.sinks:
                sink.metrics(body["step"], {f"tiers/{t}": n for t, n in body["counts"].items()})

    def close(self, body: dict[str, Any] | None = None) -> None:
        self.log.close(body)
        facts = run_facts(self.run_dir)
        for sink in self.sinks:
            sink.close(self.run_dir, facts)


def sinks_for(cfg, run_dir: Path) -> list[Any]:
    """The sinks `train.trackers` names, or one ConfigError naming the missing extra, or
    the cause and the fix.

    Made before the run's log, so a tracker that cannot start leaves no run behind.
    """
    sinks = []
    for name in cfg.train.trackers:
        try:
            if name == "tensorboard":
                sinks.append(TensorBoardSink(run_dir))
            else:
                sinks.append(_mlflow_sink(cfg, run_dir))
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"train.trackers: {name} needs {exc.name}: pip install 'govtrain[trackers]'"
            ) from None
        except ConfigError:
            raise
        except Exception as exc:  # the tracker's own errors
            raise ConfigError(f"train.trackers: {name} cannot start: {_cause(exc)}") from None
    return sinks


def mlflow_store(cfg, run_dir: Path) -> tuple[str, str | None]:
    """MLflow's tracking URI and the setting that gives it (None: the default store)."""
    if cfg.train.mlflow_uri:
        return cfg.train.mlflow_uri, "train.mlflow_uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"], "MLFLOW_TRACKING_URI"
    return (Path(run_dir).resolve().parent / MLFLOW_STORE).as_uri(), None


def _mlflow_sink(cfg, run_dir: Path) -> MLflowSink:
    """The MLflow sink, or one line naming the store MLflow cannot open and what to set."""
    uri, setting = mlflow_store(cfg, run_dir)
    try:
        return MLflowSink(
            run_dir, uri, cfg.train.mlflow_experiment, cfg.name, default_store=setting is None
        )
    except ModuleNotFoundError:
        raise
    except Exception as exc:  # a store MLflow cannot open or reach
        if setting is None:
            fix = "set train.mlflow_uri or MLFLOW_TRACKING_URI to a store MLflow can open"
        elif urlparse(uri).scheme in ("", "file") and ALLOW_FILE_STORE not in os.environ:
            fix = f"to use a file store, set {ALLOW_FILE_STORE}=true"
        else:
            fix = f"point {setting} at a store MLflow can open, or unset it"
        store = f"the default store {uri}" if setting is None else f"{setting}={uri}"
        raise ConfigError(
            f"train.trackers: mlflow cannot start with {store}: {_cause(exc)}; {fix}"
        ) from None


def _cause(exc: Exception) -> str:
    """The first sentence of an error's first line: MLflow's run to a paragraph."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    sentence = first.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= CAUSE_CHARS else sentence[: CAUSE_CHARS - 1] + "\u2026"


def track(log, sinks: Sequence[Any], cfg, run_dir: Path):
    """`log` with the sinks attached (itself when there are none)."""
    if not sinks:
        return log
    return Tracked(log, sinks, [g.name for g in cfg.governance.groups], run_dir)
