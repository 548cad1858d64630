"""Files that ship inside the package: the TLA+ specs, their manifest, the default configs.

Found through `importlib.resources`, so they resolve the same from a checkout,
an editable install and a wheel installed anywhere.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def _directory(package: str) -> Path:
    # Both packages are plain directories on disk (a wheel is unpacked on install),
    # so the path stays valid after the context manager closes.
    with as_file(files(package)) as path:
        return Path(path)


def specs_dir() -> Path:
    """The folder of `.tla` modules, their `.cfg` models and `manifest.yaml`."""
    return _directory("govtrain.specs")


def manifest_path() -> Path:
    return specs_dir() / "manifest.yaml"


def configs_dir() -> Path:
    return _directory("govtrain.configs")


def config_path(name: str) -> Path:
    """A shipped config by file name, e.g. `quickstart.yaml`."""
    return configs_dir() / name


def packaged_configs() -> dict[str, Path]:
    """The shipped configs by name (`quickstart`, `smoke`, ...), sorted."""
    return {p.stem: p for p in sorted(configs_dir().glob("*.yaml"))}


def config_summary(path: Path) -> str:
    """A config's first comment line: what it is for, as its header says."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                return line.lstrip("#").strip()
            if line.strip():
                break
    return ""
