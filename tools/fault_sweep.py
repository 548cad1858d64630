"""Syscall fault injection over a short governed run: every fault is one line, nothing is lost.

For each target (files of the run, its trust anchor, the run directory itself) and
each syscall on it, `strace` makes the Nth such call fail (ENOSPC for write and
rename, EIO for fsync, EACCES for openat) during `govtrain run configs/smoke.yaml`.
Each injected fault must end the run with a one-line error naming a path (no
traceback) and leave either no run (then the same command starts it again) or a log
that verifies as closed, crashed (exit 4) or torn (exit 3, which `govtrain audit
repair` cuts); the run then resumes (`govtrain run --resume`) to the same step
records and final weights as an uninterrupted run. Counted: faults injected,
recovered, lost. The last line is one JSON object.

    python -m tools.fault_sweep            # every target and call, N over a spread
    python -m tools.fault_sweep --quick    # a few cases (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from govtrain.audit.anchors import ENV, AnchorStore

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "smoke.yaml"
CHECKPOINT_STEPS = (0, 10, 20, 30, 40)  # configs/smoke.yaml: every 10 of 40 steps, and 0
ERRORS = {
    "write": "ENOSPC",
    "fsync": "EIO",
    "openat": "EACCES",
    "rename": "ENOSPC",
    "renameat": "ENOSPC",
}
SPREAD = (1, 2, 3, 5, 8, 13, 21, 34, 55)
QUICK = (
    ("audit.jsonl", "write", 3),
    ("latest checkpoint", "renameat", 2),
    ("model checkpoint", "renameat", 2),
    ("trust anchor", "openat", 3),
    ("run directory", "rename", 1),
)


def targets(run: Path, anchors: AnchorStore) -> dict[str, tuple[list[Path], tuple[str, ...]]]:
    """Target name -> (the paths strace watches (-P), the syscalls faulted on them).

    The log and notes are written in a staged directory until the run is renamed into
    place, so their faults land after creation. strace -P matches a rename by its
    source only, and the stage's name is random: the run directory's target watches
    no path, since that rename is the process's first (bytecode writing is off).
    """
    # staged through the checkpoints directory's descriptor: relative names too
    staged = [f"step_{s:06d}.pt.tmp" for s in CHECKPOINT_STEPS]
    ckpts = [run / "checkpoints" / name for name in staged] + [Path(name) for name in staged]
    anchor = anchors.by_path(run)
    return {
        "audit.jsonl": ([run / "audit.jsonl"], ("write", "fsync")),
        "checkpoints.note": ([run / "checkpoints.note"], ("write", "fsync")),
        "latest checkpoint": (  # through the run directory's descriptor: a relative name
            [run / "checkpoint.tmp", Path("checkpoint.tmp")],
            ("openat", "write", "fsync", "renameat"),
        ),
        "model checkpoint": (ckpts, ("openat", "write", "fsync", "renameat")),
        "trust anchor": (
            [anchor.with_name(anchor.name + ".tmp")],
            ("openat", "write", "fsync", "rename"),
        ),
        "run directory": ([], ("rename",)),
    }


def govtrain(*args: str, strace: list[str] | None = None) -> subprocess.CompletedProcess:
    cmd = [*(strace or []), str(Path(sys.executable).with_name("govtrain")), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=os.environ)


def step_records(run: Path) -> dict[int, dict]:
    from govtrain.audit.provenance import read_records

    out = {}
    for r in read_records(run / "audit.jsonl"):
        if r.kind == "step":
            out[r.body["step"]] = {k: v for k, v in r.body.items() if k != "step_time_ms"}
    return out


def final_weights(run: Path) -> dict:
    import torch

    last = sorted((run / "checkpoints").glob("step_*.pt"))[-1]
    return torch.load(last, weights_only=True)["model"]


def same_run(run: Path, reference: Path) -> bool:
    import torch

    if step_records(run) != step_records(reference):
        return False
    a, b = final_weights(run), final_weights(reference)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_line_error(result: subprocess.CompletedProcess) -> bool:
    """Exactly one line on stderr (besides log lines), naming a path."""
    lines = [x for x in result.stderr.splitlines() if x.strip() and "[info" not in x]
    return result.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: /")


def inject(run: Path, target: str, call: str, n: int, reference: Path, store) -> str:
    """One case: 'not reached', 'recovered', or what was lost."""
    watch = [arg for path in targets(run, store)[target][0] for arg in ("-P", str(path))]
    strace = ["strace", "-f", "-qq", "-o", "/dev/null", *watch, "-e", f"trace={call}"]
    strace += ["-e", f"inject={call}:error={ERRORS[call]}:when={n}"]
    start = ("run", str(CONFIG), "--run-dir", str(run), "--no-progress")
    first = govtrain(*start, strace=strace)
    if first.returncode == 0:
        return "not reached" if same_run(run, reference) else "lost: a faulted run claimed success"
    if not one_line_error(first):
        return f"lost: not a one-line error: {first.stderr.strip().splitlines()[-3:]}"
    if not run.exists():  # failed while creating: nothing was made, so start again
        again = govtrain(*start)
        if again.returncode != 0:
            return f"lost: cannot start again: {again.stderr.strip().splitlines()[-1:]}"
        return "recovered" if same_run(run, reference) else "lost: the restarted run differs"
    verified = govtrain("audit", "verify", str(run))
    if verified.returncode == 3:
        if govtrain("audit", "repair", str(run)).returncode != 0:
            return "lost: repair failed"
        verified = govtrain("audit", "verify", str(run))
    if verified.returncode not in (0, 4):
        return f"lost: verify says {verified.returncode}: {verified.stderr.strip()}"
    resumed = govtrain("run", "--resume", str(run), "--no-progress")
    if resumed.returncode != 0:
        return f"lost: resume failed: {resumed.stderr.strip().splitlines()[-1:]}"
    if govtrain("audit", "verify", str(run)).returncode != 0:
        return "lost: the resumed log does not verify closed"
    return "recovered" if same_run(run, reference) else "lost: the resumed run differs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cases: CI's bounded form")
    parser.add_argument("--target", action="append", help="only this target (repeatable)")
    parser.add_argument(
        "--spread",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        default=SPREAD,
        help="which calls to fail, e.g. 1,2,3 (default: %(default)s)",
    )
    args = parser.parse_args()
    if shutil.which("strace") is None:
        print("strace not found: SKIPPED (install strace to run the fault sweep)")
        print(json.dumps({"bench": "fault_sweep", "skipped": "no strace"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        os.environ[ENV] = str(base / "anchors")  # the sweep's own anchor store
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc renames before the run's
        store = AnchorStore(base / "anchors")
        reference = base / "reference"
        done = govtrain("run", str(CONFIG), "--run-dir", str(reference), "--no-progress")
        assert done.returncode == 0, done.stderr
        plan = (
            list(QUICK)
            if args.quick
            else [
                (target, call, n)
                for target, (paths, calls) in targets(base, store).items()
                if args.target is None or target in args.target
                for call in calls
                for n in (args.spread if paths else (1,))
            ]
        )
        tally: dict[str, int] = {"injected": 0, "recovered": 0, "not reached": 0, "lost": 0}
        skip: set[tuple[str, str]] = set()
        for i, (target, call, n) in enumerate(plan):
            if (target, call) in skip:
                continue
            outcome = inject(base / f"case{i}", target, call, n, reference, store)
            print(f"{target:17} {call:6} {ERRORS[call]:6} call {n:3}: {outcome}", flush=True)
            if outcome == "not reached":
                tally["not reached"] += 1
                skip.add((target, call))  # later calls are not reached either
                continue
            tally["injected"] += 1
            tally["recovered" if outcome == "recovered" else "lost"] += 1
    print(
        f"faults injected {tally['injected']}, recovered {tally['recovered']}, "
        f"lost {tally['lost']} (cases past the last call: {tally['not reached']})"
    )
    print(json.dumps({"bench": "fault_sweep", **tally}))
    if tally["lost"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
