"""Finding and running TLC: `tlc2.TLC` from tla2tools.jar in a subprocess.

Nothing else starts TLA+ tools. `find_toolchain` locates Java and the jar
(`TLA2TOOLS_JAR` when set, even if it points nowhere, else
`~/.tlaplus/tla2tools.jar`); `run_tlc` runs one model with an explicit config,
worker count, private metadir and timeout in `-tool` mode and hands TLC's
output to `govtrain.formal.output`, where TLC's exit code decides the outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from govtrain.formal.output import TLCResult, parse_output
from govtrain.governance.errors import GovtrainError

JAR_ENV = "TLA2TOOLS_JAR"

# TLC's own advice for model checking throughput.
JVM_FLAGS = ("-XX:+UseParallelGC",)


class TLCNotFound(GovtrainError):
    """No Java runtime or no tla2tools.jar: model checking cannot run here."""


# --------------------------------------------------------------------------- toolchain


@dataclass(frozen=True, slots=True)
class Toolchain:
    java: str
    jar: Path


def find_jar(env: Mapping[str, str] | None = None) -> Path | None:
    """TLA2TOOLS_JAR if set (an explicit path that does not exist means "not found"),
    else ~/.tlaplus/tla2tools.jar."""
    env = os.environ if env is None else env
    if JAR_ENV in env:
        explicit = Path(env[JAR_ENV]).expanduser()
        return explicit if explicit.is_file() else None
    default = Path(env.get("HOME", "~")).expanduser() / ".tlaplus" / "tla2tools.jar"
    return default if default.is_file() else None


def find_java(env: Mapping[str, str] | None = None) -> str | None:
    """$JAVA_HOME/bin/java if present, else `java` on the PATH."""
    env = os.environ if env is None else env
    java_home = env.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java", path=env.get("PATH"))


def find_toolchain(env: Mapping[str, str] | None = None) -> Toolchain:
    java, jar = find_java(env), find_jar(env)
    if java is None:
        raise TLCNotFound("no Java runtime (set JAVA_HOME or put java on the PATH)")
    if jar is None:
        where = (env or os.environ).get(JAR_ENV)
        raise TLCNotFound(
            f"{JAR_ENV}={where} is not a file"
            if where is not None
            else f"no tla2tools.jar (set {JAR_ENV} or install ~/.tlaplus/tla2tools.jar)"
        )
    return Toolchain(java, jar)


# --------------------------------------------------------------------------- running


def tlc_command(
    toolchain: Toolchain,
    spec: Path,
    config: Path,
    *,
    workers: int,
    metadir: Path,
    dump_dot: Path | None = None,
) -> list[str]:
    cmd = [
        toolchain.java,
        *JVM_FLAGS,
        "-cp",
        str(toolchain.jar),
        "tlc2.TLC",
        spec.name,
        "-config",
        str(config.resolve()),
        "-workers",
        str(workers),
        "-metadir",
        str(metadir),
        "-cleanup",
        "-noGenerateSpecTE",
        # Liveness on the complete state graph only: TLC otherwise also checks the
        # partial graph after 3 s, and a failing liveness model would then report a
        # state count that depends on the machine's speed.
        "-lncheck",
        "final",
        "-tool",
    ]
    if dump_dot is not None:
        cmd += ["-dump", "dot,actionlabels", str(dump_dot.resolve())]
    return cmd


def run_tlc(
    spec: Path,
    config: Path,
    *,
    workers: int = 2,
    timeout: float = 600,
    toolchain: Toolchain | None = None,
    dump_dot: Path | None = None,
) -> TLCResult:
    """Model-check `spec` with `config` in a private metadir; never raises on a TLC failure,
    only when TLC cannot be started (TLCNotFound)."""
    toolchain = toolchain or find_toolchain()
    spec, config = Path(spec).resolve(), Path(config).resolve()
    if not spec.is_file():
        raise GovtrainError(f"no such spec: {spec}")
    if not config.is_file():
        raise GovtrainError(f"no such model config: {config}")
    with tempfile.TemporaryDirectory(prefix="govtrain-tlc-") as meta:
        cmd = tlc_command(
            toolchain, spec, config, workers=workers, metadir=Path(meta), dump_dot=dump_dot
        )
        start = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                cwd=spec.parent,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            output, code, timed_out = done.stdout + done.stderr, done.returncode, False
        except subprocess.TimeoutExpired as exc:
            output = _text(exc.stdout) + _text(exc.stderr)
            code, timed_out = -1, True
        except OSError as exc:
            raise TLCNotFound(f"cannot start {toolchain.java}: {exc.strerror}") from None
        wall = time.monotonic() - start
    return parse_output(output, code, wall_s=wall, command=cmd, timed_out=timed_out)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", "replace")
