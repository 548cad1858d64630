"""Bad input from outside (issue 26): a config, an override, a data path or a run
directory that is wrong is one line naming the field, file or fix, a non-zero exit and
nothing written; never a traceback, a hang or a run that crashes later."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import govtrain.audit.log as audit_log
from govtrain.audit.errors import LogStateError
from govtrain.audit.keys import generate_signer
from govtrain.audit.log import AuditLog
from govtrain.cli import main
from govtrain.governance.config import MAX_DEPTH
from govtrain.governance.errors import ConfigError
from govtrain.pipeline.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "smoke.yaml"


def run_cli(tmp_path: Path, *args: str):
    """`govtrain run ARGS --run-dir TMP/run`: the result, and the run directory."""
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", *args, "--run-dir", str(run_dir), "--no-progress"])
    return result, run_dir


def one_error_line(result) -> str:
    """The single `error: ...` line a refused command prints; no traceback, exit 1."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0].removeprefix("error: ")


def load_error(text: str, tmp_path: Path, overrides: tuple[str, ...] = ()) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides)
    assert "\n" not in str(err.value)
    return str(err.value)


# -- 1. depth and size --------------------------------------------------------------------


@pytest.mark.torch
def test_a_config_nested_5000_deep_is_one_line_and_writes_nothing(tmp_path):
    config = tmp_path / "deep.yaml"
    config.write_text("name: x\nseed: " + "[" * 5000 + "]" * 5000 + "\n")
    result, run_dir = run_cli(tmp_path, str(config))
    assert one_error_line(result) == f"{config}: nested deeper than {MAX_DEPTH} levels (line 2)"
    assert not run_dir.exists()


def _chain(n: int) -> str:
    """n anchors, each a list holding the one before: shallow as text, n deep as data."""
    return "name: x\nl0: &a0 [x]\n" + "".join(f"l{i}: &a{i} [*a{i - 1}]\n" for i in range(1, n))


def _laughs(levels: int) -> str:
    """Ten aliases of the level below per level: 10**levels values once expanded."""
    text = "name: x\nl0: &a0 [" + ", ".join(["lol"] * 10) + "]\n"
    for i in range(1, levels):
        text += f"l{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
    return text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_chain(5000), f"nested deeper than {MAX_DEPTH} levels"),
        ("name: x\nseed: &a [*a]\n", f"nested deeper than {MAX_DEPTH} levels"),  # a cycle
        (_laughs(9), "more than 100,000 values (aliases expanded)"),
        ("name: x\nseed: " + "{a: " * 40 + "1" + "}" * 40 + "\n", "levels (line 2)"),
    ],
    ids=["alias-chain", "alias-cycle", "billion-laughs", "flow-mappings"],
)
def test_data_too_deep_or_too_big_once_loaded_is_refused(tmp_path, text, needle):
    assert needle in load_error(text, tmp_path)


@pytest.mark.parametrize(
    "override",
    ["seed=" + "[" * 5000 + "]" * 5000, "seed=" + "{a: " * 5000, "governance" + ".a" * 5000 + "=1"],
    ids=["flow-list", "unclosed-flow-map", "dotted-path"],
)
def test_an_override_nested_too_deep_is_refused(override):
    with pytest.raises(ConfigError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_config(SMOKE, [override])


def test_a_deep_mapping_from_elsewhere_is_refused_before_validation():
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = node = {}
    with pytest.raises(ConfigError, match=f"run_start: nested deeper than {MAX_DEPTH} levels"):
        parse_config({"name": "x", "governance": deep}, "run_start")


def test_the_shipped_configs_are_well_within_the_bounds():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


# -- 2. integers out of range ----------------------------------------------------------------


@pytest.mark.torch
def test_a_5000_digit_seed_override_is_one_line_naming_seed(tmp_path):
    result, run_dir = run_cli(tmp_path, str(SMOKE), "seed=" + "9" * 5000)
    assert one_error_line(result) == "override seed: an integer of 5000 characters is out of range"
    assert not run_dir.exists()


@pytest.mark.parametrize("digits", ["9" * 5000, "0x" + "f" * 5000])
def test_a_5000_digit_integer_in_a_file_is_refused_by_line(tmp_path, digits):
    error = load_error(f"name: x\nseed: {digits}\n", tmp_path)
    assert error.endswith(f"(line 2): an integer of {len(digits)} characters is out of range")


def test_the_seed_fits_every_seed_torch_is_given(small_raw):
    """Seeds derived as seed x 1_000_003 + step must stay below 2**64 (torch's limit)."""
    assert parse_config({**small_raw, "seed": 2**32 - 1}).seed == 2**32 - 1
    with pytest.raises(
        ConfigError, match=r"seed: Input should be less than or equal to 4294967295"
    ):
        parse_config({**small_raw, "seed": 2**32})


# -- 4. what a path is -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "directory", "/dev/zero"])
def test_a_config_that_is_not_a_regular_file_is_named_and_never_opened(tmp_path, kind):
    path = tmp_path / "config"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block: the test would hang
        what = "a FIFO"
    elif kind == "directory":
        path.mkdir()
        what = "a directory"
    else:
        path = Path(kind)
        what = "a character device"
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"config: {path} is {what}, not a regular file"


def test_an_oversized_config_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\n" + "# padding\n" * 120_000)
    with pytest.raises(ConfigError, match=r"config: .*huge\.yaml is over the 1,048,576 bytes"):
        load_config(path)


# -- 5. a group pattern that matches nothing ---------------------------------------------------


@pytest.mark.torch
def test_a_group_pattern_matching_no_parameter_is_refused(tmp_path):
    raw = yaml.safe_load(SMOKE.read_text())
    raw["governance"]["groups"][2]["patterns"].append("transformer.h.9.*")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    result, run_dir = run_cli(tmp_path, str(tmp_path / "run.yaml"))
    assert one_error_line(result) == (
        "governance.groups.top: pattern 'transformer.h.9.*' matches no trainable parameter"
    )
    assert not run_dir.exists()


# -- 6. the loser of a start race -------------------------------------------------------------


def test_the_loser_of_a_start_race_is_told_to_resume_and_leaves_nothing(tmp_path, monkeypatch):
    """Another run fills the directory between create's check and its rename."""
    run_dir = tmp_path / "run"
    real_fsync = audit_log.fsync_path

    def winner_arrives(path: Path) -> None:
        if path.name.endswith(".creating"):
            run_dir.mkdir(exist_ok=True)
            (run_dir / "audit.jsonl").write_text("the winner's\n")
        real_fsync(path)

    monkeypatch.setattr(audit_log, "fsync_path", winner_arrives)
    with pytest.raises(LogStateError) as err:
        AuditLog.create(run_dir, signer=generate_signer(), run_start={})
    assert str(err.value) == (
        f"{run_dir} is not empty (another run started there?); pass --resume to continue it"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staged copy left
    assert [p.name for p in run_dir.iterdir()] == ["audit.jsonl"]
