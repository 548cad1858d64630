"""The composed step in separate interpreters: the same observations give the same
decisions in any process (the property tests: tests/unit/test_step.py)."""

from __future__ import annotations

import json
import os

_REPLAY_SCRIPT = """
import json, sys
from govtrain.governance.record import StepRecord
from govtrain.governance.state import GroupObservation
from govtrain.governance.step import govern, initial_state
from govtrain.pipeline.config import load_config
cfg = load_config(sys.argv[1]).governance
names = [g.name for g in cfg.groups]
state, out = initial_state(cfg), []
for t in range(60):
    obs = [GroupObservation((t * 7 + 3 * i) % 5 / 100, (t % 9) / 10, 1 + (t + i) % 3)
           for i in range(3)]
    r = govern(state, obs, cfg)
    out.append(StepRecord(t, 0.0, 0.0, 0.0, {n: {} for n in names}, tuple(obs), r.transitions,
                          r.state, r.decision).to_dict(names))
    state = r.state
print(json.dumps(out, sort_keys=True))
"""


def test_same_observations_same_decisions_in_any_process() -> None:
    """Ranks are separate processes: 60 steps of decisions must not depend on string-hash
    randomisation or anything else that differs between interpreters."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    runs = [
        subprocess.run(
            [sys.executable, "-c", _REPLAY_SCRIPT, str(ROOT / "configs" / "small.yaml")],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "random")
    ]
    steps = json.loads(runs[0])
    assert len(steps) == 60 and any(s["transitions"] for s in steps)
    assert runs[1] == runs[0] and runs[2] == runs[0]
