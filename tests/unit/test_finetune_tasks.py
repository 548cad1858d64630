"""The fine-tuning benchmark's tasks (tools/finetune_tasks.py): disjoint splits, both labels,
the same task whatever the training seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.finetune_tasks import build_task

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def text() -> str:
    if not CORPUS.is_file():
        pytest.skip(f"{CORPUS} not found")
    return CORPUS.read_text()


def lines_of(examples) -> set[str]:
    return {x for e in examples for x in (e.text, e.pair) if x is not None}


@pytest.mark.parametrize("kind", ["nextline", "order", "speaker"])
def test_splits_are_disjoint_and_carry_every_label(text: str, kind: str) -> None:
    task = build_task(kind, text)
    splits = (task.train, task.val, task.test)
    assert all(len(s) > 50 for s in splits)
    texts = [lines_of(s) for s in splits]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    for split in splits:
        assert {e.label for e in split} == set(range(len(task.classes)))


def test_a_repeated_line_is_in_no_split(text: str) -> None:
    twice = "Welcome to Rome, renowned Coriolanus!"  # twice in tinyshakespeare
    assert text.count(twice) == 2
    for kind in ("nextline", "order"):
        task = build_task(kind, text)
        assert all(twice not in lines_of(s) for s in (task.train, task.val, task.test))


def test_order_negatives_are_shuffled_lines_and_positives_as_written(text: str) -> None:
    task = build_task("order", text)
    written = {line.strip() for line in text.splitlines()}
    assert all((e.text in written) == (e.label == 1) for e in task.val[:500])


def test_the_task_depends_on_the_data_seed_only(text: str) -> None:
    assert build_task("nextline", text) == build_task("nextline", text)
    assert build_task("nextline", text, data_seed=1) != build_task("nextline", text)


def test_a_corpus_without_speakers_is_refused() -> None:
    with pytest.raises(ValueError, match="fewer than two speakers"):
        build_task("speaker", "no speakers here\n\njust lines\n")


def test_a_line_whose_words_are_all_the_same_is_skipped_not_a_hang(text: str) -> None:
    """Such a line has no other order: it can be no negative, and once reshuffling it
    until it differed never ended."""
    lines = [f"* * * * * * * * {n}" if n % 2 else "* * * * * * * *" for n in range(40)]
    task = build_task("order", text + "\n\n" + "\n".join(lines), 0)
    examples = task.train + task.val + task.test
    assert not any(set(e.text.split()) == {"*"} for e in examples)
    assert sum(e.text.startswith("*") or "* *" in e.text for e in examples) > 0
