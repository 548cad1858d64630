"""examples/verify_independently.py, the docs' recipe for checking a log without govtrain,
agrees with `govtrain audit verify` on an intact log and on each kind of tampering."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from govtrain.audit.keys import generate_signer
from govtrain.audit.records import Record
from govtrain.audit.verify import LOG_FILE
from tests.audit_support import join, make_run, rechain

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "verify_independently.py"


def recipe(run: Path, key: str) -> str:
    out = subprocess.run(
        [sys.executable, str(RECIPE), str(run), key], capture_output=True, text=True, timeout=60
    )
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.strip()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    make_run(tmp_path / "run", 40, checkpoint_every=8, keep_key=True)
    return tmp_path / "run"


def test_an_intact_log_verifies_without_govtrain(run: Path) -> None:
    assert (
        recipe(run, str(run / "keys" / "audit.pub")) == "ok: 40 records, signed root of 40, closed"
    )
    assert recipe(run, generate_signer().verifier.vkey).startswith("FAIL: the last checkpoint")


def test_tampering_fails_the_recipe_as_it_fails_govtrain(run: Path) -> None:
    pub = str(run / "keys" / "audit.pub")
    lines = (run / LOG_FILE).read_bytes().split(b"\n")[:-1]
    edited = lines.copy()
    edited[5] = edited[5].replace(b'"step":4', b'"step":9')
    (run / LOG_FILE).write_bytes(join(edited))
    assert recipe(run, pub) == "FAIL: record 6: bad seq or hash link"
    five = Record.from_line(lines[5])
    forged = lines.copy()
    forged[5] = Record.build(5, five.kind, five.prev, {**five.body, "loss": 0.42}).line
    (run / LOG_FILE).write_bytes(join(rechain(forged, 5)))  # every later hash recomputed
    assert recipe(run, pub) == "FAIL: the first 40 records do not have the signed root"
