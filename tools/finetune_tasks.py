"""Labelled classification tasks built offline from any plain text (the fine-tuning benchmark).

* `nextline`: is line B the line that follows line A? Positives are consecutive
  lines of one paragraph; negatives pair A with a random line of the same
  split. Works on any text with line breaks.
* `order`: is this line as written, or its words shuffled? (a corruption
  detection task in the manner of ELECTRA's replaced-token detection: the
  label needs word order, which a bag of words cannot see). Each line of five
  words or more appears once, as written or shuffled (never as written),
  half each. Works on any text.
* `speaker`: who speaks this speech? A speech is a paragraph whose first line
  is `NAME:` (the play format of tinyshakespeare); the classes are the
  `classes` most frequent speakers, the text is the speech.

Splits are disjoint by construction: `nextline` and `order` assign whole chunks of 200
consecutive lines to train / validation / test by the SHA-256 of the chunk
(so no line is in two splits, and a negative is drawn from its own split)
and use only lines that occur once in the corpus ("Good night." could land
in two splits); `speaker` drops duplicate speeches and assigns each by the
SHA-256 of its text. About 80 / 10 / 10. The task depends on the corpus and
`data_seed` only, never on a training seed, so every arm and seed sees the
same data.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

SPLITS = ("train", "val", "test")
CHUNK_LINES = 200
_SPEAKER = re.compile(r"([A-Z][A-Za-z' .,-]*):")


@dataclass(frozen=True)
class Example:
    text: str
    pair: str | None
    label: int


@dataclass(frozen=True)
class Task:
    name: str
    classes: tuple[str, ...]
    train: list[Example]
    val: list[Example]
    test: list[Example]


def _split_of(text: str) -> str:
    bucket = hashlib.sha256(text.encode()).digest()[0] % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _paragraphs(corpus: str) -> list[list[str]]:
    return [
        [line.strip() for line in p.splitlines() if line.strip()]
        for p in re.split(r"\n\s*\n", corpus)
        if p.strip()
    ]


def nextline_task(corpus: str, data_seed: int = 0) -> Task:
    lines: list[tuple[int, str]] = []  # (paragraph number, line), speaker headers left out
    for n, para in enumerate(_paragraphs(corpus)):
        lines += [(n, line) for line in para if not _SPEAKER.fullmatch(line)]
    once = Counter(line for _, line in lines)
    # a line that occurs twice ("Good night.") could land in two splits: leave it out
    lines = [(n, line) for n, line in lines if once[line] == 1]
    by_split: dict[str, list[list[tuple[int, str]]]] = {s: [] for s in SPLITS}
    for start in range(0, len(lines), CHUNK_LINES):
        chunk = lines[start : start + CHUNK_LINES]
        by_split[_split_of("\n".join(t for _, t in chunk))].append(chunk)
    rng = random.Random(data_seed)
    out: dict[str, list[Example]] = {}
    for split, chunks in by_split.items():
        pool = [t for chunk in chunks for _, t in chunk]
        examples = []
        for chunk in chunks:
            for (pa, a), (pb, b) in pairwise(chunk):
                if pa != pb:
                    continue
                if rng.random() < 0.5:
                    examples.append(Example(a, b, 1))
                else:
                    other = rng.choice(pool)
                    while other == b:
                        other = rng.choice(pool)
                    examples.append(Example(a, other, 0))
        rng.shuffle(examples)
        out[split] = examples
    if not all(out.values()):
        raise ValueError("nextline: the corpus is too short for three splits")
    return Task("nextline", ("random", "next"), out["train"], out["val"], out["test"])


def order_task(corpus: str, data_seed: int = 0) -> Task:
    rng = random.Random(data_seed)
    lines = [line for para in _paragraphs(corpus) for line in para if not _SPEAKER.fullmatch(line)]
    once = Counter(lines)
    lines = [line for line in lines if once[line] == 1]
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for start in range(0, len(lines), CHUNK_LINES):
        chunk = lines[start : start + CHUNK_LINES]
        split = _split_of("\n".join(chunk))
        for line in chunk:
            words = line.split()
            if len(words) < 5 or len(set(words)) < 2:  # no other order exists: no example
                continue
            if rng.random() < 0.5:
                out[split].append(Example(line, None, 1))
                continue
            shuffled = words[:]
            while shuffled == words:
                rng.shuffle(shuffled)
            out[split].append(Example(" ".join(shuffled), None, 0))
    for examples in out.values():
        rng.shuffle(examples)
    if not all(out.values()):
        raise ValueError("order: the corpus is too short for three splits")
    return Task("order", ("shuffled", "as written"), out["train"], out["val"], out["test"])


def speaker_task(corpus: str, classes: int = 8, data_seed: int = 0) -> Task:
    speeches: dict[str, str] = {}  # text -> speaker, first occurrence (duplicates dropped)
    seen: Counter = Counter()
    for para in _paragraphs(corpus):
        m = _SPEAKER.fullmatch(para[0])
        if m and len(para) > 1:
            text = " ".join(para[1:])
            seen[text] += 1
            speeches.setdefault(text, m.group(1))
    counts = Counter(s for t, s in speeches.items() if seen[t] == 1)
    top = tuple(s for s, _ in counts.most_common(classes))
    if len(top) < 2:
        raise ValueError("speaker: fewer than two speakers (paragraphs starting 'NAME:')")
    label = {s: i for i, s in enumerate(top)}
    out: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for text, who in speeches.items():
        if seen[text] == 1 and who in label:
            out[_split_of(text)].append(Example(text, None, label[who]))
    rng = random.Random(data_seed)
    for examples in out.values():
        rng.shuffle(examples)
    return Task("speaker", top, out["train"], out["val"], out["test"])


def build_task(kind: str, corpus: str, classes: int = 8, data_seed: int = 0) -> Task:
    if kind == "nextline":
        return nextline_task(corpus, data_seed)
    if kind == "order":
        return order_task(corpus, data_seed)
    if kind == "speaker":
        return speaker_task(corpus, classes, data_seed)
    raise ValueError(f"unknown task {kind!r} (nextline | order | speaker)")
