"""Link build/imports/, the package's import path, onto the repository's folders.

pyproject.toml maps the top-level folders into one `govtrain` namespace
(`govtrain.governance` -> governance/, ...), and the editable install serves that
mapping through an import hook that static tools (pyright, IDEs) cannot follow.
This writes the same mapping as links, build/imports/govtrain/governance ->
governance/ and so on, which `[tool.pyright] extraPaths` names. A mapped folder is
linked whole, so a module added to it is seen at once; the entries of govtrain/
itself are linked one by one, so a file added directly there needs a rerun
(`make lint` runs this every time).

Usage: python tools/link_imports.py   (idempotent; touches nothing outside build/imports/)
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "imports"


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """pyproject.toml's `[tool.setuptools] package-dir`: import name -> folder."""
    table = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: root / folder for name, folder in table["package-dir"].items()}


def wanted_links(mapping: dict[str, Path], tree: Path) -> dict[Path, Path]:
    """Each link under `tree` and the folder or file it points at.

    A package with a mapped subpackage becomes a real folder holding links to its
    own entries, with its subpackages linked in beside them; any other package is
    one link to its folder.
    """
    links: dict[Path, Path] = {}

    def add(path: Path, target: Path) -> None:
        if path in links:
            raise FileExistsError(f"{links[path]} and {target} both map onto {path}")
        links[path] = target

    for name, folder in mapping.items():
        if not folder.is_dir():
            raise FileNotFoundError(f"package-dir maps {name} onto {folder}, not a folder")
        path = tree.joinpath(*name.split("."))
        if any(other.startswith(f"{name}.") for other in mapping):
            for entry in folder.iterdir():
                if entry.name != "__pycache__" and not entry.name.startswith("."):
                    add(path / entry.name, entry)
        else:
            add(path, folder)
    return links


def _link(path: Path, target: Path) -> None:
    """Point `path` at `target` by a relative link, replacing any other link atomically."""
    relative = os.path.relpath(target, path.parent)
    if path.is_symlink() and os.readlink(path) == relative:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    staging.symlink_to(relative, target_is_directory=target.is_dir())
    os.replace(staging, path)


def _prune(tree: Path, links: dict[Path, Path]) -> None:
    """Remove links under `tree` that the mapping no longer names (a deleted file)."""
    for folder, folders, files in os.walk(tree):
        for name in folders + files:  # a link to a folder is listed, never entered
            path = Path(folder, name)
            if path.is_symlink() and path not in links:
                path.unlink(missing_ok=True)


def link_tree(mapping: dict[str, Path], tree: Path = TREE) -> dict[Path, Path]:
    links = wanted_links(mapping, tree)
    for path, target in sorted(links.items()):
        _link(path, target)
    _prune(tree, links)
    return links


def main() -> None:
    links = link_tree(package_dirs())
    print(f"{TREE.relative_to(ROOT)}: {len(links)} links")


if __name__ == "__main__":
    main()
