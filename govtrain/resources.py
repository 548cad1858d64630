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
