"""tools/corpora.py: the benchmark's corpora build offline, identically every time, within
the cap, and load through the project's text loader with the bench's data settings.

Corpora whose source this machine lacks (Tiny Shakespeare's shared/ folder, Debian's
common-licenses) are skipped with the builder's one-line reason. The loader is fed
the first ~100 KB of each corpus to stay fast; the whole corpora load in a slow test.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml

from tools import corpora
from tools.corpora import (
    CAP_BYTES,
    CORPORA,
    CorpusUnavailable,
    corpus_bytes,
    corpus_digest,
    corpus_path,
)

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "configs" / "bench_shakespeare.yaml"
HEAD_BYTES = 100_000
NAMES = list(CORPORA)


@pytest.fixture(scope="module")
def built() -> dict[str, bytes | str]:
    """Each corpus built once: its bytes, or the reason it is unavailable here."""
    out: dict[str, bytes | str] = {}
    for name in NAMES:
        try:
            out[name] = corpus_bytes(name)
        except CorpusUnavailable as exc:
            out[name] = str(exc)
    return out


def _bytes(built: dict[str, bytes | str], name: str) -> bytes:
    data = built[name]
    if isinstance(data, str):
        pytest.skip(data)
    return data


def _bench_data(path: Path):
    from govtrain.pipeline.config import DataConfig

    data = yaml.safe_load(BENCH.read_text())["data"]
    assert (data["seq_len"], data["vocab_size"]) == (64, 512)
    return DataConfig(**{**data, "path": path})


def test_the_required_kinds_are_offered():
    assert {"shakespeare", "pydocs", "pycode"} <= set(CORPORA)
    assert all(CORPORA.values())


@pytest.mark.parametrize("name", NAMES)
def test_a_corpus_is_normalised_utf8_within_the_cap(built, name):
    data = _bytes(built, name)
    assert 100_000 < len(data) <= CAP_BYTES
    text = data.decode("utf-8")
    assert text.endswith("\n") and "\r" not in text
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text)
    assert text.splitlines() == text.split("\n")[:-1]  # the loader's lines are the file's


@pytest.mark.parametrize("name", NAMES)
def test_a_corpus_is_non_trivial(built, name):
    lines = [line for line in _bytes(built, name).decode("utf-8").split("\n") if line.strip()]
    distinct = len(set(lines))
    assert distinct >= 2000 and distinct >= len(lines) // 2


@pytest.mark.parametrize("name", NAMES)
def test_two_builds_are_identical(built, name):
    data = _bytes(built, name)
    assert corpus_digest(name) == hashlib.sha256(data).hexdigest()  # a second, fresh build


def test_the_kinds_differ(built):
    """Different kinds of text, not one text under several names: few lines are shared."""
    sets = {
        name: {line for line in data.decode("utf-8").split("\n") if len(line.strip()) > 20}
        for name, data in built.items()
        if isinstance(data, bytes)
    }
    for a in sets:
        for b in sets:
            if a < b:
                assert len(sets[a] & sets[b]) < 0.05 * min(len(sets[a]), len(sets[b])), (a, b)


@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_a_corpus_head_loads_with_the_bench_data_settings(built, name, tmp_path):
    from govtrain.pipeline.data import text_corpus

    head = _bytes(built, name)[:HEAD_BYTES]
    path = tmp_path / f"{name}.txt"
    path.write_bytes(head[: head.rindex(b"\n") + 1])
    corpus = text_corpus(_bench_data(path))
    assert corpus.train.shape[0] > 8 * corpus.eval.shape[0] > 0
    assert corpus.train.shape[1] == corpus.eval.shape[1] == 64
    assert 256 < corpus.vocab_size <= 512
    assert int(corpus.train.max()) < corpus.vocab_size


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("name", NAMES)
def test_a_whole_corpus_loads_with_the_bench_data_settings(built, name, tmp_path):
    from govtrain.pipeline.data import text_corpus

    _bytes(built, name)
    path = corpus_path(name, tmp_path)
    corpus = text_corpus(_bench_data(path))
    assert corpus.train.shape[0] > 8 * corpus.eval.shape[0] > 0
    assert corpus.files == (path,)


def test_shakespeare_is_the_file_the_bench_config_names(built):
    _bytes(built, "shakespeare")
    named = (BENCH.parent / yaml.safe_load(BENCH.read_text())["data"]["path"]).resolve()
    assert corpus_path("shakespeare") == named


def test_corpus_path_reuses_a_matching_file_and_rebuilds_anything_else(built, tmp_path):
    data = _bytes(built, "pycode")
    digest = hashlib.sha256(data).hexdigest()
    path = corpus_path("pycode", tmp_path)
    sidecar = tmp_path / "pycode.txt.sha256"
    assert path == tmp_path / "pycode.txt" and path.read_bytes() == data
    assert sidecar.read_text() == f"{digest}  pycode.txt\n"
    first = path.stat()

    assert corpus_path("pycode", tmp_path) == path
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # reused

    path.write_bytes(data[:-100])  # truncated: the sidecar no longer matches the file
    assert corpus_path("pycode", tmp_path).read_bytes() == data
    sidecar.write_text("0" * 64 + "  pycode.txt\n")  # stale sidecar: rebuilt too
    assert corpus_path("pycode", tmp_path).read_bytes() == data
    assert sidecar.read_text() == f"{digest}  pycode.txt\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pycode.txt", "pycode.txt.sha256"]


def test_unknown_names_are_refused_with_the_known_ones(tmp_path, capsys):
    for call in (corpus_bytes, corpus_digest, lambda n: corpus_path(n, tmp_path)):
        with pytest.raises(ValueError, match="unknown corpus 'wikipedia'") as exc:
            call("wikipedia")
        assert all(name in str(exc.value) for name in NAMES)
    assert corpora.main(["wikipedia", "--cache-dir", str(tmp_path)]) == 2
    assert "known: " + ", ".join(NAMES) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_os_source_is_one_line_naming_it(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "common-licenses"
    monkeypatch.setattr(corpora, "LICENSES_DIR", missing)
    with pytest.raises(CorpusUnavailable) as exc:
        corpus_path("licenses", tmp_path)
    assert str(missing) in str(exc.value) and "\n" not in str(exc.value)
    assert corpora.main(["licenses", "--cache-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_cli_lists_every_corpus_and_prints_a_path(built, tmp_path, monkeypatch, capsys):
    # the listing's digests are the builds'; pydocs, the slow build, is not built a third time
    monkeypatch.setattr(corpora, "corpus_bytes", lambda n: _listed(built, n))
    assert corpora.main([]) == 0
    out = capsys.readouterr().out
    for name, data in built.items():
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        if isinstance(data, bytes):
            assert hashlib.sha256(data).hexdigest() in row and str(len(data)) in row
        else:
            assert "unavailable" in row
    monkeypatch.undo()
    assert corpora.main(["pycode", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'pycode.txt'}\n"


def _listed(built: dict[str, bytes | str], name: str) -> bytes:
    data = built[name]
    if isinstance(data, str):
        raise CorpusUnavailable(data)
    return data
