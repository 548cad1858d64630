"""Trust anchors: each run's latest signed checkpoint, kept outside its run directory.

Signatures stop someone who can write a run directory from changing what a note
covers, but not from deleting the newest notes and rewriting what follows (it then
looks like a crash), rolling the directory back to an older copy, or, when the key
lives in the run, replacing the whole run with another one signed anew. What catches
all three is a copy of the newest note that they cannot write: the writer copies
every note it signs into an `AnchorStore` under two names, the log's origin and the
run directory's real path, and resume (and `govtrain audit verify`) make the log
reproduce both. A rolled-back or cut log then misses records the anchor signs, a
rewritten one signs another root, and a swapped run has another origin or key.

The store is ``$GOVTRAIN_ANCHORS``, else ``$XDG_STATE_HOME/govtrain/anchors``, else
``~/.local/state/govtrain/anchors`` (mode 0700); ``GOVTRAIN_ANCHORS=off`` turns it off.
It protects only as far as the run directory's writer cannot write it: another user,
or a copy kept on another machine (point ``GOVTRAIN_ANCHORS`` at it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from govtrain.audit.errors import LogStateError, UnsafePathError
from govtrain.audit.files import open_regular, replace_synced
from govtrain.audit.records import log_origin
from govtrain.audit.verify import LOG_FILE

ENV = "GOVTRAIN_ANCHORS"
OFF = "off"


def _name(kind: str, value: str) -> str:
    return f"{kind}-{hashlib.sha256(value.encode()).hexdigest()}.note"


class AnchorStore:
    """A directory of anchors: `save` after each signature, `notes` before trusting a log."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def default(cls) -> AnchorStore | None:
        """The user's store (see the module docstring), or None when turned off."""
        chosen = os.environ.get(ENV)
        if chosen == OFF:
            return None
        if chosen:
            return cls(Path(chosen))
        state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
        return cls(Path(state) / "govtrain" / "anchors")

    def by_origin(self, origin: str) -> Path:
        return self.directory / _name("origin", origin)

    def by_path(self, run_dir: Path) -> Path:
        return self.directory / _name("path", str(Path(run_dir).resolve()))

    def save(self, run_dir: Path, origin: str, note: str) -> None:
        """Make `note` (signed for the log `origin` in `run_dir`) the anchor under both names.

        Each file is replaced atomically (`replace_synced`), so a crash leaves the
        previous anchor, which the log still reproduces. One staging name per anchor is
        enough: only the holder of the run's log lock writes its anchors.
        """
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in (self.by_origin(origin), self.by_path(run_dir)):
                replace_synced(path, note.encode(), mode=0o600)
        except OSError as exc:
            raise LogStateError(
                f"{exc.filename or self.directory}: cannot keep the trust anchor "
                f"({exc.strerror}); fix it or set {ENV} to a writable directory"
            ) from exc

    def notes(self, run_dir: Path) -> list[str]:
        """The anchors that concern the log in `run_dir`: by its origin and by its path."""
        log = Path(run_dir) / LOG_FILE
        try:  # never through a link, nor from a FIFO or device
            with open(open_regular(log, log), "rb") as handle:
                first = handle.readline().rstrip(b"\n")
        except (OSError, UnsafePathError):
            return []
        found = []
        for path in (self.by_origin(log_origin(first)), self.by_path(run_dir)):
            try:
                found.append(path.read_text())
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise LogStateError(f"{path}: unreadable trust anchor ({exc})") from exc
        return found
