"""Text data: configs/shakespeare.yaml and `pipeline.data.text_corpus` (a governed run on it:
tests/integration/test_text_data.py).

The corpus is Tiny Shakespeare from the shared/ folder beside the repository
(CI has it there); tests that need it skip when it is absent. They train the
byte-level BPE on the first ~50 KB only, to stay fast.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from govtrain.cli import main
from govtrain.governance.errors import ConfigError
from govtrain.pipeline import data as data_module
from govtrain.pipeline.config import DataConfig, load_config
from govtrain.pipeline.data import PIECE, text_corpus
from tests.conftest import ROOT

pytestmark = pytest.mark.torch

CONFIG = ROOT / "configs" / "shakespeare.yaml"
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
SLICE_BYTES = 50_000


@pytest.fixture(scope="module")
def shakespeare_slice(tmp_path_factory) -> Path:
    """The first ~50 KB of Tiny Shakespeare, cut at a line end."""
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not found (shared/ lives beside the repository)")
    head = SHAKESPEARE.read_bytes()[:SLICE_BYTES]
    path = tmp_path_factory.mktemp("text") / "shakespeare_head.txt"
    path.write_bytes(head[: head.rindex(b"\n") + 1])
    return path


def data_cfg(path: Path, **overrides) -> DataConfig:
    return DataConfig(
        **{"source": "text", "path": path, "seq_len": 64, "vocab_size": 512, **overrides}
    )


def test_the_shakespeare_config_points_at_the_shared_corpus():
    cfg = load_config(CONFIG).trainable()
    assert cfg.data is not None and cfg.data.source == "text"
    assert cfg.data.path == SHAKESPEARE.resolve()  # relative to the config file, not the cwd


def test_a_relative_data_path_resolves_against_the_config_file(tmp_path, shakespeare_slice):
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["path"] = "../corpus/text.txt"
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "text.txt").write_bytes(shakespeare_slice.read_bytes())
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "run.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "configs" / "run.yaml")
    assert cfg.data is not None and cfg.data.path == (tmp_path / "corpus" / "text.txt").resolve()


def test_text_corpus_splits_whole_sequences_of_in_vocabulary_ids(shakespeare_slice):
    corpus = text_corpus(data_cfg(shakespeare_slice, eval_fraction=0.1))
    n_train, n_eval = corpus.train.shape[0], corpus.eval.shape[0]
    assert corpus.train.shape[1] == corpus.eval.shape[1] == 64
    assert n_eval == int((n_train + n_eval) * 0.1) and n_train > 8 * n_eval
    # byte-level BPE: 256 byte tokens plus merges, up to the configured size, and it compresses
    assert 256 < corpus.vocab_size <= 512
    total = (n_train + n_eval) * 64
    assert shakespeare_slice.stat().st_size / 6 < total < shakespeare_slice.stat().st_size
    for ids in (corpus.train, corpus.eval):
        assert ids.dtype == torch.long and int(ids.min()) >= 0
        assert int(ids.max()) < corpus.vocab_size
    assert corpus.files == (shakespeare_slice,)


def test_text_corpus_and_its_batches_are_deterministic(shakespeare_slice):
    a = text_corpus(data_cfg(shakespeare_slice))
    b = text_corpus(data_cfg(shakespeare_slice))
    assert torch.equal(a.train, b.train) and torch.equal(a.eval, b.eval)
    assert a.vocab_size == b.vocab_size
    batches = [a.batch(step, 16, seed=7) for step in range(3)]
    assert all(torch.equal(x, b.batch(s, 16, seed=7)) for s, x in enumerate(batches))
    assert not torch.equal(batches[0], batches[1])
    assert not torch.equal(batches[0], a.batch(0, 16, seed=8))
    rows = {tuple(r) for r in a.train.tolist()}
    assert all(tuple(r) in rows for x in batches for r in x.tolist())


def test_missing_empty_and_too_short_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path: no such file"):
        text_corpus(data_cfg(tmp_path / "absent.txt"))
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"data\.path: .*empty\.txt is empty"):
        text_corpus(data_cfg(tmp_path / "empty.txt"))
    (tmp_path / "short.txt").write_text("To be, or not to be: that is the question.\n" * 3)
    with pytest.raises(ConfigError, match=r"data\.path: .*too little text"):
        text_corpus(data_cfg(tmp_path / "short.txt", seq_len=512))


def run_on(tmp_path: Path, data: Path):
    """`govtrain run` on the text config with `data.path` set to `data`."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["data"]["path"] = str(data)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    return CliRunner().invoke(
        main, ["run", str(tmp_path / "run.yaml"), "--run-dir", str(tmp_path / "run")]
    )


