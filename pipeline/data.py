"""Training data: a synthetic corpus made in code, or a local text file.

Batches are a pure function of (seed, step), so a resumed run needs nothing
but the step number to continue on exactly the same samples.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from govtrain.governance.config import read_regular_file
from govtrain.governance.errors import ConfigError
from govtrain.pipeline.config import DataConfig, DedupConfig

COPY_OFFSET = 4


@dataclass(frozen=True)
class Corpus:
    train: Tensor  # [N, seq_len] token ids
    eval: Tensor  # [M, seq_len]
    vocab_size: int
    files: tuple[Path, ...]  # input files, hashed into the run's provenance

    def batch(self, step: int, batch_size: int, seed: int) -> Tensor:
        """The training batch of `step`: epochs are seeded permutations of the train set."""
        n = self.train.shape[0]
        start = step * batch_size
        rows = []
        while len(rows) < batch_size:
            epoch, offset = divmod(start + len(rows), n)
            perm = torch.randperm(
                n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            )
            take = min(batch_size - len(rows), n - offset)
            rows.extend(perm[offset : offset + take].tolist())
        return self.train[rows]

    def eval_batches(self, batch_size: int, count: int) -> list[Tensor]:
        return [b for b in self.eval.split(batch_size)[:count] if b.shape[0] > 0]

    def rows(self, rows: list[int]) -> Tensor:
        """The training sequences `rows` (a tiered plan's batch)."""
        return self.train[rows]


DUP_OF_TRAIN = "near-duplicate of an earlier training sequence"
DUP_OF_EVAL = "near-duplicate of an eval sequence (would leak it into training)"
EXAMPLES = 10


def dedup(corpus: Corpus, cfg: DedupConfig) -> tuple[Corpus, dict[str, Any]]:
    """Remove training sequences that are near-duplicates (estimated Jaccard similarity of
    their token shingles at least `threshold`) of an eval sequence or of an earlier kept
    training sequence, with datasketch's MinHash LSH. Returns the kept corpus and the
    report run_start records: how many were removed, why, and which rows."""
    from datasketch import MinHash, MinHashLSH

    def shingles(seq: Tensor) -> list[bytes]:
        ids = seq.tolist()
        k = min(cfg.shingle, len(ids))
        return [",".join(map(str, ids[i : i + k])).encode() for i in range(len(ids) - k + 1)]

    evals = MinHash.bulk([shingles(s) for s in corpus.eval], num_perm=cfg.num_perm)
    trains = MinHash.bulk([shingles(s) for s in corpus.train], num_perm=cfg.num_perm)
    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    for j, m in enumerate(evals):
        lsh.insert(f"eval:{j}", m)
    kept: list[int] = []
    removed: list[int] = []
    why = {DUP_OF_TRAIN: 0, DUP_OF_EVAL: 0}
    examples = []
    for i, m in enumerate(trains):
        # LSH finds candidates; the MinHash estimate confirms them
        found = []
        for key in lsh.query(m):
            kind, j = str(key).split(":")  # the keys inserted above: "train:N", "eval:N"
            other = evals[int(j)] if kind == "eval" else trains[int(j)]
            if (similar := m.jaccard(other)) >= cfg.threshold:
                found.append((kind != "eval", int(j), similar, key))
        if not found:
            kept.append(i)
            lsh.insert(f"train:{i}", m)
            continue
        _, _, similar, key = min(found)  # an eval match first: the stronger reason
        removed.append(i)
        why[DUP_OF_EVAL if key.startswith("eval") else DUP_OF_TRAIN] += 1
        if len(examples) < EXAMPLES:
            examples.append({"row": i, "like": key, "jaccard": round(similar, 4)})
    if not kept:
        raise ConfigError(
            f"data.dedup.threshold: at {cfg.threshold} every one of the {len(trains)} training "
            "sequences is a near-duplicate of another or of an eval sequence; raise it"
        )
    report = {
        "method": "datasketch MinHash LSH over token shingles",
        "threshold": cfg.threshold,
        "shingle": cfg.shingle,
        "num_perm": cfg.num_perm,
        "examined": len(trains),
        "kept": len(kept),
        "removed": len(removed),
        "why": why,
        "removed_rows": removed,
        "examples": examples,
    }
    return replace(corpus, train=corpus.train[kept]), report


def load_corpus(cfg: DataConfig, seed: int) -> Corpus:
    if cfg.source == "synthetic":
        return synthetic_corpus(cfg, seed)
    return text_corpus(cfg)


def synthetic_corpus(cfg: DataConfig, seed: int) -> Corpus:
    """A bigram chain with a copy rule: two things of different difficulty to learn.

    Each token has four likely successors (probabilities .4/.3/.2/.1), which
    embeddings and lower layers pick up quickly; every fourth position instead
    repeats the token four places back, which takes attention to learn.
    """
    g = torch.Generator().manual_seed(seed)
    v, n, t_len = cfg.vocab_size, cfg.sequences, cfg.seq_len
    successors = torch.randint(0, v, (v, 4), generator=g)
    choice = torch.multinomial(
        torch.tensor([0.4, 0.3, 0.2, 0.1]), n * t_len, replacement=True, generator=g
    ).view(n, t_len)
    seqs = torch.empty(n, t_len, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, v, (n,), generator=g)
    for t in range(1, t_len):
        if t >= COPY_OFFSET and t % COPY_OFFSET == 0:
            seqs[:, t] = seqs[:, t - COPY_OFFSET]
        else:
            seqs[:, t] = successors[seqs[:, t - 1], choice[:, t]]
    return _split(seqs, cfg, v, ())


# The text file is read, tokenised and held whole in memory (its BPE encodings and ids
# take several times its size): a bigger corpus is refused, not streamed.
MAX_TEXT_BYTES = 64 * 2**20
# BPE's work on one pre-token (a run of letters, or of anything but spaces) grows faster
# than its length: a 300 KB line without spaces took minutes, and came out as a few
# tokens. Lines are cut into pieces of at most this many characters.
PIECE = 1024
_WORD_START = re.compile(r" (?=\S)")  # the byte-level pre-tokenizer cuts here too


def text_corpus(cfg: DataConfig) -> Corpus:
    """A local UTF-8 text file, one line per training text, tokenised by a byte-level BPE
    trained on it."""
    path = cfg.path
    assert path is not None  # guaranteed by DataConfig
    raw = read_regular_file(path, "data.path", MAX_TEXT_BYTES)
    if not raw:
        raise ConfigError(f"data.path: {path} is empty")
    from tokenizers import ByteLevelBPETokenizer

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"data.path: {path} is not UTF-8 text (byte {exc.start})") from None
    pieces = [piece for line in text.splitlines(keepends=True) for piece in _pieces(line)]
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(
        pieces, vocab_size=cfg.vocab_size, min_frequency=2, show_progress=False
    )
    ids = [i for enc in tokenizer.encode_batch(pieces) for i in enc.ids]
    usable = len(ids) // cfg.seq_len * cfg.seq_len
    if usable < 2 * cfg.seq_len:
        raise ConfigError(f"data.path: {path} has too little text for seq_len {cfg.seq_len}")
    seqs = torch.tensor(ids[:usable], dtype=torch.long).view(-1, cfg.seq_len)
    return _split(seqs, cfg, tokenizer.get_vocab_size(), (path,))


def _pieces(line: str) -> Iterator[str]:
    """`line` in pieces of at most PIECE characters, each cut before a word where one
    starts (where the pre-tokenizer cuts, so the tokens are the same), else anywhere."""
    start = 0
    while len(line) - start > PIECE:
        starts = [m.start() for m in _WORD_START.finditer(line, start + 1, start + PIECE + 2)]
        end = starts[-1] if starts else start + PIECE
        yield line[start:end]
        start = end
    yield line[start:]


def _split(seqs: Tensor, cfg: DataConfig, vocab: int, files: tuple[Path, ...]) -> Corpus:
    n_eval = max(1, int(seqs.shape[0] * cfg.eval_fraction))
    return Corpus(seqs[n_eval:], seqs[:n_eval], vocab, files)
