"""Config schema: every invalid value is rejected naming the field and the value."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from govtrain.governance.errors import ConfigError
from govtrain.pipeline.config import load_config, parse_config


def _mutate(raw: dict, path: str, value: object) -> dict:
    data = copy.deepcopy(raw)
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return data


_DELETE = object()
ROOT = Path(__file__).resolve().parents[2]

# (dotted path to change, new value, text the error must contain)
INVALID = [
    ("governance.total_steps", 0, "governance.total_steps"),
    ("governance.total_steps", "many", "governance.total_steps"),
    ("governance.groups", [], "governance.groups"),
    ("governance.groups.0.name", "bad name", "governance.groups.0.name"),
    ("governance.groups.0.patterns", [], "governance.groups.0.patterns"),
    ("governance.groups.0.patterns", ["  "], "governance.groups.0.patterns"),
    ("governance.groups.0.level", -1, "governance.groups.0.level"),
    ("governance.groups.1.name", "embed", "duplicate group names ['embed']"),
    ("governance.groups.2.level", 2, "every level 0..1 needs a group"),
    ("governance.governor.signal_threshold", 0, "governance.governor.signal_threshold"),
    ("governance.governor.signal_threshold", float("nan"), "governance.governor.signal_threshold"),
    ("governance.governor.window", 0, "governance.governor.window"),
    ("governance.governor.patience", 0, "governance.governor.patience"),
    ("governance.governor.wake_threshold", -0.1, "governance.governor.wake_threshold"),
    ("governance.governor.max_awakenings", -1, "governance.governor.max_awakenings"),
    ("governance.governor.multipliers", {"ACTIVE": 1, "COOLING": 1}, "AWAKENED"),
    (
        "governance.governor.multipliers",
        {"ACTIVE": 1, "COOLING": 1, "AWAKENED": 1, "DORMANT": 1},
        "governance.governor.multipliers",
    ),
    ("governance.governor.multipliers.COOLING", -1, "COOLING multiplier must be finite"),
    ("governance.governor.multipliers.SLEEPY", 1, "governance.governor.multipliers.SLEEPY"),
    ("governance.hierarchy.levels", 0, "governance.hierarchy.levels"),
    ("governance.hierarchy.levels", 3, "hierarchy.levels is 3"),
    ("governance.hierarchy.emergency_fraction", 0, "governance.hierarchy.emergency_fraction"),
    ("governance.hierarchy.emergency_fraction", 1.5, "governance.hierarchy.emergency_fraction"),
    ("governance.budget.master", 0, "governance.budget.master"),
    ("governance.budget.floor", -1, "governance.budget.floor"),
    ("governance.budget.floor", 5, "floor (5) exceeds ceiling (4)"),
    ("governance.budget.ceiling", 9, "budget.ceiling (9) exceeds router.batch_size (4)"),
    ("governance.router.batch_size", 0, "governance.router.batch_size"),
    ("governance.router.warmup_steps", -2, "governance.router.warmup_steps"),
    ("governance.router.warmup_steps", 8, "router.warmup_steps (8) must be below total_steps"),
    ("governance.router.scorer", "oracle", "governance.router.scorer"),
    ("governance.router.warmup", 1, "governance.router.warmup"),
    ("governance.budget", _DELETE, "governance.budget: Field required"),
    ("seed", -3, "seed"),
    ("name", "", "name"),
]


@pytest.mark.parametrize(
    ("path", "value", "needle"), INVALID, ids=[f"{p}={v!r}" for p, v, _ in INVALID]
)
def test_invalid_config_names_field(small_raw: dict, path: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_mutate(small_raw, path, value))
    assert needle in str(err.value)


def test_invalid_value_is_shown(small_raw: dict) -> None:
    with pytest.raises(ConfigError, match=r"governance\.budget\.master: .*\(got -7\)"):
        parse_config(_mutate(small_raw, "governance.budget.master", -7))


def test_valid_config_loads(small_raw: dict) -> None:
    cfg = parse_config(small_raw).governance
    assert [g.name for g in cfg.groups] == ["embed", "body", "head"]
    assert cfg.deadline(1) == 6 and cfg.horizon == 6


def test_deadlines_spread_over_levels(small_raw: dict) -> None:
    data = _mutate(small_raw, "governance.hierarchy.levels", 3)
    data = _mutate(data, "governance.groups.2.level", 2)
    data["governance"]["groups"].append({"name": "mid", "patterns": ["mid.*"], "level": 1})
    data = _mutate(data, "governance.total_steps", 100)
    data = _mutate(data, "governance.hierarchy.emergency_fraction", 0.8)
    cfg = parse_config(data).governance
    assert [cfg.deadline(k) for k in range(3)] == [0, 40, 80]


def test_yaml_errors_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("governance: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"config: no such file .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listy)


def test_every_shipped_config_is_valid() -> None:
    for path in sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "governance: {total_steps: 1}\ngovernance: {total_steps: 2}\n",
            "duplicate key 'governance'",
        ),
        ("name: a\nname: b\n", "(line 2): duplicate key 'name'"),
    ],
)
def test_duplicate_yaml_keys_are_refused(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "dup.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 9\)"):
        load_config(bad)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("governance.total_steps", True, "governance.total_steps: must be an integer (got True)"),
        ("seed", True, "seed: must be an integer (got True)"),
        ("governance.total_steps", 1e30, "governance.total_steps: must be an integer"),
        ("governance.total_steps", 10**16, "must be at most 9007199254740991"),
        ("governance.router.batch_size", 32.0, "governance.router.batch_size: must be an integer"),
        ("train.lr", True, "train.lr: must be a number (got True)"),
        ("data.seq_len", 10**9, "data.seq_len: Input should be less than or equal to 65536"),
        ("data.sequences", 10**8, "exceeds 2147483648 tokens"),
    ],
)
def test_numbers_are_taken_as_written(field: str, value, needle: str) -> None:
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    data = _mutate(raw, field, value)
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert needle in str(err.value), str(err.value)


# --------------------------------------------------------------------------- overrides

SMALL = Path(__file__).resolve().parents[2] / "configs" / "small.yaml"


def test_overrides_set_fields_at_any_depth(tmp_path: Path) -> None:
    cfg = load_config(
        SMALL,
        [
            "governance.governor.patience=3",
            "governance.groups.2.level=0",
            "governance.hierarchy.levels=1",
            "seed=7",
            "train.lr=1e-3",  # a section the file lacks is created; 1e-3 is a number
            "audit.fsync=always",
            "governance.groups.0.patterns=[embed.weight, 'embed.*']",
        ],
    )
    gov = cfg.governance
    assert gov.governor.patience == 3 and [g.level for g in gov.groups] == [0, 0, 0]
    assert cfg.seed == 7 and cfg.audit.fsync == "always"
    assert cfg.train is not None and cfg.train.lr == 0.001
    assert list(gov.groups[0].patterns) == ["embed.weight", "embed.*"]
    untouched = load_config(SMALL)
    assert untouched.governance.governor.patience == 2 and untouched.train is None


def test_override_values_are_read_as_yaml_1_2_not_1_1() -> None:
    cfg = load_config(SMALL, ["governance.total_steps=010", "name=no"])
    assert cfg.governance.total_steps == 10 and cfg.name == "no"  # not octal 8, not false
    assert load_config(SMALL, ['name="123"']).name == "123"  # quoted: a string


def test_an_overridden_data_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "work").mkdir()
    path = tmp_path / "configs" / "text.yaml"
    raw = yaml.safe_load(SMALL.read_text())
    raw["data"] = {"source": "text", "path": "corpus.txt", "seq_len": 8, "vocab_size": 64}
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "work")
    assert load_config(path).data.path == tmp_path / "configs" / "corpus.txt"
    assert load_config(path, ["data.path=other.txt"]).data.path == tmp_path / "work" / "other.txt"
    section = "data={source: text, path: c.txt, seq_len: 8, vocab_size: 64}"
    assert load_config(path, [section]).data.path == tmp_path / "work" / "c.txt"
    assert load_config(path, ["data.seq_len=4"]).data.path == tmp_path / "configs" / "corpus.txt"


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("governance.governor.patience=x", "governance.governor.patience: Input should be"),
        ("governance.governor.patience=2.5", "governance.governor.patience: must be an integer"),
        ("governance.governor.patience=true", "governance.governor.patience: must be an integer"),
        ("governance.governor.patiense=3", "governance.governor.patiense: Extra inputs"),
        ("governance.router=3", "governance.router: Input should be a valid dictionary"),
        ("governance.groups.5.level=1", "governance.groups is a list of 3, '5' is not an index"),
        ("governance.groups.x.level=1", "governance.groups is a list of 3, 'x' is not an index"),
        ("name.x=1", "override name.x: name is a value, not a section"),
        ("governance.total_steps", "override 'governance.total_steps': expected FIELD=VALUE"),
        ("governance..total_steps=3", "expected FIELD=VALUE"),
        ("governance.groups=[1", "override governance.groups: not a YAML value"),
        ("train.lr=-1", "train.lr: Input should be greater than 0"),
        ("governance.total_steps=1:30", "governance.total_steps: Input should be a valid integer"),
        ("name=../../escaped", "name: String should match pattern"),
        ("name=/tmp/abs", "name: String should match pattern"),
        ("train={lr: 1.0, trackers: [tensorboard, tensorboard]}", "each tracker once"),
        ('governance.groups.0.name="embed\n"', "governance.groups.0.name: must be an identifier"),
    ],
)
def test_a_bad_override_is_one_error_naming_the_field(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(SMALL, [override])
    assert needle in str(err.value) and "\n" not in str(err.value)
