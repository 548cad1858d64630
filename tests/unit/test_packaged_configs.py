"""The configs that ship in the package, named from anywhere: `govtrain configs` lists
them, and every command taking CONFIG takes a packaged config's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from govtrain.cli import main
from govtrain.resources import config_summary, configs_dir, packaged_configs


def test_configs_lists_every_packaged_config_with_its_header() -> None:
    result = CliRunner().invoke(main, ["configs"])
    assert result.exit_code == 0, result.output
    shipped = sorted(p.stem for p in configs_dir().glob("*.yaml"))
    assert shipped and list(packaged_configs()) == shipped
    listed = [line.split()[0] for line in result.output.splitlines()[:-1]]
    assert listed == shipped
    assert "The main job" in result.output  # quickstart's first comment line


def test_a_packaged_name_is_a_config_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("small", "small.yaml"):
        result = CliRunner().invoke(main, ["explore", name])
        assert result.exit_code == 0, result.output
        assert "all invariants hold" in result.output


def test_a_local_file_wins_over_a_packaged_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").write_text("not: [a config")  # a file named like a packaged one
    result = CliRunner().invoke(main, ["explore", "small"])
    assert result.exit_code == 1 and "small" in result.output


@pytest.mark.parametrize("command", [["explore"], ["run"], ["specs", "check-config"]])
def test_an_unknown_name_is_one_line_listing_the_packaged_ones(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "nosuch"])
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and "'nosuch'" in error[0] and "quickstart" in error[0]


def test_a_directory_is_not_a_config(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small").mkdir()
    result = CliRunner().invoke(main, ["explore", "small"])
    assert result.exit_code == 2 and "is not a file" in result.output


def test_run_still_takes_an_override_as_its_first_argument(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "governance.total_steps=oops", "--no-progress"])
    assert result.exit_code == 1 and "total_steps" in result.output


def test_every_summary_is_a_header_line() -> None:
    for path in packaged_configs().values():
        assert config_summary(path)  # each shipped config says what it is for
