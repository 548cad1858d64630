"""Governed training on several processes: torchrun, gloo, 2 CPU ranks, real collectives.

What must hold across ranks: the routed weight gradient of a global batch split
over 2 ranks equals the one-process gradient; a 2-process run takes the same
decisions as a 1-process run at the same global batch and its one log verifies
and replays; ranks that disagree stop the job; a run resumes at another world
size; a rank killed at a random step is survived (torchrun --max-restarts).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
psutil = pytest.importorskip("psutil")

from govtrain.audit.provenance import read_records  # noqa: E402
from govtrain.audit.verify import verify_run  # noqa: E402
from govtrain.formal.replay import replay  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"
WORKER = ROOT / "tests" / "distributed_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
KILLS = 30 if os.environ.get("GOVTRAIN_SLOW") else 10


def torchrun(*args: str, nproc: int = 2, restarts: int = 0, timeout: float = 240):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        f"--max-restarts={restarts}",
        *args,
    ]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)


def govtrain(*args: str, nproc: int = 1):
    if nproc == 1:
        cmd = [sys.executable, "-m", "govtrain", *args]
        return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    return torchrun("-m", "govtrain", *args, nproc=nproc)


def steps(run_dir: Path) -> dict[int, dict]:
    """The last record of each step (a resumed run repeats the steps after its checkpoint)."""
    return {
        r.body["step"]: r.body for r in read_records(run_dir / "audit.jsonl") if r.kind == "step"
    }


def assert_same_decisions(a: dict[int, dict], b: dict[int, dict]) -> None:
    assert sorted(a) == sorted(b)
    for n in a:
        for key in ("state", "decision", "routed", "transitions"):
            assert a[n][key] == b[n][key], f"step {n}: {key} differs"
        assert a[n]["loss"] == pytest.approx(b[n]["loss"], rel=1e-5, abs=1e-6)


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The smoke config on one process: the reference every multi-process run must match."""
    run = tmp_path_factory.mktemp("one") / "run"
    done = govtrain("run", str(SMOKE), "--run-dir", str(run), "--no-progress")
    assert done.returncode == 0, done.stderr
    return run


@pytest.mark.parametrize("engine", ["ddp", "fsdp2"])
@pytest.mark.parametrize("quota", [8, 3, 0])
def test_routed_gradient_on_two_ranks_equals_one_process(
    tmp_path: Path, quota: int, engine: str
) -> None:
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import routed_gradients

    out = tmp_path / "grads.pt"
    done = torchrun(str(WORKER), "grads", str(out), str(quota), engine)
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    one = routed_gradients(quota, None)
    assert sorted(two) == sorted(one)
    for name, g in one.items():
        torch.testing.assert_close(two[name], g, rtol=1e-4, atol=1e-6, msg=name)
    if quota == 0:
        assert all(float(g.abs().max()) == 0 for g in one.values())


def engine_config(tmp_path: Path, engine: str) -> Path:
    """The smoke config with `train.engine` set."""
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["train"]["engine"] = engine
    path = tmp_path / f"smoke-{engine}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("engine", ["ddp", "fsdp2"])
