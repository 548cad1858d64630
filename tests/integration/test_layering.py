"""The layering the README describes, checked in fresh interpreters: the core and the log
import neither torch nor the training side, and the auditor's commands run with the
torch side made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

TORCH_SIDE = ("torch", "transformers", "tokenizers", "accelerate", "datasets", "lightning")

# Imports every module of the named packages, then prints the top-level packages and
# govtrain subpackages that ended up loaded.
_LOADED = """
import importlib, json, pkgutil, sys
for pkg in sys.argv[1:]:
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules}
                        | {".".join(m.split(".")[:2]) for m in sys.modules
                           if m.startswith("govtrain.")})))
"""

# Runs the CLI with every torch-side package made unimportable.
_BLOCKED = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {TORCH_SIDE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
from govtrain.cli import main
main()
"""


def _loaded(*packages: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _LOADED, *packages],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
    ).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("govtrain.governance", {"govtrain.audit", "govtrain.pipeline", "govtrain.formal"}),
        ("govtrain.audit", {"govtrain.governance", "govtrain.pipeline", "govtrain.formal"}),
        ("govtrain.formal", {"govtrain.pipeline"}),
        ("govtrain.cli", {"govtrain.pipeline.trainer"}),
    ],
)
def test_layers_import_no_torch_and_nothing_above_them(package: str, forbidden: set) -> None:
    loaded = _loaded(package)
    assert not loaded & set(TORCH_SIDE)
    assert not loaded & forbidden
    assert not loaded & {"tools", "tests"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED, *args],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
    )


@pytest.mark.torch
def test_auditor_commands_run_without_torch(tiny_full_run) -> None:
    run_dir, _ = tiny_full_run
    verify = _cli("audit", "verify", str(run_dir))
    assert verify.returncode == 0, verify.stderr
    conform = _cli("specs", "conform", str(run_dir), "--json")
    assert conform.returncode == 0, conform.stderr
    assert json.loads(conform.stdout)["replay"]["ok"] is True
    trace = _cli("audit", "export-trace", str(run_dir))
    assert trace.returncode == 0 and trace.stdout.startswith('{"event":"Init"')
    explore = _cli("explore", str(ROOT / "configs" / "small.yaml"))
    assert explore.returncode == 0 and "all invariants hold" in explore.stdout


def test_run_without_the_train_extra_says_which_to_install(tmp_path) -> None:
    result = _cli("run", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "pip install 'govtrain[train]'" in result.stderr
    assert not (tmp_path / "run").exists()


def test_python_dash_m_govtrain_is_the_cli() -> None:
    """`python -m govtrain` (what `torchrun -m govtrain` runs) is the same CLI."""
    out = subprocess.run(
        [sys.executable, "-m", "govtrain", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
    ).stdout
    assert all(command in out for command in ("audit", "explore", "run", "specs"))