def test_a_missing_corpus_fails_the_cli_with_one_line_naming_data_path(tmp_path):
    result = run_on(tmp_path, tmp_path / "absent.txt")
    assert result.exit_code == 1
    assert "data.path: no such file" in result.output
    assert not (tmp_path / "run").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("content", "byte"),
    [("Ro\xe9meo and Juliet\n".encode("latin-1") * 200, 2), (bytes(range(256)) * 40, 128)],
    ids=["latin-1", "binary"],
)
def test_a_data_file_that_is_not_utf8_is_one_line_naming_data_path(tmp_path, content, byte):
    (tmp_path / "corpus.txt").write_bytes(content)
    result = run_on(tmp_path, tmp_path / "corpus.txt")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: data.path: {tmp_path / 'corpus.txt'} is not UTF-8 text (byte {byte})"
    ]
    assert not (tmp_path / "run").exists()


def test_one_long_line_without_spaces_is_text_and_quick(tmp_path):
    """BPE on one 100 KB pre-token took seconds (minutes at 300 KB) and merged it into a
    few tokens ("too little text"); lines are cut into pieces of at most PIECE."""
    (tmp_path / "line.txt").write_text("a" * 100_000)
    corpus = text_corpus(data_cfg(tmp_path / "line.txt", seq_len=16, vocab_size=300))
    assert corpus.train.shape[0] + corpus.eval.shape[0] >= 100_000 // PIECE // 16


def test_a_long_line_of_words_tokenises_as_if_whole(tmp_path):
    """Pieces are cut where the pre-tokenizer cuts (before a space that starts a word), so
    a long line of words gives exactly the tokens of the BPE over the line whole."""
    from tokenizers import ByteLevelBPETokenizer

    words = ["to", "be", "or", "not", "that", "is", "the", "question", "", "--", "1601"]
    line = " ".join(words[(i * 7) % len(words)] for i in range(40_000)) + "\n"
    (tmp_path / "line.txt").write_text(line)
    corpus = text_corpus(data_cfg(tmp_path / "line.txt", seq_len=16, vocab_size=300))
    whole = ByteLevelBPETokenizer()
    whole.train_from_iterator([line], vocab_size=300, min_frequency=2, show_progress=False)
    ids = whole.encode(line).ids
    assert torch.cat([corpus.eval, corpus.train]).flatten().tolist() == ids[: len(ids) // 16 * 16]


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: os.mkfifo(p), "a FIFO"),  # opening it would block: the test would hang
        (lambda p: p.mkdir(), "a directory"),
        (None, "a character device"),
    ],
    ids=["fifo", "directory", "dev-zero"],
)
def test_a_data_path_that_is_not_a_regular_file_says_what_it_is(tmp_path, make, what):
    path = Path("/dev/zero") if make is None else tmp_path / "data"
    if make is not None:
        make(path)
    with pytest.raises(ConfigError) as err:
        text_corpus(data_cfg(path))
    assert str(err.value) == f"data.path: {path} is {what}, not a regular file"


def test_a_symlink_to_a_text_file_is_read_and_one_to_a_fifo_is_not(tmp_path):
    (tmp_path / "text.txt").write_text("To be, or not to be: that is the question.\n" * 100)
    (tmp_path / "link.txt").symlink_to(tmp_path / "text.txt")
    assert text_corpus(data_cfg(tmp_path / "link.txt", seq_len=8)).files == (tmp_path / "link.txt",)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "fifo-link").symlink_to(tmp_path / "fifo")
    with pytest.raises(ConfigError, match=r"fifo-link is a FIFO, not a regular file"):
        text_corpus(data_cfg(tmp_path / "fifo-link"))


def test_a_data_file_over_the_bound_is_refused_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "MAX_TEXT_BYTES", 1000)
    (tmp_path / "big.txt").write_text("x " * 501)
    with pytest.raises(ConfigError, match=r"data\.path: .*big\.txt is over the 1,000 bytes"):
        text_corpus(data_cfg(tmp_path / "big.txt"))


def test_a_fifo_corpus_fails_the_cli_with_one_line_and_writes_nothing(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    result = run_on(tmp_path, tmp_path / "fifo")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: data.path: {tmp_path / 'fifo'} is a FIFO, not a regular file"
    ]
    assert not (tmp_path / "run").exists()