def test_two_process_run_takes_the_one_process_decisions(
    tmp_path: Path, single: Path, engine: str
) -> None:
    run = tmp_path / "run"
    config = engine_config(tmp_path, engine)
    done = govtrain("run", str(config), "--run-dir", str(run), "--no-progress", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "processes" in done.stdout and "2 (gradient bytes reduced" in done.stdout
    assert_same_decisions(steps(run), steps(single))
    report = verify_run(run)
    assert report.closed
    assert replay(read_records(run / "audit.jsonl")).divergence is None
    records = read_records(run / "audit.jsonl")
    assert records[0].body["distributed"] == {"world_size": 2, "backend": "gloo", "engine": engine}
    agreed = [r.body for r in records if r.kind == "agree"]
    assert agreed and all(len(set(a["digests"])) == 1 and len(a["digests"]) == 2 for a in agreed)
    # frozen groups send nothing: a step's bytes depend only on which groups it left frozen,
    # and fall as more are frozen
    by_frozen: dict[frozenset[str], set[int]] = {}
    ordered = [s for _, s in sorted(steps(run).items())]
    for prev, step in itertools.pairwise(ordered):
        frozen = frozenset(
            g for g, v in prev["state"]["groups"].items() if v["phase"] in ("DORMANT", "CONVERGED")
        )
        by_frozen.setdefault(frozen, set()).add(step["grad_bytes"])
    assert all(len(b) == 1 for b in by_frozen.values()), by_frozen
    assert len(by_frozen) >= 3, by_frozen
    for f, (b,) in by_frozen.items():
        for g, (c,) in by_frozen.items():
            if f < g:
                assert c < b, (f, g)
    conform = govtrain("specs", "conform", str(run))
    assert conform.returncode == 0, conform.stdout + conform.stderr


def test_data_tiers_on_two_ranks(tmp_path: Path) -> None:
    """Every rank re-scores from the gathered losses of the global batch, so they draw the
    same plans and agree; the one log replays its tiers, and the first period (before any
    loss) is the one-process plan."""
    from govtrain.governance import tiers
    from govtrain.pipeline.config import load_config

    run = tmp_path / "run"
    tiered = "data.tiers={rescore_every: 4, max_wait: 8, mastered: 0.97, struggling: 1.03}"
    done = govtrain("run", str(SMOKE), tiered, "--run-dir", str(run), "--no-progress", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert verify_run(run).closed
    records = read_records(run / "audit.jsonl")
    report = replay(records)
    assert report.ok and report.rescorings == 9, report.divergence
    agreed = [r.body["digests"] for r in records if r.kind == "agree"]
    assert agreed and all(len(set(d)) == 1 for d in agreed)
    cfg = load_config(SMOKE, [tiered])
    batch = cfg.governance.router.batch_size
    first = tiers.initial(
        records[0].body["data_pipeline"]["train_sequences"], cfg.data.tiers, batch, cfg.seed
    )
    logged = [r.body["samples"]["rows"] for r in records if r.kind == "step"][:4]
    assert logged == [tiers.rows(first, s, cfg.data.tiers, batch) for s in range(4)]


def test_ranks_that_disagree_stop_the_job(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = torchrun(str(WORKER), "diverge", str(run))
    assert done.returncode != 0
    assert "rank(s) [1] disagree with rank 0 at step" in done.stdout
    report = verify_run(run)
    assert report.closed
    records = read_records(run / "audit.jsonl")
    end = records[-1].body
    assert records[-1].kind == "run_end" and end["status"] == "ranks disagree"
    assert end["ranks"] == [1]
    bad = [r.body for r in records if r.kind == "agree" and len(set(r.body["digests"])) > 1]
    assert [b["step"] for b in bad] == [end["steps"]]
    assert any(r.kind == "checkpoint" and r.body["step"] == end["steps"] for r in records)


@pytest.mark.parametrize("engine", ["ddp", "fsdp2"])
@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_resume_at_another_world_size(
    tmp_path: Path, single: Path, first: int, then: int, engine: str
) -> None:
    """The checkpoint holds whole tensors whatever the engine, so the world size may change."""
    run = tmp_path / "run"
    config = engine_config(tmp_path, engine)
    args = ("run", str(config), "--run-dir", str(run), "--no-progress", "--stop-after", "17")
    assert govtrain(*args, nproc=first).returncode == 0
    done = govtrain("run", "--resume", str(run), "--no-progress", nproc=then)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_decisions(steps(run), steps(single))
    assert verify_run(run).closed
    assert replay(read_records(run / "audit.jsonl")).divergence is None
    resumed = [r.body for r in read_records(run / "audit.jsonl") if r.kind == "run_resume"]
    assert resumed[-1]["from_step"] == 17
    assert ("distributed" in resumed[-1]) == (then > 1)


def long_config(tmp_path: Path) -> Path:
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["governance"]["total_steps"] = 90
    cfg["train"]["checkpoint_every"] = 7
    cfg["train"]["collective_timeout_s"] = 60
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def step_count(log: Path) -> int:
    try:
        return log.read_bytes().count(b'"kind":"step"')
    except FileNotFoundError:
        return 0


def kill_a_rank(tmp_path: Path, rng: random.Random) -> tuple[int, int]:
    """Start a 2-rank job under torchrun --max-restarts=2; SIGKILL a random rank once the
    log holds a random number of steps; return (rank killed, steps seen)."""
    run = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--max-restarts=2", "-m", "govtrain", "run", str(long_config(tmp_path)),
        "--run-dir", str(run), "--no-progress",
    ]  # fmt: skip
    job = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    at, victim = rng.randrange(1, 80), rng.randrange(2)
    deadline = time.monotonic() + 120
    while step_count(run / "audit.jsonl") < at and job.poll() is None:
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.01)
    workers = {
        int(p.environ().get("RANK", -1)): p
        for p in psutil.Process(job.pid).children(recursive=True)
        if "govtrain" in " ".join(p.cmdline())
    }
    workers[victim].send_signal(signal.SIGKILL)
    out, _ = job.communicate(timeout=240)
    assert job.returncode == 0, out.decode()[-3000:]
    return victim, at


def test_a_killed_rank_is_survived(tmp_path: Path) -> None:
    """10 of 10 (30 with GOVTRAIN_SLOW=1): the group restarts, resumes from the last
    checkpoint, finishes; the log verifies, replays and holds every step once."""
    rng = random.Random(20261130)
    for attempt in range(KILLS):
        base = tmp_path / str(attempt)
        base.mkdir()
        victim, at = kill_a_rank(base, rng)
        run = base / "run"
        report = verify_run(run)
        assert report.closed, (victim, at)
        records = read_records(run / "audit.jsonl")
        assert replay(records).divergence is None, (victim, at)
        resumes = [r for r in records if r.kind == "run_resume"]
        assert len(resumes) == 1, (victim, at, [r.body for r in resumes])
        last = resumes[-1]
        after = [r.body["step"] for r in records if r.kind == "step" and r.seq > last.seq]
        assert after == list(range(last.body["from_step"], 90)), (victim, at)
        end = records[-1].body
        assert records[-1].kind == "run_end" and end["status"] == "ok", json.dumps(end)


def test_hf_trainer_under_ddp_decides_alike_on_every_rank(tmp_path: Path) -> None:
    """transformers.Trainer wraps the model in its own DDP; the callback freezes and unfreezes
    only parameters DDP wrapped, and every rank takes the same transitions."""
    done = torchrun(str(WORKER), "hf", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]
    actions = {t["action"] for t in ranks[0]}
    assert {"Activate", "Converge"} <= actions  # unfrozen after the wrap, then frozen again
    assert verify_run(tmp_path / "run").closed
    assert replay(read_records(tmp_path / "run" / "audit.jsonl")).divergence is None
