"""Benchmark corpora of different kinds, built offline from text already on the machine.

Tiny Shakespeare is one kind of text (verse drama, ASCII, 1.1 MB); a training benchmark
that claims more than "works on Shakespeare" needs others. They are made here, never
downloaded, from text that ships with Python itself (so a fresh clone on a bare
python:3.11 machine has them) or, optionally, with Debian's base system:

    shakespeare  verse drama       ../shared/data/tinyshakespeare.txt, used as it is
    pydocs       technical prose   pydoc_data.topics, then the stdlib's docstrings
    pycode       source code       the stdlib's public .py files, in sorted path order
    licenses     legal text        /usr/share/common-licenses (Debian base-files; optional)

Each built corpus is a pure function of its source: files in sorted path order, newlines
normalised to \\n, control characters other than tab and newline dropped, and the UTF-8
cut at the last line end within CAP_BYTES (comparable to Tiny Shakespeare, so a fixed
step budget sees a similar number of epochs on each). Non-ASCII text is kept: the
project's text loader (pipeline/data.py `text_corpus`) trains a byte-level BPE, which
takes any UTF-8, and transliterating would rewrite code and prose; the CLI reports how
much there is. The stdlib corpora follow the Python they are built with (3.11.x here),
so their digests are stable per interpreter, not across versions: record the digest.

    python -m tools.corpora              # name, size, lines, non-ASCII, SHA-256 of each
    python -m tools.corpora NAME         # materialise NAME and print its path
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import os
import re
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
LICENSES_DIR = Path("/usr/share/common-licenses")
CAP_BYTES = 1_200_000  # Tiny Shakespeare is 1,115,394 bytes

CORPORA: dict[str, str] = {
    "shakespeare": "verse drama: Tiny Shakespeare, the shared file the bench configs name",
    "pydocs": "English technical prose: Python's pydoc topics, then stdlib docstrings",
    "pycode": "source code: the Python standard library's .py files, sorted by path",
    "licenses": "legal text: Debian's /usr/share/common-licenses (optional, OS-provided)",
}


class CorpusUnavailable(RuntimeError):
    """A corpus's source is not on this machine; the message is one line naming it."""


# C0/C1 controls but tab and newline, and the separators str.splitlines() would split on:
# dropped so that the loader's lines are the file's lines.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
# test suites, GUI demos, third-party packages and build configuration are not "the
# standard library's code" and differ between a python.org build and Debian's packages
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo"}
_MIN_DOC_WORDS = 4  # "Return self." and the like add repetition, not prose


def normalise(text: str) -> str:
    """`text` with \\n newlines, no control characters but tab, ending in a newline, cut at
    the last line end within CAP_BYTES of UTF-8 (a line end, so no character is split)."""
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    data = text.encode("utf-8")
    if len(data) > CAP_BYTES:
        data = data[: data.rindex(b"\n", 0, CAP_BYTES) + 1]
    elif data and not data.endswith(b"\n"):
        data += b"\n"
    return data.decode("utf-8")


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_sources(directory: Path | None = None) -> Iterator[tuple[str, Path]]:
    """The stdlib's public .py files as (relative path, path), in sorted path order, lazily
    (a corpus stops reading at its cap). Private modules (leading underscore) are left
    out: among them are build-specific ones such as _sysconfigdata_*."""
    root = _stdlib_root()
    for entry in sorted((directory or root).iterdir(), key=lambda p: p.name):
        name = entry.name
        if name.startswith("_") and name not in ("__init__.py", "__main__.py"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if name not in _SKIP_DIRS and not name.startswith("config-"):
                yield from _stdlib_sources(entry)
        elif name.endswith(".py") and entry.is_file():
            yield entry.relative_to(root).as_posix(), entry


def _docstrings(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, str | None]]:
    """(qualified name, docstring) of the classes and functions in `body`, in source order."""
    for node in body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}.{node.name}"
            yield name, ast.get_docstring(node)
            yield from _docstrings(node.body, name)


def _build_pydocs() -> str:
    """The interactive help's topics (the language reference, as prose), then the stdlib's
    docstrings headed by their qualified names, until the cap: the topics alone are 0.47 MB."""
    try:
        topics: dict[str, str] = importlib.import_module("pydoc_data.topics").topics
    except ImportError:
        raise CorpusUnavailable(
            "pydocs: this Python has no pydoc_data.topics (the stdlib's help text)"
        ) from None
    parts = [topics[key].strip("\n") + "\n\n" for key in sorted(topics)]
    size = sum(len(p) for p in parts)
    seen: set[str] = set()
    for rel, path in _stdlib_sources():
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes in old modules' strings
                tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for name, doc in [(module, ast.get_docstring(tree)), *_docstrings(tree.body, module)]:
            if doc and len(doc.split()) >= _MIN_DOC_WORDS and doc not in seen:
                seen.add(doc)
                parts.append(f"{name}\n{doc}\n\n")
                size += len(parts[-1])
        if size > CAP_BYTES:
            break
    return "".join(parts)


