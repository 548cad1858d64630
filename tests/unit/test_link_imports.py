"""tools/link_imports.py: the links through which static tools see the package's import
path (govtrain.governance -> governance/ ...) resolve to the repository's folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.link_imports import link_tree, package_dirs


def test_every_mapped_package_resolves_to_its_folder(tmp_path: Path) -> None:
    mapping = package_dirs(ROOT)
    link_tree(mapping, tmp_path)
    for name, folder in mapping.items():
        if name != "govtrain":
            assert tmp_path.joinpath(*name.split(".")).resolve() == folder.resolve(), name
    # govtrain itself is a folder of links: its own modules beside the mapped subpackages
    assert (tmp_path / "govtrain" / "resources.py").resolve() == ROOT / "govtrain/resources.py"
    assert (tmp_path / "govtrain" / "cli" / "audit.py").is_file()


def _project(root: Path) -> dict[str, Path]:
    for folder in ("pkg", "core"):
        (root / folder).mkdir()
        (root / folder / "__init__.py").touch()
    (root / "pkg" / "cli.py").touch()
    return {"pkg": root / "pkg", "pkg.core": root / "core"}


def test_a_module_added_to_a_mapped_folder_is_seen_without_a_rerun(tmp_path: Path) -> None:
    mapping = _project(tmp_path)
    tree = tmp_path / "tree"
    link_tree(mapping, tree)
    (tmp_path / "core" / "new.py").write_text("X = 1\n")
    assert (tree / "pkg" / "core" / "new.py").read_text() == "X = 1\n"


def test_a_rerun_is_idempotent_and_drops_links_to_removed_files(tmp_path: Path) -> None:
    mapping = _project(tmp_path)
    tree = tmp_path / "tree"
    first = link_tree(mapping, tree)
    assert link_tree(mapping, tree) == first
    (tmp_path / "pkg" / "cli.py").unlink()
    link_tree(mapping, tree)
    assert not (tree / "pkg" / "cli.py").is_symlink()
    assert (tree / "pkg" / "core").is_symlink()


def test_a_module_in_the_way_of_a_subpackage_is_refused(tmp_path: Path) -> None:
    mapping = _project(tmp_path)
    (tmp_path / "pkg" / "core").mkdir()  # a folder of its own under the mapped name
    with pytest.raises(FileExistsError, match="core"):
        link_tree(mapping, tmp_path / "tree")