def _build_pycode() -> str:
    """The stdlib's public modules concatenated, each after a one-line header naming it."""
    parts: list[str] = []
    size = 0
    for rel, path in _stdlib_sources():
        try:
            source = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue  # none in 3.11's public modules; a coding cookie would need tokenize
        parts.append(f"# ==== {rel} ====\n{source.rstrip()}\n\n")
        size += len(parts[-1])
        if size > CAP_BYTES:
            break
    if not parts:
        raise CorpusUnavailable(f"pycode: no standard library .py files under {_stdlib_root()}")
    return "".join(parts)


def _build_licenses() -> str:
    """Each licence text in /usr/share/common-licenses after a header line; the links there
    (GPL -> GPL-3 and so on) are skipped, so no text appears twice."""
    if not LICENSES_DIR.is_dir():
        raise CorpusUnavailable(
            f"licenses: {LICENSES_DIR} not found (Debian's base-files package provides it)"
        )
    files = [p for p in sorted(LICENSES_DIR.iterdir()) if p.is_file() and not p.is_symlink()]
    if not files:
        raise CorpusUnavailable(f"licenses: {LICENSES_DIR} holds no licence texts")
    return "".join(
        f"==== {p.name} ====\n{p.read_text('utf-8', errors='replace').strip()}\n\n" for p in files
    )


_BUILDERS: dict[str, Callable[[], str]] = {
    "pydocs": _build_pydocs,
    "pycode": _build_pycode,
    "licenses": _build_licenses,
}


def _check_name(name: str) -> None:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")


def corpus_bytes(name: str) -> bytes:
    """Corpus `name` as UTF-8, built afresh (Tiny Shakespeare: the shared file's bytes)."""
    _check_name(name)
    if name == "shakespeare":
        if not SHAKESPEARE.is_file():
            raise CorpusUnavailable(
                f"shakespeare: {SHAKESPEARE} not found (shared/ lives beside the repository)"
            )
        return SHAKESPEARE.read_bytes()
    return normalise(_BUILDERS[name]()).encode("utf-8")


def corpus_digest(name: str) -> str:
    """SHA-256 of corpus `name`'s bytes: what a benchmark result should record."""
    return hashlib.sha256(corpus_bytes(name)).hexdigest()


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "govtrain-corpora"


def corpus_path(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Corpus `name` as a UTF-8 text file. Tiny Shakespeare is its shared file itself, so
    runs hash the same file as the bench configs. The others are built (well under a
    second) and written to `cache_dir` (default: default_cache_dir()) with their SHA-256
    in a sidecar; a file whose bytes and sidecar both match the fresh build is reused
    untouched, anything else (stale, edited, half written) is replaced. Each write is a
    temporary file renamed over the old one, so a concurrent reader sees a whole file."""
    if name == "shakespeare" and SHAKESPEARE.is_file():
        return SHAKESPEARE.resolve()  # as the config loader resolves the path it names
    data = corpus_bytes(name)
    digest = hashlib.sha256(data).hexdigest()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{name}.txt"
    sidecar = cache / f"{name}.txt.sha256"
    if _recorded_digest(sidecar) == digest and _file_digest(path) == digest:
        return path
    _write_atomic(path, data)
    _write_atomic(sidecar, f"{digest}  {path.name}\n".encode())  # `sha256sum -c` reads it
    return path


def _recorded_digest(sidecar: Path) -> str | None:
    try:
        return sidecar.read_text("ascii").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        return None


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def describe(name: str) -> dict[str, object]:
    """Size, line count, non-ASCII characters, digest and build time of corpus `name`."""
    start = time.perf_counter()
    data = corpus_bytes(name)
    seconds = time.perf_counter() - start
    text = data.decode("utf-8")
    return {
        "name": name,
        "bytes": len(data),
        "lines": text.count("\n"),
        "non_ascii": sum(1 for c in text if ord(c) > 127),
        "sha256": hashlib.sha256(data).hexdigest(),
        "build_s": round(seconds, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.corpora", description="Benchmark corpora built offline."
    )
    parser.add_argument("name", nargs="?", help="materialise this corpus and print its path")
    parser.add_argument("--cache-dir", type=Path, default=None, help="where built corpora go")
    args = parser.parse_args(argv)
    if args.name is not None:
        try:
            print(corpus_path(args.name, args.cache_dir))
        except (ValueError, CorpusUnavailable) as exc:
            print(f"corpora: {exc}", file=sys.stderr)
            return 1 if isinstance(exc, CorpusUnavailable) else 2
        return 0
    print(f"{'name':<12} {'bytes':>9} {'lines':>7} {'non-ascii':>9} {'build_s':>7}  sha256")
    for name in CORPORA:
        try:
            d = describe(name)
        except CorpusUnavailable as exc:
            print(f"{name:<12} unavailable: {exc}")
            continue
        print(
            f"{name:<12} {d['bytes']:>9} {d['lines']:>7} {d['non_ascii']:>9} "
            f"{d['build_s']:>7}  {d['sha256']}"
        )
    print(f"(Python {sys.version.split()[0]}; stdlib corpora follow the interpreter's version)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
